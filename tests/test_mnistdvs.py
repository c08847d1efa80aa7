"""MNIST-DVS on fixture files in the real layout: the SCTFA code's event matrices (``.mat``, variable
``data``: t µs, ·, ·, x, y, pol ±1; GuoLab-UESTC/SCTFA-SNN @be887ca ``timeslice.py``) under
``matdata<d>/scale<s>/mnist_<d>_scale<ss>_<jjjj>.mat``; frames binned as ``timeslice.my_chunk_evs_pol_dvs``
(checked here by hand; the official function itself was run beside ``frames_from_events`` on 200 random
recordings with identical frames, docs/algorithms/sctfa.md); the shipped official split; a run on the
fixture through the runner."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch

from snnbench.data import datasets
from snnbench.data import mnistdvs as module
from snnbench.data.mnistdvs import MNISTDVSOptions, frames_from_events, recording_name
from snnbench.errors import SnnbenchError


def events(rows: list[tuple[int, int, int, int]]) -> np.ndarray:
    """(t µs, x, y, pol ±1) → the 6-column matrix (columns 1 and 2 unused, −1 as in the dataset's scripts)."""
    return np.array([(t, -1, -1, x, y, p) for t, x, y, p in rows], dtype=np.float64)


def test_frames_bin_events_as_the_official_chunking_by_hand():
    data = events(
        [
            (1000, 3, 5, 1),  # window 0 (t0 = 1000)
            (2000, 3, 5, 1),
            (20000, 7, 2, -1),  # window 0, its last event: skipped by the official chunking
            (26000, 9, 9, 1),  # window 1 (≥ t0 + 25,000): the only event there, skipped
            (60000, 1, 2, -1),  # window 2
            (70000, 1, 2, -1),  # window 2, last: skipped
            (80000, 4, 4, 1),  # window 3 ≥ T = 3: never counted
        ]
    )
    frames = frames_from_events(data, 3, 25_000, official_chunking=True)
    assert frames.shape == (3, 2, 128, 128) and frames.dtype == np.int16
    assert frames[0, 1, 3, 5] == 2 and frames[0, 0, 7, 2] == 0  # [t, p, x, y]: x on the row axis
    assert frames[1].sum() == 0
    assert frames[2, 0, 1, 2] == 1 and frames.sum() == 3
    every = frames_from_events(data, 3, 25_000, official_chunking=False)
    assert every[0, 1, 3, 5] == 2 and every[0, 0, 7, 2] == 1 and every[1, 1, 9, 9] == 1
    assert every[2, 0, 1, 2] == 2 and every.sum() == 6


def test_shipped_split_is_the_official_first_1000_lines():
    """splits/mnistdvs.json: main_pop.py tests on datapath[:1000] of example/path_4.txt (shuffled)."""
    index = json.loads(module.SPLIT_INDEX.read_text())
    test = index["test"]
    assert sum(len(v) for v in test.values()) == 1000 and sorted(test) == [str(d) for d in range(10)]
    assert [len(test[str(d)]) for d in range(10)] == [96, 98, 112, 99, 94, 77, 98, 104, 104, 118]
    for numbers in test.values():
        assert numbers == sorted(set(numbers)) and 1 <= numbers[0] and numbers[-1] <= 1000
    assert "be887ca" in index["source"] and len(index["path_4_txt_sha256"]) == 64


@pytest.fixture
def fixture_root(tmp_path, monkeypatch):
    """3 recordings per class at scale 4 (the first one of each class in the test split)."""
    from scipy.io import savemat

    monkeypatch.setattr(module, "PER_CLASS", 3)
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"test": {str(d): [1] for d in range(10)}}))
    monkeypatch.setattr(module, "SPLIT_INDEX", split)
    rng = np.random.default_rng(0)
    root = tmp_path / "data"
    for d in range(10):
        for j in range(1, 4):
            n = 400
            t = np.sort(rng.integers(0, 120_000, n)) + 5_000_000
            x, y = rng.integers(0, 128, n), rng.integers(0, 128, n)
            rows = np.stack([t, -np.ones(n), -np.ones(n), x, y, rng.choice([-1, 1], n)], 1)
            path = root / "mnist-dvs" / recording_name(d, 4, j)
            path.parent.mkdir(parents=True, exist_ok=True)
            savemat(path, {"data": rows.astype(np.float64)})
    return root


def test_load_reads_the_mat_files_bins_them_and_keeps_the_official_split(fixture_root):
    from scipy.io import loadmat

    dataset = datasets.get("mnist-dvs")()
    assert dataset.status(fixture_root).startswith("present")
    loaded = dataset.load(MNISTDVSOptions(), fixture_root, T=4)
    assert loaded.train.x.shape == (20, 4, 2, 128, 128) and loaded.test.x.shape == (10, 4, 2, 128, 128)
    assert loaded.info.kind == "events" and loaded.info.input_shape == (2, 128, 128)
    assert loaded.test.y.tolist() == list(range(10)) and loaded.train.y.tolist() == [
        d for d in range(10) for _ in (2, 3)
    ]
    first = loadmat(fixture_root / "mnist-dvs" / recording_name(0, 4, 1))["data"]
    expected = frames_from_events(first, 4, 25_000.0)
    assert torch.equal(loaded.test.x[0], torch.from_numpy(expected)) and int(expected.sum()) > 0
    split_sha = hashlib.sha256(module.SPLIT_INDEX.read_bytes()).hexdigest()
    assert loaded.provenance["split_sha256"] == split_sha and "sha256" in str(loaded.provenance["files"])
    again = dataset.load(MNISTDVSOptions(), fixture_root, T=4)  # from the frame cache
    assert torch.equal(again.train.x, loaded.train.x)
    assert len(list((fixture_root / "cache" / "mnist-dvs").glob("*.pt"))) == 2
    assert (
        dataset.load(MNISTDVSOptions(window_us=10_000.0), fixture_root, T=4).train.x.sum()
        != loaded.train.x.sum()
    )


def test_missing_files_say_how_to_prepare_them(tmp_path, fixture_root):
    dataset = datasets.get("mnist-dvs")()
    assert dataset.status(tmp_path / "empty") == "missing"
    (fixture_root / "mnist-dvs" / recording_name(3, 4, 2)).unlink()
    assert dataset.status(fixture_root) == "partial (29/30)"
    with pytest.raises(SnnbenchError, match="MNISTDVS.html"):
        dataset.verify(fixture_root)
    with pytest.raises(SnnbenchError, match="Matlab"):
        dataset.download(fixture_root)


def test_sctfa_trains_on_the_fixture_frames(fixture_root, write_suite, tmp_path):
    from snnbench.grid import run_suite

    path = write_suite(
        {
            "dataset": "mnist-dvs",
            "timesteps": [3],
            "budgets": {"smoke": {"epochs": 1, "batch_size": 10}},
            "validation": {"fraction": 0.1, "seed": 0, "select": False},
            "algorithms": {"sctfa": {"arch": "4C7p3s4-AP4-16", "encoding": "events"}},
        }
    )
    record = run_suite(path, out_dir=tmp_path / "out", device="cpu", data_dir=fixture_root).records[0]
    assert record.status == "ok", record.error
    assert record.metrics["test_size"] == 10
