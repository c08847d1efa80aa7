"""Native loops of single methods (the LIF kernels that every surrogate-gradient method shares live in
:mod:`snnbench.neurons`): ``spike_trains_cpu.cpp`` (ST-RSBP's loops over time) and ``spike_times_cpu.cpp``
(STDBP's exact spike times and gradients); and ``pooling_cpu.cpp``, the average pooling of every network
(:mod:`snnbench.pooling`, torch's ``avg_pool2d`` the fallback). Each is built on first use like the LIF
kernels (:mod:`snnbench.neurons.build`), and each method keeps its torch-ops formulation as the fallback,
tested bit-identical; ``SNNBENCH_NATIVE=0``, a missing compiler or another process's build outlasting the
wait leave the fallback in place.
"""

from __future__ import annotations

import functools
from pathlib import Path
from types import ModuleType

import torch


@functools.cache
def _build(stem: str) -> ModuleType | None:
    from snnbench.neurons.build import native_extension

    source = Path(__file__).with_name(f"{stem}_cpu.cpp")
    return native_extension(f"snnbench_{stem}_cpu", source, f"native {stem} loops")[0]


def native_for(stem: str, x: torch.Tensor) -> ModuleType | None:
    """The loops built from ``{stem}_cpu.cpp`` if they apply to ``x`` (a float32/float64 CPU tensor), else
    None."""
    if x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float64):
        return None
    return _build(stem)
