"""Average pooling with a k × k window and stride k (every ``AP2``/``P2`` layer), on CPU through the native
loops of ``kernels/pooling_cpu.cpp``: bit-identical to :func:`torch.nn.functional.avg_pool2d` and its
gradient, several times faster on the small maps of spiking networks (``benchmarks/pooling.py``). Other
devices, dtypes and layouts, ``SNNBENCH_NATIVE=0`` or a missing compiler use torch's own operator.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from snnbench import kernels


class _NativeAvgPool(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, size: int, native: Any) -> torch.Tensor:
        ctx.size, ctx.native, ctx.height, ctx.width = size, native, x.shape[2], x.shape[3]
        return native.avg_pool_forward(x, size)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        return ctx.native.avg_pool_backward(grad, ctx.size, ctx.height, ctx.width), None, None


def avg_pool2d(x: torch.Tensor, size: int) -> torch.Tensor:
    """``F.avg_pool2d(x, size)`` (stride ``size``, no padding, floor mode) for ``x`` ``[N, C, H, W]``."""
    native = kernels.native_for("pooling", x) if x.dim() == 4 else None
    if native is None:
        return F.avg_pool2d(x, size)
    return _NativeAvgPool.apply(x, size, native)


class AvgPool2d(nn.AvgPool2d):
    """``nn.AvgPool2d(size)`` computed by :func:`avg_pool2d` (still an ``nn.AvgPool2d`` for export and for
    the methods that look for pooling layers by type)."""

    def __init__(self, size: int) -> None:
        super().__init__(size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return avg_pool2d(x, self.kernel_size)  # type: ignore[arg-type]  # an int, as constructed
