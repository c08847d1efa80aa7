"""stdp-adaptive's T-step simulation (leaky neurons, winner-take-all with random tie-breaks, adaptive lateral
inhibition) as one native loop, ``wta_cpu.cpp``, built on first use like the LIF kernels
(:mod:`snnbench.neurons.build`). The torch-ops loop of :mod:`snnbench.algorithms.stdp_adaptive` stays the
fallback and the reference (tested equal: same spike counts, same generator state afterwards);
``SNNBENCH_NATIVE=0``, a missing compiler or another process's build outlasting the wait leave it in place.

A package of its own: :func:`snnbench.provenance.code_files` hashes every ``.cpp`` beside a module a method
uses, so this file beside other methods' modules would change their code hashes.
"""

from __future__ import annotations

import functools
from pathlib import Path
from types import ModuleType

import torch


@functools.cache
def _build() -> ModuleType | None:
    from snnbench.neurons.build import native_extension

    source = Path(__file__).with_name("wta_cpu.cpp")
    return native_extension("snnbench_wta_cpu", source, "native stdp-adaptive simulation")[0]


def native_available() -> bool:
    """Whether the native loop runs here; builds it (or loads it from the cache) on the first call, so a
    method can do that before its timed epochs."""
    return _build() is not None


def simulate_native(
    current: torch.Tensor,
    threshold: torch.Tensor,
    decay: float,
    inhibition: torch.Tensor,
    T: int,
    generator: torch.Generator | None,
    sample_major: bool = True,
) -> torch.Tensor | None:
    """The spike counts of the native loop for ``current`` ``[B, N, ...]`` (neurons along dim 1; threshold and
    inhibition broadcast to it, of its dtype), or None where it does not apply (not a float32/float64 CPU
    tensor, a threshold or inhibition of another dtype, a non-finite inhibition, a generator of another
    device, no native build). ``sample_major`` False: the step-by-step order only (tests)."""
    if (
        current.device.type != "cpu"
        or current.dtype not in (torch.float32, torch.float64)
        or current.dim() < 2
    ):
        return None
    if current.numel() == 0 or (generator is not None and generator.device.type != "cpu"):
        return None
    threshold, inhibition = torch.as_tensor(threshold), torch.as_tensor(inhibition)
    for other in (threshold, inhibition):  # torch would compare or subtract in a promoted type
        if other.device.type != "cpu" or other.dtype != current.dtype:
            return None
    if not bool(torch.isfinite(inhibition).all()):  # torch's v − inh·0 would spread NaN: keep its own loop
        return None
    native = _build()
    if native is None:
        return None
    shape = current.shape
    flat = (shape[0], shape[1], current[0, 0].numel())
    th = torch.broadcast_to(threshold, shape).reshape(flat)
    inh = torch.broadcast_to(inhibition, shape).reshape(flat)
    counts, _ = native.simulate(current.reshape(flat), th, float(decay), inh, int(T), generator, sample_major)
    return counts.view(shape)
