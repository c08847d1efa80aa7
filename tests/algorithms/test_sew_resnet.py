"""SEW-ResNet: the block against a step-by-step float64 formulation of the paper's equations built from
SpikingJelly's ``activation_based`` neurons (single-step), for every connect function; the neurons against
SpikingJelly's multi-step IF and PLIF; a learning test on digits."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from snnbench.algorithms.sew_resnet import SEWBlock, SEWConfig, SEWResNet
from snnbench.architectures import Block, resolve_architecture
from snnbench.data import DatasetInfo
from snnbench.neurons.functional import LIFParams
from snnbench.neurons.layers import LIF

sj_neuron = pytest.importorskip("spikingjelly.activation_based.neuron")
sj_surrogate = pytest.importorskip("spikingjelly.activation_based.surrogate")


def sew_net(neuron: str = "if", connect_f: str = "ADD", arch: str = "resnet-digits") -> torch.nn.Module:
    cfg = SEWConfig(neuron=neuron, connect_f=connect_f)
    return SEWResNet(cfg, resolve_architecture(arch), DatasetInfo("x", (2, 8, 8), 3)).build(4).double()


def randomise_batch_norm(module: torch.nn.Module) -> None:
    """Evaluation-mode BN with random statistics and affine terms (a per-step map, as in the equations)."""
    g = torch.Generator().manual_seed(3)
    for bn in module.modules():
        if isinstance(bn, torch.nn.BatchNorm2d):
            n = bn.num_features
            bn.running_mean.copy_(torch.randn(n, generator=g, dtype=torch.float64) * 0.1)
            bn.running_var.copy_(torch.rand(n, generator=g, dtype=torch.float64) + 0.5)
            bn.weight.data.copy_(torch.rand(n, generator=g, dtype=torch.float64) + 0.5)
            bn.bias.data.copy_(torch.rand(n, generator=g, dtype=torch.float64) * 0.6)
    module.eval()


def reference_block(block: SEWBlock, spikes: torch.Tensor, connect_f: str) -> torch.Tensor:
    """Eqs. (1)–(5) one step at a time, with SpikingJelly single-step IF neurons and boolean connects."""

    def conv_bn(unit, x):  # unit: TimeDistributed(Sequential(conv, bn)) of the block, applied to one step
        conv, bn = unit.module
        y = F.conv2d(x, conv.weight, None, conv.stride, conv.padding)
        return (y - bn.running_mean[:, None, None]) / torch.sqrt(
            bn.running_var[:, None, None] + bn.eps
        ) * bn.weight[:, None, None] + bn.bias[:, None, None]

    def if_node():
        return sj_neuron.IFNode(surrogate_function=sj_surrogate.ATan(), detach_reset=True)

    sn1, sn2, sn_down = if_node(), if_node(), if_node()
    out = []
    for s_t in spikes:
        a = sn2(conv_bn(block.branch[2], sn1(conv_bn(block.branch[0], s_t))))
        shortcut = s_t if block.downsample is None else sn_down(conv_bn(block.downsample[0], s_t))
        if connect_f == "ADD":
            out.append(a + shortcut)
        elif connect_f == "AND":
            out.append(torch.logical_and(a > 0, shortcut > 0).double())
        else:  # IAND: (¬A) ∧ S
            out.append(torch.logical_and(torch.logical_not(a > 0), shortcut > 0).double())
    return torch.stack(out)


@pytest.mark.parametrize("connect_f", ["ADD", "AND", "IAND"])
@pytest.mark.parametrize("block", [Block(4), Block(6, 2)])
def test_block_equals_the_step_by_step_equations(connect_f, block):
    torch.manual_seed(0)
    if_params = LIFParams(math.inf, 1.0, 0.0, "arctan", None, True, 1.0)  # IF, ATan, detach_reset
    sew = SEWBlock(4, block, connect_f, lambda: LIF(if_params)).double()
    randomise_batch_norm(sew)
    spikes = (torch.rand(5, 3, 4, 6, 6, dtype=torch.float64) < 0.5).double()
    ours = sew(spikes)
    expected = reference_block(sew, spikes, connect_f)
    assert torch.equal(ours, expected)
    # the connect function matters here: the branch fires where the shortcut does and where it does not
    branch = sew.branch(spikes)
    shortcut = spikes if sew.downsample is None else sew.downsample(spikes)
    assert ((branch > 0) & (shortcut > 0)).any() and ((branch == 0) & (shortcut > 0)).any()


@pytest.mark.parametrize("kind", ["if", "plif"])
def test_neurons_equal_spikingjelly_multistep(kind):
    torch.manual_seed(1)
    ours = sew_net(neuron=kind).body[0][1]  # the stem's neuron
    theirs = (
        sj_neuron.IFNode(surrogate_function=sj_surrogate.ATan(), detach_reset=True, step_mode="m")
        if kind == "if"
        else sj_neuron.ParametricLIFNode(
            init_tau=2.0, surrogate_function=sj_surrogate.ATan(), detach_reset=True, step_mode="m"
        )
    ).double()
    x = (torch.randn(8, 4, 16, dtype=torch.float64) + 0.7).requires_grad_()
    weights = torch.randn(8, 4, 16, dtype=torch.float64)
    expected = theirs(x)
    (expected * weights).sum().backward()
    expected_grad, x.grad = x.grad.clone(), None
    got = ours(x)
    (got * weights).sum().backward()
    assert torch.equal(got, expected) and expected.sum() > 0
    torch.testing.assert_close(x.grad, expected_grad, rtol=1e-10, atol=1e-12)
    if kind == "plif":
        torch.testing.assert_close(ours.w.grad, theirs.w.grad, rtol=1e-10, atol=1e-12)


def test_zero_init_residual_starts_blocks_as_the_official_code():
    cfg = SEWConfig(connect_f="AND", zero_init_residual=True)
    net = SEWResNet(cfg, resolve_architecture("resnet-digits"), DatasetInfo("x", (1, 8, 8), 3)).build(2)
    blocks = [m for m in net.modules() if isinstance(m, SEWBlock)]
    assert len(blocks) == 2 and blocks[1].downsample is not None and blocks[0].downsample is None
    for b in blocks:
        bn = b.branch[2].module[1]
        assert float(bn.weight.detach().abs().sum()) == 0.0 and bool((bn.bias == 1.0).all())


def test_learns_digits(write_suite, tmp_path):
    from snnbench.grid import run_suite

    path = write_suite(
        {
            "timesteps": [4],
            "budgets": {"smoke": {"epochs": 5, "batch_size": 32, "train_subset": 400, "test_subset": 200}},
            "algorithms": {"sew-resnet": {"arch": "resnet-digits", "optimizer": "adam", "lr": 0.003}},
        }
    )
    record = run_suite(path, out_dir=tmp_path, device="cpu").records[0]
    assert record.status == "ok" and record.metrics["top1"] > 55.0  # chance 10 %; 73 % measured


def test_methods_without_residual_blocks_refuse_them():
    from snnbench.algorithms.bptt import BPTT, BPTTConfig
    from snnbench.errors import SnnbenchError

    with pytest.raises(SnnbenchError, match="'resnet-digits' has residual blocks, which bptt cannot build"):
        BPTT(BPTTConfig(), resolve_architecture("resnet-digits"), DatasetInfo("x", (1, 8, 8), 3))


def test_convolutions_get_the_official_kaiming_normal_fan_out_init():
    """Official init: every conv weight ~ N(0, 2 / (C_out k²)) (kaiming_normal_, fan_out, relu); PyTorch's
    default (Kaiming uniform, a = √5: std 1/√(3 C_in k²)) would be ~2.4× smaller here. Pooled over the
    network's convolutions, the weights divided by their layer's official std have std 1 and the normal's
    kurtosis 3 (a uniform has 1.8)."""
    torch.manual_seed(0)
    info = DatasetInfo("x", (2, 8, 8), 3)
    net = SEWResNet(SEWConfig(), resolve_architecture("resnet-digits"), info).build(2)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 6
    official = [math.sqrt(2.0 / (m.out_channels * m.kernel_size[0] * m.kernel_size[1])) for m in convs]
    pairs = zip(convs, official, strict=True)
    scaled = torch.cat([(m.weight.detach() / s).flatten() for m, s in pairs]).double()
    assert abs(float(scaled.std()) - 1.0) < 0.03
    assert abs(float((scaled**4).mean() / scaled.var() ** 2) - 3.0) < 0.3
    for m, s in zip(convs, official, strict=True):  # each layer, not only the pool
        assert abs(float(m.weight.detach().std()) / s - 1.0) < 0.2, m


def test_plif_with_a_non_default_initial_tau_equals_spikingjelly():
    """PLIF's 1/τ = sigmoid(w), w₀ = −log(τ₀ − 1): at τ₀ = 2 the sign of w₀ cannot matter (w₀ = 0), so the
    neuron ``build()`` makes with τ₀ = 4 is compared with SpikingJelly's ParametricLIFNode(init_tau=4):
    outputs, input gradients and the gradient of w."""
    cfg = SEWConfig(neuron="plif", tau_init=4.0)
    ours = SEWResNet(cfg, resolve_architecture("resnet-digits"), DatasetInfo("x", (2, 8, 8), 3)).build(4)
    ours = ours.double().body[0][1]
    theirs = sj_neuron.ParametricLIFNode(
        init_tau=4.0, surrogate_function=sj_surrogate.ATan(), detach_reset=True, step_mode="m"
    ).double()
    assert float(torch.sigmoid(ours.w.detach())) == pytest.approx(0.25)
    torch.manual_seed(1)
    x = (torch.randn(8, 4, 16, dtype=torch.float64) * 2 + 1.5).requires_grad_()
    weights = torch.randn(8, 4, 16, dtype=torch.float64)
    expected = theirs(x)
    (expected * weights).sum().backward()
    expected_grad, x.grad = x.grad.clone(), None
    got = ours(x)
    (got * weights).sum().backward()
    assert torch.equal(got, expected) and expected.sum() > 0
    torch.testing.assert_close(x.grad, expected_grad, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(ours.w.grad, theirs.w.grad, rtol=1e-10, atol=1e-12)
