"""SCTFA: spatial-channel-temporal-fused attention on the membrane of a leaky spiking conv net, trained by
surrogate-gradient BPTT.

Cai, Sun, Liu, Cui, Wang, Xia, Yao & Guo, "A Spatial-Channel-Temporal-Fused Attention for Spiking Neural
Networks", IEEE TNNLS 2023 (doi 10.1109/TNNLS.2023.3278265), https://arxiv.org/abs/2209.10837; official
code GuoLab-UESTC/SCTFA-SNN @be887ca766d9dda856f23e7e079a903188594d5d: ``example/parameters.py``
(neuron, surrogate, attention, recipe values), ``example/net_pop.py`` (network, step loop, read-out),
``example/main_pop.py`` (loss, optimiser, schedule, split), ``timeslice.py`` (MNIST-DVS frames). The paper's
text could not be read here: every equation and value below is read from that code (``file:line`` of each
in docs/algorithms/sctfa.md).

Per conv layer l, step t (the official loop: every layer at step t, then step t + 1), s_l[−1] = u_l[−1] = 0:
  (1) spatial    A_S(s)[h, w]    = σ(Σ_c v_c s[c, h, w] + b)            (1×1 conv C → 1, with bias)
  (2) channel    A_C(s)[c]       = σ(W₂ ReLU(W₁ GAP(s)))                (SE gate, C → C/r → C, no
                                                                         biases, r = 4)
  (3) fused      A(s)[c, h, w]   = A_S(s)[h, w] · A_C(s)[c]             (``attention.mixed``)
  (4) attention  ũ_l[t−1]        = u_l[t−1] ⊙ A(s_l[t−1])               (the previous step's own spikes
                                                                         gate the membrane before the update)
  (5) membrane   u_l[t]          = λ ũ_l[t−1] (1 − s_l[t−1]) + BN_l(W_l ∗ x_l[t])   λ = 0.5; the reset
                                                                         term stays in autograd
  (6) spike      s_l[t]          = Θ(u_l[t] − ϑ),  ϑ = 0.8;  ∂s/∂u = (α/2) / (1 + (π α (u − ϑ)/2)²), α = 2
  (7) pooling    x_{l+1}[t]      = AvgPool2(s_l[t]);  fully connected layers: (5)–(6) without (4) and BN
  (8) read-out   o_k             = (1/(5T)) Σ_t Σ_{j<5} s_out[t, 5k + j]   (5 output neurons per class,
                                                                          their spike counts averaged)
  (9) loss       MSE(o, onehot(y));  Adam lr 1e-3, ExponentialLR γ = 0.95 per epoch, 100 epochs, batch 100
BN_l is one BatchNorm2d applied at every step to that step's batch (its statistics per step, its running
estimates updated T times per forward, as the official per-step call). Official network (MNIST-DVS,
2 × 128 × 128 polarity frames, T = 20 frames of 25 ms): 32C7s2-AP2-64C3-AP2-128C3-AP2-512-50 (conv
padding 3, 1, 1; convolutions and linear layers with biases, PyTorch default initialisation). The
project's Θ(0) = 1 where the official ``x.gt(0.)`` gives Θ(0) = 0 (a membrane exactly at ϑ: measure zero).
Deviations of each suite entry: its fidelity card; docs/algorithms/sctfa.md.
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
    Paper,
    RunContext,
    TrainState,
    algorithms,
    supervised_epoch,
)
from snnbench.architectures import Conv, Dense, Pool, conv_output_shape
from snnbench.errors import SnnbenchError
from snnbench.neurons.functional import spike
from snnbench.neurons.layers import SpikingLayer, TimeDistributed


class SCTFAConfig(AlgorithmConfig):
    """Official defaults (GuoLab-UESTC/SCTFA-SNN @be887ca, ``example/parameters.py`` unless said)."""

    decay: float = Field(0.5, ge=0.0, le=1.0, description="λ of eq. (5): parameters.py:16 decay = 0.5")
    v_threshold: float = Field(0.8, gt=0.0, description="ϑ of eq. (6): parameters.py:18 thresh = 0.8")
    alpha: float = Field(2.0, gt=0.0, description="ATan surrogate α: parameters.py:19 alpha = 2")
    attention: bool = Field(
        True, description="eqs. (1)–(4) on every conv layer: main_pop.py:100 train(cs, sctfa=True)"
    )
    reduction: int = Field(4, ge=1, description="r of eq. (2): parameters.py:92 attention(reduction=4)")
    batch_norm: bool = Field(True, description="BN after each convolution (net_pop.py:12, 18, 24 bn1-bn3)")
    population: int = Field(
        5,
        ge=1,
        description="output neurons per class, eq. (8): net_pop.py:30 fc2 num_classes * 5, :68 avg_pool1d 5",
    )
    lr: float = Field(1e-3, gt=0.0, description="Adam: parameters.py:35 learning_rate = 1e-3")
    gamma: float = Field(
        0.95, gt=0.0, le=1.0, description="ExponentialLR per epoch: parameters.py:38 gamma = 0.95"
    )


def _stepwise(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return torch.stack([module(x_t) for x_t in x])


class StepBatchNorm(nn.BatchNorm2d):
    """One BatchNorm2d called on every step's batch in turn (the official ``BN(ops(x))`` inside the step
    loop): statistics of each step's batch, the running estimates updated once per step."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _stepwise(super().forward, x)


class Attention(nn.Module):
    """Eqs. (1)–(3): A(s) = σ(1×1 conv(s)) ⊗ σ(W₂ ReLU(W₁ GAP(s))) on one step's spikes ``[B, C, H, W]``."""

    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        self.spatial = nn.Conv2d(channels, 1, kernel_size=1)  # eq. (1), with bias (PyTorch default)
        self.squeeze = nn.Linear(channels, max(1, channels // reduction), bias=False)  # eq. (2) W₁
        self.excite = nn.Linear(max(1, channels // reduction), channels, bias=False)  # eq. (2) W₂

    def spatial_map(self, s: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.spatial(s))  # [B, 1, H, W]

    def channel_map(self, s: torch.Tensor) -> torch.Tensor:
        gate = torch.sigmoid(self.excite(F.relu(self.squeeze(s.mean(dim=(2, 3))))))
        return gate[:, :, None, None]  # [B, C, 1, 1]

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        return self.spatial_map(s) * self.channel_map(s)  # eq. (3)


class SCTFANeuron(SpikingLayer):
    """Eqs. (4)–(6) over ``[T, B, ...]`` input currents; ``attention`` None: eqs. (5)–(6) only."""

    def __init__(self, cfg: SCTFAConfig, attention: Attention | None = None) -> None:
        super().__init__()
        self.decay, self.v_threshold, self.alpha = cfg.decay, cfg.v_threshold, cfg.alpha
        self.attention = attention

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = s = torch.zeros_like(x[0])
        out = []
        for x_t in x:
            if self.attention is not None:
                u = u * self.attention(s)  # eq. (4)
            u = self.decay * u * (1.0 - s) + x_t  # eq. (5), reset in autograd
            s = spike(u - self.v_threshold, "arctan", self.alpha)  # eq. (6)
            out.append(s)
        return torch.stack(out)


class SCTFANet(nn.Module):
    """The layers on ``[T, B, ...]`` and the population read-out of eq. (8)."""

    def __init__(self, body: nn.Sequential, population: int) -> None:
        super().__init__()
        self.body, self.population = body, population

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rates = self.body(x).mean(0)  # [B, classes · population] spike counts / T
        return rates.unflatten(1, (-1, self.population)).mean(2)  # avg_pool1d over 5 consecutive outputs


@algorithms.register("sctfa")
class SCTFA(Algorithm):
    """Leaky spiking conv net whose membranes are gated by a spatial ⊗ channel attention of the previous
    step's spikes (SCTFA), population read-out, MSE on the rates, Adam + exponential decay, BPTT."""

    paper = Paper(
        authors="Cai, Sun, Liu, Cui, Wang, Xia, Yao & Guo",
        title="A Spatial-Channel-Temporal-Fused Attention for Spiking Neural Networks",
        venue="IEEE TNNLS",
        year=2023,
        url="https://arxiv.org/abs/2209.10837",
        equations="u[t] = λ (u[t−1] ⊙ σ(conv1×1(s[t−1])) ⊗ SE(s[t−1])) (1 − s[t−1]) + BN(W∗x[t]), "
        "s = Θ(u − ϑ), λ 0.5, ϑ 0.8, ATan α 2; 5 output neurons per class, MSE on the rates",
    )
    description = "SCTFA: spatial ⊗ channel attention of the last step's spikes gating the membrane, BPTT"
    Config = SCTFAConfig
    default_encoding = "events"

    def build(self, T: int) -> nn.Module:
        cfg: SCTFAConfig = self.config  # type: ignore[assignment]
        shape = tuple(self.data.input_shape)
        modules: list[nn.Module] = []
        for layer in self.arch.layers:
            if isinstance(layer, Conv):
                if len(shape) != 3:
                    raise SnnbenchError(f"architecture {self.arch.name!r}: a convolution after a dense layer")
                conv = nn.Conv2d(shape[0], layer.channels, layer.kernel, layer.stride, layer.pad)
                modules.append(TimeDistributed(conv))
                if cfg.batch_norm:
                    modules.append(StepBatchNorm(layer.channels))
                attention = Attention(layer.channels, cfg.reduction) if cfg.attention else None
                modules.append(SCTFANeuron(cfg, attention))
                shape = conv_output_shape(shape, layer)
            elif isinstance(layer, Pool) and layer.kind in ("default", "avg", "max"):
                pool = nn.MaxPool2d(layer.size) if layer.kind == "max" else nn.AvgPool2d(layer.size)
                modules.append(TimeDistributed(pool))  # official F.avg_pool2d(spikes, 2)
                shape = (shape[0], shape[1] // layer.size, shape[2] // layer.size)
            elif isinstance(layer, Dense) and not layer.recurrent:
                modules += self._dense(cfg, shape, layer.units)
                shape = (layer.units,)
            else:
                raise SnnbenchError(
                    f"architecture {self.arch.name!r}: sctfa builds convolutions, P/AP/MP pooling and dense "
                    f"layers, not {layer}"
                )
        modules += self._dense(cfg, shape, self.data.num_classes * cfg.population)
        return SCTFANet(nn.Sequential(*modules), cfg.population)

    @staticmethod
    def _dense(cfg: SCTFAConfig, shape: tuple[int, ...], units: int) -> list[nn.Module]:
        """A fully connected spiking layer (flattening a feature map first): eqs. (5)–(6), no BN."""
        flatten = [TimeDistributed(nn.Flatten())] if len(shape) > 1 else []
        return [*flatten, TimeDistributed(nn.Linear(math.prod(shape), units)), SCTFANeuron(cfg)]

    def configure(self, net: nn.Module, ctx: RunContext) -> TrainState:
        cfg: SCTFAConfig = self.config  # type: ignore[assignment]
        optimizer = torch.optim.Adam(net.parameters(), lr=cfg.lr)  # main_pop.py: Adam(lr=learning_rate)
        return TrainState(optimizer, torch.optim.lr_scheduler.ExponentialLR(optimizer, cfg.gamma))

    def train_epoch(
        self,
        net: nn.Module,
        state: TrainState,
        batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
        ctx: RunContext,
    ) -> dict[str, float]:
        net.train()
        return supervised_epoch(state, batches, lambda x: net(ctx.encode(x)), self.loss)

    @staticmethod
    def loss(rates: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Eq. (9): ``nn.MSELoss()`` of the class rates and the one-hot label (mean over classes and
        samples)."""
        return F.mse_loss(rates, F.one_hot(y, rates.shape[1]).to(rates.dtype))

    def predict(self, net: nn.Module, x: torch.Tensor, ctx: RunContext) -> torch.Tensor:
        return net(ctx.encode(x))
