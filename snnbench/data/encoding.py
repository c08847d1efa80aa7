"""Input encodings: a batch ``x`` of shape ``[B, ...]`` → ``T`` steps, time-major ``[T, B, ...]``.

Each encoding is a small pure function registered by name; suites select one per algorithm.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch

from snnbench.registry import Registry


class Encoding(Protocol):
    """``encode(x, T, generator) -> [T, B, ...]``."""

    def __call__(self, x: torch.Tensor, T: int, generator: torch.Generator | None) -> torch.Tensor: ...


encodings: Registry[Callable[..., torch.Tensor]] = Registry("encoding")


@encodings.register("direct")
def direct(x: torch.Tensor, T: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """The same analog input at every step (a broadcast view, no copy)."""
    return x.unsqueeze(0).expand(T, *x.shape)


@encodings.register("rate")
def rate(x: torch.Tensor, T: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Bernoulli spikes with probability equal to the intensity (clamped to [0, 1]) at each step."""
    probability = x.clamp(0.0, 1.0).unsqueeze(0).expand(T, *x.shape)
    noise = torch.rand(probability.shape, generator=generator, device="cpu").to(x.device)
    return (noise < probability).to(x.dtype)


@encodings.register("events")
def events(x: torch.Tensor, T: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Frames already binned to ``T`` steps by the dataset: ``[B, T, ...]`` → ``[T, B, ...]``."""
    if x.shape[1] != T:
        raise ValueError(f"event frames have {x.shape[1]} time bins, the run asks for T={T}")
    return x.transpose(0, 1)
