"""Desire backpropagation against an independent float64 formulation written from the paper's equations
(a step-major simulation in the official loop order, explicit loops over neurons for the desires and the
STDP update), hand-computed desire thresholds and signs, and learning on digits."""

from __future__ import annotations

import math

import pytest
import torch

from snnbench.algorithms.desire_bp import (
    DesireBPConfig,
    DesireNet,
    desire_step,
    output_desire,
    propagate_desire,
    target_count,
)

LAMBDA = 0.75  # 1 − 2^−2, official --mempot-decay 2
THETA_OUT, THETA_HID = 0.30, 0.05  # official --desire-thres (lin, out)


def reference_sample(weights, image, label, keep, T, target, p_in, p_hid, lr):
    """One training sample as the paper describes it, in plain float64 Python: returns ΔW per layer and
    the desires (consider, σ) per layer. ``weights``: nested lists [layer][i][j]; ``keep``: masks
    (input, then every layer; 0/1 lists)."""
    layers = len(weights)
    sizes = [len(weights[0][0])] + [len(w) for w in weights]
    scale_in = 1.0 / (1.0 - p_in)
    scales = [1.0 / (1.0 - p_hid)] * (layers - 1) + [1.0]
    u_in = [0.0] * sizes[0]
    u = [[0.0] * n for n in sizes[1:]]
    trace = [[0.0] * n for n in sizes[:-1]]
    spikes = [[[0.0] * n for _ in range(T)] for n in sizes[1:]]  # spikes[ly][t][i], scaled as sent on
    eligibility = [[[0.0] * sizes[ly] for _ in range(sizes[ly + 1])] for ly in range(layers)]  # Σ_t s_i x_j
    for t in range(T):
        s_in = []
        for j in range(sizes[0]):  # (1) IF input neurons
            u_in[j] += image[j]
            fire = u_in[j] >= 1.0 and keep[0][j]
            if fire:
                u_in[j] -= 1.0
            s_in.append(scale_in if fire else 0.0)
        for ly in range(layers):
            # the official loop reads the previous linear layer's output of the previous step
            pre = s_in if ly == 0 else (spikes[ly - 1][t - 1] if t > 0 else [0.0] * sizes[ly])
            for j in range(sizes[ly]):  # (3) trace of the inputs as this layer saw them
                trace[ly][j] = LAMBDA * trace[ly][j] + min(pre[j], 1.0)
            for i in range(sizes[ly + 1]):  # (2) LIF, soft reset
                u[ly][i] = LAMBDA * u[ly][i] + sum(weights[ly][i][j] * pre[j] for j in range(sizes[ly]))
                fire = u[ly][i] >= 1.0 and keep[ly + 1][i]
                if fire:
                    u[ly][i] -= 1.0
                    for j in range(sizes[ly]):
                        eligibility[ly][i][j] += trace[ly][j]
                spikes[ly][t][i] = scales[ly] if fire else 0.0
    counts = [
        [sum(1.0 for t in range(T) if spikes[ly][t][i] != 0.0) for i in range(sizes[ly + 1])]
        for ly in range(layers)
    ]
    # (4) output desire
    consider = [[False] * n for n in sizes[1:]]
    sign = [[-1.0] * n for n in sizes[1:]]
    for k in range(sizes[-1]):
        error = 1.0 - counts[-1][k] / target if k == label else counts[-1][k] / target
        consider[-1][k] = error > THETA_OUT
        sign[-1][k] = 1.0 if k == label else -1.0
    # (5)-(6) hidden desires, top-down
    for ly in range(layers - 1, 0, -1):
        for j in range(sizes[ly]):
            total = 0.0
            for i in range(sizes[ly + 1]):
                if consider[ly][i] and keep[ly + 1][i]:
                    wanted = 1.0 if sign[ly][i] > 0 else 0.0
                    total += weights[ly][i][j] * abs(wanted - counts[ly][i] / target) * sign[ly][i]
            consider[ly - 1][j] = abs(total) >= THETA_HID
            sign[ly - 1][j] = 1.0 if total > 0 else -1.0
    # (7) update
    delta = [
        [
            [
                lr * sign[ly][i] * eligibility[ly][i][j] if consider[ly][i] and keep[ly + 1][i] else 0.0
                for j in range(sizes[ly])
            ]
            for i in range(sizes[ly + 1])
        ]
        for ly in range(layers)
    ]
    return delta, consider, sign


def make_net(sizes, p_in=0.0, p_hid=0.0, seed=0, gain=1.0):
    torch.manual_seed(seed)
    cfg = DesireBPConfig(dropout_input=p_in, dropout_hidden=p_hid, margin_scaling="absolute")
    net = DesireNet(sizes, cfg).double()
    with torch.no_grad():
        for synapse in net.synapses:
            synapse.weight.mul_(gain)
    return net, cfg


@pytest.mark.parametrize("p_in, p_hid", [(0.0, 0.0), (0.2, 0.3)])
def test_step_equals_float64_reference_per_layer(p_in, p_hid):
    """Every layer's ΔW after one batched step equals the sum of the reference's per-sample updates; a
    flipped sign, a wrong threshold, a missing delay or an update sent to another layer breaks it."""
    sizes, T, batch, lr = [12, 9, 7, 4], 20, 6, 0.01
    net, cfg = make_net(sizes, p_in, p_hid, seed=6, gain=1.3)
    target = target_count(cfg, T)
    assert target == 16.0
    torch.manual_seed(1)
    images = torch.rand(batch, 1, 3, 4, dtype=torch.float64)
    labels = torch.tensor([0, 1, 2, 3, 1, 2])
    x = images.unsqueeze(0).expand(T, *images.shape)
    before = [s.weight.clone() for s in net.synapses]
    generator = torch.Generator().manual_seed(7)
    masks = net.masks(batch, torch.Generator().manual_seed(7), torch.device("cpu"))
    desire_step(net, x, labels, lr, generator)
    expected = [torch.zeros_like(w) for w in before]
    seen_consider = [set() for _ in sizes[1:]]
    for b in range(batch):
        keep = [[True] * n if m is None else m[b].tolist() for n, m in zip(sizes, masks, strict=True)]
        delta, consider, sign = reference_sample(
            [w.tolist() for w in before],
            images[b].flatten().tolist(),
            int(labels[b]),
            keep,
            T,
            target,
            p_in,
            p_hid,
            lr,
        )
        for ly, d in enumerate(delta):
            expected[ly] += torch.tensor(d, dtype=torch.float64)
            seen_consider[ly] |= {(c, s) for c, s in zip(consider[ly], sign[ly], strict=True)}
    for ly, (w0, synapse) in enumerate(zip(before, net.synapses, strict=True)):
        torch.testing.assert_close(synapse.weight - w0, expected[ly], atol=1e-12, rtol=0, msg=f"layer {ly}")
        assert expected[ly].abs().sum() > 0, f"layer {ly} got no update: the comparison would be vacuous"
    for ly in range(len(sizes) - 1):  # every layer saw considered and ignored neurons of both signs
        assert {(True, 1.0), (True, -1.0)} <= seen_consider[ly], (ly, seen_consider[ly])
        assert any(not c for c, _ in seen_consider[ly]), ly


def test_output_desire_thresholds_by_hand():
    """N = 16: a wrong output neuron is told not to spike from 5 spikes (5/16 = 0.3125 > 0.3), not at 4
    (0.25); the label neuron is told to spike below 11 spikes (1 − 11/16 = 0.3125), not at 12."""
    counts = torch.tensor([[5.0, 4.0, 11.0, 0.0], [0.0, 0.0, 12.0, 16.0]], dtype=torch.float64)
    consider, want = output_desire(counts, torch.tensor([2, 2]), 16.0, THETA_OUT)
    assert consider.tolist() == [[True, False, True, False], [False, False, False, True]]
    assert want.tolist() == [[False, False, True, False], [False, False, True, False]]
    # N = 10: 3/10 is exactly θ_out (not above: ignored), 4/10 is above; label: 6 spikes → 0.4, 8 → 0.2
    counts = torch.tensor([[3.0, 4.0, 6.0], [3.0, 0.0, 8.0]], dtype=torch.float64)
    consider, _ = output_desire(counts, torch.tensor([2, 2]), 10.0, THETA_OUT)
    assert consider.tolist() == [[False, True, True], [False, False, False]]


def test_hidden_desire_sign_and_threshold_by_hand():
    """Two output neurons, N = 16: the label neuron (σ = +1) spiked 0 times (ε = 1), a wrong one
    (σ = −1) spiked 8 times (ε = 0.5). S_j = Σ_i w_ij ε_i σ_i d_i:
    j0: 0.25·1 − 0.5·0.5 = 0 → ignored;  j1: 0.0625 → to spike (≥ 0.05);  j2: −0.0625 → not to spike;
    j3: 0.03125 → ignored (< 0.05);  j4: −0.125·0.5 = −0.0625 → not to spike;  j5: 0.05 (≥ θ_hid,
    inclusive as in the official code) → to spike. A dropped-out wrong neuron
    (keep 0) does not count."""
    w = torch.tensor(
        [[0.25, 0.0625, -0.0625, 0.03125, 0.0, 0.05], [0.5, 0.0, 0.0, 0.0, 0.125, 0.0]], dtype=torch.float64
    )
    counts = torch.tensor([[0.0, 8.0]], dtype=torch.float64)
    consider = torch.tensor([[True, True]])
    want = torch.tensor([[True, False]])
    keep = torch.ones(1, 2, dtype=torch.bool)
    d, s = propagate_desire(w, consider, want, counts, keep, 16.0, THETA_HID)
    assert d.tolist() == [[False, True, True, False, True, True]]  # j5: S = 0.05 exactly, ≥ θ_hid
    assert s.tolist()[0][1:3] == [True, False] and s.tolist()[0][4] is False
    d, s = propagate_desire(w, consider, want, counts, torch.tensor([[True, False]]), 16.0, THETA_HID)
    assert d.tolist() == [[True, True, True, False, False, True]]  # only the label neuron: j0 = 0.25, j4 = 0
    assert s.tolist()[0][0] is True


def test_update_potentiates_desired_and_depresses_undesired_spiking():
    """A single synapse: input spikes every step; an output desired to spike gains weight, one desired
    silent loses it, an ignored one or a silent one is unchanged (the update needs a postsynaptic spike)."""
    from snnbench.algorithms.desire_bp import stdp_update

    T = 4
    inputs = torch.ones(T, 1, 1, dtype=torch.float64)
    spikes = torch.tensor([0.0, 1.0, 0.0, 1.0], dtype=torch.float64).view(T, 1, 1)
    keep = torch.ones(1, 1, dtype=torch.bool)
    up = stdp_update(inputs, spikes, torch.tensor([[True]]), torch.tensor([[True]]), keep, LAMBDA)
    # traces 1, 1.75, 2.3125, 2.734375; spikes at t = 1, 3
    assert up.item() == pytest.approx(1.75 + 2.734375)
    down = stdp_update(inputs, spikes, torch.tensor([[True]]), torch.tensor([[False]]), keep, LAMBDA)
    assert down.item() == pytest.approx(-(1.75 + 2.734375))
    ignored = stdp_update(inputs, spikes, torch.tensor([[False]]), torch.tensor([[True]]), keep, LAMBDA)
    silent = stdp_update(
        inputs, torch.zeros_like(spikes), torch.tensor([[True]]), torch.tensor([[True]]), keep, LAMBDA
    )
    assert ignored.item() == 0.0 and silent.item() == 0.0


def test_one_step_delay_silences_the_output_at_T1_and_margin_guard():
    from snnbench.algorithms.desire_bp import DesireBP
    from snnbench.architectures import resolve_architecture
    from snnbench.data import DatasetInfo
    from snnbench.errors import SnnbenchError

    net, _ = make_net([4, 3, 2])
    with torch.no_grad():
        for synapse in net.synapses:
            synapse.weight.fill_(1.0)  # every neuron fires whenever any input does
    x = torch.ones(1, 1, 4, dtype=torch.float64)
    assert net(x).sum() == 0  # the hidden layer fires at t = 0, the output would see it at t = 1
    assert net(x.expand(2, 1, 4)).sum() > 0
    info = DatasetInfo("x", (1, 8, 8), 10)
    with pytest.raises(SnnbenchError, match="no target count"):
        DesireBP(DesireBPConfig(), resolve_architecture("256"), info).build(4)
    DesireBP(DesireBPConfig(margin_scaling="proportional"), resolve_architecture("256"), info).build(4)


def test_proportional_margin_is_the_official_ratio():
    assert target_count(DesireBPConfig(), 20) == 16
    assert target_count(DesireBPConfig(margin_scaling="proportional"), 20) == 16
    assert math.isclose(target_count(DesireBPConfig(margin_scaling="proportional"), 5), 4.0)


def test_learns_digits_quickly(write_suite, tmp_path):
    from snnbench.grid import run_suite

    path = write_suite(
        {
            "timesteps": [8],
            "budgets": {"smoke": {"epochs": 6, "batch_size": 32, "train_subset": 600, "test_subset": 200}},
            "algorithms": {"desire-bp": {"arch": "mlp", "margin_scaling": "proportional", "lr": 1e-4}},
        }
    )
    record = run_suite(path, out_dir=tmp_path, device="cpu").records[0]
    assert record.status == "ok"
    assert record.metrics["top1"] > 60.0  # chance 10 %
    assert 0.0 <= record.metrics["tie_fraction"] <= 1.0
    assert record.metrics["top1_ties_wrong"] <= record.metrics["top1"]


def test_train_epoch_decays_the_learning_rate_per_epoch_as_the_official_schedule():
    """η(epoch) = η₀ exp(−0.04 · epoch) (official --lr-decay 0.04): the same batch with the same dropout
    draws gives, at epoch e, exactly exp(−0.04 e) times the weight change of epoch 0 (the update is linear
    in η); through ``configure`` and ``train_epoch`` as the runner calls them."""
    import copy

    from snnbench.algorithms import RunContext
    from snnbench.algorithms.desire_bp import DesireBP
    from snnbench.architectures import resolve_architecture
    from snnbench.data import DatasetInfo
    from snnbench.data.encoding import direct

    cfg = DesireBPConfig(margin_scaling="proportional", lr=0.01)
    assert cfg.lr_decay == 0.04  # the official default under test
    algorithm = DesireBP(cfg, resolve_architecture("9"), DatasetInfo("x", (1, 3, 4), 4))
    torch.manual_seed(6)
    net = algorithm.build(8)
    with torch.no_grad():
        for synapse in net.synapses:
            synapse.weight.mul_(1.5)
    x = torch.rand(6, 1, 3, 4)
    y = torch.tensor([0, 1, 2, 3, 1, 2])
    changes = {}
    for epoch in (0, 1, 10):
        copy_net = copy.deepcopy(net)
        ctx = RunContext(8, torch.device("cpu"), 20, 6, 6, "direct", torch.Generator().manual_seed(3), direct)
        ctx.epoch = epoch
        state = algorithm.configure(copy_net, ctx)
        algorithm.train_epoch(copy_net, state, [(x, y)], ctx)
        pairs = zip(copy_net.synapses, net.synapses, strict=True)
        changes[epoch] = [s.weight.detach() - w.weight.detach() for s, w in pairs]
    assert all(float(c.abs().sum()) > 0 for c in changes[0])
    for epoch in (1, 10):
        for c, c0 in zip(changes[epoch], changes[0], strict=True):
            torch.testing.assert_close(c, math.exp(-0.04 * epoch) * c0, rtol=1e-4, atol=1e-9)


@pytest.mark.parametrize("batch", [1, 7])
def test_ann_energy_is_one_samples_whatever_the_batch(batch):
    """desire-bp is time-major (``[T, B, N]``): its ANN counterpart is the plain 12-9-4 network's dense
    MACs for one sample (12·9 + 9·4 = 144), not one step of the whole batch (review: energy_ratio 0.0014)."""
    from snnbench.algorithms import RunContext
    from snnbench.algorithms.desire_bp import DesireBP
    from snnbench.architectures import resolve_architecture
    from snnbench.data import DatasetInfo
    from snnbench.data.encoding import direct
    from snnbench.metrics import OperationCounter

    algorithm = DesireBP(
        DesireBPConfig(margin_scaling="proportional"),
        resolve_architecture("9"),
        DatasetInfo("x", (1, 3, 4), 4),
    )
    torch.manual_seed(0)
    net = algorithm.build(8)
    ctx = RunContext(
        8, torch.device("cpu"), 20, batch, batch, "direct", torch.Generator().manual_seed(3), direct
    )
    net.eval()
    with OperationCounter(net) as counter, torch.no_grad():
        algorithm.predict(net, torch.rand(batch, 1, 3, 4), ctx)
    assert sum(counter.dense_per_row.values()) == 12 * 9 + 9 * 4
    assert counter.summary(batch, 1.0, 2.0)["ann_energy_nj"] == pytest.approx(144 * 2.0 / 1000)
