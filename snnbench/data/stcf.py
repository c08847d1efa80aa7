"""STCF, spatio-temporal cropping and flipping of event frames: a training augmentation any method can use on
an event-camera suite (``dataset_options: {stcf: {...}}``).

Named after Shen et al., "Modeling Associative Plasticity between Synapses to Enhance Learning of Spiking
Neural Networks", arXiv 2207.11670 (2022), whose abstract proposes "a spatiotemporal cropping and flipping
(STCF) method to improve the generalization ability" on neuromorphic data. Only the abstract could be read
(docs/algorithms/apb.md): the crop sizes, how the temporal crop is taken and the flip probability are
**ours**. Per training sample ``[T, C, H, W]`` (frames of a recording), independently per sample:

1. temporal crop: the T frames padded with ``time_padding`` empty frames before and after, and a window of T
   consecutive frames taken at a uniformly drawn offset (a shift of the recording by −p…p frames, the frames
   shifted out dropped);
2. spatial crop: every frame padded with ``space_padding`` empty pixels on each side and an H × W window taken
   at a uniformly drawn offset, the same for every frame of the sample;
3. flip: every frame mirrored left–right with probability ``flip_probability``.

No event is created: each output pixel is an input pixel or empty.
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field

from snnbench.data.preprocess import Augment


class STCFOptions(BaseModel):
    """STCF's parameters (all ours: the paper's values could not be read)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    time_padding: int = Field(1, ge=0, description="empty frames padded before and after (max shift)")
    space_padding: int = Field(4, ge=0, description="empty pixels padded on each side (max spatial shift)")
    flip_probability: float = Field(0.5, ge=0.0, le=1.0, description="left-right flip probability")


def spatiotemporal_crop_and_flip(options: STCFOptions) -> Augment:
    """The augmentation of ``[N, T, C, H, W]`` batches (float frames); ``generator`` draws, per sample, the
    temporal offset, then the spatial offsets (rows, columns) and the flip."""
    p_t, p_s, p_flip = options.time_padding, options.space_padding, options.flip_probability

    def augment(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        if x.dim() != 5:
            raise ValueError(f"STCF takes event frames [N, T, C, H, W], got shape {tuple(x.shape)}")
        n, T, c, h, w = x.shape
        dt = torch.randint(0, 2 * p_t + 1, (n,), generator=generator)
        dy = torch.randint(0, 2 * p_s + 1, (n,), generator=generator)
        dx = torch.randint(0, 2 * p_s + 1, (n,), generator=generator)
        flip = torch.rand(n, generator=generator) < p_flip
        padded = x.new_zeros(n, T + 2 * p_t, c, h + 2 * p_s, w + 2 * p_s)
        padded[:, p_t : p_t + T, :, p_s : p_s + h, p_s : p_s + w] = x
        steps = (dt.view(n, 1) + torch.arange(T)).view(n, T, 1, 1, 1)
        out = padded.gather(1, steps.expand(n, T, c, h + 2 * p_s, w + 2 * p_s))
        rows = (dy.view(n, 1) + torch.arange(h)).view(n, 1, 1, h, 1)
        out = out.gather(3, rows.expand(n, T, c, h, w + 2 * p_s))
        cols = dx.view(n, 1) + torch.arange(w)
        cols = torch.where(flip.view(n, 1), cols.flip(1), cols).view(n, 1, 1, 1, w)
        return out.gather(4, cols.expand(n, T, c, h, w))

    return augment
