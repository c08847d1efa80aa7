"""BNTT: per-step BN parameters and statistics, the neuron's dynamics and surrogate gradient worked by
hand, the time-indexed BN against its formula, the official VGG9/VGG11 layer by layer, the official LR
drops, early exit on a crafted model, the signed Poisson coding, learning."""

from __future__ import annotations

import functools

import pytest
import torch
from torch import nn

from snnbench.algorithms import RunContext
from snnbench.algorithms.bntt import BNTT, BNTTConfig, LeakySoftResetNeuron, TimeBatchNorm
from snnbench.architectures import resolve_architecture
from snnbench.data import DatasetInfo
from snnbench.data.encoding import direct, signed_rate


def test_per_step_bn_has_distinct_parameters_gradients_and_statistics():
    torch.manual_seed(0)
    bn = TimeBatchNorm(3, T=4, eps=1e-4, momentum=0.1)
    x = torch.randn(4, 16, 3) * torch.arange(1.0, 5.0).view(4, 1, 1) + torch.arange(4.0).view(4, 1, 1)
    (bn(x) * torch.randn(4, 16, 3)).sum().backward()
    assert bn.gamma.shape == (4, 3) and bn.gamma.grad is not None
    assert len({tuple(g.tolist()) for g in bn.gamma.grad}) == 4  # each step its own gradient
    # running statistics per step: step t saw mean ≈ t and var ≈ (t+1)²; momentum 0.1 from (0, 1)
    batch_mean = x.mean(1)
    torch.testing.assert_close(bn.running_mean, 0.1 * batch_mean)
    assert not hasattr(bn, "bias") or getattr(bn, "bias", None) is None  # no shift β


def test_time_batchnorm_equals_the_formula_in_values_gradients_and_running_statistics():
    """Eq. (1) per step t: (x_t − mean_t)/sqrt(var_t + ε) γ_t, no shift; the running statistics of step t
    move by momentum 0.1 towards step t's batch mean and unbiased variance (model.py's BatchNorm2d)."""
    torch.manual_seed(1)
    bn = TimeBatchNorm(2, T=3, eps=1e-4, momentum=0.1).double()
    bn.gamma.data = torch.rand(3, 2, dtype=torch.float64) + 0.5
    x = torch.randn(3, 5, 2, dtype=torch.float64) * torch.tensor(
        [[[1.0]], [[2.0]], [[4.0]]], dtype=torch.float64
    )
    weights = torch.randn(3, 5, 2, dtype=torch.float64)
    ours_x, ref_x = x.clone().requires_grad_(), x.clone().requires_grad_()
    gamma = bn.gamma.detach().clone().requires_grad_()
    mean, var = ref_x.mean(1, keepdim=True), ref_x.var(1, unbiased=False, keepdim=True)
    expected = (ref_x - mean) / torch.sqrt(var + 1e-4) * gamma.unsqueeze(1)
    (expected * weights).sum().backward()
    out = bn(ours_x)
    (out * weights).sum().backward()
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(ours_x.grad, ref_x.grad)
    torch.testing.assert_close(bn.gamma.grad, gamma.grad)
    torch.testing.assert_close(bn.running_mean, 0.1 * x.mean(1))
    torch.testing.assert_close(bn.running_var, 0.9 + 0.1 * x.var(1, unbiased=True))


# written from the official model.py: (kind, out, in) per layer in order; every conv and fc1 is followed by a
# per-step BN without shift and the neuron; biases off; fc2 (the head) has neither
OFFICIAL = {
    "bntt-vgg9": [
        ("conv", 64, 3), ("conv", 64, 64), ("avg", 2), ("conv", 128, 64), ("conv", 128, 128), ("avg", 2),
        ("conv", 256, 128), ("conv", 256, 256), ("conv", 256, 256), ("avg", 2), ("fc", 1024, 4 * 4 * 256),
    ],
    "bntt-vgg11": [
        ("conv", 64, 3), ("avg", 2), ("conv", 128, 64), ("avg", 2), ("conv", 256, 128), ("conv", 256, 256),
        ("avg", 2), ("conv", 512, 256), ("conv", 512, 512), ("avg", 2), ("conv", 512, 512),
        ("conv", 512, 512), ("gap", 1), ("fc", 4096, 512),
    ],
}  # fmt: skip


@pytest.mark.parametrize("arch, classes", [("bntt-vgg9", 10), ("bntt-vgg11", 100)])
def test_network_is_the_official_vgg(arch, classes):
    net = BNTT(BNTTConfig(), resolve_architecture(arch), DatasetInfo("cifar", (3, 32, 32), classes)).build(2)
    layers, modules = [], [getattr(m, "module", m) for m in net.body]
    for i, module in enumerate(modules):
        if isinstance(module, nn.Conv2d | nn.Linear):
            assert module.bias is None and module.weight.shape[2:] in ((3, 3), ())
            assert isinstance(modules[i + 1], TimeBatchNorm) and isinstance(
                modules[i + 2], LeakySoftResetNeuron
            )
            assert modules[i + 1].gamma.shape == (2, module.weight.shape[0])
            kind = "conv" if isinstance(module, nn.Conv2d) else "fc"
            layers.append((kind, module.weight.shape[0], module.weight.shape[1]))
        elif isinstance(module, nn.AvgPool2d):
            layers.append(("avg", module.kernel_size))
        elif isinstance(module, nn.AdaptiveAvgPool2d):
            layers.append(("gap", module.output_size))
    assert layers == OFFICIAL[arch]
    head = net.head.module
    assert head.bias is None and tuple(head.weight.shape) == (classes, OFFICIAL[arch][-1][1])


def test_neuron_trajectory_and_surrogate_gradient_by_hand():
    neuron = LeakySoftResetNeuron(leak=0.5, threshold=1.0)
    x = torch.tensor([[0.8], [0.9], [0.3]], requires_grad=True)
    # u1 = 0.8 → no spike; u2 = 0.4 + 0.9 = 1.3 → spike, u ← 0.3; u3 = 0.15 + 0.3 = 0.45 → no spike
    s = neuron(x)
    assert s.flatten().tolist() == [0.0, 1.0, 0.0]
    s.sum().backward()
    # ∂s_t/∂u_t = 0.3 max(0, 1 − |u_t − 1|): g1 = 0.3·0.8 = 0.24, g2 = 0.3·0.7 = 0.21, g3 = 0.3·0.45 = 0.135
    # reset not differentiated: ∂u3/∂u2 = λ = 0.5, ∂u2/∂u1 = 0.5
    # dL/dx3 = g3; dL/dx2 = g2 + 0.5 g3; dL/dx1 = g1 + 0.5 (g2 + 0.5 g3)
    g1, g2, g3 = 0.24, 0.21, 0.135
    torch.testing.assert_close(
        x.grad.flatten(), torch.tensor([g1 + 0.5 * (g2 + 0.5 * g3), g2 + 0.5 * g3, g3])
    )


def test_fused_neuron_equals_the_step_by_step_equations():
    """The kernel form (units of ϑ) against eqs. (1)–(3) written step by step: bit-equal when ϑ = 1."""
    from snnbench.neurons.functional import spike

    def step_by_step(x: torch.Tensor, leak: float, threshold: float) -> torch.Tensor:
        u, out = torch.zeros_like(x[0]), []
        for x_t in x:
            u = leak * u + x_t  # eq. (1)
            s = spike(u / threshold - 1.0, "triangle")  # eq. (2)
            u = u - threshold * s.detach()  # eq. (3)
            out.append(s)
        return torch.stack(out)

    torch.manual_seed(3)
    x = torch.randn(6, 64, 300) * 0.6 + 0.3
    weights = torch.randn_like(x)
    for threshold, exact in ((1.0, True), (2.0, False)):
        results = []
        reference = functools.partial(step_by_step, leak=0.95, threshold=threshold)
        for forward in (LeakySoftResetNeuron(0.95, threshold), reference):
            x_in = x.clone().requires_grad_()
            spikes = forward(x_in)
            (spikes * weights).sum().backward()
            results.append((spikes, x_in.grad))
        (spikes, grad), (expected_spikes, expected_grad) = results
        assert torch.equal(spikes, expected_spikes) and 0 < spikes.mean() < 0.5
        if exact:
            assert torch.equal(grad, expected_grad)
        else:
            torch.testing.assert_close(grad, expected_grad, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("epochs", [100, 40, 7])
def test_learning_rate_drops_after_the_epochs_of_the_official_rule(epochs):
    """utills.adjust_learning_rate(optimizer, epoch, N), called after each epoch: lr /= 10 when
    epoch == N·0.5, N·0.7 or N·0.9 (never, for N = 7)."""
    algorithm = BNTT(BNTTConfig(lr=0.3), resolve_architecture("8"), DatasetInfo("x", (4,), 3))
    net = algorithm.build(2)
    ctx = RunContext(2, torch.device("cpu"), epochs, 8, 8, "direct", torch.Generator(), direct)
    state = algorithm.configure(net, ctx)
    ours, official, lr = [], [], 0.3
    for epoch in range(epochs):
        ours.append(state.optimizer.param_groups[0]["lr"])
        official.append(lr)
        state.optimizer.step()
        state.scheduler.step()
        if epoch == epochs * 0.5 or epoch == epochs * 0.7 or epoch == epochs * 0.9:
            lr /= 10
    assert ours == pytest.approx(official, rel=1e-12)


def test_early_exit_stops_where_the_rule_says():
    algorithm = BNTT(BNTTConfig(exit_threshold=0.1), resolve_architecture("8-8"), DatasetInfo("x", (4,), 3))
    net = algorithm.build(6)
    norms = [m for m in net.modules() if isinstance(m, TimeBatchNorm)]
    assert len(norms) == 2
    with torch.no_grad():
        norms[0].gamma.copy_(torch.tensor([1.0, 0.5, 0.2, 0.12, 0.05, 0.01]).unsqueeze(1).expand(6, 8))
        norms[1].gamma.copy_(torch.tensor([1.0, 0.5, 0.2, 0.06, 0.05, 0.01]).unsqueeze(1).expand(6, 8))
    # mean γ_t = [1, 0.5, 0.2, 0.09, 0.05, 0.01] → first below 0.1 at t = 4
    assert algorithm.exit_step(net, 6) == 4
    logits_exit = net(torch.rand(4, 2, 4), steps=4)
    assert logits_exit.shape == (2, 3)


def test_signed_rate_coding_statistics():
    x = torch.tensor([-1.5, -0.4, 0.0, 0.4, 1.0, 3.0])
    spikes = signed_rate(x, 20_000, torch.Generator().manual_seed(0))
    assert set(spikes.unique().tolist()) <= {-1.0, 0.0, 1.0}
    rate = spikes.mean(0)
    torch.testing.assert_close(rate, torch.tensor([-0.75, -0.2, 0.0, 0.2, 0.5, 1.0]), atol=0.015, rtol=0)


def test_learns_digits(write_suite, tmp_path):
    from snnbench.grid import run_suite

    path = write_suite(
        {
            "timesteps": [4],
            "budgets": {"smoke": {"epochs": 5, "batch_size": 32, "train_subset": 400, "test_subset": 200}},
            "algorithms": {"bntt": {"arch": "mlp"}},
        }
    )
    record = run_suite(path, out_dir=tmp_path, device="cpu").records[0]
    assert record.status == "ok" and record.metrics["top1"] > 75.0  # measured 91 % (chance 10 %)
