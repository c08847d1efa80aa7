"""Input encodings against values worked out by hand (shape and dtype are in the contract test)."""

from __future__ import annotations

import math

import torch

from snnbench.data.encoding import direct, events, latency, latency_times, rate, signed_rate, sparse_rate


def test_latency_times_brighter_is_earlier_and_dark_never_fires():
    x = torch.tensor([1.0, 0.75, 0.25, 0.0, -0.5, 1.5])
    times = latency_times(x, t_max=2.0)
    # t = t_max (1 − x) after clamping to [0, 1]: 2·0 = 0, 2·0.25 = 0.5, 2·0.75 = 1.5; x ≤ 0 → ∞
    assert times.tolist() == [0.0, 0.5, 1.5, math.inf, math.inf, 0.0]


def test_latency_fires_once_at_floor_of_one_minus_x_times_T():
    x = torch.tensor([[1.0, 0.75, 0.5, 0.1, 0.0]])
    spikes = latency(x, 4)
    # step floor((1 − x)·4), at most T − 1 = 3: 0, 1, 2, floor(3.6) = 3; x = 0 never fires
    assert spikes[:, 0].T.tolist() == [
        [1.0, 0.0, 0.0, 0.0],
        [0.0, 1.0, 0.0, 0.0],
        [0.0, 0.0, 1.0, 0.0],
        [0.0, 0.0, 0.0, 1.0],
        [0.0, 0.0, 0.0, 0.0],
    ]


def test_direct_repeats_the_input_and_events_become_time_major():
    x = torch.arange(6.0).view(2, 3)
    assert torch.equal(direct(x, 3), torch.stack([x, x, x]))
    frames = torch.arange(24.0).view(2, 3, 4)  # [B, T, features]
    assert torch.equal(events(frames, 3)[1, 0], frames[0, 1])


def test_rate_fires_with_the_clamped_intensity_as_probability():
    x = torch.tensor([[0.0, 0.2, 0.9, 1.4, -0.3]])
    spikes = rate(x, 20_000, torch.Generator().manual_seed(0))
    # standard error of a frequency over 20,000 draws ≤ 0.0036
    torch.testing.assert_close(spikes.mean(0)[0], torch.tensor([0.0, 0.2, 0.9, 1.0, 0.0]), rtol=0, atol=0.015)
    sparse = sparse_rate(x, 20_000, torch.Generator().manual_seed(0))
    expected = torch.tensor([0.0, 0.2, 0.9, 1.0, 0.0]) / 5.5
    torch.testing.assert_close(sparse.mean(0)[0], expected, rtol=0, atol=0.01)


def test_signed_rate_fires_half_the_magnitude_with_its_sign():
    x = torch.tensor([[0.8, -0.4, 0.0]])
    spikes = signed_rate(x, 20_000, torch.Generator().manual_seed(0))
    assert set(spikes[:, 0, 0].unique().tolist()) == {0.0, 1.0}
    assert set(spikes[:, 0, 1].unique().tolist()) == {-1.0, 0.0}
    torch.testing.assert_close(spikes.mean(0)[0], torch.tensor([0.4, -0.2, 0.0]), rtol=0, atol=0.015)
