"""snnbench: train spiking neural networks with faithful implementations of published methods, under
the same protocol, and compare them on accuracy, latency and cost.

The public API; the CLI is a thin layer over these calls.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "get_algorithm",
    "list_algorithms",
    "load_records",
    "load_suite",
    "run_suite",
]

if TYPE_CHECKING:
    from snnbench.grid import run_suite
    from snnbench.records import load_records
    from snnbench.suite import load_suite


def __getattr__(name: str) -> Any:
    # lazy: importing snnbench (and its CLI) must not import torch
    if name == "run_suite":
        from snnbench.grid import run_suite

        return run_suite
    if name == "load_suite":
        from snnbench.suite import load_suite

        return load_suite
    if name == "load_records":
        from snnbench.records import load_records

        return load_records
    raise AttributeError(name)


def list_algorithms() -> list[str]:
    """Names of all registered algorithms (built-in and plugins)."""
    from snnbench.algorithms import algorithms

    return algorithms.names()


def get_algorithm(name: str) -> Any:
    """The algorithm class registered as ``name``."""
    from snnbench.algorithms import algorithms

    return algorithms.get(name)
