"""ST-RSBP: the S-PSP e_{i|j} against a float64 reference loop written from its definition, the neuron's
reset/refractory pattern, the output error with its dead zone, label-spike injection, recurrent-weight
gradients that reduce the spike-train level loss, the sparse-rate encoding, and learning on digits."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from snnbench import kernels
from snnbench.algorithms import st_rsbp
from snnbench.algorithms.st_rsbp import (
    STRSBPConfig,
    STRSBPConvLayer,
    STRSBPLayer,
    STRSBPNet,
    STRSBPPoolLayer,
    effect_polynomials,
    effect_ratios,
    effect_table,
    inject_label_spikes,
    integrate,
    output_error,
    postsynaptic_kernel,
    presynaptic_traces,
    random_spike_trains,
    reservoir_mask,
    smallest_positions,
    spike_train_effects,
    st_rsbp_backward,
)
from snnbench.data.encoding import sparse_rate
from snnbench.errors import SnnbenchError
from snnbench.metrics import OperationCounter


def reference_effect(
    pre: list[int], post: list[int], T: int, tau_m: float, tau_s: float, refractory: int
) -> float:
    """e_{i|j} by direct simulation of one pair: the synaptic trace of ``pre`` (one-step delay) integrated
    by a membrane that is zeroed at each ``post`` spike and for ``refractory`` steps after it; the membrane
    value is collected at every post spike."""
    p = q = e = 0.0
    hold = 0
    for t in range(T):
        p *= 1.0 - 1.0 / tau_s
        if t - 1 in pre:
            p += 1.0
        q = q * (1.0 - 1.0 / tau_m) + p / tau_s
        if hold > 0:
            q, hold = 0.0, hold - 1
        if t in post:
            e += q
            q, hold = 0.0, refractory
    return e


def as_train(times: list[int], T: int) -> torch.Tensor:
    train = torch.zeros(T, dtype=torch.float64)
    train[times] = 1.0
    return train


PRE = [[0, 3, 4, 9, 17], [], [2, 5, 6, 7, 8, 20, 21], [15], [1, 11, 12, 13, 14, 15, 16, 18]]
POST = [[5, 12, 13, 19], [], [1, 8, 9, 10, 11], [22], [16]]


@pytest.mark.parametrize(("tau_m", "tau_s", "refractory"), [(64.0, 8.0, 2), (5.0, 2.0, 0), (3.0, 1.5, 3)])
def test_spike_train_effects_match_the_definition(tau_m, tau_s, refractory):
    T = 24
    pre = torch.stack([as_train(times, T) for times in PRE], 1).unsqueeze(1).repeat(1, 2, 1)  # [T, B=2, 5]
    post = torch.stack([as_train(times, T) for times in POST], 1).unsqueeze(1).repeat(1, 2, 1)
    pre[:, 1] = pre[:, 1].flip(1)  # the second sample has other pairs
    effects = spike_train_effects(pre, post, tau_m, tau_s, refractory)
    assert effects.shape == (2, 5, 5) and effects.dtype == torch.float64
    for b in range(2):
        for i in range(5):
            for j in range(5):
                pre_times = torch.nonzero(pre[:, b, j]).flatten().tolist()
                post_times = torch.nonzero(post[:, b, i]).flatten().tolist()
                expected = reference_effect(pre_times, post_times, T, tau_m, tau_s, refractory)
                assert effects[b, i, j].item() == pytest.approx(expected, rel=1e-12, abs=1e-15), (b, i, j)
    assert effects[:, 1].abs().sum() == 0  # a silent post neuron has no effects
    assert effects[0, 0, 0] > 0  # and the fixture has non-trivial ones


def test_effects_are_the_neurons_membrane_at_its_spikes():
    """ϑ-crossings: Σ_j w_ij e_{i|j} = Σ over i's spikes of v_i at the spike (> ϑ), so ≥ ϑ o_i."""
    torch.manual_seed(1)
    cfg = STRSBPConfig()
    layer = STRSBPLayer(30, 6, 2.0, cfg, torch.Generator().manual_seed(0)).double()
    pre = (torch.rand(120, 3, 30, dtype=torch.float64) < 0.15).double()
    post = layer(pre)
    counts = post.sum(0)
    drive = torch.einsum("ij,bij->bi", layer.synapse.weight, layer.effects(pre, post))
    assert counts.sum() > 0
    assert (drive >= layer.threshold * counts - 1e-9).all()
    gaps = [torch.diff(torch.nonzero(post[:, b, i]).flatten()) for b in range(3) for i in range(6)]
    assert all((g > cfg.refractory).all() for g in gaps)  # no spike inside the refractory period


def test_random_trains_and_the_effect_polynomials():
    """p′_c(o) against numpy's degree-4 fit of mean e_{i|j} from the per-pair reference loop over separately
    drawn trains (the official ``eij_function.m`` procedure), up to Monte-Carlo noise."""
    T, refractory = 30, 2
    trains = random_spike_trains(8, T, refractory, 50, torch.Generator().manual_seed(5))
    assert (trains.sum(0) == torch.arange(1, 9)).all()
    for b in range(50):
        for c in range(8):
            assert (torch.diff(torch.nonzero(trains[:, b, c]).flatten()) > refractory).all()
    table = effect_polynomials(T, 6.0, 2.0, refractory, 2000)
    assert table.shape == (10, 4)  # at most 10 spikes fit in 30 steps 3 apart
    c, samples = 3, 1500
    pre = random_spike_trains(c, T, refractory, samples, torch.Generator().manual_seed(11))[:, :, c - 1]
    post = random_spike_trains(10, T, refractory, samples, torch.Generator().manual_seed(12))
    means = [
        sum(
            reference_effect(
                torch.nonzero(pre[:, b]).flatten().tolist(),
                torch.nonzero(post[:, b, o - 1]).flatten().tolist(),
                T,
                6.0,
                2.0,
                refractory,
            )
            for b in range(samples)
        )
        / samples
        for o in range(1, 11)
    ]
    expected = np.polyder(np.polyfit(np.arange(1, 11), means, 4))
    for o in (2.0, 5.0, 8.0):
        ours = sum(table[c - 1, k].item() * o**k for k in range(4))
        assert ours == pytest.approx(np.polyval(expected, o), abs=0.01), o


def test_an_official_table_at_hand_is_used_where_it_applies(tmp_path, monkeypatch):
    """With $SNNBENCH_STRSBP_TABLES naming a folder that holds p_Tau_64_400-100.txt (rows: MATLAB polyfit
    coefficients, highest power first), T = 400, τ_m 64, τ_s 8, T_ref 2 use its derivative; other settings,
    or no folder, regenerate."""
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(100, 5))
    np.savetxt(tmp_path / "p_Tau_64_400-100.txt", rows)
    monkeypatch.setenv("SNNBENCH_STRSBP_TABLES", str(tmp_path))
    table = effect_table(400, 64.0, 8.0, 2, 10).numpy()
    assert table.shape == (100, 4)
    for c, o in [(1, 1.0), (7, 20.0), (100, 35.0), (50, 100.0)]:
        expected = np.polyval(np.polyder(rows[c - 1]), o)
        assert sum(table[c - 1, k] * o**k for k in range(4)) == pytest.approx(expected, rel=1e-9)
    assert torch.equal(effect_table(30, 64.0, 8.0, 2, 10), effect_polynomials(30, 64.0, 8.0, 2, 10))
    monkeypatch.delenv("SNNBENCH_STRSBP_TABLES")
    assert torch.equal(effect_table(400, 64.0, 8.0, 2, 10), effect_polynomials(400, 64.0, 8.0, 2, 10))


def test_output_error_dead_zone_and_injection():
    counts = torch.tensor([[30.0, 4.0, 11.0], [0.0, 0.0, 12.0]])
    loss, error = output_error(counts, torch.tensor([0, 1]), 35.0, 5.0, 5.0)
    assert error.tolist() == [[0.0, 0.0, 6.0], [0.0, -35.0, 7.0]]  # |30 − 35| and |4 − 5| ≤ 5: no error
    assert loss.tolist() == [18.0, 0.5 * (35.0**2 + 49.0)]
    spikes = torch.zeros(400, 2, 3)
    spikes[7, 0, 0] = 1.0
    injected = inject_label_spikes(spikes, torch.tensor([0, 1]), 35.0)
    assert torch.equal(injected[:, 0], spikes[:, 0])  # the label fired: untouched
    assert injected[:, 1, 1].sum() == 36 and injected[11, 1, 1] == 1 and injected[:11, 1, 1].sum() == 0
    assert torch.equal(injected[:, 1, [0, 2]], spikes[:, 1, [0, 2]])


def test_effect_ratios_use_the_fill_value_for_silent_pairs():
    effects = torch.tensor([[[2.0, 0.0], [0.0, 0.0]]])
    ratios = effect_ratios(effects, torch.tensor([[3.0, 0.0]]), torch.tensor([[4.0, 0.0]]), 0.25)
    assert ratios.tolist() == [[[0.5, 0.25], [0.25, 0.25]]]  # e/o_pre = 2/4 where both fired


def tiny_recurrent_net(cfg: STRSBPConfig) -> STRSBPNet:
    generator = torch.Generator().manual_seed(3)
    hidden = STRSBPLayer(12, 16, cfg.threshold_recurrent, cfg, generator, recurrent=True)
    output = STRSBPLayer(
        16, 3, cfg.threshold_output, cfg, generator, lateral_inhibition=cfg.lateral_inhibition
    )
    return STRSBPNet([hidden, output]).double()


def recurrent_descent(sign: float) -> list[float]:
    """Loss over 6 Adam steps along ``sign`` × gradient on the weights below a recurrent layer at depth 1
    (their error comes only through the solve of eq. 6; self-loops present), the rest fixed."""
    cfg, net, x, y = deep_recurrent_case(T=200)
    weights = [net.layers[0].synapse.weight]
    optimizer = torch.optim.Adam(weights, lr=0.02)
    losses = []
    for _ in range(6):
        with torch.no_grad():
            loss, grads = st_rsbp_backward(net, net.trains(x), y, cfg)
        losses.append(loss.sum().item())
        optimizer.zero_grad()
        for weight in weights:
            weight.grad = sign * grads[weight]
        optimizer.step()
    return losses


def test_recurrent_gradients_reduce_the_loss():
    """The count loss is piecewise constant in w, so a few small steps: descent lowers it, ascent raises."""
    descent, ascent = recurrent_descent(1.0), recurrent_descent(-1.0)
    assert descent[-1] < 0.97 * descent[0] and ascent[-1] > 1.03 * ascent[0]


def test_full_update_reduces_the_loss_and_reservoir_mask_is_kept():
    cfg = STRSBPConfig(threshold_recurrent=1.0, threshold_output=1.5)
    net = tiny_recurrent_net(cfg)
    mask = net.layers[0].recurrent_mask
    assert 0 < mask.mean() < 1
    torch.manual_seed(0)
    x = (torch.rand(400, 8, 12, dtype=torch.float64) < 0.1).double()
    y = torch.arange(8) % 3
    optimizer = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=0.02)
    losses = []
    for _ in range(20):
        loss, grads = st_rsbp_backward(net, net.trains(x), y, cfg)
        losses.append(loss.sum().item())
        optimizer.zero_grad()
        for weight, grad in grads.items():
            weight.grad = grad
        optimizer.step()
    assert min(losses[-3:]) < 0.8 * losses[0], losses
    assert (net.layers[0].recurrent.weight.detach()[mask == 0] == 0).all()


def deep_recurrent_case(T: int = 400, batch: int = 8):
    """Input → dense (10) → recurrent (16, official reservoir: self-loops) → output (3), float64, with a
    silent recurrent neuron and a silent label neuron among the samples."""
    cfg = STRSBPConfig(
        threshold_hidden=1.0,
        threshold_recurrent=1.0,
        threshold_output=1.5,
        reg_lambda=0.0,
        effect_table_samples=50,
    )
    generator = torch.Generator().manual_seed(5)
    layers = [
        STRSBPLayer(12, 10, cfg.threshold_hidden, cfg, generator),
        STRSBPLayer(10, 16, cfg.threshold_recurrent, cfg, generator, recurrent=True),
        STRSBPLayer(16, 3, cfg.threshold_output, cfg, generator, lateral_inhibition=1.0),
    ]
    net = STRSBPNet(layers).double()
    with torch.no_grad():
        net.layers[1].synapse.weight[0] = -1.0  # recurrent neuron 0 never fires
    torch.manual_seed(0)
    x = (torch.rand(T, batch, 12, dtype=torch.float64) < 0.1).double()
    return cfg, net, x, torch.arange(batch) % 3


def reference_consistency(weights, pre_counts, o_post, threshold, poly, reservoir):
    """S_i = 1 − (1/ϑ) Σ_j w_ij p′_{c_j}(o_i) for one sample, neuron by neuron (numpy), with the official
    clips: c to 1…C; o_i = 0 → S_i = 1 in a feed-forward layer, o_i clipped to 1…C in a reservoir."""
    C = len(poly)
    s = np.ones(len(o_post))
    for i, o in enumerate(o_post):
        if o == 0 and not reservoir:
            continue
        o = min(max(o, 1.0), C) if reservoir else o
        total = 0.0
        for w, counts in zip(weights, pre_counts, strict=True):
            for j, c in enumerate(counts):
                total += w[i, j] * np.polyval(poly[int(min(max(c, 1), C)) - 1][::-1], o)
        s[i] = 1.0 - total / threshold
        s[i] = max(s[i], 1e-4) if s[i] >= 0 else min(s[i], -1e-4)
    return s


def reference_ratio(effects, o_post, o_pre, fill=0.5):
    """r_ij = e_{i|j}/o_j where both fired, else the official 0.5."""
    both = (o_post[:, None] > 0) & (o_pre[None, :] > 0)
    return np.where(both, effects / np.maximum(o_pre[None, :], 1.0), fill)


def test_recurrent_solve_at_depth_matches_a_dense_reference():
    """Eq. (6) where its result is used: the error below a recurrent layer solves, per sample,
    (diag(S) − W^r ⊙ R^r/ϑ off the diagonal) X = W ⊙ R (official ``g_Reservoir_effect_ratio_LHS``: S_i alone
    on the diagonal, self-loops present), with S of silent reservoir neurons at o = 1; the output's lateral
    factor comes from the trains before label-spike injection. All four weight gradients are compared."""
    cfg, net, x, y = deep_recurrent_case()
    with torch.no_grad():
        trains = net.trains(x)
        _, grads = st_rsbp_backward(net, trains, y, cfg)
    T, scale = len(x), len(x) / 400
    poly = effect_table(T, cfg.tau_m, cfg.tau_s, cfg.refractory, cfg.effect_table_samples).numpy()
    assert T == 400 and len(poly) == 100  # the official table
    dense, rec, out = net.layers
    w0, w1, wr, w2 = (
        m.weight.detach().numpy() for m in (dense.synapse, rec.synapse, rec.recurrent, out.synapse)
    )
    injected = inject_label_spikes(trains[3], y, cfg.desired_count * scale)

    def effects(pre, post):
        return spike_train_effects(pre, post, cfg.tau_m, cfg.tau_s, cfg.refractory).numpy()

    e0, e1, er, e2 = (
        effects(trains[0], trains[1]),
        effects(trains[1], trains[2]),
        effects(trains[2], trains[2]),
        effects(trains[2], injected),
    )
    e_lat = effects(trains[3], trains[3])
    counts = [t.sum(0).numpy() for t in trains]
    o_out, o_raw = injected.sum(0).numpy(), counts[3]
    expected = {k: np.zeros_like(w) for k, w in enumerate((w0, w1, wr, w2))}
    silent_reservoir = self_loops = silent_label = 0
    for b in range(len(y)):
        target = np.full(3, cfg.undesired_count * scale)
        target[y[b]] = cfg.desired_count * scale
        err = o_raw[b] - target
        err = np.where(np.abs(err) > cfg.margin * scale, err, 0.0)
        d2 = err / out.threshold
        s2 = reference_consistency([w2], [counts[2][b]], o_out[b], out.threshold, poly, False)
        r_lat = reference_ratio(e_lat[b], o_raw[b], o_raw[b]) * (1 - np.eye(3))
        fired = (o_raw[b] > 0) / out.threshold
        lateral = 1.0 - (r_lat * r_lat.T * fired[None, :]).sum(1) * fired  # w_0 = 1
        expected[3] += (d2 / s2 / lateral)[:, None] * e2[b] / len(y)
        d1 = (d2 / s2) @ (w2 * reference_ratio(e2[b], o_out[b], counts[2][b])) / rec.threshold
        o_rec = counts[2][b]
        s1 = reference_consistency([w1, wr], [counts[1][b], o_rec], o_rec, rec.threshold, poly, True)
        lhs = np.diag(s1) - (wr * reference_ratio(er[b], o_rec, o_rec) / rec.threshold) * (1 - np.eye(16))
        d0 = d1 @ np.linalg.solve(lhs, w1 * reference_ratio(e1[b], o_rec, counts[1][b])) / dense.threshold
        expected[1] += (d1 / s1)[:, None] * e1[b] / len(y)
        expected[2] += (d1 / s1)[:, None] * er[b] * rec.recurrent_mask.numpy() / len(y)
        s0 = reference_consistency([w0], [counts[0][b]], counts[1][b], dense.threshold, poly, False)
        expected[0] += (d0 / s0)[:, None] * e0[b] / len(y)
        silent_reservoir += int(((o_rec == 0) & (d1 != 0)).any())
        self_loops += int((np.diag(wr) * np.diag(er[b]) != 0).any())
        silent_label += int(o_raw[b, y[b]] == 0 and err.any())
    assert silent_reservoir and self_loops and silent_label  # every case this test is about occurs
    for k, weight in enumerate((dense.synapse, rec.synapse, rec.recurrent, out.synapse)):
        np.testing.assert_allclose(grads[weight.weight].numpy(), expected[k], rtol=1e-9, atol=1e-12)


def test_regulariser_adds_the_official_weight_decay_term():
    """With λ, β > 0 every weight gradient gains λβ (w/w_lim) exp(β (mean over the row of (w/w_lim)² − 1))
    (official ``Spiking.cu`` regulariser), row by row, recurrent weights included."""
    cfg, net, x, y = deep_recurrent_case(T=100, batch=2)
    with torch.no_grad():
        trains = net.trains(x)
        _, plain = st_rsbp_backward(net, trains, y, cfg)
        lam, beta, limit = 10.0, 0.04, 2.0
        regular = cfg.model_copy(update={"reg_lambda": lam, "reg_beta": beta, "weight_limit": limit})
        _, with_reg = st_rsbp_backward(net, trains, y, regular)
    assert set(plain) == set(with_reg) and len(plain) == 4
    for weight, grad in plain.items():
        w = weight.detach().numpy() / limit
        term = lam * beta * w * np.exp(beta * ((w**2).mean(1, keepdims=True) - 1.0))
        np.testing.assert_allclose((with_reg[weight] - grad).numpy(), term, rtol=1e-9, atol=1e-12)


def test_reservoir_connection_probabilities():
    """c·exp(−d²/4) per (pre, post) type on the 5 × 5 × 16 grid, measured at distance 0 (self-loops) and 1."""
    n, draws = 400, 20
    grid = torch.stack(torch.meshgrid(*(torch.arange(k) for k in (5, 5, 16)), indexing="ij"), -1).reshape(
        -1, 3
    )
    distance = torch.cdist(grid.double(), grid.double())
    hits, pairs = torch.zeros(2, 2, 2), torch.zeros(2, 2, 2)  # [d][post E][pre E]
    for seed in range(draws):
        mask = reservoir_mask(n, torch.Generator().manual_seed(seed))
        excitatory = (
            torch.rand(n, generator=torch.Generator().manual_seed(seed)) < 0.8
        ).long()  # its first draw
        for d in (0, 1):
            at = distance == d
            for post in (0, 1):
                for pre in (0, 1):
                    sel = at & (excitatory.unsqueeze(1) == post) & (excitatory.unsqueeze(0) == pre)
                    hits[d, post, pre] += mask[sel].sum()
                    pairs[d, post, pre] += sel.sum()
    c = {(1, 1): 0.45, (0, 1): 0.3, (1, 0): 0.6, (0, 0): 0.15}  # (post E, pre E): E→E, E→I, I→E, I→I
    for (post, pre), value in c.items():
        for d in (0, 1) if post == pre else (1,):  # a self-loop joins a neuron to its own type
            expected = value * math.exp(-(d**2) / 4)
            rate = (hits[d, post, pre] / pairs[d, post, pre]).item()
            assert rate == pytest.approx(
                expected, abs=4 * math.sqrt(expected / pairs[d, post, pre].item()) + 0.01
            )


def test_sparse_rate_encoding():
    x = torch.tensor([[0.0, 0.55, 1.0, 2.0]])
    spikes = sparse_rate(x, 20000, torch.Generator().manual_seed(0))
    assert spikes.shape == (20000, 1, 4) and set(spikes.unique().tolist()) <= {0.0, 1.0}
    rates = spikes.mean(0)[0]
    assert rates[0] == 0 and rates[1] == pytest.approx(0.1, abs=0.01)
    assert rates[2] == pytest.approx(1 / 5.5, abs=0.01) and rates[3] == pytest.approx(1 / 5.5, abs=0.01)


def test_conv_and_pool_build_and_other_layers_are_refused():
    from snnbench.algorithms import algorithms
    from snnbench.architectures import resolve_architecture
    from snnbench.data import datasets

    cls = algorithms.get("st-rsbp")
    info = datasets.get("digits")().info(datasets.get("digits").Options())
    net = cls(cls.Config(), resolve_architecture("4C3p0-P2-4C3-32"), info).build(10)
    conv1, pool, conv2 = net.layers[:3]
    assert isinstance(conv1, STRSBPConvLayer) and isinstance(pool, STRSBPPoolLayer)
    assert (conv1.threshold, pool.threshold, conv2.threshold) == (5.0, 2.0, 10.0)  # official CNN cfg
    assert conv1.out_shape == (4, 6, 6) and pool.out_shape == (4, 3, 3) and conv2.out_shape == (4, 3, 3)
    x = (torch.rand(12, 2, 1, 8, 8) < 0.3).float()
    assert net(x).shape == (12, 2, 10)
    with pytest.raises(SnnbenchError, match="own spiking pooling"):
        cls(cls.Config(), resolve_architecture("4C3-MP2-32"), info).build(10)


CONV_IN, CONV_K, CONV_PAD, CONV_OUT = (2, 4, 4), 3, 1, 3


def random_conv_case(T: int = 30, batch: int = 2):
    """A float64 conv layer with random weights and random pre/post trains (effects hold for any trains)."""
    cfg = STRSBPConfig()
    layer = STRSBPConvLayer(
        CONV_IN, CONV_OUT, CONV_K, CONV_PAD, 1.5, cfg, torch.Generator().manual_seed(1)
    ).double()
    generator = torch.Generator().manual_seed(2)
    pre = (torch.rand(T, batch, math.prod(CONV_IN), generator=generator) < 0.2).double()
    post = (torch.rand(T, batch, math.prod(layer.out_shape), generator=generator) < 0.15).double()
    post[:, 0, :5] = 0.0  # some silent post neurons
    pre[:, 1, :6] = 0.0  # and silent inputs
    return cfg, layer, pre, post


def test_conv_effects_equal_dense_effects_of_the_receptive_field():
    """e_{i|j} of the conv layer = the dense S-PSP of each position's explicitly sliced receptive field."""
    cfg, layer, pre, post = random_conv_case()
    T, B = pre.shape[:2]
    effects = layer.effects(pre, post)  # [B, L, O, J]
    c, h, w = CONV_IN
    padded = torch.nn.functional.pad(pre.reshape(T, B, c, h, w), (CONV_PAD,) * 4)
    out_h, out_w = layer.out_shape[1:]
    post_map = post.reshape(T, B, CONV_OUT, out_h, out_w)
    for y in range(out_h):
        for x in range(out_w):
            window = padded[:, :, :, y : y + CONV_K, x : x + CONV_K].reshape(T, B, -1)
            dense = spike_train_effects(window, post_map[:, :, :, y, x], cfg.tau_m, cfg.tau_s, cfg.refractory)
            torch.testing.assert_close(effects[:, y * out_w + x], dense)


@pytest.mark.parametrize("one_sample_chunks", [False, True], ids=["whole-batch", "chunked"])
def test_conv_gradient_and_error_match_a_pairwise_loop(one_sample_chunks, monkeypatch):
    """∂L/∂W = batch mean of Σ_positions δ_i e_{i|j}/S_i and δ_j = Σ_{i ∋ j} δ_i w_ij r_ij/S_i, with e from
    the single-pair simulation and S_i = 1 − (1/ϑ) Σ_{j ∈ RF} w_ij p′_{c_j}(o_i), summed pair by pair; also
    with the backward taking one sample per chunk (how it fits a VGG-sized layer in memory)."""
    if one_sample_chunks:
        monkeypatch.setattr(st_rsbp, "CONV_CHUNK_ELEMENTS", 1)
    cfg, layer, pre, post = random_conv_case(batch=3)
    T, B = pre.shape[:2]
    poly = effect_polynomials(T, cfg.tau_m, cfg.tau_s, cfg.refractory, 50)
    delta = torch.randn(B, post.shape[2], generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    grads, back = layer.backward(pre, post, pre.sum(0), post.sum(0), delta, cfg, poly)
    c_in, h, w = CONV_IN
    out_h, out_w = layer.out_shape[1:]
    weight = layer.synapse.weight.detach()
    pre_map, post_map = pre.reshape(T, B, c_in, h, w), post.reshape(T, B, CONV_OUT, out_h, out_w)
    expected_grad, expected_back = torch.zeros_like(weight), torch.zeros(B, c_in, h, w, dtype=torch.float64)
    for b in range(B):
        for o in range(CONV_OUT):
            for y in range(out_h):
                for x in range(out_w):
                    post_times = post_map[:, b, o, y, x].nonzero().flatten().tolist()
                    o_i = len(post_times)
                    pairs = []
                    for c in range(c_in):
                        for ky in range(CONV_K):
                            for kx in range(CONV_K):
                                iy, ix = y + ky - CONV_PAD, x + kx - CONV_PAD
                                if 0 <= iy < h and 0 <= ix < w:
                                    pairs.append((c, ky, kx, iy, ix))
                    total = 0.0
                    for c, ky, kx, iy, ix in pairs:
                        c_j = min(max(int(pre_map[:, b, c, iy, ix].sum()), 1), len(poly))
                        total += weight[o, c, ky, kx].item() * sum(
                            poly[c_j - 1, k].item() * o_i**k for k in range(4)
                        )
                    s = max(1.0 - (total if o_i > 0 else 0.0) / layer.threshold, 1e-4)
                    d = delta[b, o * out_h * out_w + y * out_w + x].item() / s
                    for c, ky, kx, iy, ix in pairs:
                        pre_times = pre_map[:, b, c, iy, ix].nonzero().flatten().tolist()
                        e = reference_effect(pre_times, post_times, T, cfg.tau_m, cfg.tau_s, cfg.refractory)
                        expected_grad[o, c, ky, kx] += d * e / B
                        r = e / len(pre_times) if o_i and pre_times else cfg.silent_ratio
                        expected_back[b, c, iy, ix] += d * weight[o, c, ky, kx].item() * r
    torch.testing.assert_close(grads[layer.synapse.weight], expected_grad)
    torch.testing.assert_close(back, expected_back.reshape(B, -1))
    plain, _ = layer.backward(pre, post, pre.sum(0), post.sum(0), delta, cfg, None)
    assert not torch.allclose(plain[layer.synapse.weight], expected_grad)  # S_i ≠ 1 was exercised


def toeplitz(conv: STRSBPConvLayer, weight: torch.Tensor) -> torch.Tensor:
    """The dense ``[N_out, N_in]`` matrix of the convolution with ``weight`` (differentiable in it)."""
    n_in = math.prod(conv.in_shape)
    basis = torch.eye(n_in, dtype=weight.dtype).reshape(n_in, *conv.in_shape)
    return torch.nn.functional.conv2d(basis, weight, padding=conv.padding).reshape(n_in, -1).t()


def test_conv_net_backward_equals_its_dense_equivalent():
    """conv → conv → output and the same net with each conv replaced by its Toeplitz dense layer: same trains,
    loss and output gradient; each conv gradient is the dense gradient summed over the positions sharing a
    weight (the error crosses the conv → conv boundary, with S_i, ratios and ϑ division)."""
    cfg = STRSBPConfig(reg_lambda=0.0)
    generator = torch.Generator().manual_seed(6)
    conv1 = STRSBPConvLayer((1, 6, 6), 3, 3, 1, 2.0, cfg, generator)
    conv2 = STRSBPConvLayer((3, 6, 6), 2, 3, 0, 3.0, cfg, generator)
    output = STRSBPLayer(32, 3, 1.5, cfg, generator, lateral_inhibition=cfg.lateral_inhibition)
    conv_net = STRSBPNet([conv1, conv2, output]).double()
    dense_layers = []
    for conv in (conv1, conv2):
        n_out, n_in = math.prod(conv.out_shape), math.prod(conv.in_shape)
        dense = STRSBPLayer(n_in, n_out, conv.threshold, cfg, generator).double()
        with torch.no_grad():
            dense.synapse.weight.copy_(toeplitz(conv, conv.synapse.weight))
        dense_layers.append(dense)
    dense_net = STRSBPNet([*dense_layers, output])
    torch.manual_seed(0)
    x = (torch.rand(200, 6, 36, dtype=torch.float64) < 0.2).double()
    y = torch.arange(6) % 3
    conv_trains, dense_trains = conv_net.trains(x), dense_net.trains(x)
    assert all(torch.equal(a, b) for a, b in zip(conv_trains, dense_trains, strict=True))
    assert all(train.sum() > 0 for train in conv_trains)
    conv_loss, conv_grads = st_rsbp_backward(conv_net, conv_trains, y, cfg)
    dense_loss, dense_grads = st_rsbp_backward(dense_net, dense_trains, y, cfg)
    torch.testing.assert_close(conv_loss, dense_loss)
    torch.testing.assert_close(conv_grads[output.synapse.weight], dense_grads[output.synapse.weight])
    for conv, dense in zip((conv1, conv2), dense_layers, strict=True):
        weight = conv.synapse.weight.detach().clone().requires_grad_(True)
        (expected,) = torch.autograd.grad(
            (toeplitz(conv, weight) * dense_grads[dense.synapse.weight]).sum(), weight
        )
        assert expected.abs().sum() > 0
        torch.testing.assert_close(conv_grads[conv.synapse.weight], expected)


def test_pool_routes_the_error_by_effect_ratios():
    """Spiking pooling: fixed unit weights over the window; δ_j = δ_i e_{i|j}/o_j (0 when silent)."""
    cfg = STRSBPConfig()
    layer = STRSBPPoolLayer((2, 4, 4), 2, 2.0, cfg)
    T, B = 40, 2
    generator = torch.Generator().manual_seed(4)
    pre = (torch.rand(T, B, 32, generator=generator) < 0.3).double()
    pre[:, 0, :3] = 0.0
    post = layer(pre)
    summed = pre.reshape(T, B, 2, 2, 2, 2, 2).sum((4, 6)).reshape(T, B, -1)  # window sums by reshape
    assert post.sum() > 0 and torch.equal(post, integrate(summed, 2.0, cfg.tau_m, cfg.tau_s, cfg.refractory))
    delta = torch.randn(B, 8, generator=generator, dtype=torch.float64)
    grads, back = layer.backward(pre, post, pre.sum(0), post.sum(0), delta, cfg, None)
    assert grads == {}
    pre_map = pre.reshape(T, B, 2, 4, 4)
    post_map = post.reshape(T, B, 2, 2, 2)
    expected = torch.zeros(B, 2, 4, 4, dtype=torch.float64)
    for b in range(B):
        for c in range(2):
            for iy in range(4):
                for ix in range(4):
                    pre_times = pre_map[:, b, c, iy, ix].nonzero().flatten().tolist()
                    post_times = post_map[:, b, c, iy // 2, ix // 2].nonzero().flatten().tolist()
                    if pre_times and post_times:
                        e = reference_effect(pre_times, post_times, T, cfg.tau_m, cfg.tau_s, cfg.refractory)
                        expected[b, c, iy, ix] = (
                            delta[b, c * 4 + (iy // 2) * 2 + ix // 2] * e / len(pre_times)
                        )
    torch.testing.assert_close(back, expected.reshape(B, -1))


def conv_descent(sign: float) -> list[float]:
    """Loss over 10 Adam steps on the conv weights alone of conv → spiking pooling → output, along
    ``sign`` × gradient (the error reaches the conv layer through the pooling layer)."""
    cfg = STRSBPConfig(reg_lambda=0.0)
    generator = torch.Generator().manual_seed(5)
    conv = STRSBPConvLayer((1, 6, 6), 3, 3, 0, 2.0, cfg, generator)
    pool = STRSBPPoolLayer((3, 4, 4), 2, 1.0, cfg)
    output = STRSBPLayer(12, 3, 1.5, cfg, generator, lateral_inhibition=cfg.lateral_inhibition)
    net = STRSBPNet([conv, pool, output]).double()
    torch.manual_seed(0)
    x = (torch.rand(200, 8, 36, dtype=torch.float64) < 0.15).double()  # fixed input spikes
    y = torch.arange(8) % 3
    weight = conv.synapse.weight
    optimizer = torch.optim.Adam([weight], lr=0.02)
    losses = []
    for _ in range(10):
        loss, grads = st_rsbp_backward(net, net.trains(x), y, cfg)
        losses.append(loss.sum().item())
        optimizer.zero_grad()
        weight.grad = sign * grads[weight]
        optimizer.step()
    return losses


def test_conv_gradients_reduce_the_loss():
    descent, ascent = conv_descent(1.0), conv_descent(-1.0)
    assert descent[-1] < 0.7 * descent[0] and ascent[-1] > 1.3 * ascent[0], (descent, ascent)  # 0.53, 1.57


def test_learns_digits(write_suite, tmp_path):
    from snnbench.grid import run_suite

    path = write_suite(
        {
            "timesteps": [100],
            "budgets": {"smoke": {"epochs": 4, "batch_size": 32, "train_subset": 600, "test_subset": 200}},
            "algorithms": {"st-rsbp": {"arch": "R128", "threshold_recurrent": 5.0, "lr": 0.01}},
        }
    )
    record = run_suite(path, out_dir=tmp_path, device="cpu").records[0]
    assert record.status == "ok" and record.metrics["top1"] > 60.0, record.metrics["top1"]  # chance 10 %
    assert 0 < record.metrics["spike_rate"] < 1 and record.metrics["acs_per_sample"] > 0
    assert math.isfinite(record.history[-1]["loss"])


@pytest.mark.parametrize("levels", [None, 7])
def test_smallest_positions_are_argsorts(levels):
    """The positions of each row's c smallest values equal argsort's first c, sorted: with continuous
    draws (the set is unique; topk finds it) and with values on 7 levels (ties at the c-th value: argsort
    decides)."""
    generator = torch.Generator().manual_seed(3)
    for slots in (1, 2, 9, 120):
        values = torch.rand(200, slots, generator=generator)
        if levels is not None:
            values = torch.floor(values * levels)
        for c in sorted({1, max(1, slots // 2), slots}):
            expected = values.argsort(1)[:, :c].sort(1).values
            assert torch.equal(smallest_positions(values, c), expected), (slots, c)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    ("tau_m", "tau_s", "threshold", "refractory"),
    [(64.0, 8.0, 1.0, 2), (50.0, 7.0, 0.3, 3), (3.3, 1.7, 2.0, 0)],
)
def test_native_loops_equal_the_torch_ops_loops(monkeypatch, dtype, tau_m, tau_s, threshold, refractory):
    """The C++ loops (integration with and without a recurrent input, traces, kernel) give the torch-ops
    loops' outputs bit for bit, for τ that are not powers of two and a threshold float32 cannot hold."""
    native = kernels.native_for("spike_trains", torch.zeros(1))
    if native is None:
        pytest.skip("no C++ toolchain: only the torch-ops loops run here")
    generator = torch.Generator().manual_seed(0)
    pre = (torch.rand(120, 6, 30, generator=generator) < 0.2).to(dtype)
    current = (torch.randn(120, 6, 30, generator=generator) * 2).to(dtype)
    recurrent = torch.nn.Linear(30, 30, bias=False).to(dtype)
    with torch.no_grad():
        recurrent.weight.copy_(torch.randn(30, 30, generator=generator) * 0.5)

    def outputs() -> list[torch.Tensor]:
        with torch.no_grad():
            return [
                integrate(current, threshold, tau_m, tau_s, refractory),
                integrate(current, threshold, tau_m, tau_s, refractory, recurrent),
                presynaptic_traces(pre, tau_s),
                postsynaptic_kernel(pre, tau_m, refractory),
            ]

    fast = outputs()
    monkeypatch.setattr(kernels, "native_for", lambda stem, x: None)
    slow = outputs()
    assert fast[0].sum() > 0 and not torch.equal(fast[0], fast[1])
    for ours, loop in zip(fast, slow, strict=True):
        assert ours.dtype == dtype and torch.equal(ours, loop)


STALL_CHECK = """
import torch
from snnbench.algorithms.st_rsbp import STRSBPConfig, STRSBPLayer, STRSBPNet, st_rsbp_backward
torch.set_num_threads(2)
cfg = STRSBPConfig(threshold_recurrent=1.0, effect_table_samples=20)
generator = torch.Generator().manual_seed(0)
net = STRSBPNet([STRSBPLayer(12, 256, 1.0, cfg, generator, recurrent=True),
                 STRSBPLayer(256, 3, 1.5, cfg, generator, lateral_inhibition=1.0)])
x = (torch.rand(40, 4, 12, generator=generator) < 0.3).float()
with torch.no_grad():
    loss, grads = st_rsbp_backward(net, net.trains(x), torch.arange(4) % 3, cfg)
assert all(torch.isfinite(g).all() for g in grads.values())
print("done")
"""


def test_recurrent_backward_runs_after_set_num_threads():
    """A process-pool worker sets torch's threads; after torch.set_num_threads(2), torch 2.13's batched LU
    on 256 × 256 float32 systems printed MKL errors and stalled: the recurrent solve must still finish."""
    done = subprocess.run(
        [sys.executable, "-c", STALL_CHECK], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0 and "done" in done.stdout, done.stderr[-2000:]
    assert "ERROR" not in done.stdout + done.stderr


def test_operation_counter_sees_the_recurrent_input_with_the_native_loops(monkeypatch):
    """The native integration applies the recurrent weight itself; while the operation counter's hooks are
    attached the layer is stepped through its nn.Linear, so the counts equal the torch-ops loops'."""
    if kernels.native_for("spike_trains", torch.zeros(1)) is None:
        pytest.skip("no C++ toolchain: only the torch-ops loops run here")
    _, net, x, _ = deep_recurrent_case(T=60, batch=4)

    def counted() -> dict:
        with OperationCounter(net) as counter, torch.no_grad():
            net(x)
        return counter.summary(len(x[0]))

    fast = counted()
    monkeypatch.setattr(kernels, "native_for", lambda stem, x: None)
    slow = counted()
    assert fast["synops_per_layer"]["layers.1.recurrent"] > 0
    assert fast == slow
