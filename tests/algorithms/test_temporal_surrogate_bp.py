"""Temporal surrogate BP (Yang 2020): the gradient equals the backward recursion written out from the
paper's neuron in float64, with the reset term (and, for the comparison, without it); with a smooth spike
it equals finite differences, which a detached reset does not; the flag changes nothing in the forward
pass; and the method learns digits."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from snnbench.algorithms import rate_mse_loss
from snnbench.algorithms.temporal_surrogate_bp import (
    ResetLIF,
    TemporalSurrogateBP,
    TSBPConfig,
    TSBPNet,
)
from snnbench.neurons.layers import TimeDistributed

N_IN, HIDDEN, CLASSES, T, B = 4, 6, 3, 6, 5


def tiny_net(cfg: TSBPConfig, spike_fn=None, seed: int = 0) -> TSBPNet:
    torch.manual_seed(seed)
    body = nn.Sequential(TimeDistributed(nn.Linear(N_IN, HIDDEN)), ResetLIF(cfg, spike_fn))
    net = TSBPNet(body, nn.Linear(HIDDEN, CLASSES), ResetLIF(cfg, spike_fn)).double()
    with torch.no_grad():  # drive both layers into the surrogate window (0 < u < 1) and across ϑ often
        body[0].module.weight.normal_(0.0, 0.6)
        body[0].module.bias.fill_(0.3)
        net.head.module.weight.normal_(0.0, 0.6)
        net.head.module.bias.fill_(0.3)
    return net


def inputs(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(T, B, N_IN, generator=g, dtype=torch.float64)
    return x, torch.randint(0, CLASSES, (B,), generator=g)


def autograd_gradients(net: TSBPNet, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
    net.zero_grad()
    rate_mse_loss(net(x), y).backward()
    return [p.grad for p in parameters(net)]


def parameters(net: TSBPNet) -> list[torch.Tensor]:
    return [net.body[0].module.weight, net.body[0].module.bias, net.head.module.weight, net.head.module.bias]


def reference_gradients(
    net: TSBPNet,
    x: torch.Tensor,
    y: torch.Tensor,
    reset_term: bool,
    lam: float = 0.2,
    theta: float = 0.5,
    a: float = 0.5,
) -> list[torch.Tensor]:
    """Eqs. (1)–(4) of the module docstring, element by element in float64 (no autograd):
    u[t] = λu[t−1](1 − s[t−1]) + x[t]; s = Θ(u − ϑ); g = 1[|u − ϑ| < a];
    ε[t] = (e[t] − [reset] λ u[t] ε[t+1]) g[t] + λ (1 − s[t]) ε[t+1]."""
    W1, b1 = net.body[0].module.weight.detach(), net.body[0].module.bias.detach()
    W2, b2 = net.head.module.weight.detach(), net.head.module.bias.detach()

    def forward(inp: list[list[list[float]]], W: torch.Tensor, b: torch.Tensor):
        n_out = W.shape[0]
        u = [[[0.0] * n_out for _ in range(B)] for _ in range(T)]
        s = [[[0.0] * n_out for _ in range(B)] for _ in range(T)]
        for t in range(T):
            for n in range(B):
                for j in range(n_out):
                    syn = float(b[j]) + sum(float(W[j, i]) * inp[t][n][i] for i in range(W.shape[1]))
                    prev = lam * u[t - 1][n][j] * (1.0 - s[t - 1][n][j]) if t > 0 else 0.0
                    u[t][n][j] = prev + syn
                    s[t][n][j] = 1.0 if u[t][n][j] >= theta else 0.0
        return u, s

    def backward(e, u, s):
        n_out = len(u[0][0])
        eps = [[[0.0] * n_out for _ in range(B)] for _ in range(T)]
        for n in range(B):
            for j in range(n_out):
                nxt = 0.0
                for t in reversed(range(T)):
                    g = 1.0 if abs(u[t][n][j] - theta) < a else 0.0
                    dLds = e[t][n][j] - (lam * u[t][n][j] * nxt if reset_term else 0.0)
                    eps[t][n][j] = dLds * g + lam * (1.0 - s[t][n][j]) * nxt
                    nxt = eps[t][n][j]
        return eps

    def weight_grads(eps, inp, W):
        dW = torch.zeros_like(W)
        db = torch.zeros(W.shape[0], dtype=torch.float64)
        for t in range(T):
            for n in range(B):
                for j in range(W.shape[0]):
                    db[j] += eps[t][n][j]
                    for i in range(W.shape[1]):
                        dW[j, i] += eps[t][n][j] * inp[t][n][i]
        return dW, db

    xin = x.tolist()
    u1, s1 = forward(xin, W1, b1)
    u2, s2 = forward(s1, W2, b2)
    rate = [[sum(s2[t][n][c] for t in range(T)) / T for c in range(CLASSES)] for n in range(B)]
    target = [[1.0 if int(y[n]) == c else 0.0 for c in range(CLASSES)] for n in range(B)]
    scale = 2.0 / (B * CLASSES * T)
    e_out = [[scale * (rate[n][c] - target[n][c]) for c in range(CLASSES)] for n in range(B)]
    e2 = [e_out for _ in range(T)]  # ∂L/∂s_out[t]: the same at every step (the rate is a mean over t)
    eps2 = backward(e2, u2, s2)
    W2l = W2.tolist()
    e1 = [
        [[sum(eps2[t][n][c] * W2l[c][j] for c in range(CLASSES)) for j in range(HIDDEN)] for n in range(B)]
        for t in range(T)
    ]
    eps1 = backward(e1, u1, s1)
    dW1, db1 = weight_grads(eps1, xin, W1)
    dW2, db2 = weight_grads(eps2, s1, W2)
    return [dW1, db1, dW2, db2]


def test_gradient_with_the_reset_term_equals_the_written_out_recursion():
    net = tiny_net(TSBPConfig(reset_term=True))
    x, y = inputs()
    got = autograd_gradients(net, x, y)
    want = reference_gradients(net, x, y, reset_term=True)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-12)


def test_without_the_reset_term_it_equals_the_recursion_without_it():
    net = tiny_net(TSBPConfig(reset_term=False))
    x, y = inputs()
    got = autograd_gradients(net, x, y)
    for g, w in zip(got, reference_gradients(net, x, y, reset_term=False), strict=True):
        torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-12)


def test_the_reset_term_changes_the_gradient_in_this_fixture():
    """Fails if the reset is detached: the two recursions differ here by more than 5 % of the gradient
    norm, in both layers, and the method's gradient is the one with the term."""
    x, y = inputs()
    with_term = autograd_gradients(tiny_net(TSBPConfig(reset_term=True)), x, y)
    without = reference_gradients(tiny_net(TSBPConfig()), x, y, reset_term=False)
    for g, w in zip(with_term, without, strict=True):
        assert (g - w).norm() > 0.05 * g.norm()


def test_the_flag_leaves_the_forward_pass_unchanged():
    x, _ = inputs()
    a = tiny_net(TSBPConfig(reset_term=True))(x)
    b = tiny_net(TSBPConfig(reset_term=False))(x)
    assert torch.equal(a, b) and 0.0 < float(a.detach().mean()) < 1.0


def test_neuron_charges_decays_fires_and_resets_multiplicatively():
    lif = ResetLIF(TSBPConfig())
    # λ = 0.2, ϑ = 0.5. u: 0.4, 0.2·0.4 + 0.45 = 0.53 (fires; without the leak 0.85, with λ = 0 0.45 silent)
    assert lif(torch.tensor([0.4, 0.45]).view(2, 1)).flatten().tolist() == [0.0, 1.0]
    # 0.6 fires; the multiplicative reset zeroes u: 0·0.6 + 0.45 = 0.45 (silent; a soft reset would keep
    # 0.2·0.1 + 0.45), then 0.2·0.45 + 0.45 = 0.54 fires
    assert lif(torch.tensor([0.6, 0.45, 0.45]).view(3, 1)).flatten().tolist() == [1.0, 0.0, 1.0]


@pytest.mark.parametrize("reset_term", [True, False])
def test_with_a_smooth_spike_the_gradient_is_exact_only_with_the_reset_term(reset_term):
    """Replace Θ by σ(5(u − ϑ)) forward and backward: the network is smooth, and the gradient that keeps
    the reset term is its true gradient (central differences); dropping the term is not."""
    smooth = lambda v: torch.sigmoid(5.0 * v)  # noqa: E731
    net = tiny_net(TSBPConfig(reset_term=reset_term), spike_fn=smooth)
    x, y = inputs()
    got = autograd_gradients(net, x, y)
    params = parameters(net)
    worst = 0.0
    for p, g in zip(params, got, strict=True):
        fd = torch.zeros_like(p)
        flat = p.data.view(-1)
        for i in range(flat.numel()):
            old = float(flat[i])
            with torch.no_grad():
                flat[i] = old + 1e-6
                plus = float(rate_mse_loss(net(x), y))
                flat[i] = old - 1e-6
                minus = float(rate_mse_loss(net(x), y))
                flat[i] = old
            fd.view(-1)[i] = (plus - minus) / 2e-6
        worst = max(worst, float((g - fd).abs().max() / fd.abs().max()))
    if reset_term:
        assert worst < 1e-6
    else:
        assert worst > 1e-2


def test_learns_digits(write_suite, tmp_path):
    from snnbench.grid import run_suite

    path = write_suite(
        {
            "timesteps": [4],
            "budgets": {"smoke": {"epochs": 4, "batch_size": 32, "train_subset": 500, "test_subset": 200}},
            "algorithms": {"temporal-surrogate-bp": {"arch": "mlp"}},
        }
    )
    record = run_suite(path, out_dir=tmp_path, device="cpu").records[0]
    assert record.status == "ok" and record.metrics["top1"] > 70.0  # chance 10 %


def test_registered_with_the_paper_and_both_digits_entries():
    assert TemporalSurrogateBP.paper is not None and "2011.09964" in TemporalSurrogateBP.paper.url
    from snnbench.suite import load_suite

    entries = load_suite("digits-lowT").algorithms
    assert entries["temporal-surrogate-bp"].track == "controlled"
    assert entries["temporal-surrogate-bp-noreset"].algorithm == "temporal-surrogate-bp"
    assert entries["temporal-surrogate-bp-noreset"].hparams["reset_term"] is False


def built_net(reset_term: bool) -> TSBPNet:
    """The network ``build()`` makes from the default config (λ 0.2, ϑ 0.5, a 0.5), with the fixture's
    weights: the gradient tests above, through the method's own construction."""
    from snnbench.architectures import resolve_architecture
    from snnbench.data import DatasetInfo

    info = DatasetInfo("x", (N_IN,), CLASSES)
    cfg = TSBPConfig(reset_term=reset_term)
    algorithm = TemporalSurrogateBP(cfg, resolve_architecture(str(HIDDEN)), info)
    net = algorithm.build(T).double()
    reference = tiny_net(TSBPConfig())
    for ours, theirs in zip(parameters(net), parameters(reference), strict=True):
        with torch.no_grad():
            ours.copy_(theirs)
    return net


@pytest.mark.parametrize("reset_term", [True, False])
def test_built_network_gradient_equals_the_written_out_recursion(reset_term):
    """Every layer of the built network, the output layer included, keeps (or drops) the reset term as the
    config says, with the default λ, ϑ and a of the recursion."""
    net = built_net(reset_term)
    assert [type(m) for m in net.body] == [TimeDistributed, ResetLIF]
    x, y = inputs()
    got = autograd_gradients(net, x, y)
    for g, w in zip(got, reference_gradients(net, x, y, reset_term=reset_term), strict=True):
        torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-12)
