"""Proxy learning: an integrate-and-fire SNN trained through a ReLU ANN that shares its weights.

Kheradpisheh, Mirsadeghi & Masquelier, "Spiking Neural Networks Trained via Proxy", IEEE Access 10:
70769–70778, 2022, https://arxiv.org/abs/2109.13208; official notebook SRKH/ProxyLearning
(``Proxy_FashionMnist.ipynb``, SpikingJelly clock-driven API), read for the settings below.

One parameter set θ (synaptic weights, BN affine parameters), two forward rules:
  (1) ANN   a_l = ReLU(BN^ann_l(W_l a_{l−1})),  o_ann = W_L a_{L−1}           (last layer linear)
  (2) SNN   u_l[t] = u_l[t−1] + BN^snn_l(W_l s_{l−1}[t]);  s_l[t] = Θ(u_l[t] − ϑ);  u_l[t] ← 0 if s_l[t]
            (IF, ϑ = 2, hard reset to 0; s_0[t] = x for all t: direct input), o_snn = Σ_t s_L[t]
            (the output layer is IF too; its raw spike count is the network's output)
  (3) loss  L = MSE(o, onehot(y)) evaluated at o = o_snn, with the gradient taken through the ANN:
            o = o_ann + stopgrad(o_snn − o_ann)  ⇒  L = L(o_snn),  ∂L/∂θ = (∂o_ann/∂θ)ᵀ ∂L/∂o |_{o = o_snn}
            (the notebook's ``outputs.data.copy_(snn_counts)``); the SNN runs without a graph.
BN follows the convolutions only (the notebook's dense layers have none). Its running statistics are kept
separately per network (the affine parameters are shared), both in training mode during the first epoch
and frozen (evaluation mode) afterwards, as the notebook does; the SNN normalises each time step on its
own. Deviation: with direct input the first convolution's output is the same at every step, which the
notebook normalises once per batch (its ``static_conv``) and we T times (same values; that BN's SNN
running statistics take T momentum steps per batch instead of one).
Optimiser: Adam, lr 1e-4, betas (0.8, 0.99), eps 1e-8, weight decay 1e-6; no biases; T = 15 (notebook).
Decisions are the argmax of the SNN's spike counts (ties go to the lowest index and are not credited;
the notebook's final evaluation credits ties, a flaw not carried over).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from snnbench.algorithms import (
    Algorithm,
    AlgorithmConfig,
    EpochTally,
    Paper,
    RunContext,
    TrainState,
    algorithms,
)
from snnbench.networks import build_feedforward
from snnbench.neurons.functional import LIFParams, lif_multistep
from snnbench.neurons.layers import SpikingLayer, TimeDistributed


class ProxyConfig(AlgorithmConfig):
    """Defaults from the official notebook (Fashion-MNIST)."""

    v_threshold: float = Field(2.0, gt=0.0, description="IF threshold ϑ (notebook: 2.0)")
    batch_norm: bool = Field(True, description="BN after each convolution (notebook), none on dense layers")
    freeze_bn_after_epoch: int = Field(1, ge=0, description="BN statistics frozen from this epoch on")
    lr: float = Field(1e-4, gt=0.0, description="Adam (notebook)")
    beta1: float = Field(0.8, ge=0.0, lt=1.0, description="Adam β1 (notebook)")
    beta2: float = Field(0.99, ge=0.0, lt=1.0, description="Adam β2 (notebook)")
    weight_decay: float = Field(1e-6, ge=0.0, description="Adam weight decay (notebook)")
    schedule: Literal["none", "cosine"] = Field("none", description="learning-rate schedule (notebook: none)")


class ProxyNeuron(SpikingLayer):
    """ReLU in the ANN pass, integrate-and-fire with hard reset in the SNN pass (``[T, B, ...]``)."""

    def __init__(self, threshold: float) -> None:
        super().__init__()
        self.spiking = True
        # eq. (2): v = v + x, spike at v ≥ ϑ, reset to 0; the fused LIF kernel with no leak and gain 1
        self.params = LIFParams(tau=math.inf, v_threshold=threshold, v_reset=0.0, input_scale=1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.spiking:
            return F.relu(x)
        return lif_multistep(x.detach(), self.params)  # no gradient: training goes through the ANN pass

    def spike_statistics(self, output: torch.Tensor) -> tuple[int, int] | None:
        return super().spike_statistics(output) if self.spiking else None


class DualBatchNorm(nn.Module):
    """BatchNorm2d with one shared affine (γ, β) and running statistics per network. The ANN pass normalises
    its one step; the SNN pass normalises each time step on its own (the notebook calls the SNN's conv stack
    once per step, so in training mode its statistics move T times per batch)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        for net in ("ann", "snn"):
            self.register_buffer(f"mean_{net}", torch.zeros(channels))
            self.register_buffer(f"var_{net}", torch.ones(channels))
        self.spiking = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        net = "snn" if self.spiking else "ann"
        mean, var = getattr(self, f"mean_{net}"), getattr(self, f"var_{net}")
        steps = [F.batch_norm(x_t, mean, var, self.weight, self.bias, self.training, 0.1, 1e-5) for x_t in x]
        return torch.stack(steps)


class ProxyNet(nn.Module):
    """The shared-weight twins: ``ann(x)`` (one pass, ReLU) and ``snn(x, T)`` (spike counts over T)."""

    def __init__(self, body: nn.Sequential, head: nn.Linear, threshold: float) -> None:
        super().__init__()
        self.body, self.head, self.output = body, TimeDistributed(head), ProxyNeuron(threshold)

    def _mode(self, spiking: bool) -> None:
        for module in self.modules():
            if isinstance(module, ProxyNeuron | DualBatchNorm):
                module.spiking = spiking

    def ann(self, x: torch.Tensor) -> torch.Tensor:
        """Eq. (1): ``[B, ...]`` → ``[B, classes]`` (linear output layer)."""
        self._mode(False)
        return self.head(self.body(x.unsqueeze(0)))[0]

    def snn(self, x: torch.Tensor, T: int) -> torch.Tensor:
        """Eq. (2): the same input every step; output-layer spike counts ``[B, classes]``."""
        self._mode(True)
        return self.output(self.head(self.body(x.unsqueeze(0).expand(T, *x.shape)))).sum(0)

    def forward(self, x: torch.Tensor, T: int) -> torch.Tensor:
        return self.snn(x, T)


def proxy_output(ann_out: torch.Tensor, snn_out: torch.Tensor) -> torch.Tensor:
    """Eq. (3): the SNN's value with the ANN's gradient path."""
    return ann_out + (snn_out - ann_out).detach()


@algorithms.register("proxy")
class Proxy(Algorithm):
    """Shared-weight ReLU ANN / IF SNN twins; the SNN's output replaces the ANN's in the MSE loss."""

    paper = Paper(
        authors="Kheradpisheh, Mirsadeghi & Masquelier",
        title="Spiking Neural Networks Trained via Proxy",
        venue="IEEE Access 10",
        year=2022,
        url="https://arxiv.org/abs/2109.13208",
        equations="IF with hard reset (ϑ = 2), spike-count output, MSE at the SNN output through the ANN",
    )
    version = 2
    changelog = ("1: first version", "2: BN on convolutions only; the SNN's BN normalises each time step")
    description = "proxy learning: IF SNN trained through its shared-weight ReLU ANN (output replacement)"
    Config = ProxyConfig
    default_encoding = "direct"

    def build(self, T: int) -> nn.Module:
        cfg: ProxyConfig = self.config  # type: ignore[assignment]
        body, features = build_feedforward(
            self.arch,
            self.data.input_shape,
            lambda shape: ProxyNeuron(cfg.v_threshold),
            default_pool="max",
            bias=False,
            make_norm=(lambda shape: DualBatchNorm(shape[0]) if len(shape) == 3 else nn.Identity())
            if cfg.batch_norm
            else None,
        )
        return ProxyNet(body, nn.Linear(features, self.data.num_classes, bias=False), cfg.v_threshold)

    def configure(self, net: nn.Module, ctx: RunContext) -> TrainState:
        cfg: ProxyConfig = self.config  # type: ignore[assignment]
        optimizer = torch.optim.Adam(
            net.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=1e-8, weight_decay=cfg.weight_decay
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
        cfg: ProxyConfig = self.config  # type: ignore[assignment]
        assert isinstance(net, ProxyNet) and state.optimizer is not None
        net.train()
        if ctx.epoch >= cfg.freeze_bn_after_epoch:
            for module in net.modules():
                if isinstance(module, DualBatchNorm):
                    module.eval()
        tally = EpochTally()
        for x, y in batches:
            with torch.no_grad():
                counts = net.snn(x, ctx.T)
            out = proxy_output(net.ann(x), counts)
            loss = F.mse_loss(out, F.one_hot(y, out.shape[1]).to(out.dtype))
            state.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            state.optimizer.step()
            tally.add(loss.item() * len(y), counts, y)
        if state.scheduler is not None:
            state.scheduler.step()
        return tally.summary()

    def predict(self, net: nn.Module, x: torch.Tensor, ctx: RunContext) -> torch.Tensor:
        assert isinstance(net, ProxyNet)
        return net.snn(x, ctx.T)
