"""stdp-adaptive (Dong et al. 2023): each rule against a float64 reference written element by element from the
equations of the module docstring (themselves read from the official codef.py @3998fd5; the official code
run beside ours on the same weights, inputs and random streams gave identical spike counts and weights
within 2.4e-7, docs/algorithms/stdp-adaptive.md), the voting read-out, build() and the official defaults."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from snnbench.algorithms import RunContext
from snnbench.algorithms.stdp_adaptive import (
    StdpAdaptive,
    StdpAdaptiveConfig,
    StdpAdaptiveNet,
    adapt_threshold,
    assign_labels,
    bound_rows,
    conv_threshold,
    conv_update,
    simulate,
    standardise,
    synaptic_filter,
    vote,
    winner_take_all,
)
from snnbench.architectures import Conv, resolve_architecture
from snnbench.data import DatasetInfo
from snnbench.data.encoding import direct
from snnbench.errors import SnnbenchError

CFG = StdpAdaptiveConfig()


def sig(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


# ---- the official defaults ------------------------------------------------------------------------------
OFFICIAL = {  # codef.py @3998fd5 line: value
    "conv_epochs": 3,  # 422: for epoch in range(3)
    "conv_timesteps": 100,  # 402: T = 100
    "conv_lr": 0.1,  # 421: SGD lr=0.1
    "conv_offset": 0.3,  # 40: convoff = 0.3
    "conv_tau": 100.0,  # 48: tau_decay = exp(-1/100)
    "conv_inhibition": 1.625,  # 337: inh=1.625
    "filter_centre": 0.4,  # 89: 4 * n / 10
    "filter_slope": 8.0,  # 89: 8 / n
    "threshold_epsilon": 1e-4,  # 138: + 0.0001
    "fc_lr": 1e-4,  # 449: lr = 0.0001
    "fc_decay": 0.99,  # 145: tau_decay=0.99
    "fc_inhibition": 25.0,  # 329: inh=25
    "fc_threshold_scale": 3.0,  # 163: x.max(0)[0] * 3
    "threshold_plus": 0.002,  # 448: plus = 0.002
    "threshold_cap": 350.0,  # 239: max() - 350
    "fc_weight_max": 0.1,  # 229: / max / 0.1
    "rate_decay": 0.5,  # 487: rates * 0.5
}


def test_config_defaults_are_the_official_values():
    defaults = StdpAdaptiveConfig().model_dump()
    assert set(defaults) == set(OFFICIAL)
    for name, value in OFFICIAL.items():
        assert defaults[name] == pytest.approx(value, rel=1e-12), name


# ---- eqs. (1)-(2): threshold balance and synaptic filter --------------------------------------------------
def test_conv_threshold_is_the_largest_current_of_each_channel_over_batch_and_positions():
    torch.manual_seed(0)
    current = torch.randn(3, 2, 4, 4, dtype=torch.float64)
    theta = conv_threshold(current, 1e-4)
    assert theta.shape == (1, 2, 1, 1)
    for c in range(2):
        expected = max(float(v) for v in current[:, c].flatten()) + 1e-4
        assert float(theta[0, c, 0, 0]) == pytest.approx(expected, abs=1e-15)


def test_synaptic_filter_is_the_official_sigmoid():
    theta = torch.tensor([[[[2.0]], [[5.0]]]], dtype=torch.float64)
    current = torch.tensor([-1.0, 0.0, 0.3, 0.8, 1.3, 2.0, 4.0], dtype=torch.float64).view(1, 1, 1, 7)
    current = current.expand(1, 2, 1, 7)
    got = synaptic_filter(current, theta, CFG.filter_centre, CFG.filter_slope)
    for c, th in enumerate((2.0, 5.0)):
        for k in range(7):
            u = max(float(current[0, c, 0, k]), 0.0)
            expected = th / (1.0 + math.exp(-(u - 4.0 * th / 10.0) * (8.0 / th)))
            assert float(got[0, c, 0, k]) == pytest.approx(expected, rel=1e-12)
    half = synaptic_filter(torch.tensor([0.8]), torch.tensor([2.0]), 0.4, 8.0)
    assert float(half) == pytest.approx(1.0)  # θ/2 at 0.4 θ


# ---- eqs. (3)-(5): neurons, winner-take-all, adaptive inhibition ----------------------------------------
def test_winner_take_all_keeps_one_spiking_neuron_per_position_drawn_at_random():
    spikes = torch.zeros(200, 4, 2)
    spikes[:, 1:, 0] = 1.0  # three candidates at position 0, none at position 1
    chosen = torch.zeros(4)
    g = torch.Generator().manual_seed(0)
    won = winner_take_all(spikes, g)
    assert torch.equal(won[:, :, 0].sum(1), torch.ones(200))
    assert won[:, 0, 0].sum() == 0 and won[:, :, 1].sum() == 0
    chosen += won[:, :, 0].sum(0)
    assert all(40 < float(n) < 95 for n in chosen[1:])  # about 200/3 each


def reference_simulation(current, threshold, decay, inhibition, T, generator):
    """Element-by-element float64 loop of eqs. (3)-(5) (neurons along dim 1 of ``[B, N, P]``)."""
    B, N, P = current.shape
    v = [[[0.0] * P for _ in range(N)] for _ in range(B)]
    counts = torch.zeros(B, N, P, dtype=torch.float64)
    for _ in range(T):
        fired = torch.zeros(B, N, P, dtype=torch.float64)
        for b in range(B):
            for n in range(N):
                for p in range(P):
                    v[b][n][p] = v[b][n][p] * decay + float(current[b, n, p])
                    if v[b][n][p] > float(threshold[b, n, p]):
                        fired[b, n, p] = 1.0
                        v[b][n][p] = 0.0
        if fired.sum() == 0:
            continue
        r = torch.rand(fired.shape, generator=generator, dtype=torch.float64)
        for b in range(B):
            for p in range(P):
                scores = [float(fired[b, n, p] * r[b, n, p]) for n in range(N)]
                if max(scores) == 0.0:
                    continue
                winner = scores.index(max(scores))
                counts[b, winner, p] += 1.0
                for n in range(N):
                    if n != winner:
                        v[b][n][p] -= float(inhibition[b, n, p])
    return counts


@pytest.mark.parametrize("strength", [0.0, 1.625])
def test_simulation_matches_the_float64_reference(strength):
    torch.manual_seed(1)
    current = torch.rand(2, 3, 4, dtype=torch.float64) * 1.5
    threshold = torch.full((2, 3, 4), 2.0, dtype=torch.float64)
    inhibition = strength * threshold
    got = simulate(current, threshold, 0.9, inhibition, 12, torch.Generator().manual_seed(5))
    want = reference_simulation(current, threshold, 0.9, inhibition, 12, torch.Generator().manual_seed(5))
    assert torch.equal(got, want)
    assert got.sum() > 0
    assert bool((got.sum(1) <= 12).all())  # one winner per position and step


def test_adaptive_inhibition_silences_the_losers():
    current = torch.tensor([[[1.0], [0.6]]], dtype=torch.float64)  # neuron 0 fires first (step 2), alone
    threshold = torch.full_like(current, 1.5)
    free = simulate(current, threshold, 1.0, torch.zeros_like(current), 20, None)
    inhibited = simulate(current, threshold, 1.0, 3.0 * threshold, 20, None)
    assert free[0, 1, 0] > 0 and inhibited[0, 1, 0] == 0 and inhibited[0, 0, 0] == 10


# ---- eqs. (6)-(8): the conv STB-STDP update --------------------------------------------------------------
def reference_conv_update(x, weight, counts, pad, cfg):
    """Eq. (6) differentiated by hand: G = (1/BHW)[Σ N f_u patch + (Σ N f_θ) patch(argmax)], then eq. (7)."""
    B, _, H, W = x.shape
    C, n_in, K, _ = weight.shape
    patches = F.unfold(x, K, padding=pad).view(B, n_in, K, K, H, W)
    raw = F.conv2d(x, weight, padding=pad)
    grad = torch.zeros_like(weight)
    for c in range(C):
        theta_raw, where = -math.inf, None
        for wi in range(W):  # the official chained max: first largest in w, then h, then b
            for hi in range(H):
                for b in range(B):
                    if float(raw[b, c, hi, wi]) > theta_raw:
                        theta_raw, where = float(raw[b, c, hi, wi]), (b, hi, wi)
        theta = theta_raw + cfg.threshold_epsilon
        d_theta = 0.0
        for b in range(B):
            for hi in range(H):
                for wi in range(W):
                    u = max(float(raw[b, c, hi, wi]), 0.0)
                    s = sig((u - cfg.filter_centre * theta) * cfg.filter_slope / theta)
                    n = float(counts[b, c, hi, wi])
                    if float(raw[b, c, hi, wi]) > 0:
                        grad[c] += n * cfg.filter_slope * s * (1 - s) * patches[b, :, :, :, hi, wi]
                    d_theta += n * (s - cfg.filter_slope * (u / theta) * s * (1 - s))
        b, hi, wi = where
        grad[c] += d_theta * patches[b, :, :, :, hi, wi]
    grad /= B * H * W
    out = torch.zeros_like(grad)
    for c in range(C):
        low = float(grad[c].min())
        high = max(float(grad[c, :, a, e].min()) for a in range(K) for e in range(K))
        out[c] = grad[c] - low - cfg.conv_offset * high
    return out


def test_conv_update_matches_the_float64_reference():
    torch.manual_seed(2)
    x = torch.rand(3, 2, 5, 5, dtype=torch.float64)
    weight = standardise(torch.randn(4, 2, 3, 3, dtype=torch.float64))
    counts = torch.randint(0, 6, (3, 4, 5, 5)).double()
    got = conv_update(x, weight, counts, 1, CFG)
    want = reference_conv_update(x, weight, counts, 1, CFG)
    assert torch.allclose(got, want, rtol=1e-10, atol=1e-12)
    assert float(got.abs().max()) > 1e-3


def test_standardise_gives_zero_mean_unit_std_per_output_channel():
    w = standardise(torch.randn(5, 2, 3, 3, dtype=torch.float64) * 3 + 1)
    for c in range(5):
        vals = [float(v) for v in w[c].flatten()]
        mean = sum(vals) / len(vals)
        assert mean == pytest.approx(0.0, abs=1e-12)
        assert math.sqrt(sum((v - mean) ** 2 for v in vals) / len(vals)) == pytest.approx(1.0)


# ---- eqs. (9)-(11): the fc update, threshold adaptation, weight bounds ----------------------------------
def small_algorithm(units: int = 6) -> tuple[StdpAdaptive, StdpAdaptiveNet]:
    arch = resolve_architecture(f"4C3-MP2-{units}")
    algorithm = StdpAdaptive(CFG, arch, DatasetInfo("x", (1, 8, 8), 3))
    torch.manual_seed(0)
    net = algorithm.build(10)
    assert isinstance(net, StdpAdaptiveNet)
    return algorithm, net.double()


def context(T: int = 10, seed: int = 0) -> RunContext:
    return RunContext(T, torch.device("cpu"), 5, 8, 8, "direct", torch.Generator().manual_seed(seed), direct)


def test_fc_step_is_the_summed_stdp_update_threshold_growth_and_row_bound():
    algorithm, net = small_algorithm()
    x = torch.rand(5, 1, 8, 8, dtype=torch.float64)
    w0 = net.fc.weight.clone()
    y, current, counts = algorithm.fc_step(net, x, context(30))
    theta_first = 3.0 * current.amax(0)  # first batch: θ = 3 · max current
    assert counts.sum() > 0
    want = w0.clone()
    for j in range(want.shape[0]):
        for i in range(want.shape[1]):
            want[j, i] += CFG.fc_lr * sum(float(counts[b, j] * y[b, i]) for b in range(5))
    want = want.clamp(0, 1)
    want = want / (want.amax(1, keepdim=True) / 0.1)
    assert torch.allclose(net.fc.weight, want, rtol=1e-12, atol=1e-15)
    theta = [
        float(theta_first[j]) + 0.002 * sum(float(current[b, j] * counts[b, j]) for b in range(5))
        for j in range(6)
    ]
    assert torch.allclose(net.fc_neurons.theta, torch.tensor(theta, dtype=torch.float64), rtol=1e-12)
    before = net.fc_neurons.theta.clone()
    algorithm.fc_step(net, x, context(30, seed=1))
    assert bool((net.fc_neurons.theta >= before).all())  # grows, not set again from the batch


def test_threshold_cap_lowers_every_threshold_together():
    theta = torch.tensor([100.0, 349.0])
    current, counts = torch.tensor([[1.0, 10.0]]), torch.tensor([[2.0, 100.0]])
    got = adapt_threshold(theta, current, counts, 0.002, 350.0)
    assert got.tolist() == pytest.approx([100.004 - 1.0, 350.0])


def test_bound_rows_clips_then_scales_each_row_to_the_maximum():
    w = torch.tensor([[-0.5, 0.2, 0.4], [2.0, 0.5, 0.0]])
    want = torch.tensor([[0.0, 0.05, 0.1], [0.1, 0.05, 0.0]])
    assert torch.allclose(bound_rows(w, 0.1), want)


# ---- eqs. (12)-(13): the voting read-out ------------------------------------------------------------------
def test_labels_are_assigned_by_the_highest_mean_count_and_rates_carry_over():
    counts = torch.tensor([[4.0, 0.0, 1.0, 0.0], [0.0, 3.0, 1.0, 0.0], [2.0, 0.0, 0.0, 0.0]])
    labels = torch.tensor([0, 1, 0])
    rates, assignment = assign_labels(torch.zeros(4, 2), counts, labels, 2)
    assert rates.tolist() == [[3.0, 0.0], [0.0, 3.0], [0.5, 1.0], [0.0, 0.0]]
    assert assignment.tolist() == [0, 1, 1, 0]  # a silent neuron goes to class 0, as torch.max
    rates2, assignment2 = assign_labels(
        rates * 0.5, torch.tensor([[0.0, 0.0, 0.0, 0.0]]), torch.tensor([1]), 2
    )
    assert rates2.tolist() == [[1.5, 0.0], [0.0, 1.5], [0.25, 0.5], [0.0, 0.0]]


def test_vote_is_the_mean_count_of_each_class_s_neurons():
    counts = torch.tensor([[1.0, 5.0, 3.0, 0.0]])
    scores = vote(counts, torch.tensor([1, 0, 1, 2]), 3)
    assert scores.tolist() == [[5.0, 2.0, 0.0]]
    assert vote(counts, torch.tensor([-1, -1, -1, -1]), 3).tolist() == [[0.0, 0.0, 0.0]]


def test_predict_before_any_fc_epoch_is_undecided_then_votes():
    algorithm, net = small_algorithm()
    x = torch.rand(4, 1, 8, 8, dtype=torch.float64)
    assert torch.equal(algorithm.predict(net, x, context()), torch.zeros(4, 3))
    net.fc_neurons.theta.fill_(0.01)
    net.assignments.copy_(torch.tensor([0, 1, 2, 0, 1, 2]))
    scores = algorithm.predict(net, x, context())
    _, _, counts = net(x, 10, torch.Generator().manual_seed(0))
    assert torch.allclose(scores, vote(counts, net.assignments, 3))


def test_training_runs_conv_epochs_then_fc_epochs_with_label_assignment():
    algorithm, net = small_algorithm()
    torch.manual_seed(3)
    x = torch.rand(16, 1, 8, 8, dtype=torch.float64)
    y = torch.arange(16) % 3
    cfg = StdpAdaptiveConfig(conv_epochs=1, conv_timesteps=10)
    algorithm.config = cfg
    state = algorithm.configure(net, context())
    w_conv, w_fc = net.conv.weight.clone(), net.fc.weight.clone()
    ctx = context()
    ctx.epoch = 0
    out = algorithm.train_epoch(net, state, [(x, y)], ctx)
    assert out["loss"] == 1.0 and not torch.equal(net.conv.weight, w_conv)
    assert torch.equal(net.fc.weight, w_fc) and not bool(net.fc_neurons.ready)
    ctx.epoch = 1
    w_conv = net.conv.weight.clone()
    out = algorithm.train_epoch(net, state, [(x, y)], ctx)
    assert torch.equal(net.conv.weight, w_conv) and not torch.equal(net.fc.weight, w_fc)
    assert bool((net.assignments >= 0).all()) and 0.0 <= out["loss"] <= 1.0


# ---- build() ----------------------------------------------------------------------------------------------
def test_build_is_the_official_network_with_official_initialisation():
    algorithm = StdpAdaptive(
        CFG, resolve_architecture("stdp-adaptive-mnist"), DatasetInfo("m", (1, 28, 28), 10)
    )
    torch.manual_seed(0)
    net = algorithm.build(200)
    conv = net.conv
    assert (conv.in_channels, conv.out_channels, conv.kernel_size, conv.padding, conv.bias) == (
        1,
        12,
        (3, 3),
        (1, 1),
        None,
    )
    assert (net.fc.in_features, net.fc.out_features, net.fc.bias) == (2352, 6400, None)
    assert net.pool_size == 2
    assert torch.allclose(conv.weight.mean((1, 2, 3)), torch.zeros(12), atol=1e-6)
    assert torch.allclose(conv.weight.flatten(1).std(1, unbiased=False), torch.ones(12), atol=1e-5)
    assert float(net.fc.weight.min()) >= 0.0
    assert torch.allclose(net.fc.weight.amax(1), torch.full((6400,), 0.1))
    assert not any(p.requires_grad for p in net.parameters())


@pytest.mark.parametrize("notation", ["12C3-6400", "12C3-AP2-6400", "6400", "12C3-MP2-R100"])
def test_build_refuses_other_architectures(notation):
    with pytest.raises(SnnbenchError, match="stdp-adaptive needs conv"):
        StdpAdaptive(CFG, resolve_architecture(notation), DatasetInfo("x", (1, 8, 8), 10)).build(4)


def test_a_silent_sample_gives_zero_features_not_nan():
    _, net = small_algorithm()
    assert torch.equal(
        net.features(torch.zeros(2, 4, 8, 8, dtype=torch.float64)), torch.zeros(2, 64).double()
    )
    assert Conv(4, 3).pad == 1
