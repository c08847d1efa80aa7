"""benchmarks/method_cost.py's operation counter: FLOPs and operations of a known step, re-runs that leave
the step's values untouched, and native kernel calls counted once with their own time."""

from __future__ import annotations

import pytest
import torch

from benchmarks.method_cost import OperationCost
from snnbench.neurons.functional import LIFParams, lif_multistep, native_kernels


def test_counts_a_known_step_and_leaves_its_values_alone():
    x = torch.randn(64, 32)
    w = torch.randn(32, 16, requires_grad=True)
    total = torch.zeros(3)
    with OperationCost() as cost:
        (x @ w).sum().backward()
        total.add_(1.0)  # in place: re-runs act on clones
    assert cost.flops == 2 * (2 * 64 * 32 * 16)  # forward mm and the weight-gradient mm
    assert torch.equal(total, torch.ones(3))
    assert torch.allclose(w.grad, x.sum(0).unsqueeze(1).expand(32, 16), rtol=1e-4, atol=1e-4)
    assert cost.ops >= 4 and cost.seconds > 0 and cost.bytes >= 4 * (64 * 32 + 32 * 16 + 64 * 16)


def test_native_kernel_calls_are_counted_once():
    """The fused LIF kernels bypass the dispatcher: their calls are counted by wrapping them (the ATen
    calls inside them are part of their own time), and the originals are put back afterwards."""
    if native_kernels() is None:
        pytest.skip("no C++ toolchain: the LIF runs as ATen operations, counted like any other")
    original = native_kernels().lif_forward
    x = torch.randn(8, 4, 100, requires_grad=True)
    with OperationCost() as cost:
        lif_multistep(x, LIFParams()).sum().backward()
    assert cost.native_calls == 2  # lif_forward and lif_backward
    assert native_kernels().lif_forward is original
