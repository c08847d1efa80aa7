"""Thin multi-step modules over :mod:`snnbench.neurons.functional`. Tensors are time-major ``[T, B, ...]``.

Every module whose output is a spike train subclasses :class:`SpikingLayer`; the runner's metrics find
spiking layers by that type (spike counts, synaptic operations), so an algorithm gets them for free.
"""

from __future__ import annotations

import torch
from torch import nn

from snnbench.neurons.functional import LIFParams, leaky_integrate_step, lif_multistep


class SpikingLayer(nn.Module):
    """Marker base of every spiking neuron layer (metrics find layers by this type).

    By default ``forward`` returns binary spikes, time-major ``[T, B, ...]``. A layer whose output is
    something else (TSSL-BP's postsynaptic potentials) sets ``output_is_spikes = False`` and stores the
    spikes of its last forward in ``self.last_spikes`` (same layout).
    """

    output_is_spikes: bool = True
    last_spikes: torch.Tensor

    def spike_statistics(self, output: torch.Tensor) -> tuple[int, int] | None:
        """(spikes, neuron-steps) of the forward that returned ``output``; None = not a neuron layer."""
        spikes = (output if self.output_is_spikes else self.last_spikes).detach()
        return int((spikes != 0).sum()), spikes.numel()


class LIF(SpikingLayer):
    """Multi-step decay-input LIF layer; see :func:`~snnbench.neurons.functional.lif_step` (dynamics)
    and :func:`~snnbench.neurons.functional.lif_multistep` (the fused kernel used here)."""

    def __init__(self, params: LIFParams = LIFParams()) -> None:  # noqa: B008 (an immutable NamedTuple)
        super().__init__()
        self.params = params

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return lif_multistep(x, self.params)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.params._asdict().items())


class LeakyReadout(nn.Module):
    """Non-firing leaky integrator over time; returns the membrane trace ``[T, B, C]``."""

    def __init__(self, tau: float = 2.0) -> None:
        super().__init__()
        self.tau = tau

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = torch.zeros_like(x[0])
        trace = []
        for x_t in x:
            v = leaky_integrate_step(x_t, v, self.tau)
            trace.append(v)
        return torch.stack(trace)


class TimeDistributed(nn.Module):
    """Apply a stateless module to every time step of ``[T, B, ...]``, as one batch of T·B rows.

    One batch is the faster schedule for matrix products and, with the runner's allocator setting
    (:func:`snnbench.environment.reuse_freed_cpu_memory`), for CPU convolutions too: compare the two
    forms of the floor in ``benchmarks/README.md``.
    """

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T, B = x.shape[:2]
        y = self.module(x.reshape(T * B, *x.shape[2:]))
        return y.reshape(T, B, *y.shape[1:])
