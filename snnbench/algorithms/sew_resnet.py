"""SEW-ResNet: spike-element-wise residual blocks trained by surrogate-gradient BPTT.

Fang, Yu, Chen, Huang, Masquelier & Tian, "Deep Residual Learning in Spiking Neural Networks", NeurIPS
2021, https://arxiv.org/abs/2102.04159; official code fangwei123456/Spike-Element-Wise-ResNet
(``imagenet/sew_resnet.py``, ``dvsgesture/smodels.py``, ``cifar10dvs/smodels.py``).

Equations (time-major, step t; SN is a spiking neuron layer, F a conv-BN-SN-conv-BN-SN branch):
  (1) charge   IF:   H[t] = V[t−1] + X[t];
               PLIF: H[t] = V[t−1] + (X[t] − V[t−1]) · k,  k = sigmoid(w) = 1/τ learned per layer
  (2) fire     S[t] = Θ(H[t] − ϑ);  (3) hard reset  V[t] = H[t] (1 − S[t]),  reset detached from the graph
  (4) SEW block   O[t] = g(A[t], S'[t]),  A[t] = SN(BN(conv(SN(BN(conv(S[t])))))),
                  S'[t] = S[t], or SN(BN(conv1×1_s(S[t]))) where channels or stride change (downsample)
  (5) connect     ADD: g = A + S';   AND: g = A ∧ S' = A · S';   IAND: g = (¬A) ∧ S' = (1 − A) · S'
  (6) readout     logits = W · (1/T) Σ_t features[t] + b;  loss = cross-entropy;  Θ' ← ATan surrogate
Defaults: the ImageNet recipe (IF neurons, ATan α = 2, detach_reset, SGD lr 0.1 momentum 0.9, no weight
decay, cosine over all epochs, ADD, Kaiming fan-out init); the DVS networks use PLIF (τ₀ = 2) and their own
optimiser settings, set per suite entry. Deviations: docs/algorithms/sew-resnet.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import torch
from pydantic import Field
from torch import nn

from snnbench.algorithms import Paper, algorithms
from snnbench.algorithms._residual import (
    ResidualConfig,
    ResidualMethod,
    ResidualNet,
    build_body,
    conv_bn,
    pool_module,
)
from snnbench.architectures import Block, Conv
from snnbench.neurons.functional import LIFParams, spike
from snnbench.neurons.layers import LIF, SpikingLayer

ConnectF = Literal["ADD", "AND", "IAND"]


class SEWConfig(ResidualConfig):
    """Official ImageNet defaults (``imagenet/train.py``, ``sew_resnet.py``)."""

    connect_f: ConnectF = Field("ADD", description="element-wise function joining branch and shortcut spikes")
    neuron: Literal["if", "plif"] = Field("if", description="IF (ImageNet) or PLIF (DVS networks)")
    tau_init: float = Field(2.0, gt=1.0, description="PLIF's initial τ")
    v_threshold: float = Field(1.0, gt=0.0)
    surrogate: Literal["sigmoid", "arctan", "fast-sigmoid"] = "arctan"
    alpha: float | None = Field(None, gt=0.0, description="surrogate sharpness (None: its default, ATan 2)")
    detach_reset: bool = True
    zero_init_residual: bool = Field(False, description="zero the last BN γ of each block (AND: β = 1)")


class PLIF(SpikingLayer):
    """Parametric LIF (Fang et al., ICCV 2021): eqs. (1)–(3) with a learned 1/τ = sigmoid(w) per layer."""

    def __init__(self, tau_init: float, params: LIFParams) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(-math.log(tau_init - 1.0)))  # sigmoid(w) = 1/τ₀
        self.params = params

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p, k = self.params, torch.sigmoid(self.w)
        v, out = torch.zeros_like(x[0]), []
        for x_t in x:
            h = v + (x_t - v) * k  # eq. (1), PLIF
            s = spike(h - p.v_threshold, p.surrogate, p.alpha)  # eq. (2)
            v = h * (1.0 - (s.detach() if p.detach_reset else s))  # eq. (3)
            out.append(s)
        return torch.stack(out)


def connect(a: torch.Tensor, shortcut: torch.Tensor, connect_f: ConnectF) -> torch.Tensor:
    """The connect function g(A, S) of eq. (5)."""
    if connect_f == "ADD":
        return a + shortcut
    if connect_f == "AND":
        return a * shortcut
    return (1.0 - a) * shortcut  # IAND


class SEWBlock(nn.Module):
    """Eq. (4): a basic block whose branch ends in a spiking neuron, joined to its input spikes by g."""

    def __init__(
        self, in_channels: int, block: Block, connect_f: ConnectF, neuron: Callable[[], nn.Module]
    ) -> None:
        super().__init__()
        self.branch = nn.Sequential(
            conv_bn(in_channels, block.channels, 3, block.stride, 1),
            neuron(),
            conv_bn(block.channels, block.channels, 3, 1, 1),
            neuron(),
        )
        self.downsample: nn.Module | None = None
        if block.stride != 1 or in_channels != block.channels:
            self.downsample = nn.Sequential(
                conv_bn(in_channels, block.channels, 1, block.stride, 0), neuron()
            )
        self.connect_f = connect_f

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        return connect(self.branch(x), shortcut, self.connect_f)

    def zero_init(self) -> None:
        """The official ``zero_init_blocks``: the branch's last BN starts at γ = 0 (AND: β = 1), so that
        the block starts as (close to) the identity."""
        bn = self.branch[2].module[1]
        nn.init.zeros_(bn.weight)
        if self.connect_f == "AND":
            nn.init.ones_(bn.bias)


@algorithms.register("sew-resnet")
class SEWResNet(ResidualMethod):
    """Spike-element-wise ResNet (ADD/AND/IAND) with IF or PLIF neurons, trained by surrogate BPTT."""

    paper = Paper(
        authors="Fang, Yu, Chen, Huang, Masquelier & Tian",
        title="Deep Residual Learning in Spiking Neural Networks",
        venue="NeurIPS",
        year=2021,
        url="https://arxiv.org/abs/2102.04159",
        equations="SEW block O = g(SN(F(S)), S) with g ∈ {ADD, AND, IAND}; IF/PLIF neurons, ATan surrogate",
    )
    description = "SEW-ResNet: spike-element-wise residual blocks (ADD/AND/IAND), IF/PLIF, surrogate BPTT"
    Config = SEWConfig

    def build(self, T: int) -> nn.Module:
        cfg: SEWConfig = self.config  # type: ignore[assignment]
        params = LIFParams(math.inf, cfg.v_threshold, 0.0, cfg.surrogate, cfg.alpha, cfg.detach_reset, 1.0)

        def neuron() -> nn.Module:
            return PLIF(cfg.tau_init, params) if cfg.neuron == "plif" else LIF(params)  # eq. (1)

        def conv_unit(in_channels: int, conv: Conv, first: bool) -> nn.Module:
            # stem and channel-raising convolutions: conv-BN-SN
            return nn.Sequential(
                conv_bn(in_channels, conv.channels, conv.kernel, conv.stride, conv.pad), neuron()
            )

        body, features = build_body(
            self.arch,
            self.data.input_shape,
            conv_unit,
            lambda in_channels, block: SEWBlock(in_channels, block, cfg.connect_f, neuron),
            pool_module,
        )
        net = ResidualNet(body, nn.Linear(features, self.data.num_classes))
        for m in net.modules():  # official initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, SEWBlock) and cfg.zero_init_residual:
                m.zero_init()
        return net
