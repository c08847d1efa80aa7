"""STCF (spatio-temporal crop and flip of event frames; Shen et al. 2022 named it, its parameters are ours):
every output sample against an independent enumeration of the allowed crops and flips, the draws' coverage,
and its wiring as an event dataset option that any method's training batches receive."""

from __future__ import annotations

import itertools

import pytest
import torch

from snnbench.data import Split, datasets
from snnbench.data.stcf import STCFOptions, spatiotemporal_crop_and_flip
from snnbench.errors import SnnbenchError


def candidates(sample: torch.Tensor, p_t: int, p_s: int, flips: tuple[bool, ...]) -> list[tuple]:
    """Every (shift_t, shift_y, shift_x, flip) result of one [T, C, H, W] sample, by explicit loops: output
    frame t, pixel (i, j) is input frame t + s_t − p_t, pixel (i + s_y − p_s, j' + s_x − p_s) with
    j' = W − 1 − j when flipped, else j; empty outside the input."""
    T, C, H, W = sample.shape
    found = []
    shifts = itertools.product(range(2 * p_t + 1), range(2 * p_s + 1), range(2 * p_s + 1), flips)
    for st, sy, sx, flip in shifts:
        out = torch.zeros_like(sample)
        for t in range(T):
            src_t = t + st - p_t
            if not 0 <= src_t < T:
                continue
            for i in range(H):
                for j in range(W):
                    jj = W - 1 - j if flip else j
                    src_i, src_j = i + sy - p_s, jj + sx - p_s
                    if 0 <= src_i < H and 0 <= src_j < W:
                        out[t, :, i, j] = sample[src_t, :, src_i, src_j]
        found.append(((st, sy, sx, flip), out))
    return found


def test_every_sample_is_one_allowed_crop_and_flip_of_itself():
    torch.manual_seed(0)
    x = (torch.rand(12, 4, 2, 5, 6) < 0.3).float() * torch.randint(1, 4, (12, 4, 2, 5, 6)).float()
    options = STCFOptions(time_padding=1, space_padding=1, flip_probability=0.5)
    out = spatiotemporal_crop_and_flip(options)(x, torch.Generator().manual_seed(1))
    assert out.shape == x.shape and out.dtype == x.dtype
    for n in range(len(x)):
        matches = [key for key, cand in candidates(x[n], 1, 1, (False, True)) if torch.equal(cand, out[n])]
        assert matches, f"sample {n} is no allowed crop/flip of its input"
        assert out[n].sum() <= x[n].sum()  # no event created


def test_zero_padding_and_no_flip_is_the_identity_and_draws_cover_every_shift():
    x = torch.rand(6, 3, 2, 4, 4)
    identity = STCFOptions(time_padding=0, space_padding=0, flip_probability=0.0)
    assert torch.equal(spatiotemporal_crop_and_flip(identity)(x, torch.Generator().manual_seed(0)), x)
    always = STCFOptions(time_padding=0, space_padding=0, flip_probability=1.0)
    assert torch.equal(spatiotemporal_crop_and_flip(always)(x, None), x.flip(-1))
    # one bright pixel per sample: where it lands gives the drawn shift and flip
    n = 4000
    x = torch.zeros(n, 3, 1, 5, 5)
    x[:, 1, 0, 2, 1] = 1.0
    out = spatiotemporal_crop_and_flip(STCFOptions(time_padding=1, space_padding=1))(
        x, torch.Generator().manual_seed(2)
    )
    kept = out.flatten(1).sum(1) == 1
    assert kept.all()  # a shift of at most the padding never pushes this pixel out
    where = out.nonzero()[:, [1, 3, 4]]
    t_shift = where[:, 0] - 1
    row_shift = 2 - where[:, 1]
    col = where[:, 2]
    assert set(t_shift.tolist()) == {-1, 0, 1} and set(row_shift.tolist()) == {-1, 0, 1}
    flipped = col >= 2  # unflipped column 1 + (−1..1) ∈ {0, 1, 2}; flipped 3 + (−1..1) ∈ {2, 3, 4}
    assert 0.45 < (col >= 3).double().mean().item() + 0.5 * (col == 2).double().mean().item() < 0.55
    assert flipped.any() and (~flipped).any()
    for value in (-1, 0, 1):  # uniform offsets
        assert abs((t_shift == value).double().mean().item() - 1 / 3) < 0.03


def test_refuses_anything_but_event_frames():
    with pytest.raises(ValueError, match=r"\[N, T, C, H, W\]"):
        spatiotemporal_crop_and_flip(STCFOptions())(torch.zeros(2, 1, 8, 8), None)
    with pytest.raises(Exception, match="time_padding"):
        STCFOptions(time_padding=-1)


def test_an_event_suite_option_puts_stcf_in_every_methods_training_batches(tmp_path, monkeypatch):
    """``dataset_options: {stcf: ...}`` reaches the dataset's ``augment`` (which the runner applies to every
    method's training batches), leaves the frame cache key alone, and is refused on audio."""
    dataset = datasets.get("nmnist")()
    frames = Split(torch.randint(0, 3, (4, 3, 2, 34, 34), dtype=torch.int16), torch.arange(4))
    keys = []

    def fake_frames(self, root, options, T, train, checksums):
        keys.append(options.model_dump(exclude={"stcf"}))
        return frames

    monkeypatch.setattr(type(dataset), "_frames", fake_frames)
    monkeypatch.setattr(type(dataset), "verify", lambda self, root: {})
    plain = dataset.load(dataset.Options(), tmp_path, T=3)
    assert plain.augment is None
    options = dataset.Options.model_validate({"stcf": {"time_padding": 1, "space_padding": 2}})
    loaded = dataset.load(options, tmp_path, T=3)
    assert loaded.augment is not None and loaded.provenance["options"]["stcf"]["space_padding"] == 2
    assert keys[0] == keys[2]  # the frames are the same with and without stcf
    batches = loaded.train.batches(4, shuffle=False, transform=loaded.augment, generator=torch.Generator())
    batch = next(batches)
    assert batch[0].shape == (4, 3, 2, 34, 34) and batch[0].dtype == torch.float32
    assert not torch.equal(batch[0], frames.x.float())  # something moved
    shd = datasets.get("shd")()
    with pytest.raises(SnnbenchError, match="stcf"):
        shd.info(shd.Options.model_validate({"stcf": {}}))
