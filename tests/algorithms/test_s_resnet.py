"""S-ResNet (Vicente-Sola et al. 2022): the neuron and its triangle surrogate against hand-worked values, the
per-step batch norm against its formula, the block and the whole network against an independent float64
step-by-step formulation (the official loop order: every layer at step t, then step t + 1), build()'s
layout against the official SResnet(n, nFilters), the recipe against train.py/utils.py, learning on digits.

The official code (VicenteAlex/Spiking_ResNet @c120f8e model.py, .cuda() removed) was also run beside this
implementation on the same weights and inputs (docs/algorithms/s-resnet.md, "Verification"): equal outputs,
gradients and running statistics to float64 rounding."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from snnbench.algorithms import RunContext
from snnbench.algorithms.s_resnet import (
    SBlock,
    SoftResetLIF,
    SResNetConfig,
    SResNetMethod,
    StepBatchNorm,
)
from snnbench.architectures import resolve_architecture
from snnbench.data import DatasetInfo
from snnbench.data.encoding import direct
from snnbench.models.s_resnet import s_resnet_notation

# ---- the official values (VicenteAlex/Spiking_ResNet @c120f8e), written out here, not read from our Config
OFFICIAL = {
    "leak": 0.8744,  # README.md CIFAR-10/100 commands --leak_mem 0.8744 (train.py:30 default 0.874)
    "threshold": 1.0,  # model.py:101, 104
    "surrogate_alpha": 0.3,  # model.py:20
    "bn_eps": 1e-4,  # model.py:54
    "bn_momentum": 0.1,
    "init_gain": 2.0,  # model.py:102, 105
    "boosting": False,  # train.py:34
    "lr": 0.026844,  # README.md commands --lr 0.026844 (train.py:29 default 0.0268)
    "momentum": 0.9,  # train.py:214
    "weight_decay": 1e-4,  # train.py:214
    "lr_milestones": (0.7, 0.8, 0.9),  # train.py:267 d1, d2, d3
}


def method(notation: str, shape=(3, 8, 8), classes=10, **config) -> SResNetMethod:
    return SResNetMethod(
        SResNetConfig(**config), resolve_architecture(notation), DatasetInfo("x", shape, classes)
    )


def test_defaults_are_the_official_values():
    cfg = SResNetConfig()
    for name, value in OFFICIAL.items():
        assert getattr(cfg, name) == pytest.approx(value, rel=1e-12), name


def test_neuron_trajectory_reset_and_surrogate_by_hand():
    neuron = SoftResetLIF(leak=0.5, threshold=1.0, alpha=0.3)
    x = torch.tensor([[0.8], [0.9], [0.3], [0.9]], requires_grad=True)
    # u1 = 0.8 no spike; u2 = 0.4 + 0.9 = 1.3 spike, u ← 0.3 (subtract ϑ); u3 = 0.15 + 0.3 = 0.45 no spike;
    # u4 = 0.225 + 0.9 = 1.125 spike (a hard reset to 0 would give u3 = 0.3, u4 = 1.05)
    s = neuron(x)
    assert s.flatten().tolist() == [0.0, 1.0, 0.0, 1.0]
    s[2].sum().backward()  # ∂s3/∂x: g3 at u3 = 0.45, through λ to x2 and x1 (the reset not differentiated)
    g3 = 0.3 * (1 - abs(0.45 - 1))
    torch.testing.assert_close(x.grad.flatten(), torch.tensor([0.25 * g3, 0.5 * g3, g3, 0.0]))


def test_spike_condition_is_the_threshold_crossing():
    """u/ϑ − 1 > 0 fires (model.py:13, 130); at u = ϑ exactly the project's Θ(0) = 1 (the official code: 0),
    a measure-zero difference declared in the docs."""
    neuron = SoftResetLIF(leak=1.0, threshold=2.0, alpha=0.3)
    s = neuron(torch.tensor([[1.5, 2.5, 1.0, 2.0]]))
    assert s.flatten().tolist() == [0.0, 1.0, 0.0, 1.0]


@pytest.mark.parametrize("threshold", [1.0, 2.0])
def test_triangle_surrogate_is_the_official_function_in_float64(threshold):
    """∂s/∂u = 0.3·max(0, 1 − |u/ϑ − 1|)·(1/ϑ): model.py:20 applies F.threshold(1 − |x|, 0, 0) to
    x = u/ϑ − 1 (model.py:130), so the triangle's half-width is one threshold, its height 0.3 in x."""
    u = torch.linspace(-1.0, 3.0 * threshold, 1001, dtype=torch.float64, requires_grad=True)
    neuron = SoftResetLIF(leak=OFFICIAL["leak"], threshold=threshold, alpha=0.3)
    neuron(u.view(1, -1)).sum().backward()  # first step: u = input
    x = u.detach() / threshold - 1.0
    expected = 0.3 * F.threshold(1.0 - x.abs(), 0.0, 0.0) / threshold
    torch.testing.assert_close(u.grad, expected, rtol=0, atol=1e-12)
    probe = torch.tensor([1.0, 1.5, 0.5, 1.99, 2.2], dtype=torch.float64) * threshold
    probe.requires_grad_()
    neuron(probe.view(1, -1)).sum().backward()
    heights = torch.tensor([0.3, 0.15, 0.15, 0.003, 0.0], dtype=torch.float64)
    torch.testing.assert_close(probe.grad, heights / threshold, rtol=0, atol=1e-9)


def test_step_batchnorm_has_its_own_affine_and_statistics_at_every_step():
    """model.py builds a BatchNorm2d per layer and step; its γ and β both stay (the "Turn off bias of BNTT"
    loop sets ``.bias`` on the ModuleLists, model.py:95-96, not on the BatchNorms)."""
    torch.manual_seed(0)
    bn = StepBatchNorm(2, T=3, eps=1e-4, momentum=0.1).double()
    with torch.no_grad():
        bn.weight.copy_(torch.rand(3, 2) + 0.5)
        bn.bias.copy_(torch.randn(3, 2))
    x = (torch.randn(3, 5, 2, 4, 4) * torch.tensor([1.0, 2.0, 4.0]).view(3, 1, 1, 1, 1)).double()
    x = x + torch.arange(3.0).view(3, 1, 1, 1, 1)
    weights = torch.randn_like(x)
    ref_x = x.clone().requires_grad_()
    gamma, beta = bn.weight.detach().clone().requires_grad_(), bn.bias.detach().clone().requires_grad_()
    mean = ref_x.mean((1, 3, 4), keepdim=True)
    var = ref_x.var((1, 3, 4), unbiased=False, keepdim=True)
    expected = (ref_x - mean) / torch.sqrt(var + 1e-4) * gamma.view(3, 1, 2, 1, 1) + beta.view(3, 1, 2, 1, 1)
    (expected * weights).sum().backward()
    ours_x = x.clone().requires_grad_()
    out = bn(ours_x)
    (out * weights).sum().backward()
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(ours_x.grad, ref_x.grad)
    torch.testing.assert_close(bn.weight.grad, gamma.grad)
    torch.testing.assert_close(bn.bias.grad, beta.grad)
    n = 5 * 4 * 4
    torch.testing.assert_close(bn.running_mean, 0.1 * x.mean((1, 3, 4)))
    torch.testing.assert_close(bn.running_var, 0.9 + 0.1 * x.var((1, 3, 4), unbiased=False) * n / (n - 1))
    assert len({tuple(r.tolist()) for r in bn.running_mean}) == 3  # each step its own statistics


# ---- an independent float64 formulation of the official forward: step-major loops, functional ops --------
def _spike64(x: torch.Tensor) -> torch.Tensor:
    """Θ(x) (strict) forward; gradient 0.3 max(0, 1 − |x|) through a smooth primitive (straight-through)."""
    primitive = 0.3 * torch.where(
        x <= -1, torch.zeros_like(x), torch.where(x >= 1, torch.ones_like(x), x + 0.5 - x * x.abs() / 2)
    )
    return (x > 0).to(x.dtype) + primitive - primitive.detach()


def _bn64(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    mean, var = x.mean((0, 2, 3), keepdim=True), x.var((0, 2, 3), unbiased=False, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * gamma.view(1, -1, 1, 1) + beta.view(1, -1, 1, 1)


def layers_of(net) -> tuple[list[tuple], list[tuple]]:
    """(conv weight, stride, padding, γ [T, C], β [T, C]) per convolution in the official conv_list order, and
    the same for the 1×1 skips; plus the layer indices where a skip joins."""
    convs, skips = [], []

    def entry(unit):
        conv, bn = unit[0].module, unit[1]
        return conv.weight, conv.stride[0], conv.padding[0], bn.weight, bn.bias

    convs.append(entry(net.body[0]))
    for m in net.body:
        if isinstance(m, SBlock):
            convs += [entry(m.branch[0]), entry(m.branch[2])]
            skips.append(None if m.shortcut is None else entry(m.shortcut))
    return convs, skips


def reference_forward(net, x: torch.Tensor, T: int, leak: float, boosting: bool = False) -> torch.Tensor:
    """The official SResnet.forward written from its equations: for every step, every layer in order; layer i
    (i > 0, i even) adds the skip (the output of layer i − 2, or its BN_t(conv1×1) where the stage changes)
    to its spikes; the FC of the pooled output is summed over steps and divided by T."""
    convs, skips = layers_of(net)
    mem = [None] * len(convs)
    fc = 0.0
    for t in range(T):
        out = x
        for i, (w, stride, pad, gamma, beta) in enumerate(convs):
            current = _bn64(F.conv2d(out, w, stride=stride, padding=pad), gamma[t], beta[t])
            mem[i] = current if mem[i] is None else leak * mem[i] + current
            s = _spike64(mem[i] / 1.0 - 1.0)
            mem[i] = mem[i] - 1.0 * s.detach()
            if i == 0:
                skip = s
            elif i % 2 == 0:
                projection = skips[i // 2 - 1]
                if projection is not None:
                    w1, stride1, _, g1, b1 = projection
                    skip = _bn64(F.conv2d(skip, w1, stride=stride1), g1[t], b1[t])
                s = s + skip
                skip = s
            out = s
        step = net.head.weight @ out.mean((2, 3)).T
        if boosting:
            step = step.T.unflatten(1, (-1, 10)).mean(2).T
        fc = fc + step
    return (fc / T).T


def _randomise(net, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, StepBatchNorm):
                m.weight.copy_(1 + 0.3 * torch.randn(m.weight.shape, generator=gen, dtype=m.weight.dtype))
                m.bias.copy_(0.3 * torch.randn(m.bias.shape, generator=gen, dtype=m.bias.dtype))


@pytest.mark.parametrize(("n", "boosting"), [(2, False), (1, True)])
def test_network_equals_the_float64_step_by_step_formulation(n, boosting):
    """Outputs and every parameter's gradient of build()'s S-ResNet(n, 4) equal the step-major formulation
    (identity and 1×1-projection skips, per-step BN, soft reset, FC membrane averaged over T)."""
    T, leak = 4, OFFICIAL["leak"]
    torch.manual_seed(n)
    algorithm = method(s_resnet_notation(n, 4), boosting=boosting)
    net = algorithm.build(T).double().train()
    _randomise(net, n)
    x = torch.randn(6, 3, 8, 8, generator=torch.Generator().manual_seed(7), dtype=torch.float64) * 1.5
    y = torch.tensor([0, 1, 2, 3, 4, 5])
    rates = []
    for m in net.modules():
        if isinstance(m, SoftResetLIF):
            m.register_forward_hook(lambda module, args, out: rates.append(out.mean().item()))
    ours = net(direct(x, T))
    # the comparison is not vacuous: every layer fires, none at every neuron-step
    assert len(rates) == 6 * n + 1 and all(0.02 < r < 0.9 for r in rates), rates
    F.cross_entropy(ours, y).backward()
    grads = {name: p.grad.clone() for name, p in net.named_parameters()}
    net.zero_grad()
    expected = reference_forward(net, x, T, leak, boosting)
    F.cross_entropy(expected, y).backward()
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-12)
    for name, p in net.named_parameters():
        torch.testing.assert_close(grads[name], p.grad, rtol=0, atol=1e-12, msg=name)
    assert all(g.abs().max() > 0 for g in grads.values())


def test_block_adds_spikes_and_skip_every_two_layers():
    """A block's output is its second neuron's spikes plus its input (identity) or BN_t(conv1×1(input)):
    no neuron on the skip, the sum not binarised."""
    from snnbench.architectures import Block

    torch.manual_seed(0)
    cfg = SResNetConfig()
    identity = SBlock(cfg, 3, 4, Block(4, 1))
    x = (torch.rand(3, 2, 4, 6, 6) < 0.5).float() * 2.0
    out = identity(x)
    spikes = identity.branch(x)
    assert set(spikes.unique().tolist()) <= {0.0, 1.0}
    torch.testing.assert_close(out, spikes + x)
    assert out.max() == 3.0  # spike + a skip of 2: integers above 1 reach the next layer
    assert identity.shortcut is None
    projection = SBlock(cfg, 3, 4, Block(8, 2))
    assert isinstance(projection.shortcut[1], StepBatchNorm) and len(projection.shortcut) == 2
    conv = projection.shortcut[0].module
    assert conv.kernel_size == (1, 1) and conv.stride == (2, 2) and conv.bias is None
    torch.testing.assert_close(projection(x), projection.branch(x) + projection.shortcut(x))


@pytest.mark.parametrize(("n", "width", "size"), [(6, 32, 32), (1, 8, 8)])
def test_build_is_the_official_sresnet_layout(n, width, size):
    """model.py SResnet(n, nFilters): conv1 3×3; 3 stages × 2n 3×3 convs at w, 2w, 4w (the first of stages 2
    and 3 stride 2); a skip every 2 layers (1×1 stride-2 conv + BN where the stage changes); one BN per layer
    and step; no biases; GAP; FC nFilters·4 → classes without bias; Xavier-uniform gain 2."""
    T = 3
    net = method(s_resnet_notation(n, width), (3, size, size), 100).build(T)
    stem_conv = net.body[0][0].module
    assert (stem_conv.in_channels, stem_conv.out_channels, stem_conv.kernel_size) == (3, width, (3, 3))
    blocks = [m for m in net.body if isinstance(m, SBlock)]
    assert len(blocks) == 3 * n
    for k, block in enumerate(blocks):
        stage, first = divmod(k, n)[0], k % n == 0
        c1, c2 = block.branch[0][0].module, block.branch[2][0].module
        assert c1.out_channels == c2.out_channels == width * 2**stage
        assert c1.stride == ((2, 2) if stage and first else (1, 1)) and c2.stride == (1, 1)
        assert isinstance(block.branch[1], SoftResetLIF) and isinstance(block.branch[3], SoftResetLIF)
        assert (block.shortcut is not None) == (stage > 0 and first)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 6 * n + 1 + 2 and all(c.bias is None for c in convs)
    norms = [m for m in net.modules() if isinstance(m, StepBatchNorm)]
    assert len(norms) == len(convs) and all(m.weight.shape[0] == T and m.bias is not None for m in norms)
    assert isinstance(net.body[-2].module, nn.AdaptiveAvgPool2d)
    assert net.head.bias is None and tuple(net.head.weight.shape) == (100, 4 * width)
    for layer in [*convs, net.head]:  # xavier_uniform_(gain=2): U(±2·sqrt(6 / (fan_in + fan_out)))
        fan_in = layer.weight[0].numel()
        fan_out = layer.weight.shape[0] * layer.weight[0, 0].numel()
        bound = 2.0 * math.sqrt(6.0 / (fan_in + fan_out))
        assert layer.weight.abs().max() <= bound and layer.weight.abs().max() > 0.8 * bound


def test_readout_is_the_fc_membrane_averaged_over_T():
    torch.manual_seed(0)
    net = method(s_resnet_notation(1, 4)).build(5)
    x = torch.rand(5, 3, 3, 8, 8)
    net.eval()
    with torch.no_grad():
        per_step = net.head(net.body(x))  # FC of the pooled spikes at each step
        torch.testing.assert_close(net(x), per_step.mean(0))
        assert not torch.allclose(per_step.mean(0), per_step[-1])


@pytest.mark.parametrize("epochs", [70, 10, 7])
def test_recipe_is_the_official_sgd_and_step_schedule(epochs):
    """train.py:214 SGD(lr, momentum 0.9, weight decay 1e-4); utils.adjust_learning_rate after every epoch e:
    lr /= 10 when e == N·0.7, N·0.8 or N·0.9 (70 epochs: 50 at lr, 7 at lr/10, 7 at lr/100, 6 at lr/1000)."""
    algorithm = method(s_resnet_notation(1, 4))
    net = algorithm.build(2)
    ctx = RunContext(2, torch.device("cpu"), epochs, 8, 8, "direct", torch.Generator(), direct)
    state = algorithm.configure(net, ctx)
    optimizer = state.optimizer
    assert type(optimizer) is torch.optim.SGD
    (group,) = optimizer.param_groups
    assert group["lr"] == pytest.approx(0.026844, rel=1e-12)
    assert group["momentum"] == 0.9 and group["weight_decay"] == 1e-4 and not group["nesterov"]
    assert {id(p) for p in group["params"]} == {id(p) for p in net.parameters()}
    ours, official, lr = [], [], 0.026844
    for epoch in range(epochs):
        ours.append(optimizer.param_groups[0]["lr"])
        official.append(lr)
        optimizer.step()
        state.scheduler.step()
        if epoch == epochs * 0.7 or epoch == epochs * 0.8 or epoch == epochs * 0.9:
            lr /= 10
    assert ours == pytest.approx(official, rel=1e-12)
    if epochs == 70:
        assert ours == pytest.approx([0.026844] * 50 + [0.0026844] * 7 + [0.00026844] * 7 + [0.000026844] * 6)


def test_learns_digits(write_suite, tmp_path):
    from snnbench.grid import run_suite

    path = write_suite(
        {
            "timesteps": [4],
            "budgets": {"smoke": {"epochs": 4, "batch_size": 32, "train_subset": 400, "test_subset": 200}},
            "algorithms": {"s-resnet": {"arch": "s-resnet-digits"}},
        }
    )
    record = run_suite(path, out_dir=tmp_path, device="cpu").records[0]
    assert record.status == "ok" and record.metrics["top1"] > 60.0  # chance 10 %
