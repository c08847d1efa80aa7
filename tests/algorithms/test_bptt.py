"""BPTT: one training step through the algorithm (network, readout, loss, update) against an independent
float64 formulation of the module docstring's equations (1)–(6)."""

from __future__ import annotations

import math

import pytest
import torch

from snnbench.algorithms import RunContext, TrainState
from snnbench.algorithms.bptt import BPTT, BPTTConfig
from snnbench.architectures import resolve_architecture
from snnbench.data import DatasetInfo, datasets
from snnbench.data.encoding import direct
from snnbench.neurons.layers import LIF

SMOOTH = {  # the stand-in g whose derivative replaces Θ' (SpikingJelly sigmoid α = 4, arctan α = 2)
    "sigmoid": lambda x: torch.sigmoid(4.0 * x),
    "arctan": lambda x: torch.atan(torch.pi / 2 * 2.0 * x) / torch.pi,
}


def reference_loss(x, y, w1, b1, w2, b2, readout: str, surrogate: str, T: int, tau: float = 2.0):
    """Eqs. (1)–(6) written out: decay-input LIF, hard reset through the surrogate, and either a leaky
    integrator averaged over T or a spiking output layer whose spikes are counted."""
    v = torch.zeros(len(x), len(b1), dtype=x.dtype)
    out_v = torch.zeros(len(x), len(b2), dtype=x.dtype)

    def fire(h):
        g = SMOOTH[surrogate](h - 1.0)
        return (h >= 1.0).to(h.dtype) + g - g.detach()  # Θ forward, g' backward

    outputs = []
    for _ in range(T):
        h = v + (x @ w1.T + b1 - v) / tau
        s = fire(h)
        v = h * (1 - s)
        z = s @ w2.T + b2
        if readout == "membrane":
            out_v = out_v + (z - out_v) / tau
            outputs.append(out_v)
        else:
            h_out = out_v + (z - out_v) / tau
            s_out = fire(h_out)
            out_v = h_out * (1 - s_out)
            outputs.append(s_out)
    logits = torch.stack(outputs).mean(0) if readout == "membrane" else torch.stack(outputs).sum(0)
    return -torch.log_softmax(logits, 1)[torch.arange(len(y)), y].mean()


@pytest.mark.parametrize("readout, surrogate", [("membrane", "sigmoid"), ("spike_count", "arctan")])
def test_one_training_step_equals_an_independent_formulation(readout, surrogate):
    T, lr = 6, 0.5
    torch.manual_seed(0)
    algorithm = BPTT(
        BPTTConfig(readout=readout, surrogate=surrogate),
        resolve_architecture("12"),
        DatasetInfo("x", (5,), 3),
    )
    net = algorithm.build(T).double()
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(3.0)  # enough drive that both layers spike
    x = torch.rand(16, 5, dtype=torch.float64) * 2
    y = torch.randint(0, 3, (16,))
    w1, b1, w2, b2 = (p.detach().clone().requires_grad_() for p in net.parameters())
    loss = reference_loss(x, y, w1, b1, w2, b2, readout, surrogate, T)
    loss.backward()

    ctx = RunContext(T, torch.device("cpu"), 1, 16, 16, "direct", torch.Generator(), direct)
    state = TrainState(torch.optim.SGD(net.parameters(), lr=lr))
    summary = algorithm.train_epoch(net, state, [(x, y)], ctx)
    assert summary["loss"] == pytest.approx(loss.item(), rel=1e-12)
    assert abs(loss.item() - math.log(3)) > 1e-3  # the output is not constant (spikes reach it)
    for after, before in zip(net.parameters(), (w1, b1, w2, b2), strict=True):
        assert before.grad.abs().sum() > 0  # every parameter gets a gradient
        torch.testing.assert_close(after.detach(), before.detach() - lr * before.grad, rtol=1e-10, atol=1e-12)


def test_lif_layers_charge_leak_and_reset_to_zero():
    digits = datasets.get("digits")()
    method = BPTT(BPTT.Config(), resolve_architecture("mlp"), digits.info(digits.Options()))
    lif = next(m for m in method.build(4).modules() if isinstance(m, LIF))
    x = torch.full((4, 1, 1), 1.9)
    # h = v + (x − v)/2: 0.95, then 0.95 + 0.475 = 1.425 ≥ 1 (spike, v = 0), 0.95, 1.425 (spike);
    # a soft reset would keep 0.425 and fire again at step 3 (0.425 + 0.7375 = 1.1625)
    assert lif(x).flatten().tolist() == [0.0, 1.0, 0.0, 1.0]
