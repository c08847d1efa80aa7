"""STDBP: exact spike times against a brute-force simulation, exact gradients against finite differences
and against the closed form (4), clock-driven evaluation, and learning on digits."""

from __future__ import annotations

import torch

from snnbench.algorithms.stdbp import spike_times

INF = float("inf")


def simulate(
    t_in: torch.Tensor, w: torch.Tensor, threshold: float, t_end: float = 20.0, steps: int = 200_001
):
    """First crossing of ϑ by V_i(t) = Σ_j w_ij max(0, t − t_j) on a fine grid (independent of the solver)."""
    grid = torch.linspace(0.0, t_end, steps, dtype=torch.float64)
    t_j = torch.where(torch.isfinite(t_in), t_in, torch.full_like(t_in, 1e9))
    psp = (grid[:, None] - t_j[None, :]).clamp(min=0.0)  # [G, N_in]
    voltage = psp @ w.t()  # [G, N_out]
    crossed = voltage >= threshold
    first = crossed.to(torch.uint8).argmax(0)
    return torch.where(crossed.any(0), grid[first], torch.full_like(grid[first], INF))


def test_spike_times_equal_brute_force_simulation():
    torch.manual_seed(0)
    for _ in range(5):
        t_in = torch.rand(1, 6, dtype=torch.float64) * 2.0
        t_in[0, 2] = INF  # a silent input
        w = torch.randn(4, 6, dtype=torch.float64) * 0.8 + 0.3
        exact = spike_times(t_in, w, 1.0)[0]
        brute = simulate(t_in[0], w, 1.0)
        both = torch.isfinite(exact) & torch.isfinite(brute)
        assert torch.equal(torch.isfinite(exact), torch.isfinite(brute))
        torch.testing.assert_close(exact[both], brute[both], atol=2e-4, rtol=0)  # grid step 1e-4


def test_simultaneous_inputs_and_never_firing():
    t_in = torch.tensor([[0.5, 0.5, INF]], dtype=torch.float64)
    w = torch.tensor([[1.0, 1.0, 5.0], [-1.0, 0.5, 1.0]], dtype=torch.float64)
    # neuron 0: both inputs at 0.5, slope 2 → t = 0.5 + 1/2 = 1.0; neuron 1: slope −0.5, never fires
    assert spike_times(t_in, w, 1.0).tolist() == [[1.0, INF]]


def test_gradient_equals_closed_form_and_finite_differences():
    torch.manual_seed(1)
    t_in = (torch.rand(3, 8, dtype=torch.float64) * 2.0).requires_grad_()
    w = (torch.randn(5, 8, dtype=torch.float64) * 0.5 + 0.4).requires_grad_()
    t_out = spike_times(t_in, w, 1.0)
    fired = torch.isfinite(t_out)
    assert fired.sum() >= 8
    upstream = torch.randn_like(t_out) * fired
    torch.where(fired, t_out, torch.zeros_like(t_out)).mul(upstream).sum().backward()

    # closed form (4): ∂t_i/∂w_ij = (t_j − t_i)/Σ_C w, ∂t_i/∂t_j = w_ij/Σ_C w, over the causal set C_i
    with torch.no_grad():
        causal = (t_in[:, None, :] < t_out[:, :, None]) & fired[:, :, None]  # [B, N_out, N_in]
        w_sum = (w[None] * causal).sum(-1, keepdim=True)
        d_w = torch.where(causal, (t_in[:, None, :] - t_out[:, :, None]) / w_sum, torch.zeros(()))
        d_t = torch.where(causal, w[None] / w_sum, torch.zeros(()))
        grad_w = (upstream[:, :, None] * d_w).sum(0)
        grad_t = (upstream[:, :, None] * d_t).sum(1)
    torch.testing.assert_close(w.grad, grad_w)
    torch.testing.assert_close(t_in.grad, grad_t)

    # finite differences of the forward spike times (away from causal-set boundaries)
    eps = 1e-7
    with torch.no_grad():
        for i, j in [(0, 0), (1, 3), (4, 7), (2, 5)]:
            plus, minus = w.clone(), w.clone()
            plus[i, j] += eps
            minus[i, j] -= eps
            a, b = spike_times(t_in, plus, 1.0)[:, i], spike_times(t_in, minus, 1.0)[:, i]
            ok = torch.isfinite(a) & torch.isfinite(b)
            numeric = ((a - b) / (2 * eps))[ok]
            torch.testing.assert_close(numeric, d_w[:, i, j][ok], atol=1e-6, rtol=1e-5)


def test_clock_driven_times_are_on_the_grid_and_not_earlier(tmp_path):
    from snnbench.algorithms.stdbp import STDBP, STDBPConfig
    from snnbench.architectures import resolve_architecture
    from snnbench.data import DatasetInfo

    torch.manual_seed(0)
    algorithm = STDBP(STDBPConfig(), resolve_architecture("32"), DatasetInfo("x", (16,), 3))
    net = algorithm.build(4)
    t_in = torch.rand(20, 16)
    continuous, clocked = net(t_in), net(t_in, dt=0.25)
    finite = torch.isfinite(clocked)
    assert finite.any()
    steps = clocked[finite] / 0.25
    torch.testing.assert_close(steps, steps.round())
    fine = net(t_in, dt=1e-4)  # a fine clock converges to continuous time
    both = torch.isfinite(fine) & torch.isfinite(continuous)
    assert (fine[both] - continuous[both]).abs().max() < 1e-2


def test_learns_digits_quickly(write_suite, tmp_path):
    from snnbench.grid import run_suite

    path = write_suite(
        {
            "timesteps": [8],
            "budgets": {"smoke": {"epochs": 6, "batch_size": 32, "train_subset": 400, "test_subset": 200}},
            "algorithms": {"stdbp": {"arch": "mlp", "encoding": "latency"}},
        }
    )
    record = run_suite(path, out_dir=tmp_path, device="cpu").records[0]
    assert record.status == "ok"
    assert record.metrics["top1_continuous"] > 60.0  # measured 88 % (chance 10 %)
    assert record.metrics["decision_time_steps"] > 0 and record.metrics["silent_output_fraction"] < 0.5


def test_operation_counts_are_input_spikes_times_fan_out():
    """Event-driven counting: each finite input time costs one AC per nonzero weight it reaches; spike
    rates count finite output times per neuron per clocked step."""
    from snnbench.algorithms.stdbp import SpikeTimeLayer, STDBPConfig, STDBPNet
    from snnbench.architectures import Conv, Dense
    from snnbench.metrics import OperationCounter

    cfg = STDBPConfig()
    conv = SpikeTimeLayer((1, 4, 4), Conv(channels=2, kernel=3, stride=2, padding=1), cfg)
    dense = SpikeTimeLayer((8,), Dense(units=3), cfg)
    with torch.no_grad():
        dense.weight[0, :4] = 0.0  # 4 missing synapses
    net = STDBPNet([conv, dense], t_max=1.0)
    t = torch.full((1, 1, 4, 4), float("inf"))
    t[0, 0, 0, 0] = t[0, 0, 1, 1] = t[0, 0, 3, 3] = 0.2  # the hand-counted conv example of test_metrics
    with OperationCounter(net) as counter, torch.no_grad():
        hidden = conv(t)
        out = net(t, dt=0.25)
    fired = int(torch.isfinite(net.layers[0](t)).sum())
    # conv: 12 ACs per pass (two passes: the direct call and net's); dense: each hidden spike × its fan-out
    assert counter.acs["layers.0"] == 24
    fan_out = (dense.weight != 0).sum(0)
    assert counter.acs["layers.1"] == int(fan_out[torch.isfinite(hidden.flatten())].sum())
    assert counter.dense_per_row == {"layers.0": 50, "layers.1": 24}
    # spikes: the clocked pass only (4 steps); the direct call had no dt
    assert counter.spikes["layers.0"] == fired and counter.neuron_steps["layers.0"] == 8 * 4
    assert counter.spikes["layers.1"] == int(torch.isfinite(out).sum())
