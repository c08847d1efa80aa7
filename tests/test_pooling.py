"""The native average pooling (snnbench/pooling.py, kernels/pooling_cpu.cpp) against torch's own operator,
bit for bit, and the layers that use it."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from snnbench import kernels
from snnbench.pooling import AvgPool2d, avg_pool2d


def _native():
    native = kernels.native_for("pooling", torch.zeros(1))
    if native is None:
        pytest.skip("no C++ toolchain: torch's avg_pool2d is the only path")
    return native


def _bits(x: torch.Tensor) -> torch.Tensor:
    """The IEEE bit patterns (so that −0.0 and 0.0 differ)."""
    return x.contiguous().view(torch.int64 if x.dtype == torch.float64 else torch.int32)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    ("shape", "size"),
    [
        ((3, 5, 8, 8), 2),  # the digits conv net's maps
        ((2, 3, 33, 31), 2),  # odd sizes: the last row and column belong to no window
        ((2, 3, 9, 11), 3),  # a window of 9: a divisor that 1/9 cannot replace exactly
        ((4, 2, 7, 7), 7),
        ((2, 2, 5, 6), 1),
        ((1, 40, 64, 64), 2),  # several parallel chunks of planes
    ],
)
def test_native_pooling_equals_torch_bit_for_bit(dtype, shape, size):
    """Forward and input gradient equal ``F.avg_pool2d``'s bit for bit on real-valued inputs (where the
    summation order shows) with negative zeros and large and small magnitudes mixed; a channels-last input
    too."""
    _native()
    generator = torch.Generator().manual_seed(0)
    x = (torch.randn(shape, generator=generator) * torch.logspace(-3, 3, shape[-1])).to(dtype)
    x[..., 0, :] = -0.0
    for layout in (torch.contiguous_format, torch.channels_last):
        ours_in = x.clone().to(memory_format=layout).requires_grad_(True)
        torch_in = x.clone().to(memory_format=layout).requires_grad_(True)
        ours, expected = avg_pool2d(ours_in, size), F.avg_pool2d(torch_in, size)
        grad = torch.randn(expected.shape, generator=generator).to(dtype)
        grad[..., 0] = -0.0
        ours.backward(grad)
        expected.backward(grad)
        assert ours.shape == expected.shape and ours.dtype == dtype
        assert torch.equal(_bits(ours), _bits(expected))
        assert ours_in.grad is not None and torch.equal(_bits(ours_in.grad), _bits(torch_in.grad))


def test_native_pooling_is_what_runs_and_order_matters(monkeypatch):
    """The layers call the native loops on CPU (not torch's operator under another name); the bit-exact
    comparison above can fail: a pairwise sum of the same window differs from torch's row-major one."""
    native = _native()
    x = torch.tensor([[[[1.0, 1e8], [-1e8, 1.0]]]])
    row_major = ((x[..., 0, 0] + x[..., 0, 1]) + x[..., 1, 0]) + x[..., 1, 1]
    pairwise = (x[..., 0, 0] + x[..., 1, 1]) + (x[..., 0, 1] + x[..., 1, 0])
    assert not torch.equal(row_major, pairwise)
    assert torch.equal(native.avg_pool_forward(x, 2).flatten(), (row_major / 4).flatten())
    calls = []
    original = kernels.native_for

    def counting(stem, tensor):
        calls.append(stem)
        return original(stem, tensor)

    monkeypatch.setattr(kernels, "native_for", counting)
    out = AvgPool2d(2)(torch.rand(2, 3, 4, 4, requires_grad=True))
    assert calls == ["pooling"] and type(out.grad_fn).__name__ == "_NativeAvgPoolBackward"


def test_pooling_layer_is_an_avg_pool_and_falls_back(monkeypatch):
    """``AvgPool2d`` is an ``nn.AvgPool2d`` (export and the methods that find pooling by type); without the
    native loops, and for inputs they do not take (3-D, integer), it is torch's operator."""
    pool = AvgPool2d(2)
    assert isinstance(pool, nn.AvgPool2d) and pool.kernel_size == 2 and pool.stride == 2
    x = torch.randn(3, 6, 6)
    assert torch.equal(pool(x), F.avg_pool2d(x, 2))
    monkeypatch.setattr(kernels, "native_for", lambda stem, tensor: None)
    y = torch.randn(2, 3, 6, 6, requires_grad=True)
    out = pool(y)
    assert out.grad_fn is not None and "AvgPool2D" in type(out.grad_fn).__name__


def test_native_pooling_rejects_mismatched_gradients():
    """The backward loop checks that the gradient has the pooled shape of the input it is asked for."""
    native = _native()
    with pytest.raises(RuntimeError, match="is not the pooled size"):
        native.avg_pool_backward(torch.zeros(1, 1, 3, 3), 2, 8, 8)
