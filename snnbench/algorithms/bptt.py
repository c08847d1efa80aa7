"""Surrogate-gradient backpropagation through time (the baseline).

Neftci, Mostafa & Zenke, "Surrogate Gradient Learning in Spiking Neural Networks", IEEE Signal
Processing Magazine 36(6), 2019, https://arxiv.org/abs/1901.09948; neuron and surrogate defaults as in
SpikingJelly's ``LIFNode`` (Fang et al., Science Advances 2023).

Equations (time-major, per layer l, step t):
  (1) synaptic input   x_l[t] = W_l s_{l−1}[t] + b_l                  (conv or linear, shared over t)
  (2) charge           h_l[t] = v_l[t−1] + (x_l[t] − v_l[t−1]) / τ    (decay-input LIF, v_reset = 0)
  (3) fire             s_l[t] = Θ(h_l[t] − ϑ)
  (4) hard reset       v_l[t] = h_l[t] (1 − s_l[t])
  (5) readout          ``membrane``: leaky integrator o[t] = o[t−1] + (W s[t] − o[t−1]) / τ,
                       logits = (1/T) Σ_t o[t];  ``spike_count``: LIF output layer, logits = Σ_t s[t]
  (6) loss             cross-entropy of the logits; ∂Θ/∂h replaced by the surrogate g'(h − ϑ)
Gradients flow through (2)–(4) for all t by autograd (BPTT). Defaults: τ = 2, ϑ = 1, sigmoid surrogate
α = 4, Adam lr 1e-3 with a cosine schedule.
"""

from __future__ import annotations

from collections.abc import Iterable
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
    supervised_epoch,
)
from snnbench.networks import build_feedforward
from snnbench.neurons.functional import LIFParams
from snnbench.neurons.layers import LIF, LeakyReadout, TimeDistributed


class BPTTConfig(AlgorithmConfig):
    """Hyperparameters; neuron defaults from SpikingJelly ``LIFNode``."""

    tau: float = Field(2.0, gt=1.0, description="membrane time constant (LIFNode default)")
    v_threshold: float = Field(1.0, gt=0.0, description="firing threshold ϑ")
    surrogate: Literal["sigmoid", "arctan", "fast-sigmoid"] = "sigmoid"
    alpha: float | None = Field(None, gt=0.0, description="surrogate sharpness (None: its default)")
    detach_reset: bool = False
    readout: Literal["membrane", "spike_count"] = "membrane"
    batch_norm: bool = Field(False, description="BatchNorm after each synaptic layer (over T·B)")
    optimizer: Literal["adam", "sgd"] = "adam"
    lr: float = Field(1e-3, gt=0.0)
    momentum: float = Field(0.9, ge=0.0, lt=1.0, description="SGD only")
    weight_decay: float = Field(0.0, ge=0.0)
    schedule: Literal["cosine", "none"] = "cosine"


class BPTTNet(nn.Module):
    """Body of LIF layers and a linear head with the configured readout."""

    def __init__(self, body: nn.Sequential, head: nn.Linear, readout: nn.Module, kind: str) -> None:
        super().__init__()
        self.body, self.head, self.readout, self.kind = body, TimeDistributed(head), readout, kind

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.readout(self.head(self.body(x)))
        return out.mean(0) if self.kind == "membrane" else out.sum(0)


@algorithms.register("bptt")
class BPTT(Algorithm):
    """Surrogate-gradient BPTT with decay-input LIF neurons and hard reset."""

    paper = Paper(
        authors="Neftci, Mostafa & Zenke",
        title="Surrogate Gradient Learning in Spiking Neural Networks",
        venue="IEEE Signal Processing Magazine",
        year=2019,
        url="https://arxiv.org/abs/1901.09948",
        equations="LIF charge/fire/reset (SpikingJelly LIFNode), surrogate derivative in place of Θ'",
    )
    description = "surrogate-gradient BPTT, LIF (τ=2, hard reset), sigmoid/arctan/fast-sigmoid surrogate"
    Config = BPTTConfig
    default_encoding = "direct"

    def build(self, T: int) -> nn.Module:
        cfg: BPTTConfig = self.config  # type: ignore[assignment]
        params = LIFParams(cfg.tau, cfg.v_threshold, 0.0, cfg.surrogate, cfg.alpha, cfg.detach_reset)

        def norm(shape: tuple[int, ...]) -> nn.Module:
            return TimeDistributed(nn.BatchNorm2d(shape[0]) if len(shape) == 3 else nn.BatchNorm1d(shape[0]))

        body, features = build_feedforward(
            self.arch,
            self.data.input_shape,
            lambda shape: LIF(params),
            make_norm=norm if cfg.batch_norm else None,
        )
        head = nn.Linear(features, self.data.num_classes)
        readout = LeakyReadout(cfg.tau) if cfg.readout == "membrane" else LIF(params)
        return BPTTNet(body, head, readout, cfg.readout)

    def configure(self, net: nn.Module, ctx: RunContext) -> TrainState:
        cfg: BPTTConfig = self.config  # type: ignore[assignment]
        if cfg.optimizer == "adam":
            optimizer: torch.optim.Optimizer = torch.optim.Adam(
                net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay
            )
        else:
            optimizer = torch.optim.SGD(
                net.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
            )
        scheduler = (
            torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=ctx.epochs)
            if cfg.schedule == "cosine"
            else None
        )
        return TrainState(optimizer, scheduler)

    def train_epoch(
        self,
        net: nn.Module,
        state: TrainState,
        batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
        ctx: RunContext,
    ) -> dict[str, float]:
        net.train()
        return supervised_epoch(state, batches, lambda x: net(ctx.encode(x)))  # eq. (6)

    def predict(self, net: nn.Module, x: torch.Tensor, ctx: RunContext) -> torch.Tensor:
        return net(ctx.encode(x))
