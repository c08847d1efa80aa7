"""Temporal surrogate back-propagation: BPTT that keeps the reset's temporal dependency in the gradient.

Yukun Yang, "Temporal Surrogate Back-propagation for Spiking Neural Networks", arXiv 2011.09964 (2020),
https://arxiv.org/abs/2011.09964. No official code was found; the paper's full text could not be read here
(only its abstract and two third-party summaries, see docs/algorithms/temporal-surrogate-bp.md). The
neuron, surrogate and recipe defaults are those of the STBP official code (Wu et al., Frontiers in
Neuroscience 2018, github.com/yjwu17/STBP-for-training-SpikingNN, ``spiking_model.py``), the iterative
multiplicative-reset LIF neuron the paper's summaries describe.

Equations (time-major, per layer l, step t; ``x_l[t] = W_l s_{l−1}[t] + b_l``):
  (1) charge   u_l[t] = λ u_l[t−1] (1 − s_l[t−1]) + x_l[t],  u_l[−1] = 0, s_l[−1] = 0
  (2) fire     s_l[t] = Θ(u_l[t] − ϑ),  ∂s/∂u replaced by the rectangle g(u) = 1[|u − ϑ| < a]
  (3) readout  rate r = (1/T) Σ_t s_out[t] of a spiking output layer; loss = MSE(r, one-hot)
Back-propagation, with ε[t] = dL/du[t] and e[t] = ∂L/∂s[t] from the layer above and from x[t+1] of the
same neuron's reset:
  ε[t] = e[t] g(u[t]) + ε[t+1] λ (1 − s[t])  +  ε[t+1] · (−λ u[t] g(u[t]))        (4)
         └──────── kept by every surrogate BPTT ──────┘   └── the reset term ──┘
``reset_term=True`` (the paper's method) keeps the last term, the temporal dependency through the reset;
``reset_term=False`` drops it (s[t] is treated as a constant in (1), "detach reset"): the comparison the
paper makes, on the same network. Gradients are computed by autograd through (1)–(3); the tests check
them against (4) written out in float64 and against finite differences with a smooth spike.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Literal

import torch
from pydantic import Field
from torch import nn

from snnbench.algorithms import (
    Algorithm,
    AlgorithmConfig,
    Paper,
    RunContext,
    TrainState,
    algorithms,
    rate_mse_loss,
    supervised_epoch,
)
from snnbench.networks import build_feedforward
from snnbench.neurons.functional import Surrogate, spike
from snnbench.neurons.layers import SpikingLayer, TimeDistributed


def _rectangle_derivative(x: torch.Tensor, a: float) -> torch.Tensor:
    """STBP's approximate firing derivative: 1 where |u − ϑ| < a (official ``ActFun.backward``)."""
    return (x.abs() < a).to(x.dtype)


# The smooth stand-in whose derivative is the rectangle: clamp(x, −a, a) (up to a constant)
RECTANGLE = Surrogate("rectangle", 0.5, lambda x, a: x.clamp(-a, a), _rectangle_derivative)


class TSBPConfig(AlgorithmConfig):
    """Hyperparameters; defaults from the STBP official code (``spiking_model.py``, ``main.py``)."""

    reset_term: bool = Field(
        True,
        description="keep the reset's temporal dependency in the gradient (the paper's method); "
        "False: drop it (s[t] constant in the reset), the paper's comparison",
    )
    decay: float = Field(0.2, ge=0.0, lt=1.0, description="membrane decay λ (STBP code: decay = 0.2)")
    v_threshold: float = Field(0.5, gt=0.0, description="firing threshold ϑ (STBP code: thresh = 0.5)")
    lens: float = Field(0.5, gt=0.0, description="rectangle surrogate half-width a (STBP code: lens = 0.5)")
    optimizer: Literal["adam", "sgd"] = Field("adam", description="STBP code: Adam; its CIFAR code: SGD")
    lr: float = Field(1e-3, gt=0.0, description="learning rate (STBP code: Adam 1e-3)")
    momentum: float = Field(0.9, ge=0.0, lt=1.0, description="SGD only (STBP CIFAR code: 0.9)")
    normalize_input: bool = Field(
        False, description="(x − mean)/std before encoding (STBP MNIST code: no; its CIFAR code: yes)"
    )
    weight_decay: float = Field(0.0, ge=0.0)
    lr_decay_epochs: int = Field(
        40, gt=0, description="lr × lr_decay_factor every N epochs (STBP main.py calls lr_scheduler(…, 40))"
    )
    lr_decay_factor: float = Field(0.1, gt=0.0, le=1.0, description="STBP code: 0.1")


class ResetLIF(SpikingLayer):
    """Multi-step multiplicative-reset LIF, eqs. (1)–(2), unrolled with autograd.

    ``spike_fn`` (default: Heaviside forward, rectangle surrogate backward) may be replaced by a smooth
    function, which turns the surrogate gradient into the exact gradient (used by the tests)."""

    def __init__(
        self, cfg: TSBPConfig, spike_fn: Callable[[torch.Tensor], torch.Tensor] | None = None
    ) -> None:
        super().__init__()
        self.decay, self.v_threshold, self.reset_term = cfg.decay, cfg.v_threshold, cfg.reset_term
        self.spike_fn = spike_fn or (lambda x: spike(x, RECTANGLE, cfg.lens))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = []
        u = s = None
        for x_t in x:
            if u is None:
                u = x_t
            else:
                kept = s if self.reset_term else s.detach()  # eq. (4): the reset term lives here
                u = self.decay * u * (1.0 - kept) + x_t  # eq. (1)
            s = self.spike_fn(u - self.v_threshold)  # eq. (2)
            out.append(s)
        return torch.stack(out)

    def extra_repr(self) -> str:
        return f"decay={self.decay}, v_threshold={self.v_threshold}, reset_term={self.reset_term}"


class TSBPNet(nn.Module):
    """Body of reset-LIF layers, a linear layer into a spiking output layer; returns output rates [B, C]."""

    def __init__(self, body: nn.Sequential, head: nn.Linear, output: ResetLIF) -> None:
        super().__init__()
        self.body, self.head, self.output = body, TimeDistributed(head), output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(self.head(self.body(x))).mean(0)  # eq. (3)


@algorithms.register("temporal-surrogate-bp")
class TemporalSurrogateBP(Algorithm):
    """Surrogate BPTT on multiplicative-reset LIF neurons, with (or, to compare, without) the reset term."""

    paper = Paper(
        authors="Yukun Yang",
        title="Temporal Surrogate Back-propagation for Spiking Neural Networks",
        venue="arXiv",
        year=2020,
        url="https://arxiv.org/abs/2011.09964",
        equations="u[t] = λu[t−1](1 − s[t−1]) + Wx[t], s = Θ(u − ϑ); the gradient keeps "
        "∂u[t+1]/∂s[t] = −λu[t] through the surrogate (reset_term)",
    )
    description = (
        "surrogate BPTT keeping the reset's temporal term (Yang 2020); multiplicative-reset LIF "
        "(λ 0.2, ϑ 0.5), rectangle surrogate, rate-MSE loss (STBP code defaults); reset_term=False drops it"
    )
    version = 1
    changelog = ("1: first version",)
    Config = TSBPConfig
    default_encoding = "rate"  # STBP code: Bernoulli spikes with p = intensity at every step

    def build(self, T: int) -> nn.Module:
        cfg: TSBPConfig = self.config  # type: ignore[assignment]
        body, features = build_feedforward(self.arch, self.data.input_shape, lambda shape: ResetLIF(cfg))
        return TSBPNet(body, nn.Linear(features, self.data.num_classes), ResetLIF(cfg))

    def configure(self, net: nn.Module, ctx: RunContext) -> TrainState:
        cfg: TSBPConfig = self.config  # type: ignore[assignment]
        if cfg.optimizer == "adam":
            optimizer: torch.optim.Optimizer = torch.optim.Adam(
                net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay
            )
        else:
            optimizer = torch.optim.SGD(
                net.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
            )
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, cfg.lr_decay_epochs, cfg.lr_decay_factor)
        return TrainState(optimizer, scheduler)

    def train_epoch(
        self,
        net: nn.Module,
        state: TrainState,
        batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
        ctx: RunContext,
    ) -> dict[str, float]:
        net.train()
        return supervised_epoch(state, batches, lambda x: net(self._encode(x, ctx)), rate_mse_loss)

    def predict(self, net: nn.Module, x: torch.Tensor, ctx: RunContext) -> torch.Tensor:
        return net(self._encode(x, ctx))

    def _encode(self, x: torch.Tensor, ctx: RunContext) -> torch.Tensor:
        cfg: TSBPConfig = self.config  # type: ignore[assignment]
        return ctx.encode(self.data.normalize(x) if cfg.normalize_input else x)
