"""OTTT: the update equals the paper's Σ_t δ[t] â[t]ᵀ (independent float64 reference), equals BPTT for T = 1,
points in a descent direction (positive cosine with BPTT), keeps no graph across steps, and learns digits."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from snnbench.algorithms.ottt import SPIKE_SCALE, OnlineLIF, OTTTConfig, OTTTNet, ScaledWS, ottt_loss


def tiny_net(n_in: int = 5, hidden: int = 6, classes: int = 3, seed: int = 0) -> OTTTNet:
    torch.manual_seed(seed)
    cfg = OTTTConfig()
    block = nn.ModuleDict(
        {"synapse": ScaledWS(nn.Linear(n_in, hidden), 1.0), "pool": nn.Identity(), "neuron": OnlineLIF(cfg)}
    )
    head = ScaledWS(nn.Linear(hidden, classes), SPIKE_SCALE, standardize=False)
    net = OTTTNet(nn.ModuleList([block]), head).double()
    with torch.no_grad():  # varied gains so that the hidden layer fires sometimes; a head that matters
        block["synapse"].gain.copy_(torch.linspace(0.5, 3.0, hidden).view(-1, 1))
        head.layer.weight.normal_(0.0, 0.5)
    return net


def ottt_gradients(
    net: OTTTNet, x_seq: torch.Tensor, y: torch.Tensor, online: bool = True
) -> dict[str, torch.Tensor]:
    net.train()
    net.reset()
    net.zero_grad()
    T = len(x_seq)
    losses = [ottt_loss(net.step(x_t, online=online), y, 0.05, T) for x_t in x_seq]
    if online:  # OTTT: each step's loss was already a separate graph; sum of per-step backward passes
        for loss in losses:
            loss.backward()
    else:
        torch.stack(losses).sum().backward()
    return {n: p.grad.clone() for n, p in net.named_parameters()}


def reference_gradients(net: OTTTNet, x_seq: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """Eqs. (1)–(4) written out: ∂L/∂Ŵ_head = Σ_t g_o[t] â[t]ᵀ, ∂L/∂Ŵ_1 = Σ_t δ[t] x[t]ᵀ with
    δ[t] = (Ŵ_headᵀ g_o[t]) ⊙ σ'(u[t] − ϑ); then through the weight standardisation by its VJP."""
    syn, head = net.blocks[0]["synapse"], net.head
    w1_raw = syn.layer.weight.detach().clone().requires_grad_()
    g1 = syn.gain.detach().clone().requires_grad_()
    w2_raw = head.layer.weight.detach().clone().requires_grad_()

    def standardise(w: torch.Tensor, g: torch.Tensor, scale: float) -> torch.Tensor:
        mean, var = w.mean(1, keepdim=True), w.var(1, keepdim=True, unbiased=True)  # official: torch.var
        return g * (w - mean) / torch.sqrt(var * w.shape[1] + 1e-4) * scale

    w1, w2 = standardise(w1_raw, g1, 1.0), w2_raw * SPIKE_SCALE  # the classifier is not standardised
    W1, W2, b1, b2 = w1.detach(), w2.detach(), syn.layer.bias.detach(), head.layer.bias.detach()
    T, B = x_seq.shape[:2]
    C = W2.shape[0]
    onehot = F.one_hot(y, C).double()
    u = torch.zeros(B, W1.shape[0], dtype=torch.float64)
    trace = torch.zeros_like(u)
    dW1, dW2 = torch.zeros_like(W1), torch.zeros_like(W2)
    db1, db2 = torch.zeros_like(b1), torch.zeros_like(b2)
    for x in x_seq:
        u = 0.5 * u + x @ W1.T + b1
        s = (u >= 1.0).double()
        sig = torch.sigmoid(4.0 * (u - 1.0))
        surrogate = 4.0 * sig * (1.0 - sig)
        u = u - s
        trace = 0.5 * trace + s
        o = s @ W2.T + b2
        g_ce = (torch.softmax(o, 1) - onehot) / B
        g_mse = 2.0 * (o - onehot) / (B * C)
        g_o = (0.95 * g_ce + 0.05 * g_mse) / T
        dW2 += g_o.T @ trace
        db2 += g_o.sum(0)
        delta = (g_o @ W2) * surrogate
        dW1 += delta.T @ x
        db1 += delta.sum(0)
    gw1_raw, gg1 = torch.autograd.grad(w1, (w1_raw, g1), dW1)
    (gw2_raw,) = torch.autograd.grad(w2, (w2_raw,), dW2)
    return {
        "blocks.0.synapse.gain": gg1,
        "blocks.0.synapse.layer.weight": gw1_raw,
        "blocks.0.synapse.layer.bias": db1,
        "head.layer.weight": gw2_raw,
        "head.layer.bias": db2,
    }


@pytest.mark.parametrize("T", [1, 4])
def test_update_is_the_papers_trace_gradient(T):
    net = tiny_net()
    torch.manual_seed(1)
    x_seq = torch.rand(T, 8, 5, dtype=torch.float64) * 2
    y = torch.randint(0, 3, (8,))
    ours, reference = ottt_gradients(net, x_seq, y), reference_gradients(net, x_seq, y)
    assert float(ours["head.layer.weight"].abs().sum()) > 0
    for name, grad in reference.items():
        torch.testing.assert_close(ours[name], grad, msg=name)


def test_one_step_equals_bptt():
    net = tiny_net()
    x_seq = torch.rand(1, 8, 5, dtype=torch.float64) * 2
    y = torch.randint(0, 3, (8,))
    ours, bptt = ottt_gradients(net, x_seq, y), ottt_gradients(net, x_seq, y, online=False)
    for name in ours:
        torch.testing.assert_close(ours[name], bptt[name], msg=name)


def test_descent_direction_agrees_with_bptt():
    """Positive cosine between OTTT's and BPTT's gradients on the same batch (the paper's descent claim)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.tensor(digits.images[:64] / 16.0).view(64, 64)
    y = torch.tensor(digits.target[:64])
    for seed in range(3):
        net = tiny_net(64, 32, 10, seed=seed)
        x_seq = x.unsqueeze(0).expand(6, -1, -1)
        ours, bptt = ottt_gradients(net, x_seq, y), ottt_gradients(net, x_seq, y, online=False)
        a = torch.cat([g.flatten() for g in ours.values()])
        b = torch.cat([g.flatten() for g in bptt.values()])
        assert F.cosine_similarity(a, b, dim=0) > 0.5, seed


def test_no_graph_links_steps():
    """The membrane is detached: after a step's backward, the next step's backward needs nothing older."""
    net = tiny_net()
    net.train()
    net.reset()
    y = torch.tensor([0, 1])
    for _ in range(3):
        loss = ottt_loss(net.step(torch.rand(2, 5, dtype=torch.float64) * 2, online=True), y, 0.05, 3)
        loss.backward()  # would raise "backward through the graph a second time" if steps were linked
    neuron = net.blocks[0]["neuron"]
    assert neuron.u is not None and neuron.u.grad_fn is not None
    assert all(t is None or not t.requires_grad for t in [neuron.trace])


def test_learns_digits(write_suite, tmp_path):
    from snnbench.grid import run_suite

    path = write_suite(
        {
            "timesteps": [4],
            "budgets": {"smoke": {"epochs": 4, "batch_size": 32, "train_subset": 500, "test_subset": 200}},
            "algorithms": {"ottt": {"arch": "mlp"}},
        }
    )
    record = run_suite(path, out_dir=tmp_path, device="cpu").records[0]
    assert record.status == "ok" and record.metrics["top1"] > 85.0  # chance 10 %
    assert record.metrics["acs_per_sample"] > 0


def test_vgg_f_feedback_reaches_the_first_layer_from_the_second_step():
    """VGG-F: zero-initialised feedback (no effect until trained), upsampled from the last conv layer, absent
    at t = 0, and trained: its weight gets a gradient (through the trace) once the last layer has fired."""
    from snnbench.algorithms.ottt import OTTT
    from snnbench.architectures import resolve_architecture
    from snnbench.data import DatasetInfo

    algorithm = OTTT(
        OTTTConfig(feedback=True), resolve_architecture("8C3-AP2-8C3-GAP"), DatasetInfo("x", (2, 8, 8), 3)
    )
    net = algorithm.build(4).double()
    assert net.up == 2 and float(net.feedback.layer.weight.detach().abs().sum()) == 0.0
    plain = (
        OTTT(OTTTConfig(), resolve_architecture("8C3-AP2-8C3-GAP"), DatasetInfo("x", (2, 8, 8), 3))
        .build(4)
        .double()
    )
    plain.load_state_dict({k: v for k, v in net.state_dict().items() if not k.startswith("feedback")})
    x = torch.rand(4, 5, 2, 8, 8, dtype=torch.float64) * 3
    net.eval(), plain.eval()
    torch.testing.assert_close(net(x), plain(x))  # zero feedback = VGG
    with torch.no_grad():
        net.feedback.layer.weight.normal_(0.0, 0.3)
    net.reset()
    first = net.step(x[0], online=False)
    plain.reset()
    torch.testing.assert_close(first, plain.step(x[0], online=False))  # nothing fed back at t = 0
    assert not torch.allclose(net(x), plain(x))  # later steps differ
    grads = ottt_gradients(net, x, torch.tensor([0, 1, 2, 0, 1]))
    assert float(grads["feedback.layer.weight"].abs().sum()) > 0


def test_last_spiking_layer_gradient_equals_bptt_for_any_T():
    """For the synapse into the last spiking layer the trace is exact (u[t] = Σ_τ λ^{t−τ} W s_in[τ] − detached
    resets, and the output layer has no dynamics), so OTTT's gradient equals BPTT's there, at any T."""
    from snnbench.algorithms.ottt import OTTT
    from snnbench.architectures import resolve_architecture
    from snnbench.data import DatasetInfo

    torch.manual_seed(0)
    net = OTTT(OTTTConfig(), resolve_architecture("12-8"), DatasetInfo("x", (6,), 3)).build(6).double()
    with torch.no_grad():
        net.head.layer.weight.normal_(0.0, 0.5)
    x_seq = torch.rand(6, 10, 6, dtype=torch.float64) * 3
    y = torch.randint(0, 3, (10,))
    ours, bptt = ottt_gradients(net, x_seq, y), ottt_gradients(net, x_seq, y, online=False)
    for name in ("blocks.1.synapse.layer.weight", "blocks.1.synapse.gain", "head.layer.weight"):
        assert float(ours[name].abs().sum()) > 0, name
    for name in ("blocks.1.synapse.layer.weight", "blocks.1.synapse.gain"):
        torch.testing.assert_close(ours[name], bptt[name], msg=name)
    assert not torch.allclose(ours["blocks.0.synapse.layer.weight"], bptt["blocks.0.synapse.layer.weight"])


def test_input_is_normalised_with_the_data_statistics():
    """Official train_cifar.py normalises (x − mean)/std before the network (direct coding)."""
    from snnbench.algorithms import RunContext
    from snnbench.algorithms.ottt import OTTT
    from snnbench.architectures import resolve_architecture
    from snnbench.data import DatasetInfo
    from snnbench.data.encoding import direct

    info = DatasetInfo("x", (6,), 3, mean=(0.5,), std=(0.25,))
    algorithm = OTTT(OTTTConfig(), resolve_architecture("12"), info)
    net = algorithm.build(3)
    x = torch.rand(5, 6)
    ctx = RunContext(3, torch.device("cpu"), 1, 5, 5, "direct", torch.Generator(), direct)
    with torch.no_grad():
        expected = net(direct((x - 0.5) / 0.25, 3))
        assert not torch.allclose(expected, net(direct(x, 3)))
        torch.testing.assert_close(algorithm.predict(net, x, ctx), expected)
