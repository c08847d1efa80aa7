"""STDBP: exact spike times against a brute-force simulation, exact gradients against finite differences
and against the closed form (4) (native loops and torch-ops fallback alike, and the two bit for bit),
clock-driven evaluation, and learning on digits."""

from __future__ import annotations

import math

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
    # the class scores: minus the step of each output's first spike, −T for an output silent within T
    ctx = RunContext(8, torch.device("cpu"), 1, 1, 1, "latency", torch.Generator(), latency)
    scores = algorithm.predict(net, x, ctx)
    step, _ = simulate_steps(x, weights, 8)
    assert torch.equal(scores, -torch.where(step >= 0, step, torch.full_like(step, 8)).double())
    hidden = STDBPNet(net.layers[:1], t_max=1.0)
    assert len(torch.unique(torch.isfinite(hidden.clocked(latency_times(x), 1)[0]), dim=0)) == 1
    fine, continuous = hidden.clocked(latency_times(x), 10_000)[0], hidden(latency_times(x))
    both = torch.isfinite(fine) & torch.isfinite(continuous) & (continuous < 0.99)
    assert (
        both.sum() > 100 and (fine[both] - continuous[both]).abs().max() < 1e-3
    )  # a fine clock → continuous


def test_learns_digits_quickly(write_suite, tmp_path):
    """Deadline training at T = 8 learns to decide by first spike within the 8 steps; the record carries the
    first-spike top-1 and the labelled secondary figures."""
    from snnbench.grid import run_suite

    path = write_suite(
        {
            "timesteps": [8],
            "budgets": {"smoke": {"epochs": 6, "batch_size": 32, "train_subset": 400, "test_subset": 200}},
            "algorithms": {"stdbp": {"arch": "mlp", "encoding": "latency", "lr": 0.009}},
        }
    )
    record = run_suite(path, out_dir=tmp_path, device="cpu").records[0]
    assert record.status == "ok"
    metrics = record.metrics
    assert metrics["top1"] > 60.0  # the first spike within 8 steps: measured 84.8 % (chance 10 %)
    assert metrics["no_decision_fraction"] < 0.4  # measured 0.105 (0.80 trained in continuous time)
    assert metrics["decision_time_steps"] > 0 and 1 <= metrics["decision_steps_clocked"] <= 8
    for key in ("top1_potential", "top1_continuous"):
        assert 0 <= metrics[key] <= 100


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


def _one_layer_algorithm(weight: list[list[float]], deadline: bool = True):
    """STDBP with a hand-set single dense ReL-PSP layer (no hidden layer): inputs → 3 outputs."""
    from snnbench.algorithms.stdbp import STDBP, SpikeTimeLayer, STDBPConfig, STDBPNet
    from snnbench.architectures import Dense, resolve_architecture
    from snnbench.data import DatasetInfo

    w = torch.tensor(weight, dtype=torch.float64)
    cfg = STDBPConfig(deadline=deadline)
    algorithm = STDBP(cfg, resolve_architecture("32"), DatasetInfo("x", (w.shape[1],), w.shape[0]))
    layer = SpikeTimeLayer((w.shape[1],), Dense(units=w.shape[0]), cfg).double()
    with torch.no_grad():
        layer.weight.copy_(w)
    return algorithm, STDBPNet([layer], t_max=1.0)


def test_first_spike_top1_by_the_runners_tie_rule_on_a_hand_made_case():
    """T = 2 (dt = 0.5), three outputs. Sample 0: input 0 at t = 0 drives outputs 0 and 1 across ϑ in step 0
    (crossing 0.25): a tie of two, the label 1 earns 1/2. Sample 1: input 2 at t = 0 drives every output
    too weakly to spike within the 2 steps: undecided, a uniform guess (1/3), though the potentials
    [0.3, 0.2, 0.1] at the end point to the label 0. Sample 2: output 2 alone spikes in step 0: 1.
    ``top1`` (the runner's score of ``evaluate``) is the first-spike decision; ``top1_potential`` the
    potential read-out."""
    from snnbench.algorithms import RunContext
    from snnbench.data import Split
    from snnbench.data.encoding import latency
    from snnbench.runner import scored

    algorithm, net = _one_layer_algorithm([[4.0, 0.0, 0.3], [4.0, 0.0, 0.2], [0.5, 4.0, 0.1]])
    x = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]], dtype=torch.float64)
    y = torch.tensor([1, 0, 2])
    ctx = RunContext(2, torch.device("cpu"), 1, 1, 8, "latency", torch.Generator(), latency)
    scores = algorithm.predict(net, x, ctx)
    assert scores.tolist() == [[0.0, 0.0, -2.0], [-2.0, -2.0, -2.0], [-2.0, -2.0, 0.0]]
    score, evaluation = scored(algorithm, net, Split(x, y), ctx)
    assert score.expected_top1 == pytest.approx(100.0 * (1 / 2 + 1 / 3 + 1) / 3)
    assert score.tie_fraction == pytest.approx(2 / 3)
    assert evaluation.extra["top1_potential"] == pytest.approx(100.0 * (1 / 2 + 1 + 1) / 3)
    assert evaluation.extra["no_decision_fraction"] == pytest.approx(1 / 3)
    assert evaluation.extra["decision_steps_clocked"] == 1.0  # both decided samples: step 0, i.e. the 1st


@pytest.mark.parametrize("T", [1, 2, 3, 8])
def test_deadline_training_pass_is_the_clocked_network(T):
    """The loss of deadline training sees exactly the T-step network that is evaluated: a two-hidden-layer
    net's training scores equal −scale · step · dt / t_max of the step-by-step reference simulation for every
    output spiking within T (hidden spikes after step T silent), and late or silent outputs sit at or after
    the deadline, capped at t_max (1 + deadline_margin)."""
    from snnbench.algorithms.stdbp import STDBP, STDBPConfig
    from snnbench.architectures import resolve_architecture
    from snnbench.data import DatasetInfo

    torch.manual_seed(0)
    cfg = STDBPConfig()
    algorithm = STDBP(cfg, resolve_architecture("24-12"), DatasetInfo("x", (16,), 3))
    net = algorithm.build(T).double()
    with torch.no_grad():  # output speeds such that some samples decide within T steps, some do not
        net.layers[2].weight.mul_({1: 0.3, 2: 0.5, 3: 0.5, 8: 2.0}[T])
    x = torch.rand(400, 16, dtype=torch.float64)
    x[x < 0.5] = 0.0  # pixels that never spike: input patterns differ even at T = 1
    weights = [layer.weight.detach() for layer in net.layers]
    step, _ = simulate_steps(x, weights, T)
    net.train()
    scores = algorithm._loss_scores(net, x, T)
    assert scores.requires_grad
    times = -scores.detach() * cfg.t_max / cfg.score_scale
    within = step >= 0
    assert within.any() and not within.all()  # both cases occur
    assert torch.equal(times[within], step[within].double() / T)  # exactly the step's time
    assert (times[~within] >= cfg.t_max).all() and (times <= cfg.t_max * (1 + cfg.deadline_margin)).all()
    t_out, _ = net.clocked(latency_times(x), T)
    assert torch.equal(torch.isfinite(t_out), within) and torch.equal(t_out[within], times[within])


def test_deadline_gradients_are_the_rel_psp_formula_at_the_continuous_crossings():
    """Straight-through steps: every layer's weight gradient is the closed form (4) at its continuous
    crossing time of its clocked (snapped) inputs; the gradient reaches a hidden spike's continuous time
    unchanged where the spike is within T, and not at all where it is silent."""
    from snnbench.algorithms.stdbp import STDBP, STDBPConfig, spike_times
    from snnbench.architectures import resolve_architecture
    from snnbench.data import DatasetInfo

    T = 3
    torch.manual_seed(2)
    cfg = STDBPConfig()
    algorithm = STDBP(cfg, resolve_architecture("10"), DatasetInfo("x", (8,), 3))
    net = algorithm.build(T).double()
    with torch.no_grad():  # slower hidden neurons 0-3 and output 0 (late spikes), output 1 of mixed sign
        net.layers[0].weight[:4] *= 0.3
        net.layers[1].weight[0] *= 0.3
        net.layers[1].weight[1] = torch.randn(10, dtype=torch.float64) * 0.5
    x = torch.rand(64, 8, dtype=torch.float64)
    upstream = torch.randn(64, 3, dtype=torch.float64)
    scores = algorithm._loss_scores(net, x, T)
    (scores * upstream).sum().backward()
    w1, w2 = (layer.weight.detach() for layer in net.layers)
    dt, cap = cfg.t_max / T, cfg.t_max * (1 + cfg.deadline_margin)

    def closed_form(t_in, w, t_c):
        """(4): ∂t_i/∂w_ij = (t_j − t_i)/Σ_C w and ∂t_i/∂t_j = w_ij/Σ_C w over C_i = {j: t_j < t_i}."""
        causal = (t_in[:, None, :] < t_c[:, :, None]) & torch.isfinite(t_c)[:, :, None]
        w_sum = (w[None] * causal).sum(-1, keepdim=True)
        t_safe = torch.where(torch.isfinite(t_in), t_in, torch.zeros(()))[:, None, :]
        t_c_safe = torch.where(torch.isfinite(t_c), t_c, torch.zeros(()))[:, :, None]
        d_w = torch.where(causal, (t_safe - t_c_safe) / w_sum, torch.zeros(()))
        return d_w, torch.where(causal, w[None] / w_sum, torch.zeros(()))

    with torch.no_grad():
        t0 = torch.floor(latency_times(x) / dt).clamp(max=T - 1) * dt  # inputs on the grid (x > 0 here)
        h_c = spike_times(t0, w1, cfg.threshold)  # continuous crossings
        h_step = torch.ceil(h_c / dt - 1e-6) - 1
        h = torch.where(h_step < T, h_step * dt, torch.full_like(h_c, INF))
        o_c = spike_times(h, w2, cfg.threshold)
        o = (torch.ceil(o_c / dt - 1e-6) - 1) * dt  # late outputs kept on the grid for the loss
        live = torch.isfinite(o) & (o < cap)  # silent or beyond the cap: constant, no gradient
        d_tau = torch.where(live, -upstream * cfg.score_scale / cfg.t_max, torch.zeros(()))
        d_w2, d_h = closed_form(h, w2, o_c)
        grad_w2 = (d_tau[:, :, None] * d_w2).sum(0)
        grad_h = (d_tau[:, :, None] * d_h).sum(1) * torch.isfinite(h)  # straight through, silent: none
        d_w1, _ = closed_form(t0, w1, h_c)
        grad_w1 = (grad_h[:, :, None] * d_w1).sum(0)
    assert live.sum() > 20 and (torch.isfinite(h_c) & ~torch.isfinite(h)).any()  # late hidden spikes occur
    assert (o >= T * dt).any() and not torch.isfinite(o).all()  # late and silent outputs occur
    expected = -torch.where(torch.isfinite(o), o.clamp(max=cap), torch.full_like(o, cap)) * cfg.score_scale
    torch.testing.assert_close(scores.detach(), expected / cfg.t_max, rtol=0, atol=0)
    assert not torch.equal(h[torch.isfinite(h)], h_c[torch.isfinite(h)])  # snapping moved them
    torch.testing.assert_close(net.layers[1].weight.grad, grad_w2)
    torch.testing.assert_close(net.layers[0].weight.grad, grad_w1)


def test_training_depends_on_T_per_config_decides_shared_training():
    """Deadline training (default) trains each T apart; ``deadline: false`` (the paper's continuous time)
    trains once per seed for every T: the runner, the executors and the tuning read it from the spec."""
    from snnbench.algorithms.stdbp import STDBP, STDBPConfig
    from snnbench.executors import group_tasks
    from snnbench.suite import training_depends_on_T

    assert STDBP.depends_on_T(STDBPConfig()) and not STDBP.depends_on_T(STDBPConfig(deadline=False))
    assert training_depends_on_T("stdbp", {}) and not training_depends_on_T("stdbp", {"deadline": False})
    assert training_depends_on_T("stdbp") is True  # the class default: the default config's
    assert training_depends_on_T("conversion", {}) is False

    assert [len(task) for task in group_tasks(_specs({}))] == [1, 1]
    assert [len(task) for task in group_tasks(_specs({"deadline": False}))] == [2]


@pytest.mark.parametrize("deadline", [True, False])
def test_runner_shares_training_across_T_only_in_continuous_time(write_suite, tmp_path, deadline):
    """A tiny run at T = 2 and 4: deadline-trained rows are trained apart; continuous-time rows share one
    training; every record carries the first-spike top1, top1_potential and no_decision_fraction."""
    from snnbench.grid import run_suite

    path = write_suite(
        {
            "timesteps": [2, 4],
            "budgets": {"smoke": {"epochs": 1, "batch_size": 32, "train_subset": 64, "test_subset": 32}},
            "algorithms": {"stdbp": {"arch": "16", "encoding": "latency", "deadline": deadline}},
        }
    )
    records = sorted(run_suite(path, out_dir=tmp_path, device="cpu").records, key=lambda r: r.spec["T"])
    assert [r.status for r in records] == ["ok", "ok"]
    shared = [r.training_shared_with for r in records]
    assert shared == ([None, None] if deadline else [None, records[0].run_id])
    for record in records:
        assert {"top1", "top1_potential", "no_decision_fraction", "top1_continuous"} <= set(record.metrics)


def _specs(hparams: dict) -> list:
    from snnbench.suite import RunSpec

    base = {
        "suite": "s",
        "suite_version": 1,
        "entry": "stdbp",
        "algorithm": "stdbp",
        "dataset": "digits",
        "dataset_options": {},
        "arch": "mlp",
        "encoding": "latency",
        "seed": 0,
        "budget": "smoke",
        "epochs": 1,
        "batch_size": 8,
        "eval_batch_size": 8,
        "train_subset": None,
        "test_subset": None,
    }
    return [RunSpec.model_validate({**base, "T": T, "hparams": hparams}) for T in (2, 8)]


def test_deadline_loss_has_the_deadline_as_a_competitor():
    """Deadline training: a sample whose outputs all fire late (the same step after the window) is not a
    C-way tie in the loss but loses to the deadline competitor (score −scale, a spike at t_max), so the loss
    pushes the label's output into the window; continuous-time training has no competitor."""
    import torch.nn.functional as F

    algorithm, _ = _one_layer_algorithm([[1.0], [1.0], [1.0]])
    late = torch.full((1, 3), -algorithm.config.score_scale * 1.5)  # every output at 1.5 t_max
    loss = F.cross_entropy(algorithm._with_deadline(late), torch.tensor([0]))
    assert loss.item() > math.log(3) + 1.0  # log(3 + e^2.5) = 2.72
    in_time = torch.tensor([[0.0, -5.0, -5.0]])  # the label's output in step 0, the others at t_max
    assert F.cross_entropy(algorithm._with_deadline(in_time), torch.tensor([0])).item() < 0.05
    continuous, _ = _one_layer_algorithm([[1.0], [1.0], [1.0]], deadline=False)
    assert torch.equal(continuous._with_deadline(late), late)
