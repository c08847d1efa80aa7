"""Multi-spike timing-based BP: exact spike times against an independent float64 event-driven simulation of
the LIF equations (PSC and membrane as two ODEs, reset to zero, crossings by bisection), exact gradients
against finite differences of that simulation (several spikes per neuron, resets, two layers; the
differences never cross a spike's appearance or disappearance) and against the implicit-function formula
(4) written out, the T-step window (input grid, deadline), the loss, and the recipe (defaults, optimiser,
schedule, build)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from snnbench.algorithms import RunContext, algorithms
from snnbench.algorithms.multispike_tbp import (
    EventLIFLayer,
    MultiSpikeNet,
    MultiSpikeTBP,
    MultiSpikeTBPConfig,
    kernel_peak,
    lif_spike_times,
    peak_potential,
    spike_events,
)
from snnbench.architectures import resolve_architecture
from snnbench.data.encoding import latency

INF = float("inf")
THRESHOLD, TAU_S, TAU_M = 1.3, 0.7, 1.4  # not the defaults: a lost ϑ or τ shows


# ---- an independent reference: the two ODEs stepped exactly between events, crossings by bisection ----
def reference_neuron(
    events: list[tuple[float, float]], threshold: float, tau_s: float, tau_m: float, t_end: float
):
    """Spike times of one LIF neuron from its ODEs: τ_s dI/dt = −I, τ_m dV/dt = −V + I; an input event
    (t, w) adds w/c to I, c = τ_s/(τ_m − τ_s), so that its PSP is w (e^{−s/τ_m} − e^{−s/τ_s}); V → 0 at each
    crossing of ϑ. Exact propagation between events; the first crossing by a fine scan, then bisection."""
    c = tau_s / (tau_m - tau_s)

    def propagate(v0, i0, s):
        decay_m = torch.exp(-s / tau_m) if torch.is_tensor(s) else math.exp(-s / tau_m)
        decay_s = torch.exp(-s / tau_s) if torch.is_tensor(s) else math.exp(-s / tau_s)
        return v0 * decay_m + i0 * c * (decay_m - decay_s), i0 * decay_s

    events = sorted(events)
    spikes: list[float] = []
    v, i, t = 0.0, 0.0, 0.0
    bounds = [e[0] for e in events[1:]] + [t_end]
    fine = torch.linspace(0.0, 1.0, 4001, dtype=torch.float64)[1:]
    for (t_e, w), t_next in zip(events, bounds, strict=True):
        v, i = propagate(v, i, t_e - t)
        i, t = i + w / c, t_e
        while t_next > t:
            grid = fine * (t_next - t)
            above = (propagate(v, i, grid)[0] >= threshold).nonzero()
            if len(above) == 0:
                break
            k = int(above[0, 0])
            lo, hi = (float(grid[k - 1]) if k else 0.0), float(grid[k])
            for _ in range(80):
                mid = 0.5 * (lo + hi)
                lo, hi = (lo, mid) if propagate(v, i, mid)[0] >= threshold else (mid, hi)
            spikes.append(t + hi)
            v, i = propagate(v, i, hi)
            v, t = 0.0, t + hi  # reset to zero
        v, i = propagate(v, i, t_next - t)
        t = t_next
    return spikes


def reference_network(inputs, weights, threshold=THRESHOLD, tau_s=TAU_S, tau_m=TAU_M, t_end=6.0):
    """Every layer's spike lists for input spike lists ``inputs[j]`` and weight matrices ``[N_out, N_in]``."""
    layers = [inputs]
    for w in weights:
        below = layers[-1]
        layers.append(
            [
                reference_neuron(
                    [(t, float(w[n, j])) for j, times in enumerate(below) for t in times],
                    threshold,
                    tau_s,
                    tau_m,
                    t_end,
                )
                for n in range(w.shape[0])
            ]
        )
    return layers


def ours_network(inputs, weights, threshold=THRESHOLD, tau_s=TAU_S, tau_m=TAU_M, t_end=6.0, max_spikes=12):
    """The same network with :func:`lif_spike_times` (float64), weights as differentiable tensors."""
    per = max(len(t) for t in inputs)
    t_in = torch.full((1, len(inputs), per), INF, dtype=torch.float64)
    for j, times in enumerate(inputs):
        t_in[0, j, : len(times)] = torch.tensor(times, dtype=torch.float64)
    h, out = t_in, [t_in]
    for w in weights:
        h = lif_spike_times(*spike_events(h, w), threshold, tau_s, tau_m, t_end, max_spikes)
        out.append(h)
    return out


def as_lists(times: torch.Tensor) -> list[list[float]]:
    return [[float(t) for t in row if math.isfinite(t)] for row in times[0].detach()]


def random_net(seed: int):
    gen = torch.Generator().manual_seed(seed)
    inputs = [sorted((torch.rand(3, generator=gen, dtype=torch.float64) * 2.5).tolist()) for _ in range(5)]
    w1 = torch.randn(4, 5, generator=gen, dtype=torch.float64) * 0.8 + 1.0
    w2 = torch.randn(3, 4, generator=gen, dtype=torch.float64) * 0.8 + 1.2
    return inputs, w1, w2


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_spike_times_equal_the_reference_simulation_with_several_spikes_per_neuron(seed):
    inputs, w1, w2 = random_net(seed)
    ref = reference_network(inputs, [w1, w2])
    ours = ours_network(inputs, [w1, w2])
    counts = [len(s) for s in ref[1]]
    assert max(counts) >= 3, counts  # several spikes, so resets matter
    for layer in (1, 2):
        got = as_lists(ours[layer])
        assert [len(s) for s in got] == [len(s) for s in ref[layer]]
        for a, b in zip(got, ref[layer], strict=True):
            torch.testing.assert_close(torch.tensor(a), torch.tensor(b), atol=1e-9, rtol=0)


def spike_counts(inputs, weights):
    return [[len(s) for s in layer] for layer in reference_network(inputs, weights)[1:]]


@pytest.mark.parametrize("seed", [0, 1])
def test_gradients_equal_finite_differences_of_the_reference_simulation(seed):
    """∂L/∂w of L = Σ c · (every hidden and output spike time) against central differences of the float64
    reference; a weight whose ± step changes any spike count (a spike appearing or vanishing) is skipped."""
    inputs, w1, w2 = random_net(seed)
    w1, w2 = w1.clone().requires_grad_(), w2.clone().requires_grad_()
    _, hidden, output = ours_network(inputs, [w1, w2])
    gen = torch.Generator().manual_seed(100 + seed)
    c_h = torch.randn(hidden.shape, generator=gen, dtype=torch.float64)
    c_o = torch.randn(output.shape, generator=gen, dtype=torch.float64)

    def loss_of(h, o):
        return sum(
            float(c[0, n, m]) * t
            for c, layer in ((c_h, h), (c_o, o))
            for n, times in enumerate(layer)
            for m, t in enumerate(times)
        )

    finite_h, finite_o = torch.isfinite(hidden), torch.isfinite(output)
    loss = (torch.where(finite_h, hidden, 0.0) * c_h).sum() + (torch.where(finite_o, output, 0.0) * c_o).sum()
    loss.backward()
    eps, checked, base = 1e-6, 0, spike_counts(inputs, [w1.detach(), w2.detach()])
    for w, grad in ((w1, w1.grad), (w2, w2.grad)):
        for idx in [(n, j) for n in range(w.shape[0]) for j in range(w.shape[1])]:
            plus, minus = (
                [w1.detach().clone(), w2.detach().clone()],
                [w1.detach().clone(), w2.detach().clone()],
            )
            k = 0 if w is w1 else 1
            plus[k][idx] += eps
            minus[k][idx] -= eps
            ref_p, ref_m = reference_network(inputs, plus), reference_network(inputs, minus)
            if [[len(s) for s in la] for la in ref_p[1:]] != base or [
                [len(s) for s in la] for la in ref_m[1:]
            ] != base:
                continue  # the step crosses a spike's appearance or disappearance
            fd = (loss_of(ref_p[1], ref_p[2]) - loss_of(ref_m[1], ref_m[2])) / (2 * eps)
            assert grad[idx].item() == pytest.approx(fd, rel=2e-4, abs=2e-5), (k, idx)
            checked += 1
    assert checked >= 24


def test_gradient_is_the_implicit_function_formula_chained_through_resets():
    """One neuron, inputs fixed: ∂t^m/∂w_j = −(Σ_{k: t_j^k < t^m} κ(t^m − t_j^k) − ϑ/τ_m Σ_{m'<m}
    e^{−(t^m − t^{m'})/τ_m} ∂t^{m'}/∂w_j) / V̇(t^m): the resets carry the earlier spikes' gradients."""
    t_in = torch.tensor([[0.1, 0.4, 0.9, 1.5, 2.2]], dtype=torch.float64)
    w = torch.tensor([[3.5, 2.8, 3.2, 3.6, 3.0]], dtype=torch.float64, requires_grad=True)
    times = lif_spike_times(t_in, w.unsqueeze(0), THRESHOLD, TAU_S, TAU_M, 6.0, 8)[0, 0]
    spikes = times[torch.isfinite(times)]
    assert len(spikes) >= 3

    def kernel(s):
        return torch.where(s > 0, torch.exp(-s / TAU_M) - torch.exp(-s / TAU_S), torch.zeros_like(s))

    def kernel_slope(s):
        return torch.where(
            s > 0, -torch.exp(-s / TAU_M) / TAU_M + torch.exp(-s / TAU_S) / TAU_S, torch.zeros_like(s)
        )

    expected: list[torch.Tensor] = []
    with torch.no_grad():
        t_prev = spikes.detach()
        for m, t in enumerate(t_prev):
            s = t - t_in[0]
            trace = torch.exp(-(t - t_prev[:m]) / TAU_M)
            slope = (w[0] * kernel_slope(s)).sum() + THRESHOLD / TAU_M * trace.sum()  # V̇(t^m)
            d_v = kernel(s).clone()  # ∂V/∂w_j
            for k in range(m):  # ∂V/∂t^{m'} = −ϑ/τ_m e^{−(t − t^{m'})/τ_m}
                d_v -= THRESHOLD / TAU_M * trace[k] * expected[k]
            expected.append(-d_v / slope)
    for m in range(len(spikes)):
        (grad,) = torch.autograd.grad(spikes[m], w, retain_graph=True)
        torch.testing.assert_close(grad[0], expected[m], rtol=1e-10, atol=1e-12)


def test_simulation_ends_at_t_end_and_caps_the_spike_count():
    t_in = torch.tensor([[0.0]], dtype=torch.float64)
    w = torch.tensor([[[40.0]]], dtype=torch.float64)
    many = lif_spike_times(t_in, w, 1.0, 1.0, 2.0, 5.0, 30)[0, 0]
    assert torch.isfinite(many).sum() > 8 and bool((many[torch.isfinite(many)] < 5.0).all())
    capped = lif_spike_times(t_in, w, 1.0, 1.0, 2.0, 5.0, 8)[0, 0]
    assert torch.equal(capped, many[:8])
    early = lif_spike_times(t_in, w, 1.0, 1.0, 2.0, 1.0, 30)[0, 0]
    assert torch.equal(early[torch.isfinite(early)], many[many < 1.0])


def test_tau_m_must_be_twice_tau_s():
    with pytest.raises(ValueError, match="tau_m must be 2 tau_s"):
        MultiSpikeTBPConfig(tau_s=1.0, tau_m=3.0)


# ---- the T-step window ----
class Digits:
    input_shape = (64,)
    num_classes = 10


def method(**config) -> MultiSpikeTBP:
    return MultiSpikeTBP(MultiSpikeTBPConfig(**config), resolve_architecture("mlp"), Digits())


def context(T: int, epochs: int = 5) -> RunContext:
    return RunContext(
        T=T,
        device=torch.device("cpu"),
        epochs=epochs,
        batch_size=8,
        eval_batch_size=8,
        encoding="latency",
        generator=torch.Generator(),
        encode_fn=lambda x, steps, gen: latency(x, steps),
    )


@pytest.mark.parametrize("T", [1, 2, 4, 8])
def test_inputs_arrive_on_the_T_step_grid_of_the_window(T):
    """The first layer's events are the encoding's T steps at times k · t_max / T, each carrying the summed
    weights of that step's input spikes; the network simulates up to the time it is given."""
    alg = method()
    net = alg.build(T)
    x = torch.rand(3, 64)
    raster = latency(x, T)
    first = net.layers[0]
    net(raster, alg.config.t_max)
    t_ev, w_ev = first.events(raster)
    torch.testing.assert_close(t_ev[0], torch.arange(T, dtype=torch.float32) * (4.0 / T))
    torch.testing.assert_close(w_ev, torch.einsum("nj,tbj->bnt", first.weight, raster))
    assert first.t_end == pytest.approx(4.0) and first.deadline == pytest.approx(4.0)


def test_prediction_is_the_first_output_spike_before_the_deadline():
    """Scores are −t of each output's first spike within [0, t_max]; a spike after the deadline counts as
    silent, and silent outputs tie below every spiking one (weaker output weights make some spike late)."""
    torch.manual_seed(0)
    alg = method()
    net = alg.build(4)
    x = torch.rand(16, 64) * (torch.rand(16, 64) < 0.4)
    ctx = context(4)
    late_spikes = 0
    weight = net.layers[1].weight.detach().clone()
    for factor in (1.0, 0.6, 0.4):
        with torch.no_grad():
            net.layers[1].weight.copy_(weight * factor)
            late = net(ctx.encode(x), 4.0 * 1.5)
            scores = alg.predict(net, x, ctx)
        within = late <= 4.0
        torch.testing.assert_close(scores[within], -late[within])
        assert bool((scores[~within] == -5.0).all()) and bool((scores[within] > -5.0).all())
        late_spikes += int((torch.isfinite(late) & ~within).sum())
    assert late_spikes > 0


def test_loss_scores_put_silent_outputs_after_the_window_by_their_distance_to_threshold():
    """Silent outputs at t_max (1 + margin) + τ_s (ϑ − V_peak)/ϑ, the deadline competitor at t_max."""
    alg = method()
    t_out = torch.tensor([[1.0, INF, 5.0, INF]])
    torch.testing.assert_close(alg.loss_scores(t_out), torch.tensor([[-1.0, -6.0, -5.0, -6.0, -4.0]]))
    peak = torch.tensor([[9.0, 0.25, 9.0, -1.0]])
    torch.testing.assert_close(alg.loss_scores(t_out, peak), torch.tensor([[-1.0, -6.75, -5.0, -8.0, -4.0]]))


def test_peak_potential_is_the_maximum_of_the_potential_over_the_window():
    gen = torch.Generator().manual_seed(3)
    t_ev = torch.sort(torch.rand(3, 5, generator=gen, dtype=torch.float64) * 3.0)[0]
    t_ev[0, -1] = INF
    w_ev = torch.randn(3, 4, 5, generator=gen, dtype=torch.float64) * 0.3 + 0.1
    peak = peak_potential(t_ev, w_ev, TAU_S, TAU_M, 4.0)
    grid = torch.linspace(0.0, 4.0, 200_001, dtype=torch.float64)
    s = (grid[None, None, :] - t_ev[:, :, None]).clamp(min=0.0)  # [B, E, G]
    kernel = torch.where(torch.isfinite(s), torch.exp(-s / TAU_M) - torch.exp(-s / TAU_S), 0.0)
    voltage = torch.einsum("bne,beg->bng", w_ev, kernel)
    torch.testing.assert_close(peak, voltage.max(-1).values, atol=2e-6, rtol=0)  # a kink between grid points

    layer = method().build(2).layers[1]  # the training pass: spike times and peaks from one set of events
    layer.t_end = 6.0
    hidden = torch.sort(torch.rand(2, 256, 3) * 4.0, dim=2)[0]
    hidden[:, ::2] = INF
    times, peaks = layer.forward_with_peak(hidden)
    torch.testing.assert_close(times, layer(hidden), rtol=0, atol=0)
    torch.testing.assert_close(peaks, peak_potential(*layer.events(hidden), 1.0, 2.0, 6.0), rtol=0, atol=0)


def test_training_simulates_past_the_deadline_and_learns_a_batch():
    """Training runs to t_max (1 + margin) and its loss falls on a repeated batch of digits."""
    from sklearn.datasets import load_digits

    torch.manual_seed(0)
    digits = load_digits()
    x = torch.tensor(digits.data[:64] / 16.0, dtype=torch.float32)
    y = torch.tensor(digits.target[:64])
    alg = method(lr=0.01)
    net = alg.build(4)
    ctx = context(4)
    state = alg.configure(net, ctx)
    first = alg.train_epoch(net, state, [(x, y)] * 4, ctx)
    assert net.layers[0].t_end == pytest.approx(6.0)
    for _ in range(3):
        last = alg.train_epoch(net, state, [(x, y)] * 4, ctx)
    assert last["loss"] < first["loss"] - 0.1, (first, last)


# ---- the recipe ----
def test_config_defaults():
    cfg = MultiSpikeTBPConfig()
    assert (cfg.threshold, cfg.tau_s, cfg.tau_m, cfg.t_max, cfg.margin) == (1.0, 1.0, 2.0, 4.0, 0.5)
    assert (cfg.max_spikes, cfg.score_scale, cfg.init_mean, cfg.init_std) == (8, 1.0, 4.0, 1.0)
    assert (cfg.lr, cfg.schedule) == (3e-3, "cosine")
    assert MultiSpikeTBP.default_encoding == "latency" and MultiSpikeTBP.training_depends_on_T
    assert algorithms.get("multispike-tbp") is MultiSpikeTBP


def test_optimiser_is_adam_with_a_cosine_schedule_over_the_epochs():
    alg = method(lr=0.02)
    net = alg.build(4)
    state = alg.configure(net, context(4, epochs=6))
    assert isinstance(state.optimizer, torch.optim.Adam)
    assert state.optimizer.defaults["lr"] == 0.02 and state.optimizer.defaults["weight_decay"] == 0
    assert isinstance(state.scheduler, torch.optim.lr_scheduler.CosineAnnealingLR)
    assert state.scheduler.T_max == 6
    assert method(schedule="none").configure(net, context(4)).scheduler is None


def test_build_is_the_mlp_of_event_driven_layers_with_the_declared_initialisation():
    torch.manual_seed(0)
    net = method().build(2)
    assert isinstance(net, MultiSpikeNet)
    hidden, output = net.layers
    assert isinstance(hidden, EventLIFLayer) and isinstance(output, EventLIFLayer)
    assert hidden.weight.shape == (256, 64) and output.weight.shape == (10, 256)
    assert hidden.grid_input and not output.grid_input
    assert (hidden.max_spikes, output.max_spikes) == (8, 1)
    assert sum(p.numel() for p in net.parameters()) == 256 * 64 + 10 * 256  # no biases
    peak = kernel_peak(1.0, 2.0)
    assert peak == pytest.approx(0.25)
    for layer, fan_in in ((hidden, 64), (output, 256)):
        scaled = layer.weight.detach() * peak
        assert scaled.mean().item() == pytest.approx(4.0 / fan_in, abs=3.0 / fan_in)
        assert scaled.std().item() == pytest.approx(1.0 / math.sqrt(fan_in), rel=0.1)
    assert net.t_max == 4.0


def test_the_deadline_loss_trains_the_label_before_the_deadline():
    """The deadline competitor: a label output spiking after t_max loses to it."""
    alg = method()
    before = F.cross_entropy(alg.loss_scores(torch.tensor([[3.0, 3.5]])), torch.tensor([0]))
    after = F.cross_entropy(alg.loss_scores(torch.tensor([[4.5, 5.0]])), torch.tensor([0]))
    assert after > before + 0.3


def test_spike_statistics_count_neuron_steps_with_a_spike_before_the_deadline():
    layer = method().build(2).layers[0]
    layer.dt, layer.steps, layer.deadline = 2.0, 2, 4.0
    output = torch.tensor([[[0.5, 1.0, 3.0, 4.5], [4.0, INF, INF, INF]]])  # steps {0, 1} and {1}
    assert layer.spike_statistics(output) == (3, 4)


def test_operations_are_input_spikes_times_their_nonzero_weights():
    net = method().build(2)
    hidden, output = net.layers
    with torch.no_grad():
        hidden.weight[:, 0] = 0.0  # input 0 reaches no neuron
        output.weight[:5, 1] = 0.0
    raster = torch.zeros(2, 3, 64)
    raster[0, 0, 0] = raster[1, 0, 1] = raster[1, 2, 1] = 1.0
    assert hidden.count_operations(raster) == (2 * 256, True, 256 * 64)
    output.deadline = 4.0
    times = torch.full((3, 256, 8), INF)
    times[0, 1, :2] = torch.tensor([1.0, 2.0])
    times[1, 2, 0] = 4.5  # after the deadline: no operation
    assert output.count_operations(times) == (2 * 5, True, 10 * 256)


def test_a_grazing_crossing_keeps_its_exact_time_and_gets_a_bounded_gradient():
    """The exact ∂t/∂w divides by the slope at the crossing, which vanishes when V only grazes ϑ (it made
    every lr diverge on digits: Adam's second moment overflowed). With the default bound the spike time is
    unchanged and its gradient stays near ∂V/∂w / (min_slope ϑ x / τ_m); without it, it explodes."""
    cfg = MultiSpikeTBPConfig(threshold=THRESHOLD, tau_s=TAU_S, tau_m=TAU_M)
    assert cfg.min_slope > 0
    grazing = THRESHOLD * (1 + 1e-12) / kernel_peak(TAU_S, TAU_M)  # the peak a hair above ϑ
    results = []
    for min_slope in (cfg.min_slope, 0.0):
        layer = EventLIFLayer(1, 1, cfg.model_copy(update={"min_slope": min_slope}), False, 1).double()
        layer.t_end = 10.0
        with torch.no_grad():
            layer.weight.fill_(grazing)
        t = layer(torch.zeros(1, 1, 1, dtype=torch.float64))[0, 0, 0]
        t.backward()
        results.append((t.item(), layer.weight.grad.abs().item()))
    (t_bounded, g_bounded), (t_exact, g_exact) = results
    assert math.isfinite(t_bounded) and t_bounded == t_exact  # the forward is exact either way
    assert 0 < g_bounded < 1e3
    assert not g_exact < 1e4  # the exact gradient explodes (or is not finite)
