"""SCTFA (Cai et al., TNNLS 2023): the neuron by hand, the attention maps against their formula, the whole
network (outputs, every gradient, the step-wise BN statistics) against an independent float64 step-by-step
formulation in the official loop order (every layer at step t, then step t + 1), build()'s layout and
initialisation against the official ``snn`` of GuoLab-UESTC/SCTFA-SNN @be887ca, the recipe against
``parameters.py``/``main_pop.py``, learning on digits.

The official ``example/net_pop.py`` (unmodified but for fc1's input width, which the committed code gets
wrong) was also run beside this implementation on the same weights and inputs (docs/algorithms/sctfa.md,
"Verification"): equal outputs, attention maps and running statistics, gradients within float32 rounding."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from snnbench.algorithms import RunContext
from snnbench.algorithms.sctfa import SCTFA, Attention, SCTFAConfig, SCTFANeuron, StepBatchNorm
from snnbench.architectures import resolve_architecture
from snnbench.data import DatasetInfo
from snnbench.data.encoding import rate

# ---- the official values (GuoLab-UESTC/SCTFA-SNN @be887ca), written out here, not read from our Config
OFFICIAL = {
    "decay": 0.5,  # example/parameters.py:16
    "v_threshold": 0.8,  # parameters.py:18
    "alpha": 2.0,  # parameters.py:19
    "attention": True,  # main_pop.py:100 train(cs, sctfa=True)
    "reduction": 4,  # parameters.py:92 attention(..., reduction=4)
    "batch_norm": True,  # net_pop.py:12, 18, 24
    "population": 5,  # net_pop.py:30 fc2 num_classes * 5; :68 avg_pool1d(·, 5)
    "lr": 1e-3,  # parameters.py:35
    "gamma": 0.95,  # parameters.py:38
}


def method(notation: str, shape=(2, 16, 16), classes=10, **config) -> SCTFA:
    return SCTFA(SCTFAConfig(**config), resolve_architecture(notation), DatasetInfo("x", shape, classes))


def test_defaults_are_the_official_values():
    cfg = SCTFAConfig()
    for name, value in OFFICIAL.items():
        assert getattr(cfg, name) == pytest.approx(value, rel=1e-12), name


def test_neuron_trajectory_reset_and_gradient_by_hand():
    """u = 0.5 u (1 − s) + x, s = Θ(u − 0.8); the reset term (1 − s) stays in autograd (mem_update)."""
    neuron = SCTFANeuron(SCTFAConfig())
    x = torch.tensor([[0.5], [0.5], [0.9], [0.3]], dtype=torch.float64, requires_grad=True)
    s = neuron(x)
    # u1 = 0.5; u2 = 0.25 + 0.5 = 0.75; u3 = 0.375 + 0.9 = 1.275 fires; u4 = 0.5·1.275·0 + 0.3 = 0.3
    assert s.flatten().tolist() == [0.0, 0.0, 1.0, 0.0]

    def g(u):  # the official atan backward at u − ϑ, α = 2
        return (2 / 2) / (1 + (2 * math.pi / 2 * (u - 0.8)) ** 2)

    s[3].sum().backward()
    # ∂u_t/∂u_{t−1} = λ(1 − s_{t−1}) − λ u_{t−1} g(u_{t−1}) (the reset differentiated), ∂u_t/∂x_t = 1:
    # s3 = 1 gives ∂u4/∂u3 = −0.5·1.275·g(u3); s1 = s2 = 0 but their surrogate slopes are not 0
    d43 = -0.5 * 1.275 * g(1.275)
    d32 = 0.5 - 0.5 * 0.75 * g(0.75)
    d21 = 0.5 - 0.5 * 0.5 * g(0.5)
    top = g(0.3)
    expected = [top * d43 * d32 * d21, top * d43 * d32, top * d43, top]
    torch.testing.assert_close(x.grad.flatten(), torch.tensor(expected, dtype=torch.float64))


def test_spike_is_the_threshold_crossing():
    neuron = SCTFANeuron(SCTFAConfig())
    s = neuron(torch.tensor([[0.79, 0.81, 0.2, 1.6]]))
    assert s.flatten().tolist() == [0.0, 1.0, 0.0, 1.0]


def test_attention_maps_are_the_official_formula():
    """spatial σ(conv1×1 + b) [B,1,H,W] ⊗ channel σ(W₂ ReLU(W₁ GAP)) [B,C,1,1] (parameters.py:90-112)."""
    torch.manual_seed(0)
    attention = Attention(8, 4).double()
    assert (
        attention.spatial.bias is not None
        and attention.squeeze.bias is None
        and attention.excite.bias is None
    )
    assert attention.squeeze.weight.shape == (2, 8) and attention.excite.weight.shape == (8, 2)
    s = (torch.rand(3, 8, 5, 6, dtype=torch.float64) < 0.4).double()
    v, b = attention.spatial.weight.view(8), attention.spatial.bias
    spatial = torch.sigmoid(torch.einsum("c,bchw->bhw", v, s) + b)[:, None]
    squeezed = torch.relu(s.mean((2, 3)) @ attention.squeeze.weight.T)
    channel = torch.sigmoid(squeezed @ attention.excite.weight.T)[:, :, None, None]
    torch.testing.assert_close(attention(s), spatial * channel)
    assert attention(s).shape == (3, 8, 5, 6)


# ---- an independent float64 formulation of the whole network, step by step (the official loop order) -------
def reference(net: nn.Module, x: torch.Tensor, cfg: SCTFAConfig) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """net_pop.snn.forward written out from the equations on our modules' parameters (float64): for every
    step t, every layer in turn; BN on that step's batch with its running statistics moved (F.batch_norm);
    returns the class rates and the running statistics (as new tensors: the module buffers are not used)."""

    class Spike(torch.autograd.Function):  # parameters.py atan: Θ forward, (α/2)/(1 + (απ/2 x)²) backward
        @staticmethod
        def forward(ctx, v):  # type: ignore[override]
            ctx.save_for_backward(v)
            return (v > 0).double()

        @staticmethod
        def backward(ctx, grad):  # type: ignore[override]
            (v,) = ctx.saved_tensors
            return grad * (cfg.alpha / 2) / (1 + (cfg.alpha * math.pi / 2 * v) ** 2)

    layers = list(net.body)
    stats = {
        id(m): [m.running_mean.clone(), m.running_var.clone()] for m in layers if isinstance(m, StepBatchNorm)
    }
    state: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    total = 0
    for t in range(x.shape[0]):
        out = x[t]
        current = None
        for i, m in enumerate(layers):
            inner = getattr(m, "module", m)
            if isinstance(inner, nn.Conv2d):
                current = F.conv2d(out, inner.weight, inner.bias, inner.stride, inner.padding)
            elif isinstance(inner, nn.Linear):
                current = out @ inner.weight.T + inner.bias
            elif isinstance(m, StepBatchNorm):
                mean, var = stats[id(m)]
                current = F.batch_norm(current, mean, var, m.weight, m.bias, True, m.momentum, m.eps)
            elif isinstance(m, SCTFANeuron):
                u, s = state.get(i, (torch.zeros_like(current), torch.zeros_like(current)))
                if m.attention is not None:
                    a = m.attention
                    spatial = torch.sigmoid(F.conv2d(s, a.spatial.weight, a.spatial.bias))
                    gate = torch.relu(s.mean((2, 3)) @ a.squeeze.weight.T) @ a.excite.weight.T
                    u = u * (spatial * torch.sigmoid(gate)[:, :, None, None])
                u = cfg.decay * u * (1.0 - s) + current
                s = Spike.apply(u - cfg.v_threshold)
                state[i] = (u, s)
                out = s
            elif isinstance(inner, nn.AvgPool2d):
                out = F.avg_pool2d(out, inner.kernel_size)
            elif isinstance(inner, nn.Flatten):
                out = out.reshape(out.shape[0], -1)
            else:
                raise AssertionError(f"unexpected layer {m}")
        total = total + out
    rates = F.avg_pool1d((total / x.shape[0]).unsqueeze(1), cfg.population).squeeze(1)
    return rates, [v for pair in stats.values() for v in pair]


@pytest.mark.parametrize("attention", [True, False])
@pytest.mark.parametrize("T", [1, 5])
def test_network_equals_the_float64_step_by_step_formulation(attention, T):
    torch.manual_seed(1)
    cfg = SCTFAConfig(attention=attention)
    algorithm = method("8C5p2s2-AP2-16C3-AP2-24", shape=(2, 16, 16), attention=attention)
    net = algorithm.build(T).double().train()
    with torch.no_grad():  # stronger weights, so that every layer fires and the attention matters
        for m in net.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)) and m.weight.shape[0] > 1:
                m.weight.mul_(3.0)
            if isinstance(m, nn.Conv2d) and m.out_channels == 1:
                m.weight.normal_(0.0, 2.0)
            if isinstance(m, StepBatchNorm):
                m.weight.uniform_(0.8, 2.0)
    x = (torch.rand(T, 3, 2, 16, 16, dtype=torch.float64) < 0.3).double() * 2.0
    y = torch.tensor([1, 4, 9])
    theirs, their_stats = reference(net, x, cfg)
    their_grads = torch.autograd.grad(SCTFA.loss(theirs, y), list(net.parameters()))
    ours = net(x)
    our_grads = torch.autograd.grad(SCTFA.loss(ours, y), list(net.parameters()))
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)
    assert 0.0 < float(ours.detach().mean()) < 1.0  # the outputs fire, not all the time
    for (name, _), a, b in zip(net.named_parameters(), our_grads, their_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12, msg=name)
    ours_stats = [
        b for m in net.modules() if isinstance(m, StepBatchNorm) for b in (m.running_mean, m.running_var)
    ]
    for a, b in zip(ours_stats, their_stats, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    assert any(float(g.abs().max()) > 0 for g in our_grads)


def test_step_batchnorm_uses_each_steps_batch_statistics():
    """BN(ops(x)) inside the step loop: each step normalised by its own batch statistics, the running
    estimates moved T times (not once over the T·B pooled batch)."""
    bn = StepBatchNorm(3).double()
    x = torch.randn(4, 5, 3, 2, 2, dtype=torch.float64) * torch.arange(1, 5, dtype=torch.float64).view(
        4, 1, 1, 1, 1
    )
    out = bn(x)
    for t in range(4):
        torch.testing.assert_close(
            out[t].mean((0, 2, 3)), torch.zeros(3, dtype=torch.float64), atol=1e-12, rtol=0
        )
    assert int(bn.num_batches_tracked) == 4


def test_build_is_the_official_network():
    """net_pop.snn on MNIST-DVS frames: conv 2→32 7×7 s2 p3, 32→64 3×3 p1, 64→128 3×3 p1
    (parameters.py:22-25), each with BN and an attention; AP2 after each; fc 128·8·8 → 512 → 50 (5 per
    class); biases everywhere but the attention's two SE layers. Parameters: the official 2,230,261 with
    fc1 at the 8,192 features its forward produces (+ 4,096·512)."""
    net = method("sctfa-mnistdvs-net", shape=(2, 128, 128)).build(20)
    convs = [m for m in net.body.modules() if isinstance(m, nn.Conv2d) and m.out_channels > 1]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.stride, c.padding) for c in convs] == [
        (2, 32, (7, 7), (2, 2), (3, 3)),
        (32, 64, (3, 3), (1, 1), (1, 1)),
        (64, 128, (3, 3), (1, 1), (1, 1)),
    ]
    assert all(c.bias is not None for c in convs)
    linears = [m.module for m in net.body if isinstance(getattr(m, "module", None), nn.Linear)]
    assert [(lin.in_features, lin.out_features) for lin in linears] == [(8192, 512), (512, 50)]
    neurons = [m for m in net.body if isinstance(m, SCTFANeuron)]
    assert [m.attention is not None for m in neurons] == [True, True, True, False, False]
    assert sum(isinstance(m, StepBatchNorm) for m in net.body) == 3
    assert sum(p.numel() for p in net.parameters()) == 2_230_261 + 4096 * 512
    x = torch.zeros(2, 1, 2, 128, 128)
    assert net(x).shape == (1, 10)
    with pytest.raises(Exception, match="pool|dropout|sctfa"):
        method("16C3-D0.5-10", shape=(1, 8, 8)).build(2)


def test_initialisation_is_pytorch_default():
    """No init code in net_pop.py/parameters.py: conv/linear weights and biases U(±1/√fan_in) (PyTorch's
    default), BN γ = 1, β = 0, running statistics 0 and 1."""
    torch.manual_seed(0)
    net = method("sctfa-digits", shape=(1, 8, 8)).build(4)
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            bound = 1.0 / math.sqrt(m.weight[0].numel())
            assert float(m.weight.detach().abs().max()) <= bound
            assert float(m.weight.detach().abs().max()) > 0.8 * bound  # uniform over the whole range
            if m.weight.numel() >= 500:
                assert float(m.weight.detach().std()) == pytest.approx(bound / math.sqrt(3), rel=0.1)
            if m.bias is not None:
                assert float(m.bias.detach().abs().max()) <= bound
        if isinstance(m, StepBatchNorm):
            assert torch.equal(m.weight, torch.ones_like(m.weight)) and torch.equal(
                m.bias, torch.zeros_like(m.bias)
            )
            assert m.momentum == 0.1 and m.eps == 1e-5


def test_readout_averages_groups_of_five_consecutive_outputs():
    net = method("4", shape=(3,), classes=2).build(4)
    with torch.no_grad():
        out_layer = net.body[-2].module
        out_layer.weight.zero_()
        out_layer.bias.copy_(torch.tensor([1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0]))
    rates = net(torch.zeros(4, 1, 3))
    # output neurons with bias 1 fire at steps 1, 2, 3, 4 (u = 1 > 0.8, reset each step): rate 1
    torch.testing.assert_close(rates, torch.tensor([[2 / 5, 4 / 5]]))


def test_loss_is_mse_to_the_one_hot_label():
    rates = torch.tensor([[0.2, 0.6, 0.0], [1.0, 0.0, 0.4]])
    y = torch.tensor([1, 0])
    expected = ((0.2**2 + 0.4**2) + (0.4**2)) / 6
    assert float(SCTFA.loss(rates, y)) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("epochs", [100, 7])
def test_recipe_is_adam_with_exponential_decay(epochs):
    """main_pop.py: Adam(lr 1e-3, PyTorch defaults), ExponentialLR(γ = 0.95) stepped once per epoch."""
    algorithm = method("sctfa-digits", shape=(1, 8, 8))
    net = algorithm.build(2)
    ctx = RunContext(2, torch.device("cpu"), epochs, 8, 8, "rate", torch.Generator(), rate)
    state = algorithm.configure(net, ctx)
    optimizer = state.optimizer
    assert type(optimizer) is torch.optim.Adam
    (group,) = optimizer.param_groups
    assert group["lr"] == pytest.approx(1e-3, rel=1e-12) and group["betas"] == (0.9, 0.999)
    assert group["eps"] == 1e-8 and group["weight_decay"] == 0 and not group["amsgrad"]
    assert {id(p) for p in group["params"]} == {id(p) for p in net.parameters()}
    assert type(state.scheduler) is torch.optim.lr_scheduler.ExponentialLR
    lrs = []
    for _ in range(epochs):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        state.scheduler.step()
    assert lrs == pytest.approx([1e-3 * 0.95**e for e in range(epochs)], rel=1e-9)


def test_train_epoch_steps_the_schedule_once_and_lowers_the_loss():
    torch.manual_seed(0)
    algorithm = method("8C3-AP2-16", shape=(1, 8, 8))
    net = algorithm.build(4)
    ctx = RunContext(4, torch.device("cpu"), 3, 16, 16, "rate", torch.Generator().manual_seed(0), rate)
    state = algorithm.configure(net, ctx)
    x, y = torch.rand(32, 1, 8, 8), torch.arange(32) % 10
    batches = [(x[:16], y[:16]), (x[16:], y[16:])]
    first = algorithm.train_epoch(net, state, batches, ctx)
    assert state.optimizer.param_groups[0]["lr"] == pytest.approx(0.95e-3)
    assert set(first) >= {"loss", "train_top1"} and math.isfinite(first["loss"])


def test_learns_digits(write_suite, tmp_path):
    from snnbench.grid import run_suite

    path = write_suite(
        {
            "timesteps": [4],
            "budgets": {"smoke": {"epochs": 6, "batch_size": 32, "train_subset": 400, "test_subset": 200}},
            "algorithms": {"sctfa": {"arch": "sctfa-digits", "encoding": "rate"}},
        }
    )
    record = run_suite(path, out_dir=tmp_path, device="cpu").records[0]
    assert record.status == "ok" and record.metrics["top1"] > 50.0  # chance 10 %
