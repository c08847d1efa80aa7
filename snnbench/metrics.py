"""Every metric a run record carries: one documented function per metric and the :data:`METRICS` table.

Definitions follow NeuroBench where they overlap (footprint, parameter count); the table gives unit and
direction for leaderboards and plots.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from types import TracebackType

import psutil
import torch
from torch import nn


@dataclass(frozen=True)
class Metric:
    """Name, unit, direction and a one-line definition."""

    name: str
    unit: str
    higher_is_better: bool
    definition: str


METRICS: dict[str, Metric] = {
    m.name: m
    for m in [
        Metric("top1", "%", True, "final-epoch top-1 accuracy on the whole test set (the primary number)"),
        Metric(
            "top1_best_epoch",
            "%",
            True,
            "best test top-1 over epochs (test-set model selection, as official codes report; secondary only)",
        ),
        Metric("params", "count", False, "number of parameters (NeuroBench ParameterCount)"),
        Metric("model_bytes", "B", False, "bytes of parameters and buffers (NeuroBench Footprint)"),
        Metric("train_time_s", "s", False, "wall time of all training epochs (excludes evaluation)"),
        Metric("train_samples_per_s", "1/s", True, "training samples processed per second of training time"),
        Metric(
            "peak_train_memory_mb",
            "MiB",
            False,
            "peak memory during training: CUDA max allocated, or CPU resident set of the process",
        ),
        Metric("inference_ms_per_sample", "ms", False, "test-set evaluation wall time per sample (all T steps)"),
        Metric("epochs_completed", "count", True, "epochs trained before the run ended"),
    ]
}


def top1(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy in percent; ``argmax`` breaks ties toward the lowest index (ties are not credited)."""
    return 100.0 * (logits.argmax(dim=1) == labels).double().mean().item()


def parameter_count(net: nn.Module) -> int:
    """Number of parameters returned by ``net.parameters()``."""
    return sum(p.numel() for p in net.parameters())


def footprint_bytes(net: nn.Module) -> int:
    """Σ numel × element size over parameters and buffers (zero weights included)."""
    tensors = list(net.parameters()) + list(net.buffers())
    return sum(t.numel() * t.element_size() for t in tensors)


class PeakMemory:
    """Peak training memory in MiB: CUDA max allocated, or the process's resident set sampled every 10 ms."""

    def __init__(self, device: torch.device, interval_s: float = 0.01) -> None:
        self.device, self.interval_s = device, interval_s
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            process = psutil.Process()
            self.peak_bytes = process.memory_info().rss

            def sample() -> None:
                while not self._stop.wait(self.interval_s):
                    self.peak_bytes = max(self.peak_bytes, process.memory_info().rss)

            self._thread = threading.Thread(target=sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        if self.device.type == "cuda":
            self.peak_bytes = torch.cuda.max_memory_allocated(self.device)
        else:
            self._stop.set()
            assert self._thread is not None
            self._thread.join()
            self.peak_bytes = max(self.peak_bytes, psutil.Process().memory_info().rss)

    @property
    def mib(self) -> float:
        """The peak in MiB."""
        return self.peak_bytes / 2**20
