"""ST-RSBP's loops over time (``spike_trains_cpu.cpp``): neuron integration, presynaptic traces and the
postsynaptic kernel of :mod:`snnbench.algorithms.st_rsbp`, bit-identical to its torch-ops loops.

Those loops run a handful of small torch ops per time step; at ST-RSBP's 400-step window the Python
dispatch of each op costs more than its arithmetic. Built once per machine like the LIF kernels
(:mod:`snnbench.neurons.build`); ``SNNBENCH_NATIVE=0``, a missing compiler or another process's build
outlasting the wait leave the torch-ops loops in place.
"""

from __future__ import annotations

import functools
import os
import warnings
from pathlib import Path
from types import ModuleType

import torch


@functools.cache
def _build() -> ModuleType | None:
    if os.environ.get("SNNBENCH_NATIVE", "1") == "0":
        return None
    from snnbench.neurons.build import build_extension

    source = Path(__file__).with_name("spike_trains_cpu.cpp")
    flags = ["-O3", "-march=native", "-ffp-contract=off", "-fno-trapping-math"]
    try:
        return build_extension("snnbench_spike_trains_cpu", source, flags)
    except Exception as exc:  # noqa: BLE001 - any build failure means "use the torch-ops loops"
        warnings.warn(f"snnbench: ST-RSBP's native loops unavailable, using torch ops ({exc})", stacklevel=2)
        return None


def native_for(x: torch.Tensor) -> ModuleType | None:
    """The native loops if they apply to ``x`` (a float32/float64 CPU tensor), else None."""
    if x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float64):
        return None
    return _build()
