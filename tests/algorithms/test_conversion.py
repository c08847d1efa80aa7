"""Conversion: IF and QCFS against float64 references, the QCFS T = L invariant, exact BN folding and
normalisation, agreement with SpikingJelly's ann2snn, and learning on digits."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from snnbench.algorithms.conversion import (
    ConversionNet,
    ConvertibleNeuron,
    activation_percentiles,
    fold_batch_norm,
    normalize,
    qcfs,
)
from snnbench.architectures import resolve_architecture
from snnbench.networks import build_feedforward
from snnbench.neurons.layers import TimeDistributed


def make_net(
    method: str, notation: str, shape: tuple[int, ...], batch_norm: bool, seed: int = 0
) -> ConversionNet:
    torch.manual_seed(seed)

    def norm(s: tuple[int, ...]) -> nn.Module:
        return TimeDistributed(nn.BatchNorm2d(s[0]) if len(s) == 3 else nn.BatchNorm1d(s[0]))

    body, features = build_feedforward(
        resolve_architecture(notation),
        shape,
        lambda s: ConvertibleNeuron(method, 4, 2.0),
        make_norm=norm if batch_norm else None,
    )
    return ConversionNet(body, nn.Linear(features, 3)).double()


def test_if_soft_reset_matches_a_float64_reference():
    rng = np.random.default_rng(0)
    currents = rng.uniform(-0.5, 1.5, (9, 4, 6))
    neuron = ConvertibleNeuron("rate", 4, 1.0)
    neuron.spiking = True
    ours = neuron(torch.from_numpy(currents)).numpy()
    v = np.zeros((4, 6))
    for t in range(9):  # v += I; spike if v ≥ 1; v −= spike
        v = v + currents[t]
        s = (v >= 1.0).astype(float)
        assert np.array_equal(ours[t], s)
        v = v - s


@pytest.mark.parametrize("levels", [2, 4, 8])
def test_qcfs_snn_equals_quantized_ann_at_T_equal_L(levels):
    """Constant input, v(0) = ϑ/2, T = L: λ · (spike count)/L equals h(z) exactly (the paper's φ = 1/2 shift)."""
    lam = 1.7
    z = torch.linspace(-1.0, 2.5, 301, dtype=torch.float64)
    reference = lam * np.clip(np.floor(z.numpy() * levels / lam + 0.5) / levels, 0.0, 1.0)
    assert np.allclose(qcfs(z, torch.tensor(lam, dtype=torch.float64), levels).detach().numpy(), reference)
    neuron = ConvertibleNeuron("qcfs", levels, lam)
    neuron.spiking = True
    counts = neuron((z / lam).expand(levels, -1)).sum(0)  # the converted neuron sees z/λ with threshold 1
    assert np.allclose(lam * counts.numpy() / levels, reference)
    unshifted = _spiking(ConvertibleNeuron("rate", levels, lam))  # v(0) = 0: the equality fails
    assert not np.allclose(lam * unshifted((z / lam).expand(levels, -1)).sum(0).numpy() / levels, reference)


def _spiking(neuron: ConvertibleNeuron) -> ConvertibleNeuron:
    neuron.spiking = True
    return neuron


def test_qcfs_gradients_follow_the_straight_through_rule():
    lam = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    z = torch.tensor([-0.7, 0.3, 0.9, 1.6, 3.0], dtype=torch.float64, requires_grad=True)
    levels = 4
    qcfs(z, lam, levels).sum().backward()
    zn, ln = z.detach().numpy(), 2.0
    scaled = np.floor(zn * levels / ln + 0.5) / levels
    inside = (scaled > 0) & (scaled < 1)
    dlam = np.where(scaled >= 1, 1.0, np.where(inside, scaled - zn / ln, 0.0))
    assert np.allclose(lam.grad.numpy(), dlam.sum())
    assert np.allclose(z.grad.numpy(), inside.astype(float))


@pytest.mark.parametrize("method", ["rate", "qcfs"])
@pytest.mark.parametrize("batch_norm", [False, True])
def test_folding_and_normalisation_keep_the_ann_function(method, batch_norm):
    net = make_net(method, "4C3-AP2-6", (2, 6, 6), batch_norm)
    x = torch.rand(16, 2, 6, 6, dtype=torch.float64)
    net.train()
    for _ in range(3):  # move BN statistics away from the identity
        net.ann(x * 3)
    net.eval()
    before = net.ann(x)
    fold_batch_norm(net)
    torch.testing.assert_close(net.ann(x), before)
    scales = (
        activation_percentiles(net, [x], 99.0)
        if method == "rate"
        else [float(n.lam.detach()) for n in net.neurons()]
    )
    assert all(s > 0 for s in scales)
    normalize(net, scales)
    torch.testing.assert_close(net.ann(x), before)
    assert bool(net.converted)


def _digits(n_train: int = 1000):
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.tensor(bunch.images / 16.0, dtype=torch.float32).view(-1, 64)
    y = torch.tensor(bunch.target)
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]


def test_rate_conversion_agrees_with_spikingjelly_ann2snn():
    from spikingjelly.activation_based import functional
    from spikingjelly.activation_based.ann2snn import Converter
    from spikingjelly.activation_based.ann2snn.recipes import RateCodingRecipe

    x_train, y_train, x_test, y_test = _digits()
    torch.manual_seed(0)
    ann = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    optimizer = torch.optim.Adam(ann.parameters(), lr=3e-3)
    for _ in range(30):
        for i in range(0, len(x_train), 100):
            loss = nn.functional.cross_entropy(ann(x_train[i : i + 100]), y_train[i : i + 100])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    ann.eval()
    T = 64
    # theirs: 99.9th percentile (EMA over batches), IF with soft reset, sum of outputs over T steps
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x_train, y_train), batch_size=1000)
    theirs_net = Converter(RateCodingRecipe(loader, mode="99.9%")).convert(ann)
    with torch.no_grad():
        functional.reset_net(theirs_net)
        theirs_out = sum(theirs_net(x_test) for _ in range(T))
    theirs = 100.0 * (theirs_out.argmax(1) == y_test).double().mean().item()
    # ours on the same weights
    body, _ = build_feedforward(
        resolve_architecture("128"), (64,), lambda s: ConvertibleNeuron("rate", 4, 1.0)
    )
    ours_net = ConversionNet(body, nn.Linear(128, 10))
    with torch.no_grad():
        ours_net.body[0].module.weight.copy_(ann[0].weight), ours_net.body[0].module.bias.copy_(ann[0].bias)
        ours_net.head.module.weight.copy_(ann[2].weight), ours_net.head.module.bias.copy_(ann[2].bias)
        ann_top1 = 100.0 * (ann(x_test).argmax(1) == y_test).double().mean().item()
        normalize(ours_net, activation_percentiles(ours_net, [x_train], 99.9))
        ours_out = ours_net.snn(x_test.unsqueeze(0).expand(T, *x_test.shape))
    ours = 100.0 * (ours_out.argmax(1) == y_test).double().mean().item()
    assert ann_top1 > 85.0
    print(f"ANN {ann_top1:.2f} %, ours {ours:.2f} %, SpikingJelly {theirs:.2f} % at T = {T}")
    assert abs(ours - theirs) <= 1.0, (ours, theirs, ann_top1)


def test_learns_digits_and_reports_the_ann(write_suite, tmp_path):
    from snnbench.runner import run_suite

    path = write_suite(
        {
            "timesteps": [4],
            "budgets": {"smoke": {"epochs": 5, "batch_size": 32, "train_subset": 500, "test_subset": 200}},
            "algorithms": {"conversion": {"arch": "mlp", "method": "qcfs"}},
        }
    )
    record = run_suite(path, out_dir=tmp_path, device="cpu").records[0]
    assert record.status == "ok" and record.metrics["ann_top1"] > 80.0 and record.metrics["top1"] > 75.0
    assert (
        0 < record.metrics["spike_rate"] < 1 and record.metrics["macs_per_sample"] > 0
    )  # analog input layer
