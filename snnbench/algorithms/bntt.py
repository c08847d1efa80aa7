"""BNTT: Batch Normalization Through Time.

Kim & Panda, "Revisiting Batch Normalization for Training Low-latency Deep Spiking Neural Networks from
Scratch", Frontiers in Neuroscience 15, 2021, https://arxiv.org/abs/2010.01729; defaults from the official
code (github.com/Intelligent-Computing-Lab-Yale/BNTT-Batch-Normalization-Through-Time, ``model.py``,
``train.py``, ``utills.py``).

Per layer l and time step t (conv/linear without bias):
  (1) u_l(t) = λ u_l(t−1) + BN_{l,t}(W_l ∗ o_{l−1}(t))      BN with its own γ_t and running statistics per
                                                             step, no shift β (the code deletes the bias)
  (2) o_l(t) = Θ(u_l(t)/ϑ − 1),  ∂o/∂x ≈ 0.3 max(0, 1 − |x|) (the code's ``Surrogate_BP_Function``)
  (3) u_l(t) ← u_l(t) − ϑ o_l(t)                             soft reset, the reset not differentiated
  (4) u_out(t) = u_out(t−1) + W_out o_L(t),  logits = u_out(T)/T   (non-spiking, no leak, no BN)
  (5) early exit: inference stops at the first step t whose mean learned γ_t (over every BNTT layer and
      channel) falls below ``exit_threshold``; logits = u_out(t)/t (the paper's temporal early exit; its
      exact threshold rule is not in the code, see docs/algorithms/bntt.md)
Input: the official ternary Poisson coding ``signed-rate`` (direct coding selectable). Gradients by BPTT
through the λ path (autograd). Optimiser: SGD lr 0.3, momentum 0.9, weight decay 1e-4, LR ÷10 after the
epoch e (0-based) with e = 0.5 N, 0.7 N or 0.9 N (``utills.adjust_learning_rate``, called after each epoch;
no drop where f·N is not a whole number, as there); Xavier-uniform init with gain 2.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from snnbench.algorithms import (
    Algorithm,
    AlgorithmConfig,
    Evaluation,
    Paper,
    RunContext,
    TrainState,
    algorithms,
    supervised_epoch,
)
from snnbench.data import Split
from snnbench.networks import build_feedforward
from snnbench.neurons.functional import LIFParams, lif_multistep
from snnbench.neurons.layers import SpikingLayer, TimeDistributed


class BNTTConfig(AlgorithmConfig):
    """Defaults of the official CIFAR-10 command (train.py / README)."""

    leak: float = Field(0.95, gt=0.0, le=1.0, description="λ, leak_mem (CIFAR-10 0.95; CIFAR-100 0.99)")
    threshold: float = Field(1.0, gt=0.0, description="ϑ (all thresholds 1, issue #2)")
    bn_eps: float = Field(1e-4, gt=0.0, description="model.py")
    bn_momentum: float = Field(0.1, gt=0.0, lt=1.0)
    lr: float = Field(0.3, gt=0.0, description="SGD, CIFAR-10 command")
    momentum: float = Field(0.9, ge=0.0, lt=1.0)
    weight_decay: float = Field(1e-4, ge=0.0)
    lr_milestones: tuple[float, ...] = Field(
        (0.5, 0.7, 0.9), description="÷10 after epoch e (0-based) when e = f·epochs (utills.py)"
    )
    init_gain: float = Field(2.0, gt=0.0, description="Xavier-uniform gain")
    exit_threshold: float = Field(0.1, ge=0.0, description="early exit when mean γ_t < this, eq. (5)")


class TimeBatchNorm(nn.Module):
    """One BatchNorm per time step: scale γ_t only, running statistics per step, eq. (1)."""

    def __init__(self, channels: int, T: int, eps: float, momentum: float) -> None:
        super().__init__()
        self.eps, self.momentum = eps, momentum
        self.gamma = nn.Parameter(torch.ones(T, channels))
        self.register_buffer("running_mean", torch.zeros(T, channels))
        self.register_buffer("running_var", torch.ones(T, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        steps = [
            F.batch_norm(
                x[t], self.running_mean[t], self.running_var[t], self.gamma[t], None,
                self.training, self.momentum, self.eps,
            )
            for t in range(x.shape[0])
        ]  # fmt: skip
        return torch.stack(steps)


class LeakySoftResetNeuron(SpikingLayer):
    """u(t) = λ u(t−1) + I(t); spike at u ≥ ϑ (triangle surrogate of u/ϑ − 1); soft reset, reset not
    differentiated. Runs in the fused LIF kernel in units of ϑ (u/ϑ: decay λ, input scale 1/ϑ, threshold 1):
    the same equations, and the same arithmetic when ϑ = 1."""

    def __init__(self, leak: float, threshold: float) -> None:
        super().__init__()
        self.params = LIFParams(
            tau=math.inf if leak == 1.0 else 1.0 / (1.0 - leak),
            v_threshold=1.0,
            v_reset=None,  # eq. (3): u − ϑ·s
            surrogate="triangle",  # eq. (2)
            detach_reset=True,
            input_scale=1.0 / threshold,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return lif_multistep(x, self.params)


class BNTTNet(nn.Module):
    """Spiking body and the non-spiking accumulating output layer, eq. (4)."""

    def __init__(self, body: nn.Sequential, head: nn.Linear) -> None:
        super().__init__()
        self.body, self.head = body, TimeDistributed(head)

    def forward(self, x: torch.Tensor, steps: int | None = None) -> torch.Tensor:
        out = self.head(self.body(x[:steps] if steps else x))
        return out.sum(0) / out.shape[0]  # u_out(t)/t

    def mean_gamma(self) -> torch.Tensor:
        """Mean learned γ_t over every BNTT layer and channel, per time step."""
        gammas = [m.gamma.detach() for m in self.modules() if isinstance(m, TimeBatchNorm)]
        return torch.stack([g.mean(1) for g in gammas]).mean(0)


@algorithms.register("bntt")
class BNTT(Algorithm):
    """Surrogate-gradient BPTT with per-time-step batch normalisation (scale only) and early exit."""

    paper = Paper(
        authors="Kim & Panda",
        title="Revisiting Batch Normalization for Training Low-latency Deep Spiking Neural Networks "
        "from Scratch",
        venue="Frontiers in Neuroscience",
        year=2021,
        url="https://arxiv.org/abs/2010.01729",
        equations="per-step BN (γ_t only), leaky soft-reset neuron, accumulated output, temporal early exit",
    )
    version = 2
    changelog = ("1: first version", "2: LR drops one epoch later, after epoch 0.5N/0.7N/0.9N as utills.py")
    description = "BN through time: per-step BN scale and statistics, leaky soft-reset LIF, early exit"
    Config = BNTTConfig
    default_encoding = "signed-rate"

    def build(self, T: int) -> nn.Module:
        cfg: BNTTConfig = self.config  # type: ignore[assignment]
        body, features = build_feedforward(
            self.arch,
            self.data.input_shape,
            lambda shape: LeakySoftResetNeuron(cfg.leak, cfg.threshold),
            bias=False,
            make_norm=lambda shape: TimeBatchNorm(shape[0], T, cfg.bn_eps, cfg.bn_momentum),
        )
        net = BNTTNet(body, nn.Linear(features, self.data.num_classes, bias=False))
        for module in net.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(module.weight, gain=cfg.init_gain)
        return net

    def configure(self, net: nn.Module, ctx: RunContext) -> TrainState:
        cfg: BNTTConfig = self.config  # type: ignore[assignment]
        optimizer = torch.optim.SGD(
            net.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
        )
        # utills.adjust_learning_rate after epoch e: e == N·f (a float comparison, as there)
        milestones = [e + 1 for e in range(ctx.epochs) if any(e == ctx.epochs * f for f in cfg.lr_milestones)]
        return TrainState(optimizer, torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones, gamma=0.1))

    def train_epoch(
        self,
        net: nn.Module,
        state: TrainState,
        batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
        ctx: RunContext,
    ) -> dict[str, float]:
        net.train()
        return supervised_epoch(state, batches, lambda x: net(self._encode(x, ctx)))

    def _encode(self, x: torch.Tensor, ctx: RunContext) -> torch.Tensor:
        """The official pipeline codes the normalised image (per-channel dataset mean/std)."""
        return ctx.encode(self.data.normalize(x))

    def predict(self, net: nn.Module, x: torch.Tensor, ctx: RunContext) -> torch.Tensor:
        return net(self._encode(x, ctx))

    def exit_step(self, net: BNTTNet, T: int) -> int:
        """The early-exit step of eq. (5): the first t with mean γ_t below the threshold, else T."""
        cfg: BNTTConfig = self.config  # type: ignore[assignment]
        below = (net.mean_gamma() < cfg.exit_threshold).nonzero().flatten()
        return int(below[0]) + 1 if len(below) else T

    def evaluate(self, net: nn.Module, test: Split, ctx: RunContext) -> Evaluation:
        """Full-T accuracy (primary) and the early-exit accuracy with the steps it used."""
        full = super().evaluate(net, test, ctx)
        steps = self.exit_step(net, ctx.T)  # type: ignore[arg-type]
        early = []
        with torch.no_grad():
            for x, _ in test.batches(ctx.eval_batch_size, shuffle=False, device=ctx.device):
                early.append(net(self._encode(x, ctx), steps=steps).float().cpu())
        top1_exit = 100.0 * (torch.cat(early).argmax(1) == full.labels).double().mean().item()
        full.extra.update({"early_exit_steps": float(steps), "top1_early_exit": top1_exit})
        return full
