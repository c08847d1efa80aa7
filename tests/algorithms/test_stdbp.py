"""STDBP: exact spike times against a brute-force simulation, exact gradients against finite differences
and against the closed form (4) (native loops and torch-ops fallback alike, and the two bit for bit),
clock-driven evaluation, and learning on digits."""

from __future__ import annotations

import pytest
import torch

from snnbench import kernels
from snnbench.algorithms import stdbp
from snnbench.algorithms.stdbp import spike_times
from snnbench.data.encoding import latency_times

INF = float("inf")


@pytest.fixture(params=["native", "torch-ops"])
def implementation(request, monkeypatch):
    """Run a test with the native loops (skipped without a C++ toolchain) and with the torch-ops fallback."""
    if request.param == "native" and kernels.native_for("spike_times", torch.zeros(1)) is None:
        pytest.skip("no C++ toolchain: only the torch-ops fallback runs here")
    if request.param == "torch-ops":
        monkeypatch.setattr(kernels, "native_for", lambda stem, x: None)
    return request.param


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


def test_spike_times_equal_brute_force_simulation(implementation):
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


def test_simultaneous_inputs_and_never_firing(implementation):
    t_in = torch.tensor([[0.5, 0.5, INF]], dtype=torch.float64)
    w = torch.tensor([[1.0, 1.0, 5.0], [-1.0, 0.5, 1.0]], dtype=torch.float64)
    # neuron 0: both inputs at 0.5, slope 2 → t = 0.5 + 1/2 = 1.0; neuron 1: slope −0.5, never fires
    assert spike_times(t_in, w, 1.0).tolist() == [[1.0, INF]]


def test_gradient_equals_closed_form_and_finite_differences(implementation):
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


@pytest.mark.parametrize("block_pairs", [1 << 24, 50])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_native_loops_equal_the_prefix_sums_bit_for_bit(monkeypatch, dtype, block_pairs):
    """A conv layer, min-pooling and two dense layers on latency times with ties (times on a coarse grid) and
    silent inputs, mixed-sign weights, silent neurons: the native forward times and the gradients of every
    weight and of the input times equal the torch-ops fallback's bit for bit, also with the input-time
    gradient's per-pair factors formed a row or two at a time (``block_pairs`` 50). One thread, as the
    runner's workers run: on more, the fallback's weight gradient (index_put_ with accumulate) adds
    atomically in no fixed order."""
    if kernels.native_for("spike_times", torch.zeros(1)) is None:
        pytest.skip("no C++ toolchain: only the torch-ops fallback runs here")
    monkeypatch.setattr(stdbp._NativeSpikeTimes, "block_pairs", block_pairs)  # 50: a block per row or two
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _compare_native_and_fallback(monkeypatch, dtype)
    finally:
        torch.set_num_threads(threads)


def _compare_native_and_fallback(monkeypatch, dtype) -> None:
    from snnbench.architectures import Conv, Dense

    generator = torch.Generator().manual_seed(0)
    cfg = stdbp.STDBPConfig(threshold=0.7)
    torch.manual_seed(0)
    net = stdbp.STDBPNet(
        [
            stdbp.SpikeTimeLayer((1, 8, 8), Conv(4, 3), cfg),
            stdbp.MinPool(2),
            stdbp.SpikeTimeLayer((64,), Dense(24), cfg),
            stdbp.SpikeTimeLayer((24,), Dense(10), cfg),
        ],
        cfg.t_max,
    ).to(dtype)
    with torch.no_grad():
        for layer in net.layers[::2]:
            layer.weight.add_(torch.randn(layer.weight.shape, generator=generator, dtype=dtype) - 0.2)
    pixels = torch.rand(32, 1, 8, 8, generator=generator, dtype=dtype)
    pixels = torch.round(pixels * 6) / 6 * (torch.rand(32, 1, 8, 8, generator=generator) > 0.25)
    upstream = torch.randn(32, 10, generator=generator, dtype=dtype)

    def run() -> list[torch.Tensor]:
        net.zero_grad(set_to_none=True)
        t_in = latency_times(pixels, 1.0).requires_grad_(True)
        hidden = net.layers[1](net.layers[0](t_in))
        t_out = net.layers[3](net.layers[2](hidden))
        torch.where(torch.isfinite(t_out), t_out, torch.zeros(())).mul(upstream).sum().backward()
        return [hidden, t_out, t_in.grad, *(layer.weight.grad for layer in net.layers[::2])]

    native = run()
    monkeypatch.setattr(kernels, "native_for", lambda stem, x: None)
    fallback = run()
    hidden, t_out = native[:2]
    assert 0 < torch.isfinite(hidden).double().mean() < 1 and 0 < torch.isfinite(t_out).double().mean() < 1
    assert (native[2] != 0).any()
    for ours, theirs in zip(native, fallback, strict=True):
        assert ours.dtype == dtype and torch.equal(ours, theirs)


def simulate_steps(x: torch.Tensor, weights: list[torch.Tensor], T: int, threshold: float = 1.0):
    """A T-step discrete-time run of dense ReL-PSP layers (independent of ``spike_times``): the input
    spikes come from the ``latency`` encoding; an input spike in step k adds w·dt to V at the end of
    every step from k on, a neuron fires once, in the first step that ends with V ≥ ϑ, and the layer
    above receives it in the same step. Returns the output spike steps (−1 = silent) and V at the end."""
    from snnbench.data.encoding import latency

    dt = 1.0 / T
    spikes = latency(x, T)  # [T, B, N]
    for w in weights:
        slope = torch.zeros(x.shape[0], w.shape[0], dtype=x.dtype)
        voltage, fired, out = torch.zeros_like(slope), torch.zeros_like(slope, dtype=torch.bool), []
        for k in range(T):
            slope = slope + spikes[k] @ w.t()
            voltage = voltage + dt * slope
            now = (voltage >= threshold) & ~fired
            fired |= now
            out.append(now.to(x.dtype))
        spikes = torch.stack(out)
    step = torch.where(spikes.any(0), spikes.argmax(0), torch.full(slope.shape, -1))
    return step, voltage


def test_clocked_run_is_a_T_step_simulation_with_inputs_on_the_grid():
    """``clocked`` equals a step-by-step simulation: inputs on the T-step grid (at T = 1 every positive
    input is the same single step, so one hidden pattern), and no spike after step T."""
    from snnbench.algorithms import RunContext
    from snnbench.algorithms.stdbp import STDBP, STDBPConfig, STDBPNet
    from snnbench.architectures import resolve_architecture
    from snnbench.data import DatasetInfo
    from snnbench.data.encoding import latency

    torch.manual_seed(0)
    algorithm = STDBP(STDBPConfig(), resolve_architecture("32"), DatasetInfo("x", (16,), 3))
    net = algorithm.build(1).double()
    with torch.no_grad():
        net.layers[1].weight.mul_(0.3)  # slower outputs: some decide within T steps, some do not
    x = torch.rand(500, 16, dtype=torch.float64)
    x[:, :3] = 0.0  # pixels that never spike
    weights, decided = [layer.weight.detach() for layer in net.layers], []
    for T in (1, 2, 3, 8):
        t_out, potential = net.clocked(latency_times(x), T)
        step, voltage = simulate_steps(x, weights, T)
        expected = torch.where(step >= 0, step.double() / T, torch.full_like(voltage, INF))
        torch.testing.assert_close(t_out, expected, rtol=0, atol=1e-9)
        torch.testing.assert_close(potential, voltage)
        decided.append(torch.isfinite(t_out).any(1))
    assert torch.cat(decided).any() and not torch.cat(decided).all()  # both cases occur
    # the decision: the earliest output spike; with none by step T, the highest potential at its end
    ctx = RunContext(8, torch.device("cpu"), 1, 1, 1, "latency", torch.Generator(), latency)
    choice = algorithm.predict(net, x, ctx).argmax(1)
    step, voltage = simulate_steps(x, weights, 8)
    first = torch.where(step >= 0, step, torch.full_like(step, 99)).double() + torch.arange(3) * 1e-3
    assert torch.equal(choice, torch.where((step >= 0).any(1), first.argmin(1), voltage.argmax(1)))
    hidden = STDBPNet(net.layers[:1], t_max=1.0)
    assert len(torch.unique(torch.isfinite(hidden.clocked(latency_times(x), 1)[0]), dim=0)) == 1
    fine, continuous = hidden.clocked(latency_times(x), 10_000)[0], hidden(latency_times(x))
    both = torch.isfinite(fine) & torch.isfinite(continuous) & (continuous < 0.99)
    assert (
        both.sum() > 100 and (fine[both] - continuous[both]).abs().max() < 1e-3
    )  # a fine clock → continuous


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
    assert record.metrics["top1"] > 50.0  # the 8-step network: measured 80 %, 98.5 % decided at step 8's end
    assert record.metrics["decision_time_steps"] > 0 and 0 <= record.metrics["no_decision_fraction"] <= 1


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
        hidden = conv(torch.where(torch.isfinite(t), 0.0, t))  # the 4-step run puts t = 0.2 in step 0
        out = net.clocked(t, 4)[0]
    fired = hidden <= 1.0  # spikes within the 4 steps of the clocked run
    assert 0 < fired.sum() < 8
    # conv: 12 ACs per pass (two passes: the direct call and net's); dense: each hidden spike × its fan-out
    assert counter.acs["layers.0"] == 24
    fan_out = (dense.weight != 0).sum(0)
    assert counter.acs["layers.1"] == int(fan_out[fired.flatten()].sum())
    assert counter.dense_per_row == {"layers.0": 50, "layers.1": 24}
    # spikes: the clocked pass only (4 steps); the direct call had no clock
    assert counter.spikes["layers.0"] == int(fired.sum()) and counter.neuron_steps["layers.0"] == 8 * 4
    assert counter.spikes["layers.1"] == int(torch.isfinite(out).sum())
