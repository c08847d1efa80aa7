"""Standard preprocessing of static image sets, batched in torch (no per-sample Python work)."""

from __future__ import annotations

from collections.abc import Callable

import torch

Augment = Callable[[torch.Tensor, torch.Generator | None], torch.Tensor]


def normalize(x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """Per-channel ``(x − mean) / std`` of ``[N, C, H, W]``."""
    shape = (1, len(mean), 1, 1)
    return (x - torch.tensor(mean).view(shape)) / torch.tensor(std).view(shape)


def crop_and_flip(padding: int = 4, fill: tuple[float, ...] = (0.0,)) -> Augment:
    """Random crop of the ``padding``-padded image back to its size and a horizontal flip with p = 1/2,
    independently per sample (the CIFAR training augmentation); ``fill`` is the per-channel pad value
    (black in the stored scale: ``−mean/std`` for normalised data)."""

    def augment(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        n, c, h, w = x.shape
        padded = torch.empty(n, c, h + 2 * padding, w + 2 * padding, dtype=x.dtype)
        padded[:] = torch.tensor(fill, dtype=x.dtype).view(1, -1, 1, 1)
        padded[:, :, padding : padding + h, padding : padding + w] = x
        dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
        dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
        flip = torch.rand(n, generator=generator) < 0.5
        rows = (dy.view(n, 1) + torch.arange(h)).view(n, 1, h, 1).expand(n, c, h, w + 2 * padding)
        out = padded.gather(2, rows)
        cols = dx.view(n, 1) + torch.arange(w)
        cols = torch.where(flip.view(n, 1), cols.flip(1), cols).view(n, 1, 1, w).expand(n, c, h, w)
        return out.gather(3, cols)

    return augment
