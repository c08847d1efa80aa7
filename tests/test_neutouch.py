"""NeuTouch loader on a fixture written in the official preprocessed format: ``tact.pt`` a float tensor
``[N, 78, 2, bins]`` of 0/1 (clear-nus/VT_SNN vtsnn/preprocess.py @9215087: ``torch.save(torch.stack(
[torch.FloatTensor(np.load(f"{i}_tact.npy"))]))``) and ``train_80_20_<k>.txt``/``test_80_20_<k>.txt`` rows
``index<TAB>label`` (``np.savetxt(..., fmt="%d", delimiter="\\t")``); the channel order of the official
``ViTacDataset`` (``tact.reshape(N, -1, 1, 1, bins)``, pkang2017/TactileLocNeurons locsnn/dataset.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from snnbench.algorithms import RunContext
from snnbench.algorithms.loc_snn import LocSNNConfig, LocSNNMethod
from snnbench.architectures import resolve_architecture
from snnbench.data import datasets
from snnbench.data.encoding import events
from snnbench.data.neutouch import NeuTouchOptions
from snnbench.errors import SnnbenchError

BINS = 325


def write_fixture(root, task="cw", split=1, n=10, classes=20, seed=0):
    folder = root / "neutouch" / task
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    samples = [(rng.random((78, 2, BINS)) < 0.05).astype(np.uint8) for _ in range(n)]  # {i}_tact.npy
    tact = torch.stack([torch.FloatTensor(s) for s in samples])
    torch.save(tact, folder / "tact.pt")
    labels = np.array([[i, i % classes] for i in range(n)])
    train, test = labels[: n - 3], labels[n - 3 :]
    np.savetxt(folder / f"train_80_20_{split}.txt", train, fmt="%d", delimiter="\t")
    np.savetxt(folder / f"test_80_20_{split}.txt", test, fmt="%d", delimiter="\t")
    return tact, train, test


def test_loads_the_official_files_in_the_official_channel_order(tmp_path):
    tact, train, test = write_fixture(tmp_path)
    dataset = datasets.get("neutouch")()
    loaded = dataset.load(NeuTouchOptions(), tmp_path, BINS)
    assert (
        loaded.info.input_shape == (156,) and loaded.info.num_classes == 20 and loaded.info.kind == "events"
    )
    x = loaded.train.x
    assert x.shape == (7, BINS, 156) and x.dtype == torch.int16
    official = tact.reshape(tact.shape[0], -1, 1, 1, BINS)  # ViTacDataset: [N, 156, 1, 1, T]
    for row, (index, label) in enumerate(train):
        np.testing.assert_array_equal(x[row].T.numpy(), official[index, :, 0, 0].numpy())
        assert loaded.train.y[row] == label
    assert loaded.test.y.tolist() == test[:, 1].tolist()
    assert x[0, :, 2 * 21 + 1].tolist() == tact[train[0, 0], 21, 1].tolist()  # channel = 2·taxel + polarity
    assert set(loaded.provenance["files_sha256"]) == {"tact.pt", "train_80_20_1.txt", "test_80_20_1.txt"}


@pytest.mark.parametrize(("fingers", "offset"), [("left", 0), ("right", 39)])
def test_one_finger_keeps_its_39_taxels(tmp_path, fingers, offset):
    tact, train, _ = write_fixture(tmp_path)
    loaded = datasets.get("neutouch")().load(NeuTouchOptions(fingers=fingers), tmp_path, BINS)
    assert loaded.train.x.shape == (7, BINS, 78)
    part = tact[:, offset : offset + 39].reshape(tact.shape[0], -1, BINS)  # official tact[:, :39] / [:, 39:]
    np.testing.assert_array_equal(loaded.train.x[0].T.numpy(), part[train[0, 0]].numpy())


def test_fewer_steps_or_groups_of_bins_and_other_T_are_refused(tmp_path):
    tact, train, _ = write_fixture(tmp_path)
    loaded = datasets.get("neutouch")().load(NeuTouchOptions(), tmp_path, 25)
    assert loaded.train.x.shape == (7, 25, 156)
    channels = tact.reshape(tact.shape[0], -1, BINS)[train[0, 0]]  # [156, 325]
    expected = channels.view(156, 25, 13).amax(-1).T  # bins 13k … 13k + 12 → step k
    np.testing.assert_array_equal(loaded.train.x[0].numpy(), expected.numpy())
    with pytest.raises(SnnbenchError, match="T must divide"):
        datasets.get("neutouch")().load(NeuTouchOptions(), tmp_path, 7)


def test_missing_files_are_named_and_download_explains_the_source(tmp_path):
    dataset = datasets.get("neutouch")()
    assert dataset.status(tmp_path) == "missing"
    with pytest.raises(SnnbenchError, match="tact.pt"):
        dataset.load(NeuTouchOptions(), tmp_path, BINS)
    with pytest.raises(SnnbenchError, match="cannot be downloaded"):
        dataset.download(tmp_path)
    write_fixture(tmp_path)
    assert dataset.status(tmp_path) == "present"
    assert all("sha256" in v for v in dataset.verify(tmp_path).values())
    folder = tmp_path / "neutouch" / "cw"
    torch.save(torch.zeros(3, 80, 2, BINS), folder / "tact.pt")
    with pytest.raises(SnnbenchError, match=r"\[N, 78, 2, bins\]"):
        dataset.load(NeuTouchOptions(), tmp_path, BINS)


def test_loc_snn_runs_the_official_hybrid_on_it(tmp_path):
    write_fixture(tmp_path)
    loaded = datasets.get("neutouch")().load(NeuTouchOptions(), tmp_path, BINS)
    method = LocSNNMethod(LocSNNConfig(ordering="whorl"), resolve_architecture("32"), loaded.info)
    torch.manual_seed(0)
    net = method.build(BINS)
    ctx = RunContext(BINS, torch.device("cpu"), 1, 4, 4, "events", torch.Generator(), events)
    x, y = next(loaded.train.batches(4, shuffle=False))
    with torch.no_grad():
        out = net(ctx.encode(x))
    assert out.shape == (BINS + 156, 4, 20)  # the official 481-step output
    assert method.targets(out.shape[0]) == (150.0, 5.0)
    assert method.predict(net, x, ctx).shape == (4, 20)
