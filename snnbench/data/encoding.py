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


@encodings.register("sparse-rate")
def sparse_rate(x: torch.Tensor, T: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """ST-RSBP's image coding (official ``DataLayerSpiking``): Bernoulli spikes with probability x / 5.5 per
    step (x clamped to [0, 1], so p ≤ 0.18), for long windows (T = 400)."""
    return rate(x.clamp(0.0, 1.0) / 5.5, T, generator)


@encodings.register("events")
def events(x: torch.Tensor, T: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Frames already binned to ``T`` steps by the dataset: ``[B, T, ...]`` → ``[T, B, ...]``."""
    if x.shape[1] != T:
        raise ValueError(f"event frames have {x.shape[1]} time bins, the run asks for T={T}")
    return x.transpose(0, 1)


def latency_times(x: torch.Tensor, t_max: float = 1.0) -> torch.Tensor:
    """Time-to-first-spike coding in continuous time: ``t = t_max (1 − x)`` for ``x > 0`` (brighter is
    earlier), ``+inf`` (no spike) for ``x ≤ 0``. Intensities are clamped to [0, 1]."""
    x = x.clamp(0.0, 1.0)
    return torch.where(x > 0, t_max * (1.0 - x), torch.full_like(x, float("inf")))


@encodings.register("latency")
def latency(x: torch.Tensor, T: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """One spike per input at step ``floor((1 − x) T)`` (clipped to T − 1): brighter is earlier;
    zero intensity never fires."""
    times = latency_times(x, 1.0)
    steps = torch.where(
        torch.isfinite(times), (times * T).floor().clamp(max=T - 1), torch.full_like(times, -1.0)
    )
    grid = torch.arange(T, device=x.device, dtype=x.dtype).view(T, *([1] * x.dim()))
    return (grid == steps.unsqueeze(0)).to(x.dtype)


@encodings.register("signed-rate")
def signed_rate(x: torch.Tensor, T: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """BNTT's ternary Poisson input (Rathi et al.): a fresh sample each step,
    ``sign(x) · [2 U(0, 1) ≤ |x|]``, i.e. P(spike) = |x| / 2 with the sign of the (normalised) input."""
    magnitude = x.abs().unsqueeze(0).expand(T, *x.shape)
    noise = torch.rand(magnitude.shape, generator=generator, device="cpu").to(x.device)
    return torch.sign(x).unsqueeze(0) * (noise * 2.0 <= magnitude).to(x.dtype)
