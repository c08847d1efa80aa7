"""Conversion: IF dynamics and QCFS against float64 references, the QCFS T = L invariant, the official
QCFS gradients, exact BN folding and normalisation, histogram percentiles, spiking max-pooling,
spike counts as SpikingJelly's ann2snn, and learning on digits."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from snnbench.algorithms.conversion import (
    HISTOGRAM_BINS,
    Conversion,
    ConversionConfig,
    ConversionNet,
    ConvertibleNeuron,
    GatedMaxPool,
    activation_percentiles,
    fold_batch_norm,
    normalize,
    qcfs,
)
from snnbench.architectures import resolve_architecture
from snnbench.data import DatasetInfo
from snnbench.errors import SnnbenchError


def make_net(
    method: str, notation: str, shape: tuple[int, ...], batch_norm: bool = False, classes: int = 3, **config
) -> ConversionNet:
    torch.manual_seed(0)
    cfg = ConversionConfig(method=method, batch_norm=batch_norm, **config)
    net = Conversion(cfg, resolve_architecture(notation), DatasetInfo("x", shape, classes)).build(4)
    assert isinstance(net, ConversionNet)
    return net.double()


def spiking(neuron: ConvertibleNeuron) -> ConvertibleNeuron:
    neuron.spiking = True
    return neuron


@pytest.mark.parametrize("method, v0", [("rate", 0.0), ("qcfs", 0.5)])
def test_if_with_reset_by_subtraction_matches_a_float64_reference(method, v0):
    """Currents on a 1/4 grid hit the threshold exactly: a strict '>' or a reset to zero would fail."""
    rng = np.random.default_rng(0)
    currents = rng.choice(np.arange(-2, 7) / 4.0, size=(12, 5, 7))
    ours = spiking(ConvertibleNeuron(method, 4, 1.0))(torch.from_numpy(currents)).numpy()
    v = np.full((5, 7), v0)
    for t in range(12):  # v += I; spike if v ≥ 1; v −= spike
        v = v + currents[t]
        s = (v >= 1.0).astype(float)
        np.testing.assert_array_equal(ours[t], s)
        v = v - s


def qcfs_reference(z: np.ndarray, lam: float, levels: int) -> np.ndarray:
    """h(z) = λ clip(⌊zL/λ + 1/2⌋/L, 0, 1), written independently in NumPy."""
    return lam * np.clip(np.floor(z * levels / lam + 0.5) / levels, 0.0, 1.0)


@pytest.mark.parametrize("levels", [2, 4, 8])
def test_qcfs_neuron_at_T_equal_L_equals_the_quantized_activation(levels):
    """Constant input, v(0) = ϑ/2, T = L: λ · (spike count)/L equals h(z) exactly (the φ = 1/2 shift)."""
    lam = 1.7
    z = torch.linspace(-1.0, 2.5, 301, dtype=torch.float64)
    reference = qcfs_reference(z.numpy(), lam, levels)
    np.testing.assert_allclose(qcfs(z, torch.tensor(lam, dtype=torch.float64), levels).numpy(), reference)
    counts = spiking(ConvertibleNeuron("qcfs", levels, lam))((z / lam).expand(levels, -1)).sum(0)
    np.testing.assert_allclose(lam * counts.numpy() / levels, reference)  # the neuron sees z/λ, ϑ = 1
    unshifted = spiking(ConvertibleNeuron("rate", levels, lam))((z / lam).expand(levels, -1)).sum(0)
    assert not np.allclose(lam * unshifted.numpy() / levels, reference)  # v(0) = 0 breaks it


@pytest.mark.parametrize("levels", [2, 4, 8])
def test_converted_qcfs_network_at_T_equal_L_reproduces_the_ann(levels):
    """One hidden layer, constant input: the converted SNN's mean output over L steps is the QCFS ANN's."""
    net = make_net("qcfs", "24", (6,), levels=levels, lambda_init=1.3)
    x = torch.rand(50, 6, dtype=torch.float64) * 2 - 0.5
    with torch.no_grad():
        ann = net.ann(x)
        normalize(net, [1.3])
        torch.testing.assert_close(net.ann(x), ann)
        torch.testing.assert_close(net.snn(x.expand(levels, -1, -1)), ann)
        net.neurons()[0].v_init = 0.0
        assert not torch.allclose(net.snn(x.expand(levels, -1, -1)), ann)


def test_qcfs_gradients_are_autograd_through_the_official_floor_then_clamp():
    """SNN_conversion_QCFS ``MyFloor``: h = λ clamp(GradFloor(zL/λ + ½)/L, 0, 1), with GradFloor's identity
    backward and clamp's closed range [0, 1]. Worked out by hand with s = zL/λ + ½ and q = ⌊s⌋/L:
    0 ≤ q ≤ 1 gives ∂h/∂z = 1 and ∂h/∂λ = q − z/λ; q < 0 gives 0 and 0; q > 1 gives 0 and 1. The top-bin
    points 1.8, 1.95, 2.1 (q = 1) tell this from the paper's rule (∂h/∂z = 0 there, ∂h/∂λ = 1)."""
    lam_value, levels = 2.0, 4
    z_np = np.array([-0.7, -0.3, -0.2, -0.1, 0.1, 0.3, 0.9, 1.6, 1.8, 1.95, 2.1, 2.3, 3.0])
    upstream = np.random.default_rng(1).normal(size=z_np.shape)
    lam = torch.tensor(lam_value, dtype=torch.float64, requires_grad=True)
    z = torch.tensor(z_np, requires_grad=True)
    (qcfs(z, lam, levels) * torch.from_numpy(upstream)).sum().backward()

    q = np.floor(z_np * levels / lam_value + 0.5) / levels
    passes = (q >= 0) & (q <= 1)
    dz = passes.astype(float)
    dlam = np.where(passes, q - z_np / lam_value, np.where(q > 1, 1.0, 0.0))
    np.testing.assert_allclose(z.grad.numpy(), upstream * dz)
    np.testing.assert_allclose(lam.grad.item(), (upstream * dlam).sum())


@pytest.mark.parametrize(
    "method, notation",
    [("rate", "4C3-AP2-6"), ("rate", "4C3-MP2-6"), ("qcfs", "4C3-AP2-6"), ("rate", "8-5"), ("qcfs", "8-5")],
)
@pytest.mark.parametrize("batch_norm", [False, True])
def test_folding_and_normalisation_keep_the_ann_function(method, notation, batch_norm):
    shape = (2, 6, 6) if "C" in notation else (7,)
    net = make_net(method, notation, shape, batch_norm, lambda_init=2.0)
    x = torch.rand(16, *shape, dtype=torch.float64)
    net.train()
    for _ in range(3):  # move BN statistics away from the identity
        net.ann(x * 3)
    net.eval()
    with torch.no_grad():
        before = net.ann(x)
        fold_batch_norm(net)
        torch.testing.assert_close(net.ann(x), before)
        scales = (
            activation_percentiles(net, [x[:9], x[9:]], 99.0)
            if method == "rate"
            else [float(n.lam) for n in net.neurons()]
        )
        assert all(s > 0 for s in scales)
        normalize(net, scales)
        torch.testing.assert_close(net.ann(x), before)
    assert bool(net.converted)


def test_batch_norm_follows_convolutions_only():
    net = make_net("qcfs", "4C3-AP2-6", (2, 6, 6), batch_norm=True)
    norms = [m for m in net.modules() if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d)]
    assert [type(m) for m in norms] == [nn.BatchNorm2d]


def test_percentiles_match_numpy_within_one_histogram_bin():
    net = make_net("rate", "32", (10,))
    x = torch.rand(300, 10, dtype=torch.float64)
    with torch.no_grad():
        acts = F.relu(net.body[0].module(x)).numpy()
    nonzero = acts[acts > 0]
    for p in (50.0, 99.0, 99.9, 100.0):
        (ours,) = activation_percentiles(net, [x[:128], x[128:]], p)
        exact = np.percentile(nonzero, p, method="inverted_cdf")  # the k-th smallest, k = ⌈pN/100⌉
        assert exact - 1e-12 <= ours <= exact + nonzero.max() / HISTOGRAM_BINS + 1e-12, (p, ours, exact)


def test_gated_max_pool_is_max_pooling_on_analog_input_and_gates_by_rate_on_spikes():
    x = torch.randn(1, 3, 2, 4, 6)
    torch.testing.assert_close(GatedMaxPool(2)(x)[0], F.max_pool2d(x[0], 2))
    T = 200
    rates = torch.tensor([0.2, 0.7, 0.5, 0.1]).view(1, 1, 2, 2)
    steps = torch.arange(T + 1, dtype=torch.float64).view(-1, 1, 1, 1) * rates
    spikes = (steps[1:].floor() - steps[:-1].floor()).unsqueeze(1).float()  # regular trains, [T, 1, 1, 2, 2]
    out = GatedMaxPool(2)(spikes)
    assert out.shape == (T, 1, 1, 1, 1) and set(out.unique().tolist()) <= {0.0, 1.0}
    assert abs(out.sum().item() - 0.7 * T) <= 3  # the 0.7 unit wins the gate after a few steps


def test_qcfs_refuses_max_pooling():
    with pytest.raises(SnnbenchError, match="average pooling"):
        make_net("qcfs", "4C3-MP2-6", (2, 6, 6))


def _digits(n_train: int = 1000):
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.tensor(bunch.images / 16.0, dtype=torch.float32).view(-1, 64)
    y = torch.tensor(bunch.target)
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]


def test_rate_conversion_spikes_like_spikingjelly_ann2snn():
    """Per-layer spike counts of the converted 64-128-64-10 MLP against SpikingJelly 2.0.0's converted
    network (IF with soft reset, v(0) = 0, current scaled by 1/λ_l in and λ_l out) on the same weights,
    with SpikingJelly's scales set to NumPy's exact 99.9th percentile of the non-zero activations.
    Our histogram percentile is at most one bin above it, so a few counts may differ by one; max
    normalisation, a wrong scale, reset to zero or v(0) = ½ change many (checked by planting each)."""
    from spikingjelly.activation_based import functional
    from spikingjelly.activation_based.ann2snn import Converter
    from spikingjelly.activation_based.ann2snn.recipes import RateCodingRecipe

    x_train, y_train, x_test, _ = _digits()
    torch.manual_seed(0)
    ann = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10))
    optimizer = torch.optim.Adam(ann.parameters(), lr=3e-3)
    for _ in range(5):
        for i in range(0, len(x_train), 100):
            loss = F.cross_entropy(ann(x_train[i : i + 100]), y_train[i : i + 100])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    ann = ann.double().eval()
    x_train, x_test = x_train.double(), x_test.double()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x_train, y_train), batch_size=1000)
    theirs = Converter(RateCodingRecipe(loader, mode="99.9%")).convert(ann)
    spiking = [theirs.spiking_0, theirs.spiking_1]
    ours = make_net("rate", "128-64", (64,), classes=10)
    T = 32
    with torch.no_grad():
        hidden = x_train
        for synapse, module in zip((ann[0], ann[2]), spiking, strict=True):
            hidden = F.relu(synapse(hidden))
            active = hidden[hidden > 0].numpy()
            scale = float(np.percentile(active, 99.9, method="inverted_cdf"))
            module.scaler0.scale.fill_(1.0 / scale), module.scaler1.scale.fill_(scale)
        pairs = zip((ours.body[0], ours.body[2], ours.head), (ann[0], ann[2], ann[4]), strict=True)
        for mine, source in pairs:
            mine.module.weight.copy_(source.weight), mine.module.bias.copy_(source.bias)
        normalize(ours, activation_percentiles(ours, [x_train], 99.9))

        their_counts = [torch.zeros(()), torch.zeros(())]

        def count(k: int):
            return lambda module, inputs, out: their_counts.__setitem__(k, their_counts[k] + out)

        for k, module in enumerate(spiking):
            module.if_node.register_forward_hook(count(k))
        functional.reset_net(theirs)
        their_output = sum(theirs(x_test) for _ in range(T)) / T
        our_counts: list[torch.Tensor] = []
        for neuron in ours.neurons():
            neuron.register_forward_hook(lambda module, inputs, out: our_counts.append(out.sum(0)))
        our_output = ours.snn(x_test.expand(T, -1, -1))
    for layer, (mine, reference) in enumerate(zip(our_counts, their_counts, strict=True)):
        differ = (mine - reference).abs()
        assert reference.mean() > 2.0, layer  # the layer is active
        assert differ.max() <= 1 and (differ > 0).double().mean() < 0.005, (layer, differ.mean())
    assert (our_output - their_output).abs().mean() < 0.01 * their_output.abs().mean()


@pytest.mark.parametrize("method, T, floor", [("qcfs", 4, 75.0), ("rate", 32, 75.0)])  # measured 91, 92.5
def test_learns_digits_and_reports_the_ann(write_suite, tmp_path, method, T, floor):
    from snnbench.grid import run_suite

    path = write_suite(
        {
            "timesteps": [T],
            "budgets": {"smoke": {"epochs": 5, "batch_size": 32, "train_subset": 500, "test_subset": 200}},
            "algorithms": {"conversion": {"arch": "mlp", "method": method}},
        }
    )
    record = run_suite(path, out_dir=tmp_path, device="cpu").records[0]
    assert record.status == "ok", record.error
    assert record.metrics["ann_top1"] > 80.0 and record.metrics["top1"] > floor
    assert 0 < record.metrics["spike_rate"] < 1
    assert record.metrics["macs_per_sample"] > 0  # the analog input layer
    assert record.metrics["acs_per_sample"] > 0


@pytest.mark.parametrize("method", ["rate", "qcfs"])
def test_input_is_normalised_with_the_data_statistics(method):
    """The official loaders normalise (x − mean)/std before the ANN and the SNN: the ANN scores of
    ``evaluate`` and the SNN's ``predict`` see the normalised image."""
    from snnbench.algorithms import RunContext
    from snnbench.data import Split
    from snnbench.data.encoding import direct

    info = DatasetInfo("x", (6,), 3, mean=(0.5,), std=(0.25,))
    algorithm = Conversion(ConversionConfig(method=method, lambda_init=2.0), resolve_architecture("8"), info)
    net = algorithm.build(4).double()
    x = torch.rand(5, 6, dtype=torch.float64)
    ctx = RunContext(4, torch.device("cpu"), 1, 5, 5, "direct", torch.Generator(), direct)
    with torch.no_grad():
        scores = algorithm.evaluate(net, Split(x, torch.zeros(5, dtype=torch.long)), ctx).logits
        torch.testing.assert_close(scores, net.ann((x - 0.5) / 0.25).float())
        normalize(net, [1.0])
        torch.testing.assert_close(algorithm.predict(net, x, ctx), net.snn(direct((x - 0.5) / 0.25, 4)))


def test_rate_finalize_scales_by_the_default_99_9th_percentile():
    """The default config's rate conversion (``finalize``, as the runner calls it) divides the first layer by
    λ = the 99.9th percentile of its non-zero training activations (Rueckauer et al. 2017, the QCFS code's
    default), within one histogram bin; the 99th percentile lies many bins below it here."""
    from snnbench.algorithms import RunContext
    from snnbench.data import Split
    from snnbench.data.encoding import direct

    cfg = ConversionConfig(method="rate")
    algorithm = Conversion(cfg, resolve_architecture("32"), DatasetInfo("x", (10,), 3))
    torch.manual_seed(0)
    net = algorithm.build(4)
    x = torch.rand(3000, 10)
    ctx = RunContext(4, torch.device("cpu"), 1, 500, 500, "direct", torch.Generator(), direct)
    with torch.no_grad():
        acts = F.relu(net.body[0].module(x)).double().numpy()
    before = net.body[0].module.weight.detach().clone()
    algorithm.finalize(net, Split(x, torch.zeros(3000, dtype=torch.long)), ctx)
    ratios = (before / net.body[0].module.weight.detach()).flatten()
    lam = float(ratios.mean())
    assert float((ratios - lam).abs().max()) < 1e-4 * lam
    nonzero = acts[acts > 0]
    exact = float(np.percentile(nonzero, 99.9, method="inverted_cdf"))
    bin_width = float(nonzero.max()) / HISTOGRAM_BINS
    assert exact - 1e-5 <= lam <= exact + bin_width + 1e-5 * exact, (lam, exact)
    assert float(np.percentile(nonzero, 99.0, method="inverted_cdf")) < exact - 10 * bin_width
