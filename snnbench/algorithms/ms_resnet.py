"""MS-ResNet: membrane-shortcut residual blocks trained by surrogate-gradient BPTT.

Hu, Deng, Wu, Yao & Li, "Advancing Spiking Neural Networks Toward Deep Residual Learning", IEEE TNNLS 2024,
https://arxiv.org/abs/2112.08954; official code Ariande1/MS-ResNet (``models/MS_ResNet.py``,
``train_amp.py``).

Equations (time-major, step t). The stream between blocks carries membrane inputs (real values), not spikes:
  (1) neuron   u[t] = λ u[t−1] (1 − s[t−1]) + x[t],  s[t] = Θ(u[t] − ϑ),  λ = 0.25, ϑ = 0.5, reset detached
  (2) surrogate  ∂s/∂u = 1/(2a) · 1[|u − ϑ| < a],  a = 0.5 (rectangular)
  (3) MS block   X_{l+1} = BN(conv(SN(BN(conv_s(SN(X_l)))))) + shortcut(X_l),
                 shortcut = identity, or BN(conv1×1_s(X_l)) where channels or stride change:
                 the neuron sits at the start of the branch, so the shortcut adds membrane inputs
  (4) stem       X_1 = BN(conv(input)) (no neuron);  readout  logits = W (1/T) Σ_t GAP(SN(X_L))[t] + b
  (5) loss       cross-entropy with label smoothing 0.1
BN initialisation as the official code's tdBN: γ = ϑ, β = 0, except the last BN of each branch, γ = 0.
Defaults: SGD lr 0.1 momentum 0.9, weight decay 1e-5 (the README's correction of the paper's 1e-4),
cosine over all epochs. Deviations: docs/algorithms/ms-resnet.md.
"""

from __future__ import annotations

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
from snnbench.architectures import Block, Conv, Pool
from snnbench.neurons.functional import Surrogate, spike
from snnbench.neurons.layers import SpikingLayer

# eq. (2): g(x) = clamp(x/(2a) + 1/2, 0, 1), g'(x) = 1[|x| < a]/(2a) with a = α (the official ``lens``)
RECTANGLE = Surrogate(
    "rectangle",
    0.5,
    lambda x, a: torch.where(x.abs() < a, x / (2 * a) + 0.5, (x > 0).to(x.dtype)),
    lambda x, a: (x.abs() < a).to(x.dtype) / (2 * a),
)


class MSConfig(ResidualConfig):
    """Official defaults (``models/MS_ResNet.py``, ``train_amp.py``, README)."""

    decay: float = Field(0.25, gt=0.0, lt=1.0, description="membrane decay λ")
    v_threshold: float = Field(0.5, gt=0.0, description="ϑ")
    surrogate_width: float = Field(0.5, gt=0.0, description="a: rectangle half-width (official lens)")
    weight_decay: float = Field(1e-5, ge=0.0, description="README: 1e-5 for MS-ResNet-18/34")
    label_smoothing: float = Field(0.1, ge=0.0, lt=1.0)


class MSNeuron(SpikingLayer):
    """Eq. (1)–(2): the official ``mem_update`` (leaky, hard reset by a detached spike)."""

    def __init__(self, decay: float, v_threshold: float, width: float) -> None:
        super().__init__()
        self.decay, self.v_threshold, self.width = decay, v_threshold, width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u, s, out = torch.zeros_like(x[0]), torch.zeros_like(x[0]), []
        for x_t in x:
            u = self.decay * u * (1.0 - s.detach()) + x_t  # eq. (1)
            s = spike(u - self.v_threshold, RECTANGLE, self.width)  # eq. (2)
            out.append(s)
        return torch.stack(out)


def _bn_init(unit: nn.Module, gamma: float) -> nn.Module:
    nn.init.constant_(unit.module[1].weight, gamma)
    return unit


class MSBlock(nn.Module):
    """Eq. (3): neuron first in the branch; the shortcut carries the block's membrane input."""

    def __init__(self, in_channels: int, block: Block, cfg: MSConfig) -> None:
        super().__init__()
        theta = cfg.v_threshold
        self.branch = nn.Sequential(
            MSNeuron(cfg.decay, theta, cfg.surrogate_width),
            _bn_init(conv_bn(in_channels, block.channels, 3, block.stride, 1), theta),
            MSNeuron(cfg.decay, theta, cfg.surrogate_width),
            _bn_init(conv_bn(block.channels, block.channels, 3, 1, 1), 0.0),
        )
        self.shortcut: nn.Module = nn.Identity()
        if block.stride != 1 or in_channels != block.channels:
            self.shortcut = _bn_init(conv_bn(in_channels, block.channels, 1, block.stride, 0), theta)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.branch(x) + self.shortcut(x)


@algorithms.register("ms-resnet")
class MSResNet(ResidualMethod):
    """Membrane-shortcut ResNet: the residual adds membrane inputs, each branch starts with its neuron."""

    paper = Paper(
        authors="Hu, Deng, Wu, Yao & Li",
        title="Advancing Spiking Neural Networks Toward Deep Residual Learning",
        venue="IEEE TNNLS",
        year=2024,
        url="https://arxiv.org/abs/2112.08954",
        equations="MS block X' = BN(conv(SN(BN(conv(SN(X)))))) + X; leaky neuron λ 0.25, ϑ 0.5, rectangle",
    )
    description = "MS-ResNet: membrane-shortcut residual blocks (neuron before the conv), surrogate BPTT"
    Config = MSConfig

    def build(self, T: int) -> nn.Module:
        cfg: MSConfig = self.config  # type: ignore[assignment]

        def neuron() -> nn.Module:
            return MSNeuron(cfg.decay, cfg.v_threshold, cfg.surrogate_width)

        def conv_unit(in_channels: int, conv: Conv, first: bool) -> nn.Module:
            unit = _bn_init(
                conv_bn(in_channels, conv.channels, conv.kernel, conv.stride, conv.pad), cfg.v_threshold
            )
            return unit if first else nn.Sequential(neuron(), unit)  # eq. (4): the stem reads the input

        def pool_unit(layer: Pool) -> nn.Module:
            # the readout fires the last membranes before global pooling (eq. 4)
            return (
                nn.Sequential(neuron(), pool_module(layer))
                if layer.kind == "global_avg"
                else pool_module(layer)
            )

        body, features = build_body(
            self.arch, self.data.input_shape, conv_unit, lambda c, block: MSBlock(c, block, cfg), pool_unit
        )
        return ResidualNet(body, nn.Linear(features, self.data.num_classes))
