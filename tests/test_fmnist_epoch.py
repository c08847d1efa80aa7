"""benchmarks/fmnist_epoch.py's agreement check on synthetic batches: snnTorch's and SpikingJelly's idiomatic
networks compute what the fmnist-cpu suite's bptt entry computes (same logits, gradients and Adam steps
from the same weights), and the check notices a peer that differs."""

from __future__ import annotations

import pytest

pytest.importorskip("snntorch")
pytest.importorskip("spikingjelly")

from benchmarks.fmnist_epoch import (  # noqa: E402
    SnnTorch,
    SpikingJelly,
    check_agreement,
    initial_weights,
    peer_settings,
    static_info,
    suite_spec,
    synthetic_batches,
)


@pytest.mark.parametrize("T", [1, 4])
def test_peers_agree_with_the_suite_entry_over_a_few_adam_steps(T):
    result = check_agreement(T, synthetic_batches(3, batch=8))
    for name, r in result.items():
        assert r["spike_rate"] > 0.05, name  # the hidden layer fires: resets and spikes are exercised
        assert r["logits"] < 1e-5, (name, r)
        assert r["grad"] < 1e-3, (name, r)
        assert r["weights"] < 1e-3, (name, r)


def test_a_peer_with_another_time_constant_is_noticed():
    result = check_agreement(4, synthetic_batches(1, batch=8), peer_changes={"tau": 3.0})
    assert all(r["logits"] > 1e-2 for r in result.values()), result


def test_one_epoch_of_each_peer_runs_and_tallies_every_sample():
    spec = suite_spec(2)
    init = initial_weights(spec, static_info(spec))
    batches = synthetic_batches(2, batch=8, scale=1.0)
    for peer in (SnnTorch(peer_settings(spec), 2, init), SpikingJelly(peer_settings(spec), 2, init)):
        stats = peer.train_epoch(batches)
        assert stats["loss"] > 0 and 0 <= stats["train_top1"] <= 100
        assert peer.weights()["w1"].ne(init["w1"]).any()  # it trained
