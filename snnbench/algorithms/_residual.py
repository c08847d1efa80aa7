"""What the residual-network methods (SEW-ResNet, MS-ResNet) share: a time-averaged linear head, the
conv + BatchNorm unit, and surrogate-gradient BPTT with SGD/Adam and a cosine or step schedule.

Each method builds its own blocks from the architecture's layer list (``B64`` tokens, see
:mod:`snnbench.architectures`); what differs between them is where the neuron sits and what the shortcut
carries (spikes or membrane potentials).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from snnbench.algorithms._base import Algorithm, AlgorithmConfig, RunContext, TrainState, supervised_epoch
from snnbench.architectures import Architecture, Block, Conv, Pool, conv_output_shape
from snnbench.errors import SnnbenchError
from snnbench.neurons.layers import TimeDistributed
from snnbench.pooling import AvgPool2d


class ResidualConfig(AlgorithmConfig):
    """Optimiser, schedule and loss of the residual methods (each method sets its official defaults)."""

    optimizer: Literal["sgd", "adam"] = "sgd"
    lr: float = Field(0.1, gt=0.0)
    momentum: float = Field(0.9, ge=0.0, lt=1.0, description="SGD only")
    weight_decay: float = Field(0.0, ge=0.0)
    schedule: Literal["cosine", "step", "none"] = Field("cosine", description="cosine over all epochs")
    lr_step_size: int = Field(64, gt=0, description="step schedule: epochs between ÷(1/lr_gamma) steps")
    lr_gamma: float = Field(0.1, gt=0.0, le=1.0, description="step schedule factor")
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)


def conv_bn(in_channels: int, out_channels: int, kernel: int, stride: int, padding: int) -> nn.Module:
    """Bias-free convolution and BatchNorm, applied to every step of ``[T, B, C, H, W]``."""
    return TimeDistributed(
        nn.Sequential(
            nn.Conv2d(in_channels, out_channels, kernel, stride, padding, bias=False),
            nn.BatchNorm2d(out_channels),
        )
    )


def build_body(
    arch: Architecture,
    input_shape: tuple[int, ...],
    conv_unit: Callable[[int, Conv, bool], nn.Module],
    block_unit: Callable[[int, Block], nn.Module],
    pool_unit: Callable[[Pool], nn.Module],
) -> tuple[nn.Sequential, int]:
    """The layers of ``arch`` on ``[T, B, C, H, W]``, flattened at the end; returns the body and its
    features per step. ``conv_unit(in_channels, conv, is_first_layer)`` and ``block_unit(in_channels,
    block)`` are the method's; pooling windows equal their stride (``P2`` is max pooling, as both papers')."""
    modules: list[nn.Module] = []
    shape = tuple(input_shape)
    for i, layer in enumerate(arch.layers):
        if len(shape) != 3:
            raise SnnbenchError(
                f"architecture {arch.name!r}: residual networks need image input, got {shape}"
            )
        if isinstance(layer, (Conv, Block)):
            unit = (
                conv_unit(shape[0], layer, i == 0) if isinstance(layer, Conv) else block_unit(shape[0], layer)
            )
            modules.append(unit)
            shape = conv_output_shape(shape, layer)
        elif isinstance(layer, Pool):
            modules.append(pool_unit(layer))
            c, h, w = shape
            shape = (c, 1, 1) if layer.kind == "global_avg" else (c, h // layer.size, w // layer.size)
        else:
            raise SnnbenchError(
                f"architecture {arch.name!r}: residual methods take convolutions, blocks and pooling "
                f"(read out by GAP or flattening), not {layer}"
            )
    modules.append(TimeDistributed(nn.Flatten()))
    return nn.Sequential(*modules), math.prod(shape)


def pool_module(layer: Pool) -> nn.Module:
    """The pooling of ``layer`` on every step (the default kind is max pooling)."""
    if layer.kind == "global_avg":
        return TimeDistributed(nn.AdaptiveAvgPool2d(1))
    pool = AvgPool2d(layer.size) if layer.kind == "avg" else nn.MaxPool2d(layer.size)
    return TimeDistributed(pool)


class ResidualNet(nn.Module):
    """``head(mean_t body(x)[t])``: the linear classifier reads the time-averaged features (both papers)."""

    def __init__(self, body: nn.Sequential, head: nn.Linear) -> None:
        super().__init__()
        self.body, self.head = body, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x).mean(0))


class ResidualMethod(Algorithm):
    """Surrogate-gradient BPTT of a residual network on the cross-entropy of its time-averaged output."""

    residual_blocks: ClassVar[bool] = True
    default_encoding = "direct"

    def configure(self, net: nn.Module, ctx: RunContext) -> TrainState:
        cfg: ResidualConfig = self.config  # type: ignore[assignment]
        if cfg.optimizer == "sgd":
            optimizer: torch.optim.Optimizer = torch.optim.SGD(
                net.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
            )
        else:
            optimizer = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        scheduler: torch.optim.lr_scheduler.LRScheduler | None = None
        if cfg.schedule == "cosine":
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=ctx.epochs)
        elif cfg.schedule == "step":
            scheduler = torch.optim.lr_scheduler.StepLR(optimizer, cfg.lr_step_size, cfg.lr_gamma)
        return TrainState(optimizer, scheduler)

    def train_epoch(
        self,
        net: nn.Module,
        state: TrainState,
        batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
        ctx: RunContext,
    ) -> dict[str, float]:
        cfg: ResidualConfig = self.config  # type: ignore[assignment]
        net.train()
        smoothed = functools.partial(F.cross_entropy, label_smoothing=cfg.label_smoothing)
        return supervised_epoch(state, batches, lambda x: net(ctx.encode(x)), smoothed)

    def predict(self, net: nn.Module, x: torch.Tensor, ctx: RunContext) -> torch.Tensor:
        return net(ctx.encode(x))
