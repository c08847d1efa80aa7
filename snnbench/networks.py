"""Build time-major feed-forward spiking networks from an :class:`~snnbench.architectures.Architecture`.

Shared by the methods whose layers are "synapse → (norm) → neuron" (BPTT, OTTT, BNTT, proxy, conversion):
each passes its own neuron factory; paper-specific models (TSSL-BP's PSP layers, STDBP's spike times)
build their own modules from the same layer list.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from snnbench.architectures import Architecture, Conv, Dense, Dropout, Pool
from snnbench.errors import SnnbenchError
from snnbench.neurons.layers import TimeDistributed
from snnbench.pooling import AvgPool2d


class SharedDropout(nn.Module):
    """Dropout whose mask is drawn once per sample and shared by all T steps of ``[T, B, ...]``."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        mask = torch.bernoulli(torch.full_like(x[0], 1.0 - self.p)) / (1.0 - self.p)
        return x * mask


def build_feedforward(
    arch: Architecture,
    input_shape: tuple[int, ...],
    make_neuron: Callable[[tuple[int, ...]], nn.Module],
    *,
    default_pool: str = "avg",
    bias: bool = True,
    make_norm: Callable[[tuple[int, ...]], nn.Module] | None = None,
) -> tuple[nn.Sequential, int]:
    """The hidden layers of ``arch`` as ``nn.Sequential`` on ``[T, B, *input_shape]``.

    Returns the body and the number of features it outputs per step (the head's fan-in). A neuron follows
    every convolution and dense layer; ``make_neuron``/``make_norm`` get the layer's output shape.
    """
    modules: list[nn.Module] = []
    shape = tuple(input_shape)
    for layer in arch.layers:
        if isinstance(layer, Conv):
            if len(shape) != 3:
                raise SnnbenchError(
                    f"architecture {arch.name!r}: a convolution needs image input, got {shape}"
                )
            conv = nn.Conv2d(shape[0], layer.channels, layer.kernel, layer.stride, layer.pad, bias=bias)
            modules.append(TimeDistributed(conv))
            h = (shape[1] + 2 * layer.pad - layer.kernel) // layer.stride + 1
            w = (shape[2] + 2 * layer.pad - layer.kernel) // layer.stride + 1
            shape = (layer.channels, h, w)
        elif isinstance(layer, Dense):
            if layer.recurrent:
                raise SnnbenchError(
                    f"architecture {arch.name!r}: recurrent layers (R{layer.units}) need a recurrent method"
                )
            if len(shape) > 1:
                modules.append(TimeDistributed(nn.Flatten()))
                shape = (math.prod(shape),)
            modules.append(TimeDistributed(nn.Linear(shape[0], layer.units, bias=bias)))
            shape = (layer.units,)
        elif isinstance(layer, Pool):
            kind = default_pool if layer.kind == "default" else layer.kind
            if kind == "global_avg":
                modules.append(TimeDistributed(nn.AdaptiveAvgPool2d(1)))
                shape = (shape[0], 1, 1)
            else:
                pool = nn.MaxPool2d(layer.size) if kind == "max" else AvgPool2d(layer.size)
                modules.append(TimeDistributed(pool))
                shape = (shape[0], shape[1] // layer.size, shape[2] // layer.size)
            continue
        elif isinstance(layer, Dropout):
            modules.append(SharedDropout(layer.p))
            continue
        if make_norm is not None:
            modules.append(make_norm(shape))
        modules.append(make_neuron(shape))
    if len(shape) > 1:
        modules.append(TimeDistributed(nn.Flatten()))
    return nn.Sequential(*modules), math.prod(shape)
