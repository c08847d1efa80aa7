"""MS-ResNet: the neuron and the membrane-shortcut block against the paper's equations written out step by
step in float64; the surrogate against its smooth function; a learning test on digits."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from snnbench.algorithms.ms_resnet import RECTANGLE, MSBlock, MSConfig, MSNeuron
from snnbench.architectures import Block
from snnbench.neurons.functional import spike


def reference_neuron(x: torch.Tensor, decay: float = 0.25, theta: float = 0.5) -> torch.Tensor:
    """Eq. (1): u[t] = λ u[t−1] (1 − s[t−1]) + x[t], s[t] = [u[t] ≥ ϑ]."""
    u, s, out = torch.zeros_like(x[0]), torch.zeros_like(x[0]), []
    for x_t in x:
        u = decay * u * (1 - s) + x_t
        s = (u >= theta).double()
        out.append(s)
    return torch.stack(out)


def test_neuron_trajectory_by_hand():
    # u: 0.3 → 0.25·0.3 + 0.3 = 0.375 → 0.25·0.375 + 0.3 = 0.39375 ...; 0.6 fires at once, then resets
    x = torch.tensor([[0.3, 0.6], [0.3, 0.0], [0.5, 0.2]], dtype=torch.float64)
    assert MSNeuron(0.25, 0.5, 0.5)(x).tolist() == [[0.0, 1.0], [0.0, 0.0], [1.0, 0.0]]


def test_surrogate_backward_is_the_derivative_of_its_smooth_function():
    x = torch.linspace(-2, 2, 41, dtype=torch.float64, requires_grad=True)
    spike(x, RECTANGLE, 0.5).sum().backward()
    y = x.detach().clone().requires_grad_(True)
    RECTANGLE.smooth(y, 0.5).sum().backward()
    torch.testing.assert_close(x.grad, y.grad)
    assert x.grad.tolist() == [1.0 if abs(v) < 0.5 else 0.0 for v in x.detach().tolist()]  # official ActFun


def reference_block(block: MSBlock, x: torch.Tensor) -> torch.Tensor:
    """Eq. (3) in evaluation-mode BN: neuron → conv → BN → neuron → conv → BN, plus the (projected) input."""

    def conv_bn(unit, v):
        conv, bn = unit.module
        y = torch.stack([F.conv2d(v_t, conv.weight, None, conv.stride, conv.padding) for v_t in v])
        shape = (-1, 1, 1)
        return (y - bn.running_mean.view(shape)) / torch.sqrt(
            bn.running_var.view(shape) + bn.eps
        ) * bn.weight.view(shape) + bn.bias.view(shape)

    a = conv_bn(block.branch[3], reference_neuron(conv_bn(block.branch[1], reference_neuron(x))))
    shortcut = x if isinstance(block.shortcut, torch.nn.Identity) else conv_bn(block.shortcut, x)
    return a + shortcut  # the shortcut adds the membrane input x, taken before the neuron


@pytest.mark.parametrize("block", [Block(4), Block(6, 2)])
def test_block_equals_the_step_by_step_equations(block):
    torch.manual_seed(0)
    ms = MSBlock(4, block, MSConfig()).double()
    g = torch.Generator().manual_seed(3)
    for bn in ms.modules():
        if isinstance(bn, torch.nn.BatchNorm2d):
            n = bn.num_features
            bn.running_var.copy_(torch.rand(n, generator=g, dtype=torch.float64) + 0.5)
            bn.weight.data.copy_(torch.rand(n, generator=g, dtype=torch.float64) + 0.5)
            bn.bias.data.copy_(torch.rand(n, generator=g, dtype=torch.float64) * 0.3)
    ms.eval()
    x = torch.randn(5, 3, 4, 6, 6, dtype=torch.float64) * 0.8 + 0.3  # membrane inputs, not spikes
    ours = ms(x)
    torch.testing.assert_close(ours, reference_block(ms, x), rtol=1e-12, atol=1e-12)
    # taking the shortcut after the neuron (spikes instead of membranes) would give a different output
    if isinstance(ms.shortcut, torch.nn.Identity):
        assert not torch.allclose(ours, ms.branch(x) + reference_neuron(x))


def test_official_initialisation():
    ms = MSBlock(4, Block(6, 2), MSConfig())
    assert float(ms.branch[1].module[1].weight.detach().mean()) == 0.5  # tdBN: γ = ϑ
    assert float(ms.branch[3].module[1].weight.detach().abs().sum()) == 0.0  # last BN of the branch: γ = 0
    assert float(ms.shortcut.module[1].weight.detach().mean()) == 0.5


def test_learns_digits(write_suite, tmp_path):
    from snnbench.grid import run_suite

    path = write_suite(
        {
            "timesteps": [4],
            "budgets": {"smoke": {"epochs": 5, "batch_size": 32, "train_subset": 400, "test_subset": 200}},
            "algorithms": {"ms-resnet": {"arch": "resnet-digits", "optimizer": "adam", "lr": 0.003}},
        }
    )
    record = run_suite(path, out_dir=tmp_path, device="cpu").records[0]
    assert record.status == "ok" and record.metrics["top1"] > 55.0  # chance 10 %


class _ReferenceSpike(torch.autograd.Function):
    """Θ(v) forward; the rectangle 1[|v| < a]/(2a) backward (eq. 2), written here, not imported."""

    @staticmethod
    def forward(ctx, v, a):  # noqa: ANN001, ANN205
        ctx.save_for_backward(v)
        ctx.a = a
        return (v >= 0).to(v.dtype)

    @staticmethod
    def backward(ctx, grad):  # noqa: ANN001, ANN205
        (v,) = ctx.saved_tensors
        return grad * (v.abs() < ctx.a).to(v.dtype) / (2 * ctx.a), None


def reference_neuron_autograd(x: torch.Tensor, decay: float = 0.25, theta: float = 0.5, a: float = 0.5):
    """Eq. (1) with the official ``mem_update``'s graph: the reset factor (1 − s[t−1]) is a constant."""
    u, s, out = torch.zeros_like(x[0]), torch.zeros_like(x[0]), []
    for x_t in x:
        u = decay * u * (1 - s.detach()) + x_t
        s = _ReferenceSpike.apply(u - theta, a)
        out.append(s)
    return torch.stack(out)


def test_neuron_gradient_equals_float64_autograd_of_the_reference_with_the_reset_detached():
    """The input gradient of the neuron (and of the neuron ``build()`` puts in the network) equals float64
    autograd through the independent reference; an attached reset would add −λ u[t−1] ∂s[t−1] terms."""
    from snnbench.algorithms.ms_resnet import MSResNet
    from snnbench.architectures import resolve_architecture
    from snnbench.data import DatasetInfo

    info = DatasetInfo("x", (1, 8, 8), 3)
    built = MSResNet(MSConfig(), resolve_architecture("resnet-digits"), info).build(6)
    neurons = [m for m in built.modules() if isinstance(m, MSNeuron)]
    assert neurons
    g = torch.Generator().manual_seed(2)
    x = (torch.rand(12, 40, generator=g, dtype=torch.float64) * 0.9).requires_grad_()
    upstream = torch.randn(12, 40, generator=g, dtype=torch.float64)
    expected = reference_neuron_autograd(x)
    (want,) = torch.autograd.grad((expected * upstream).sum(), x)
    attached = reference_neuron_autograd_attached(x)
    (differs,) = torch.autograd.grad((attached * upstream).sum(), x)
    assert float((want - differs).abs().max()) > 1e-3  # the fixture can tell the two graphs apart
    for neuron in [MSNeuron(0.25, 0.5, 0.5), neurons[0]]:
        out = neuron(x)
        (got,) = torch.autograd.grad((out * upstream).sum(), x)
        assert torch.equal(out, expected)
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def reference_neuron_autograd_attached(x: torch.Tensor, decay: float = 0.25, theta: float = 0.5):
    u, s, out = torch.zeros_like(x[0]), torch.zeros_like(x[0]), []
    for x_t in x:
        u = decay * u * (1 - s) + x_t
        s = _ReferenceSpike.apply(u - theta, 0.5)
        out.append(s)
    return torch.stack(out)


def test_built_network_reads_out_the_time_averaged_spikes_of_the_last_membranes():
    """Eq. (4): logits = W (1/T) Σ_t GAP(SN(X_L))[t] + b: ``build()`` puts a neuron before global pooling,
    so the classifier's input is a spike count over T·H·W positions, and the logits equal the head applied
    to the reference neuron's GAP of the last block's output."""
    from snnbench.algorithms.ms_resnet import MSResNet
    from snnbench.architectures import resolve_architecture
    from snnbench.data import DatasetInfo

    torch.manual_seed(0)
    T = 4
    net = MSResNet(MSConfig(), resolve_architecture("resnet-digits"), DatasetInfo("x", (1, 8, 8), 3)).build(T)
    net = net.double().eval()
    x = torch.rand(T, 5, 1, 8, 8, dtype=torch.float64) * 3
    modules = list(net.body)
    last_block = max(i for i, m in enumerate(modules) if isinstance(m, MSBlock))
    last = x
    with torch.no_grad():
        for module in modules[: last_block + 1]:  # the stem and the blocks: membrane inputs X_L
            last = module(last)
    with torch.no_grad():
        features = net.body(x)  # [T, B, C] after GAP and flatten
        h, w = last.shape[-2:]
        counts = features * h * w
        assert torch.allclose(counts, counts.round(), atol=1e-9) and float(features.min()) >= 0
        assert float(features.max()) <= 1.0 and float(features.sum()) > 0
        spikes = reference_neuron(last)
        torch.testing.assert_close(net(x), net.head(spikes.mean(dim=(3, 4)).mean(0)))
