"""ALBSNN-style method (Pei et al. 2023, abstract only; no official code): the binarisation and its
straight-through gradient against an independent float64 formulation, the estimator (ours) against closed
forms and its layer selection, the network against a step-by-step float64 forward, build()'s layout, the
recipe (our declared defaults, Adam + cosine), and learning on digits."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from snnbench.algorithms import RunContext
from snnbench.algorithms.albsnn import (
    ALBSNN,
    ALBSNNConfig,
    BinaryConv2d,
    binarization_error,
    binarize,
    candidates,
    select_layers,
    storage,
)
from snnbench.architectures import resolve_architecture
from snnbench.data import DatasetInfo
from snnbench.data.encoding import direct
from snnbench.errors import SnnbenchError

# our declared defaults (docs/algorithms/albsnn.md): written out here, not read from the Config
OURS = {
    "tau": 2.0,
    "v_threshold": 1.0,
    "surrogate": "sigmoid",
    "error_threshold": 1.0 - 2.0 / math.pi,
    "class_kernel": 3,
    "lr": 1e-3,
    "weight_decay": 0.0,
}


def method(arch: str = "albsnn-digits", shape=(1, 8, 8), classes=10, **config) -> ALBSNN:
    return ALBSNN(ALBSNNConfig(**config), resolve_architecture(arch), DatasetInfo("x", shape, classes))


def ctx(T: int = 1, epochs: int = 5) -> RunContext:
    return RunContext(
        T, torch.device("cpu"), epochs, 8, 8, "direct", torch.Generator().manual_seed(0), direct
    )


# ---- the independent float64 formulation ------------------------------------------------------------------
def reference_binary(w: torch.Tensor) -> torch.Tensor:
    """α_o sign(w) by loops: α_o the mean |w| over output channel o, sign(0) = +1."""
    w = w.double()
    out = torch.empty_like(w)
    for o in range(w.shape[0]):
        alpha = sum(abs(float(v)) for v in w[o].flatten()) / w[o].numel()
        for index in range(w[o].numel()):
            value = float(w[o].flatten()[index])
            out[o].view(-1)[index] = alpha if value >= 0 else -alpha
    return out


def reference_grad(w: torch.Tensor, upstream: torch.Tensor) -> torch.Tensor:
    """∂L/∂w = α_o · g · 1{|w| ≤ 1} (α held constant)."""
    w, upstream = w.double(), upstream.double()
    alpha = w.abs().flatten(1).mean(1).view(-1, 1, 1, 1)
    return alpha * upstream * (w.abs() <= 1).double()


def test_binarize_forward_is_alpha_sign_per_output_channel_with_sign_zero_positive():
    torch.manual_seed(0)
    w = torch.randn(4, 3, 3, 3, dtype=torch.float64)
    w[0, 0, 0, 0] = 0.0
    w[2, 1, 1, 1] = -0.0  # −0 is ≥ 0 as well
    got = binarize(w)
    torch.testing.assert_close(got, reference_binary(w), rtol=1e-14, atol=0)
    assert got[0, 0, 0, 0] > 0 and got[2, 1, 1, 1] > 0
    assert len({float(v) for v in got[1].abs().flatten()}) == 1  # one magnitude per output channel
    assert len({float(got[o].abs().max()) for o in range(4)}) == 4  # different across channels


def test_straight_through_gradient_is_alpha_times_upstream_clipped_at_one():
    torch.manual_seed(1)
    w = (torch.randn(3, 2, 3, 3, dtype=torch.float64) * 0.8).requires_grad_()
    with torch.no_grad():
        w[0, 0, 0, 0], w[1, 1, 2, 2], w[2, 0, 1, 1] = 1.5, -2.0, 1.0  # outside, outside, on the edge
    upstream = torch.randn(3, 2, 3, 3, dtype=torch.float64)
    (binarize(w) * upstream).sum().backward()
    expected = reference_grad(w.detach(), upstream)
    torch.testing.assert_close(w.grad, expected, rtol=0, atol=1e-15)
    assert w.grad[0, 0, 0, 0] == 0 and w.grad[1, 1, 2, 2] == 0 and w.grad[2, 0, 1, 1] != 0


def test_binary_conv_equals_a_convolution_with_the_reference_binary_weights():
    torch.manual_seed(2)
    conv = BinaryConv2d(3, 5, 3, 1, 1, bias=False).double()
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64)
    torch.testing.assert_close(conv(x), F.conv2d(x, conv.weight, None, 1, 1))  # not selected: full precision
    conv.binarized.fill_(True)
    torch.testing.assert_close(conv(x), F.conv2d(x, reference_binary(conv.weight.detach()), None, 1, 1))
    assert "binarized" in conv.state_dict()  # the selection survives a checkpoint and the saved model


# ---- the estimator (ours) ---------------------------------------------------------------------------------
def reference_error(w: torch.Tensor) -> float:
    w = w.double()
    return float(((w - reference_binary(w)) ** 2).sum() / (w**2).sum())


def test_binarization_error_matches_its_definition_and_closed_forms():
    torch.manual_seed(3)
    w = torch.randn(6, 4, 3, 3)
    assert binarization_error(w) == pytest.approx(reference_error(w), rel=1e-12)
    big = 400_000
    gauss = torch.randn(1, big, 1, 1, dtype=torch.float64)
    uniform = torch.rand(1, big, 1, 1, dtype=torch.float64) * 2 - 1
    laplace = torch.distributions.Laplace(0.0, 1.0).sample((1, big, 1, 1)).double()
    assert binarization_error(gauss) == pytest.approx(1 - 2 / math.pi, abs=4e-3)  # 1 − (E|w|)²/E w²
    assert binarization_error(uniform) == pytest.approx(0.25, abs=4e-3)
    assert binarization_error(laplace) == pytest.approx(0.5, abs=6e-3)
    binary = torch.sign(torch.randn(4, 3, 3, 3)) * torch.tensor([0.1, 0.2, 0.3, 0.4]).view(-1, 1, 1, 1)
    assert binarization_error(binary) == pytest.approx(0.0, abs=1e-12)  # already binary per channel
    assert binarization_error(torch.zeros(2, 2, 1, 1)) == 0.0


def test_selection_binarises_exactly_the_candidates_under_the_threshold_and_is_redecided():
    torch.manual_seed(4)
    m = method()
    net = m.build(1)
    layers = candidates(net)
    assert len(layers) == 2  # the first and the class convolution are never candidates
    with torch.no_grad():
        layers[0].weight.uniform_(-1, 1)  # error 1/4
        layers[1].weight.copy_(torch.distributions.Laplace(0.0, 1.0).sample(layers[1].weight.shape))  # ≈ 1/2
    errors = select_layers(net, m.config.error_threshold)
    assert errors == [pytest.approx(reference_error(layer.weight.detach()), rel=1e-12) for layer in layers]
    assert [bool(layer.binarized) for layer in layers] == [True, False]
    with torch.no_grad():
        layers[0].weight.copy_(torch.distributions.Laplace(0.0, 1.0).sample(layers[0].weight.shape))
        layers[1].weight.uniform_(-1, 1)
    select_layers(net, m.config.error_threshold)
    assert [bool(layer.binarized) for layer in layers] == [False, True]
    select_layers(net, 1.0)
    assert all(bool(layer.binarized) for layer in layers)
    select_layers(net, 0.0)
    assert not any(bool(layer.binarized) for layer in layers)
    convs = [mod for mod in net.modules() if isinstance(mod, BinaryConv2d)]
    assert not bool(convs[0].binarized) and not bool(convs[-1].binarized)


def test_train_epoch_runs_the_estimator_before_its_batches():
    torch.manual_seed(5)
    m = method()
    net = m.build(1)
    state = m.configure(net, ctx())
    first, second = candidates(net)
    with torch.no_grad():
        first.weight.copy_(torch.distributions.Laplace(0.0, 1.0).sample(first.weight.shape))
        second.weight.uniform_(-0.5, 0.5)
    seen = []

    def batches():
        seen.append((bool(first.binarized), bool(second.binarized)))  # the state at the first batch
        yield torch.rand(8, 1, 8, 8), torch.arange(8)

    m.train_epoch(net, state, batches(), ctx())
    assert seen == [(False, True)]


def test_storage_counts_one_bit_per_binary_weight_and_one_alpha_per_channel():
    m = method()
    net = m.build(1)
    convs = [mod for mod in net.modules() if isinstance(mod, BinaryConv2d)]
    sizes = [c.weight.numel() for c in convs]
    select_layers(net, 0.0)
    assert storage(net) == {
        "binarized_layers": 0.0,
        "binary_weight_fraction": 0.0,
        "weight_storage_saving": 0.0,
    }
    for layer in candidates(net):
        layer.binarized.fill_(True)
    binary = sizes[1] + sizes[2]
    bits = 32 * (sizes[0] + sizes[3]) + binary + 32 * (32 + 64)
    got = storage(net)
    assert got["binarized_layers"] == 2.0
    assert got["binary_weight_fraction"] == pytest.approx(binary / sum(sizes))
    assert got["weight_storage_saving"] == pytest.approx(1 - bits / (32 * sum(sizes)))


# ---- the network ------------------------------------------------------------------------------------------
def lif_reference(currents: list[torch.Tensor], tau: float, threshold: float) -> list[torch.Tensor]:
    """Decay-input LIF with hard reset to 0, float64, step by step."""
    v = torch.zeros_like(currents[0])
    out = []
    for x in currents:
        h = v + (x - v) / tau
        s = (h >= threshold).double()
        v = h * (1 - s)
        out.append(s)
    return out


def test_forward_is_the_step_by_step_conv_bn_lif_body_and_the_gap_of_the_class_convolution():
    torch.manual_seed(6)
    m = method()
    net = m.build(2).double().eval()
    for mod in net.modules():
        if isinstance(mod, nn.BatchNorm2d):  # non-trivial running statistics
            mod.running_mean.uniform_(-0.2, 0.2)
            mod.running_var.uniform_(0.5, 1.5)
            mod.weight.data.uniform_(0.5, 2.0)
            mod.bias.data.uniform_(-0.5, 0.5)
    select_layers(net, m.config.error_threshold)
    convs = [mod for mod in net.modules() if isinstance(mod, BinaryConv2d)]
    bns = [mod for mod in net.modules() if isinstance(mod, nn.BatchNorm2d)]
    assert [bool(c.binarized) for c in convs] == [False, True, True, False]
    x = torch.rand(2, 3, 1, 8, 8, dtype=torch.float64)

    def bn(z, b):
        shape = (1, -1, 1, 1)
        return (z - b.running_mean.view(shape)) / torch.sqrt(
            b.running_var.view(shape) + b.eps
        ) * b.weight.view(shape) + b.bias.view(shape)

    def weight(c):
        return reference_binary(c.weight.detach()) if bool(c.binarized) else c.weight.detach()

    with torch.no_grad():
        s = [x[t] for t in range(2)]
        for i in range(3):
            currents = [bn(F.conv2d(st, weight(convs[i]), None, 1, 1), bns[i]) for st in s]
            s = lif_reference(currents, 2.0, 1.0)
            if i == 1:
                s = [F.avg_pool2d(st, 2) for st in s]
        logits = sum(F.conv2d(st, convs[3].weight, convs[3].bias, 1, 1).mean(dim=(2, 3)) for st in s) / 2
        torch.testing.assert_close(net(x), logits, rtol=1e-12, atol=1e-12)


def test_build_layout():
    m = method("albsnn-fmnist", shape=(1, 28, 28))
    net = m.build(1)
    convs = [mod for mod in net.modules() if isinstance(mod, BinaryConv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs] == [
        (1, 32, (3, 3)), (32, 64, (3, 3)), (64, 128, (3, 3)), (128, 10, (3, 3)),
    ]  # fmt: skip
    assert [c.candidate for c in convs] == [False, True, True, False]
    assert [c.bias is None for c in convs] == [True, True, True, False]
    assert all(c.padding == (1, 1) for c in convs)
    assert sum(isinstance(mod, nn.BatchNorm2d) for mod in net.modules()) == 3
    assert sum(isinstance(mod, nn.AvgPool2d) for mod in net.modules()) == 2
    assert not any(isinstance(mod, nn.Linear) for mod in net.modules())  # GAP replaces FC
    assert net(torch.rand(1, 4, 1, 28, 28)).shape == (4, 10)
    assert resolve_architecture("albsnn-digits").notation == "16C3-32C3-AP2-64C3"
    assert resolve_architecture("albsnn-fmnist").notation == "32C3-AP2-64C3-AP2-128C3"
    with pytest.raises(SnnbenchError, match="GAP replaces FC"):
        method("16C3-100").build(1)
    with pytest.raises(SnnbenchError, match="not \\[C, H, W\\]"):
        method("16C3", shape=(64,)).build(1)


# ---- the recipe ------------------------------------------------------------------------------------------
def test_defaults_are_our_declared_values():
    cfg = ALBSNNConfig()
    for name, value in OURS.items():
        assert (
            getattr(cfg, name) == pytest.approx(value, rel=1e-12)
            if isinstance(value, float)
            else (getattr(cfg, name) == value)
        ), name
    assert set(ALBSNNConfig.model_fields) == set(OURS)


def test_configure_is_adam_with_a_cosine_schedule_over_the_epochs():
    m = method(lr=0.004, weight_decay=1e-5)
    net = m.build(1)
    state = m.configure(net, ctx(epochs=4))
    assert type(state.optimizer) is torch.optim.Adam
    group = state.optimizer.param_groups[0]
    assert group["lr"] == 0.004 and group["weight_decay"] == 1e-5 and group["betas"] == (0.9, 0.999)
    assert {id(p) for p in group["params"]} == {id(p) for p in net.parameters()}
    lrs = []
    for _ in range(4):
        lrs.append(state.optimizer.param_groups[0]["lr"])
        state.optimizer.step()
        state.scheduler.step()
    assert lrs == pytest.approx([0.004 * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(4)])


def test_learns_digits_at_one_time_step():
    from sklearn.datasets import load_digits

    torch.manual_seed(0)
    data = load_digits()
    x = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(data.target)
    m = method(lr=0.01)
    net = m.build(1)
    run = ctx(T=1, epochs=5)
    state = m.configure(net, run)
    for _ in range(5):
        order = torch.randperm(1200, generator=torch.Generator().manual_seed(_))
        m.train_epoch(
            net, state, ((x[order[i : i + 64]], y[order[i : i + 64]]) for i in range(0, 1200, 64)), run
        )
    net.eval()
    with torch.no_grad():
        top1 = (m.predict(net, x[1200:], run).argmax(1) == y[1200:]).double().mean().item()
    assert top1 > 0.8, top1
    assert storage(net)["binarized_layers"] >= 1  # the estimator kept some layer binary
