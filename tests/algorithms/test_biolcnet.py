"""BioLCNet: the whole presentation (neurons, inhibition, STDP in the locally connected layer, R-STDP in the
decoder with the ±1 reward) against a float64 reference written synapse by synapse from the equations of
the module docstring (themselves read from the official code and BindsNET); the receptive-field mask
against explicitly listed fields; the reward's sign; and learning on digits."""

from __future__ import annotations

import math

import pytest
import torch

from snnbench.algorithms.biolcnet import (
    BioLCNet,
    BioLCNetConfig,
    BioLCNetNet,
    centre_crop,
    decision_reward,
    eligibility,
    lc_mask,
    stdp_update,
    trace_step,
)
from snnbench.architectures import Conv, resolve_architecture
from snnbench.errors import SnnbenchError

SIDE, KERNEL, STRIDE, CHANNELS, CLASSES, PER_CLASS = 6, 3, 3, 3, 3, 2


def small_config(**changes: object) -> BioLCNetConfig:
    """A threshold 2 mV above rest so that a 20-step presentation has spikes in both layers."""
    values = {"crop_size": SIDE, "neurons_per_class": PER_CLASS, "v_thresh": -63.0, "refractory": 2}
    values.update(changes)
    return BioLCNetConfig(**values)


def small_net(cfg: BioLCNetConfig, seed: int = 0) -> BioLCNetNet:
    layer = Conv(CHANNELS, KERNEL, STRIDE, 0)
    return BioLCNetNet((1, SIDE, SIDE), layer, CLASSES, cfg, torch.Generator().manual_seed(seed)).double()


# ---- the reference: plain Python floats, one neuron and one synapse at a time --------------------------
def receptive_field(post: int) -> set[int]:
    """Input pixels seen by hidden neuron ``post`` = (channel, row, column), listed explicitly."""
    positions = (SIDE - KERNEL) // STRIDE + 1
    p, q = divmod(post % (positions * positions), positions)
    return {(p * STRIDE + a) * SIDE + q * STRIDE + b for a in range(KERNEL) for b in range(KERNEL)}


def reference_presentation(
    cfg: BioLCNetConfig,
    w_lc: list[list[float]],
    w_out: list[list[float]],
    theta: list[float],
    spikes: list[list[list[float]]],
    decide_from: int,
    decide_until: int,
    learn_lc: bool,
    labels: list[int] | None,
    train_theta: bool,
) -> dict[str, object]:
    """One presentation of ``spikes[t][b][j]`` as written in the equations (1)-(5)."""
    T, B = len(spikes), len(spikes[0])
    n_in, n_h, n_o = len(w_lc[0]), len(w_lc), len(w_out)
    w_lc = [row[:] for row in w_lc]
    w_out = [row[:] for row in w_out]
    theta = theta[:]
    positions = ((SIDE - KERNEL) // STRIDE + 1) ** 2
    decay_v = math.exp(-1.0 / cfg.tc_decay)
    decay_x = math.exp(-1.0 / cfg.tc_trace)
    decay_e = math.exp(-1.0 / cfg.tc_eligibility)
    decay_theta = math.exp(-1.0 / cfg.tc_theta_decay)

    def neuron(v: float, refrac: float, current: float, threshold: float) -> tuple[float, float, float]:
        v = cfg.v_rest + decay_v * (v - cfg.v_rest)
        if refrac <= 0:
            v += current
        refrac -= 1
        if v >= threshold:
            return cfg.v_reset, float(cfg.refractory), 1.0
        return v, refrac, 0.0

    v_h = [[cfg.v_rest] * n_h for _ in range(B)]
    r_h = [[0.0] * n_h for _ in range(B)]
    s_h = [[0.0] * n_h for _ in range(B)]
    v_o = [[cfg.v_rest] * n_o for _ in range(B)]
    r_o = [[0.0] * n_o for _ in range(B)]
    s_o = [[0.0] * n_o for _ in range(B)]
    x_in = [[0.0] * n_in for _ in range(B)]
    x_h = [[0.0] * n_h for _ in range(B)]
    counts = [[0.0] * CLASSES for _ in range(B)]
    p_plus = [[0.0] * n_h for _ in range(B)]
    p_minus = [[0.0] * n_o for _ in range(B)]
    pending = [[0.0] * n_h for _ in range(n_o)]
    reward: list[float] | None = None
    hidden_trains, output_trains = [], []
    for t in range(T):
        if labels is not None and t == decide_until:
            reward = []
            for b in range(B):
                best = max(range(CLASSES), key=lambda c: (counts[b][c], -c))  # first of the largest
                reward.append(cfg.reward if best == labels[b] else -cfg.punishment)
        new_h, new_o = [], []
        if train_theta:
            theta = [th * decay_theta for th in theta]
        for b in range(B):
            s_in = spikes[t][b]
            x_in[b] = [1.0 if s_in[j] else x_in[b][j] * decay_x for j in range(n_in)]
            row_h = []
            for i in range(n_h):
                current = sum(w_lc[i][j] * s_in[j] for j in receptive_field(i))
                same_position = [k for k in range(n_h) if k % positions == i % positions and k != i]
                current -= cfg.inh_lc * sum(s_h[b][k] for k in same_position)  # previous step's spikes
                v_h[b][i], r_h[b][i], s = neuron(v_h[b][i], r_h[b][i], current, cfg.v_thresh + theta[i])
                row_h.append(s)
            new_h.append(row_h)
            row_o = []
            for i in range(n_o):
                current = sum(w_out[i][j] * row_h[j] for j in range(n_h))
                other_classes = [k for k in range(n_o) if k // PER_CLASS != i // PER_CLASS]
                current -= cfg.inh_output * sum(s_o[b][k] for k in other_classes)
                v_o[b][i], r_o[b][i], s = neuron(v_o[b][i], r_o[b][i], current, cfg.v_thresh)
                row_o.append(s)
            new_o.append(row_o)
        if train_theta:
            theta = [theta[i] + cfg.theta_plus * sum(new_h[b][i] for b in range(B)) for i in range(n_h)]
        s_h, s_o = new_h, new_o
        for b in range(B):
            x_h[b] = [1.0 if s_h[b][i] else x_h[b][i] * decay_x for i in range(n_h)]
            if decide_from <= t < decide_until:
                for i in range(n_o):
                    counts[b][i // PER_CLASS] += s_o[b][i]
        if learn_lc:  # eq. (3), summed over the batch, clipped, zero outside the field
            for i in range(n_h):
                for j in range(n_in):
                    if j not in receptive_field(i):
                        continue
                    delta = sum(
                        cfg.nu_post * x_in[b][j] * s_h[b][i] - cfg.nu_pre * spikes[t][b][j] * x_h[b][i]
                        for b in range(B)
                    )
                    w_lc[i][j] = min(max(w_lc[i][j] + delta, cfg.wmin), cfg.wmax)
        if reward is not None:  # eqs. (4)-(5)
            for i in range(n_o):
                for j in range(n_h):
                    w_out[i][j] = min(max(w_out[i][j] + cfg.nu_output * pending[i][j], cfg.wmin), cfg.wmax)
            for b in range(B):
                p_plus[b] = [p_plus[b][j] * decay_e + cfg.a_plus * s_h[b][j] for j in range(n_h)]
                p_minus[b] = [p_minus[b][i] * decay_e + cfg.a_minus * s_o[b][i] for i in range(n_o)]
            pending = [
                [
                    sum(reward[b] * (p_plus[b][j] * s_o[b][i] + s_h[b][j] * p_minus[b][i]) for b in range(B))
                    for j in range(n_h)
                ]
                for i in range(n_o)
            ]
        hidden_trains.append([row[:] for row in s_h])
        output_trains.append([row[:] for row in s_o])
    if learn_lc:
        for i in range(n_h):
            total = sum(w_lc[i])
            w_lc[i] = [w * cfg.norm_lc * KERNEL**2 / total for w in w_lc[i]]
    return {
        "w_lc": w_lc,
        "w_out": w_out,
        "theta": theta,
        "counts": counts,
        "hidden": hidden_trains,
        "output": output_trains,
    }


def input_trains(T: int = 20, batch: int = 2, p: float = 0.5, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(T, batch, SIDE * SIDE, generator=generator, dtype=torch.float64) < p).double()


def run_both(cfg: BioLCNetConfig, learn_lc: bool, labels: list[int] | None, train_theta: bool):
    net = small_net(cfg)
    net.hidden.learning = train_theta
    spikes = input_trains()
    w_lc, w_out, theta = net.lc.weight.tolist(), net.output.weight.tolist(), net.hidden.theta.tolist()
    hidden, output = [], []
    h1 = net.hidden.register_forward_hook(lambda m, i, o: hidden.append(o.clone()))
    h2 = net.decoder.register_forward_hook(lambda m, i, o: output.append(o.clone()))
    counts = net.present(
        spikes, 5, 12, learn_lc=learn_lc, labels=None if labels is None else torch.tensor(labels)
    )
    h1.remove()
    h2.remove()
    ref = reference_presentation(
        cfg, w_lc, w_out, theta, spikes.tolist(), 5, 12, learn_lc, labels, train_theta
    )
    return net, counts, torch.stack(hidden), torch.stack(output), ref


def test_presentation_with_stdp_matches_the_float64_reference():
    """Spikes of both layers, the adaptive thresholds and the STDP-trained, normalised local weights."""
    cfg = small_config()
    net, counts, hidden, output, ref = run_both(cfg, learn_lc=True, labels=None, train_theta=True)
    assert hidden.sum() > 10 and output.sum() > 5  # the case exercises both layers
    torch.testing.assert_close(hidden, torch.tensor(ref["hidden"], dtype=torch.float64))
    torch.testing.assert_close(output, torch.tensor(ref["output"], dtype=torch.float64))
    torch.testing.assert_close(counts, torch.tensor(ref["counts"], dtype=torch.float64))
    torch.testing.assert_close(net.hidden.theta, torch.tensor(ref["theta"], dtype=torch.float64))
    torch.testing.assert_close(net.lc.weight, torch.tensor(ref["w_lc"], dtype=torch.float64))
    start = small_net(cfg).lc.weight
    assert (net.lc.weight - start).abs().max() > 1e-3  # STDP moved the weights


@pytest.mark.parametrize(("correct_first", "a_minus"), [(True, -1.0), (False, -1.0), (True, -0.5)])
def test_presentation_with_rstdp_matches_the_float64_reference(correct_first: bool, a_minus: float):
    """The decoder's R-STDP with one rewarded and one punished image in the batch (BindsNET's a₋ = −1 and
    the digits entry's −0.5)."""
    cfg = small_config(a_minus=a_minus)
    # labels: what the network decides for image 0 (rewarded) and not for image 1 (punished), or reversed
    probe = small_net(cfg)
    decided = probe.present(input_trains(), 5, 12).argmax(1).tolist()
    labels = (
        [decided[0], (decided[1] + 1) % CLASSES]
        if correct_first
        else [(decided[0] + 1) % CLASSES, decided[1]]
    )
    net, counts, hidden, output, ref = run_both(cfg, learn_lc=False, labels=labels, train_theta=False)
    assert output[12:].sum() > 5  # the learning window has decoder spikes
    torch.testing.assert_close(output, torch.tensor(ref["output"], dtype=torch.float64))
    torch.testing.assert_close(net.output.weight, torch.tensor(ref["w_out"], dtype=torch.float64))
    moved = (net.output.weight - small_net(cfg).output.weight).abs()
    assert moved.max() > 1e-3
    torch.testing.assert_close(net.lc.weight, small_net(cfg).lc.weight)  # no STDP in the decoder phase


def test_reward_is_plus_one_for_the_label_and_minus_one_otherwise():
    counts = torch.tensor([[0.0, 5.0, 2.0], [3.0, 3.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 4.0]])
    labels = torch.tensor([1, 1, 0, 0])
    # ties go to the first class (torch.argmax, as the official vote): [3, 3, 1] decides 0, silence decides 0
    assert decision_reward(counts, labels, 1.0, 1.0).tolist() == [1.0, -1.0, 1.0, -1.0]
    assert decision_reward(counts, labels, 2.0, 0.5).tolist() == [2.0, -0.5, 2.0, -0.5]


@pytest.mark.parametrize(("pre_t", "post_t", "sign"), [(0, 1, 1.0), (1, 0, -1.0)])
def test_rstdp_reward_follows_the_stdp_window(pre_t: int, post_t: int, sign: float):
    """One pre and one post spike a step apart: with r = +1 the weight moves by +ν e^{−1/τ} for
    pre-before-post and −ν e^{−1/τ} for post-before-pre; r = −1 reverses both."""
    cfg = small_config(wmin=-10.0, wmax=10.0)
    for reward in (1.0, -1.0):
        pre = torch.zeros(3, 1, 1, dtype=torch.float64)
        post = torch.zeros(3, 1, 1, dtype=torch.float64)
        pre[pre_t, 0, 0], post[post_t, 0, 0] = 1.0, 1.0
        w = torch.zeros(1, 1, dtype=torch.float64)
        p_plus = torch.zeros(1, 1, dtype=torch.float64)
        p_minus = torch.zeros(1, 1, dtype=torch.float64)
        pending = torch.zeros(1, 1, dtype=torch.float64)
        decay = math.exp(-1.0 / cfg.tc_eligibility)
        for t in range(3):
            w = w + cfg.nu_output * pending
            p_plus = decay * p_plus + cfg.a_plus * pre[t]
            p_minus = decay * p_minus + cfg.a_minus * post[t]
            pending = eligibility(
                p_plus, pre[t], post[t], p_minus, torch.tensor([reward], dtype=torch.float64)
            )
        assert w.item() == pytest.approx(reward * sign * cfg.nu_output * decay)


def test_stdp_traces_decay_and_post_after_pre_potentiates():
    """Eq. (3) on one synapse: pre at 0, post at 3 → +ν_post e^{−3/τ}; the reverse → −ν_pre e^{−3/τ}."""
    decay = math.exp(-1.0 / 20.0)
    mask = torch.ones(1, 1, dtype=torch.float64)
    for pre_t, post_t, expected in ((0, 3, 1e-2 * decay**3), (3, 0, -1e-4 * decay**3)):
        w = torch.full((1, 1), 0.5, dtype=torch.float64)
        x_pre = torch.zeros(1, 1, dtype=torch.float64)
        x_post = torch.zeros(1, 1, dtype=torch.float64)
        for t in range(5):
            s_pre = torch.full((1, 1), float(t == pre_t), dtype=torch.float64)
            s_post = torch.full((1, 1), float(t == post_t), dtype=torch.float64)
            x_pre, x_post = trace_step(x_pre, s_pre, decay), trace_step(x_post, s_post, decay)
            w = stdp_update(w, s_pre, x_pre, s_post, x_post, 1e-4, 1e-2, mask, 0.0, 1.0)
        assert w.item() - 0.5 == pytest.approx(expected)


def test_locally_connected_mask_is_the_receptive_fields_not_full_connectivity():
    mask = lc_mask(SIDE, SIDE, KERNEL, STRIDE, CHANNELS)
    positions = ((SIDE - KERNEL) // STRIDE + 1) ** 2
    assert mask.shape == (CHANNELS * positions, SIDE * SIDE)
    for post in range(len(mask)):
        assert set(mask[post].nonzero().flatten().tolist()) == receptive_field(post)
    net = small_net(small_config())
    assert net.lc.weight.shape == mask.shape
    assert bool(((net.lc.weight != 0) == (mask > 0)).all())  # every field weight non-zero, nothing else
    # the digits layer: 100 channels × the official 2 × 2 grid, 25 inputs each out of 64
    digits = lc_mask(8, 8, 5, 3, 100)
    assert digits.shape == (400, 64) and bool((digits.sum(1) == 25).all())
    # a weight outside its field stays zero under STDP
    spikes = input_trains()
    net.present(spikes, 5, 12, learn_lc=True)
    assert bool((net.lc.weight[mask == 0] == 0).all())
    torch.testing.assert_close(
        net.lc.weight.sum(1), torch.full((len(mask),), 0.25 * KERNEL**2, dtype=torch.float64)
    )


def test_build_checks_the_architecture_and_crops_the_centre():
    from snnbench.data import datasets

    info = datasets.get("digits")().info(datasets.get("digits").Options())
    cfg = BioLCNetConfig(crop_size=8)
    net = BioLCNet(cfg, resolve_architecture("biolcnet-digits"), info).build(64)
    assert net.hidden_shape == (100, 2, 2) and net.output.weight.shape == (1000, 400)
    for bad in ("100C5s3", "400", "100C5p0s3-10"):
        with pytest.raises(SnnbenchError, match="locally connected"):
            BioLCNet(cfg, resolve_architecture(bad), info).build(64)
    with pytest.raises(SnnbenchError, match="crop_size 22"):
        centre_crop(torch.zeros(1, 1, 8, 8), 22)
    x = torch.arange(28 * 28, dtype=torch.float32).view(1, 1, 28, 28)
    assert centre_crop(x, 22)[0, 0, 0, 0].item() == 3 * 28 + 3  # torchvision CenterCrop's offset


def test_learns_digits(write_suite, tmp_path):
    from snnbench.grid import run_suite

    path = write_suite(
        {
            "timesteps": [64],
            "budgets": {"smoke": {"epochs": 4, "batch_size": 16, "train_subset": 600, "test_subset": 200}},
            "algorithms": {
                "biolcnet": {
                    "arch": "20C5p0s3",
                    "crop_size": 8,
                    "intensity": 512.0,
                    "neurons_per_class": 10,
                    "theta_plus_decoder": 0.0,
                    "a_minus": -0.5,
                    "feature_samples": 600,
                    "output_samples": 1800,
                }
            },
        }
    )
    record = run_suite(path, out_dir=tmp_path, device="cpu").records[0]
    assert record.status == "ok" and record.metrics["top1"] > 20.0, record.metrics["top1"]  # chance 10 %
    assert 0 < record.metrics["spike_rate"] < 1 and record.metrics["acs_per_sample"] > 0
