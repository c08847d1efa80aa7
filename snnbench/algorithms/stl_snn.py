"""STL-SNN: synapse–threshold synergistic learning (weights and per-neuron thresholds trained together).

Sun, Cai, Yang, Cui, Xia, Yao & Guo, "A Synapse-Threshold Synergistic Learning Approach for Spiking Neural
Networks", IEEE Transactions on Cognitive and Developmental Systems 2023 (doi 10.1109/TCDS.2023.3278712;
arXiv 2206.06129). Official code: github.com/sunhongze/STL-SNN (``func.py``, ``spiking_model.py``,
``params.py``, ``train.py``), whose MNIST model and defaults are followed here.

Equations (time-major, per layer l, step t; ``I_l[t] = W_l s_{l−1}[t]``, no bias, BN per step on convs):
  (1) charge   m[t] = τ v[t−1] + I[t]                       (τ = 0.5 is a decay factor, v[−1] = 0)
  (2) fire     s[t] = Θ(m[t] − ϑ),  ϑ a trained parameter per neuron (per channel *and* position for convs),
               ∂s/∂m = −∂s/∂ϑ := g(m − ϑ) = (α/2) / (1 + (π α (m − ϑ)/2)²),  α = 2 (atan surrogate)
  (3) reset    v[t] = (1 − s[t]) m[t]                       (hard reset; the gradient flows through s)
  (4) output   P = 10 spiking neurons per class, averaged ("boost"), rate over T; loss MSE(rate, one-hot)
The threshold gradient, with ε[t] = dL/dm[t] and e[t] = ∂L/∂s[t] from the layer above:
  dL/ds[t] = e[t] − τ m[t] ε[t+1],   ε[t] = dL/ds[t] g[t] + τ (1 − s[t]) ε[t+1],
  dL/dϑ = −Σ_{t, batch} dL/ds[t] g[t]
computed by autograd; the tests check it against this recursion in float64 and finite differences.
``learn`` selects the paper's comparison: ``synapse-threshold`` (STL, default), ``synapse`` (SL: fixed ϑ),
``threshold`` (TL: fixed weights).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import torch
import torch.nn.functional as F
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
from snnbench.neurons.functional import spike
from snnbench.neurons.layers import SpikingLayer, TimeDistributed


class STLConfig(AlgorithmConfig):
    """Hyperparameters; defaults from the official ``params.py`` / ``train.py`` (MNIST)."""

    learn: Literal["synapse-threshold", "synapse", "threshold"] = Field(
        "synapse-threshold", description="what is trained: STL (both), SL (weights), TL (thresholds)"
    )
    tau: float = Field(0.5, ge=0.0, lt=1.0, description="membrane decay factor (params.py tau = 0.5)")
    init_threshold: float = Field(2.0, gt=0.0, description="initial ϑ (params.py init_thresh = 2.0)")
    heterogeneity: float = Field(
        0.0, ge=0.0, description="initial ϑ + heterogeneity·N(0, 1)/100 (params.py hete_thresh = 0)"
    )
    alpha: float = Field(2.0, gt=0.0, description="atan surrogate α (params.py alpha = 2)")
    population: int = Field(10, ge=1, description="output neurons per class, averaged (P = 10)")
    batch_norm: bool = Field(True, description="per-step BatchNorm after each convolution (official model)")
    lr: float = Field(1e-3, gt=0.0, description="Adam (params.py lr = 1e-3)")
    weight_decay: float = Field(1e-6, ge=0.0, description="train.py: 1e-6")
    gamma: float = Field(0.93, gt=0.0, le=1.0, description="ExponentialLR factor per epoch (params.py gama)")


class ThresholdLIF(SpikingLayer):
    """Multi-step LIF with a trained threshold per neuron, eqs. (1)–(3)."""

    def __init__(self, shape: tuple[int, ...], cfg: STLConfig) -> None:
        super().__init__()
        init = torch.full(shape, cfg.init_threshold) + cfg.heterogeneity * torch.randn(shape) / 100.0
        self.threshold = nn.Parameter(init, requires_grad=cfg.learn != "synapse")
        self.tau, self.alpha = cfg.tau, cfg.alpha
        self.spike_fn = lambda x: spike(x, "arctan", self.alpha)  # the official atan surrogate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = []
        v: torch.Tensor | float = 0.0
        for x_t in x:
            m = self.tau * v + x_t  # eq. (1)
            s = self.spike_fn(m - self.threshold)  # eq. (2)
            v = (1.0 - s) * m  # eq. (3)
            out.append(s)
        return torch.stack(out)


class StepBatchNorm(nn.BatchNorm2d):
    """The official BatchNorm2d: statistics of each time step separately, one affine and running average."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([super(StepBatchNorm, self).forward(x_t) for x_t in x])


class STLNet(nn.Module):
    def __init__(self, body: nn.Sequential, head: nn.Linear, output: ThresholdLIF, population: int) -> None:
        super().__init__()
        self.body, self.head, self.output, self.population = body, TimeDistributed(head), output, population

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.output(self.head(self.body(x)))  # [T, B, C·P]
        return F.avg_pool1d(s, self.population).mean(0)  # eq. (4): the "boost" average, then the rate


@algorithms.register("stl-snn")
class STLSNN(Algorithm):
    """Surrogate BPTT training synaptic weights and per-neuron firing thresholds together."""

    paper = Paper(
        authors="Sun, Cai, Yang, Cui, Xia, Yao & Guo",
        title="A Synapse-Threshold Synergistic Learning Approach for Spiking Neural Networks",
        venue="IEEE TCDS",
        year=2023,
        url="https://arxiv.org/abs/2206.06129",
        equations="m = τv + Wx, s = Θ(m − ϑ), v = (1 − s)m; ∂s/∂ϑ = −atan'(m − ϑ); W and ϑ trained",
    )
    description = (
        "weights and per-neuron thresholds trained together (STL); LIF τ 0.5, ϑ₀ 2, atan α 2, "
        "population output, rate-MSE loss (official MNIST code); learn=synapse|threshold: SL/TL"
    )
    version = 1
    changelog = ("1: first version",)
    Config = STLConfig
    default_encoding = "rate"  # official: x ≥ U(0, 1) at every step

    def build(self, T: int) -> nn.Module:
        cfg: STLConfig = self.config  # type: ignore[assignment]

        def norm(shape: tuple[int, ...]) -> nn.Module:
            return StepBatchNorm(shape[0]) if len(shape) == 3 and cfg.batch_norm else nn.Identity()

        body, features = build_feedforward(
            self.arch,
            self.data.input_shape,
            lambda shape: ThresholdLIF(shape, cfg),
            default_pool="max",
            bias=False,
            make_norm=norm,
        )
        out = self.data.num_classes * cfg.population
        head = nn.Linear(features, out, bias=False)
        net = STLNet(body, head, ThresholdLIF((out,), cfg), cfg.population)
        if cfg.learn == "threshold":  # TL: the synapses (and BN) keep their initial values
            for name, p in net.named_parameters():
                if not name.endswith("threshold"):
                    p.requires_grad_(False)
        return net

    def configure(self, net: nn.Module, ctx: RunContext) -> TrainState:
        cfg: STLConfig = self.config  # type: ignore[assignment]
        params = [p for p in net.parameters() if p.requires_grad]
        optimizer = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        return TrainState(optimizer, torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=cfg.gamma))

    def train_epoch(
        self,
        net: nn.Module,
        state: TrainState,
        batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
        ctx: RunContext,
    ) -> dict[str, float]:
        net.train()
        return supervised_epoch(state, batches, lambda x: net(ctx.encode(x)), rate_mse_loss)

    def predict(self, net: nn.Module, x: torch.Tensor, ctx: RunContext) -> torch.Tensor:
        return net(ctx.encode(x))
