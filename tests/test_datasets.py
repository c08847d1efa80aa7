"""Datasets end to end on fixture files in the real formats, served over loopback HTTP: download → verify
→ load, resumed downloads, corrupted files, extracted data, the event-frame cache, and every suite's smoke
run."""

from __future__ import annotations

import shutil
import zipfile

import numpy as np
import pytest
import torch
from dataset_fixtures import FIXTURES, file_server, fixture_options, idx_bytes, publish
from typer.testing import CliRunner

from snnbench.cli import app
from snnbench.data import datasets
from snnbench.data.download import ChecksumError, DatasetMissingError, download
from snnbench.data.mnist import read_idx
from snnbench.data.preprocess import crop_and_flip
from snnbench.errors import SnnbenchError
from snnbench.grid import run_suite
from snnbench.suite import Budget, Overrides, load_suite

runner = CliRunner()
EXPECTED = {  # name: (train size, test size, sample shape at T=4, classes)
    "mnist": (40, 20, (1, 28, 28), 10),
    "fashion-mnist": (40, 20, (1, 28, 28), 10),
    "cifar10": (50, 10, (3, 32, 32), 10),
    "cifar100": (50, 10, (3, 32, 32), 100),
    "nmnist": (20, 20, (4, 2, 34, 34), 10),
    "dvsgesture": (22, 22, (4, 2, 128, 128), 11),
    "shd": (24, 24, (4, 1, 700), 20),
    "cifar10dvs": (90, 10, (4, 2, 128, 128), 10),
}


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    """A loopback mirror serving ``tmp_path/served``; SNNBENCH_MIRROR points at it."""
    served = tmp_path / "served"
    served.mkdir()
    with file_server(served) as (url, handler):
        monkeypatch.setenv("SNNBENCH_MIRROR", url)
        yield served, handler


def test_idx_reader_shapes_and_bad_magic(tmp_path):
    path = tmp_path / "images.gz"
    import gzip

    path.write_bytes(gzip.compress(idx_bytes(np.arange(2 * 3 * 4).reshape(2, 3, 4))))
    array = read_idx(path)
    assert array.shape == (2, 3, 4) and array.dtype == np.uint8 and array[1, 2, 3] == 23
    path.write_bytes(gzip.compress(b"\x01\x02\x08\x01" + bytes(8)))
    with pytest.raises(SnnbenchError, match="not an IDX file"):
        read_idx(path)


@pytest.mark.parametrize("name", list(FIXTURES))
def test_download_verify_load(name, mirror, tmp_path, monkeypatch):
    served, handler = mirror
    files = publish(monkeypatch, served, name)
    root = tmp_path / "data"
    result = runner.invoke(app, ["datasets", "download", name, "--data-dir", str(root)])
    assert result.exit_code == 0, result.output
    verified = runner.invoke(app, ["datasets", "verify", name, "--data-dir", str(root)])
    assert verified.exit_code == 0 and all(f in verified.output for f in files)
    dataset = datasets.get(name)()
    loaded = dataset.load(dataset.Options(**fixture_options(name, tmp_path)), root, T=4)
    n_train, n_test, shape, classes = EXPECTED[name]
    assert (len(loaded.train), len(loaded.test)) == (n_train, n_test)
    assert tuple(loaded.train.x.shape[1:]) == shape
    assert loaded.train.x.dtype == (torch.int16 if loaded.info.kind == "events" else torch.float32)
    batch, _ = next(loaded.train.batches(4, shuffle=False))
    assert batch.dtype == torch.float32 and torch.equal(batch, loaded.train.x[:4].float())
    assert (
        loaded.train.y.dtype == torch.int64 and int(loaded.train.y.max()) < classes == loaded.info.num_classes
    )
    assert set(loaded.provenance["files_md5"]) == set(files)
    if loaded.info.kind == "events":
        assert loaded.train.x.sum() > 0 and (loaded.train.x >= 0).all()
    else:  # normalised with the published statistics by default: pixel 0 → −mean/std per channel
        mean, std = np.atleast_1d(dataset.mean), np.atleast_1d(dataset.std)
        lowest = loaded.train.x.amin(dim=(0, 2, 3)).numpy()
        assert lowest == pytest.approx(-mean / std, rel=1e-5) and loaded.info.mean is None


def test_static_labels_and_pixels_match_the_files(mirror, tmp_path, monkeypatch):
    served, _ = mirror
    publish(monkeypatch, served, "cifar100")
    root = tmp_path / "data"
    dataset = datasets.get("cifar100")()
    dataset.download(root)
    raw = dataset.load(dataset.Options(normalize=False, augment=False), root, T=1)
    import pickle
    import tarfile

    with tarfile.open(root / "cifar100" / "cifar-100-python.tar.gz") as tar:
        entry = pickle.load(tar.extractfile("cifar-100-python/test"), encoding="bytes")
    assert raw.test.y.tolist() == entry[b"fine_labels"]
    first = torch.from_numpy(entry[b"data"][0].reshape(3, 32, 32).astype(np.float32) / 255)
    assert torch.equal(raw.test.x[0], first) and raw.augment is None and raw.info.mean is not None


def test_interrupted_download_resumes_with_range(mirror, tmp_path, monkeypatch):
    served, handler = mirror
    files = publish(monkeypatch, served, "cifar10")
    name, data = next(iter(files.items()))
    handler.drop_after[f"/cifar10/{name}"] = len(data) // 3  # the first response stops a third of the way
    dataset = datasets.get("cifar10")()
    path = download("cifar10", dataset.remote_files()[0], tmp_path / "data")
    assert path.read_bytes() == data and not path.with_name(name + ".part").exists()
    ranges = [r for p, r in handler.log if p.endswith(name)]
    assert ranges == [None, f"bytes={len(data) // 3}-"]


def test_a_failed_download_says_what_each_source_answered(mirror, tmp_path):
    """The mirror's answer is not hidden behind the canonical hosts' (only the last three attempts were)."""
    import os

    from snnbench.data.download import DownloadError, RemoteFile

    dead = ("http://127.0.0.1:9/a/f.bin", "http://127.0.0.1:9/b/f.bin")  # port 9: connection refused
    with pytest.raises(DownloadError) as raised:
        download("ds", RemoteFile("f.bin", dead, "0" * 32), tmp_path / "data")
    lines = str(raised.value).splitlines()
    assert lines[0] == "could not download f.bin; what each source answered:"
    mirror_url = os.environ["SNNBENCH_MIRROR"]
    assert lines[1] == f"  {mirror_url}/ds/f.bin: HTTP Error 404: Not Found (3 attempts)"
    assert [line.split(": ")[0].strip() for line in lines[2:4]] == list(dead)
    assert all("refused" in line for line in lines[2:4])
    # issue 44: and what else to do: the mirror, copying the file in, another data root
    assert lines[4:] == [
        "Other ways to get it:",
        f"  the mirror SNNBENCH_MIRROR={mirror_url} was tried first: "
        f"serve the file at {mirror_url}/ds/f.bin;",
        f"  or copy f.bin (md5 {'0' * 32}) into {tmp_path / 'data'} yourself;",
        "  or point --data-dir (or SNNBENCH_DATA) at a data root that already has it.",
    ]


def test_a_failed_download_without_a_mirror_says_how_to_use_one_or_import(tmp_path, monkeypatch):
    from snnbench.data.download import DownloadError, RemoteFile

    monkeypatch.delenv("SNNBENCH_MIRROR", raising=False)
    monkeypatch.setattr("snnbench.data.download.ATTEMPTS_PER_URL", 1)
    dead = RemoteFile("train-images-idx3-ubyte.gz", ("http://127.0.0.1:9/t.gz",), "0" * 32)
    with pytest.raises(DownloadError) as raised:
        download("mnist", dead, tmp_path)
    message = str(raised.value)
    assert "set SNNBENCH_MIRROR=<base URL> to fetch it from a mirror serving <base URL>/mnist/" in message
    assert f"into {tmp_path} yourself (`snnbench datasets import mnist FOLDER` verifies" in message
    assert "--data-dir" in message


def test_corrupted_file_is_named_set_aside_and_never_used(mirror, tmp_path, monkeypatch):
    """MD5-verified archives (CIFAR): a bad file is set aside as ``*.corrupt``, a fresh copy replaces it."""
    served, _ = mirror
    files = publish(monkeypatch, served, "cifar10")
    root = tmp_path / "data"
    datasets.get("cifar10")().download(root)
    (bad,) = (root / "cifar10").glob("*.tar.gz")
    bad.write_bytes(b"garbage")
    result = runner.invoke(app, ["datasets", "verify", "cifar10", "--data-dir", str(root)])
    assert result.exit_code == 1
    assert f"{bad}: checksum mismatch: expected md5 " in result.stderr and "got " in result.stderr
    assert not bad.exists() and bad.with_name(bad.name + ".corrupt").read_bytes() == b"garbage"
    with pytest.raises(DatasetMissingError):  # the set-aside file is not read
        datasets.get("cifar10")().load(datasets.get("cifar10").Options(), root, 1)
    datasets.get("cifar10")().download(root)  # a fresh copy replaces it
    assert bad.read_bytes() == files[bad.name]


def _idx_folder(folder, files, gzipped=True, level=9):  # type: ignore[no-untyped-def]
    import gzip

    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        raw = gzip.decompress(data)
        if gzipped:  # recompressed: other bytes than the published archive, the same content
            (folder / name).write_bytes(gzip.compress(raw, compresslevel=level, mtime=12345))
        else:
            (folder / name.removesuffix(".gz")).write_bytes(raw)


@pytest.mark.parametrize("gzipped", [True, False])
def test_idx_files_are_verified_by_content_from_a_system_folder(mirror, tmp_path, monkeypatch, gzipped):
    """A system package's recompressed .gz (MD5s differ from upstream) or raw IDX files are accepted when the
    decompressed content is the original's; the record's provenance names the source and the SHA-256s."""
    from snnbench.data.mnist import FashionMNIST

    served, _ = mirror
    files = publish(monkeypatch, served, "fashion-mnist")
    system = tmp_path / "usr-share"
    _idx_folder(system, files, gzipped=gzipped, level=1)
    monkeypatch.setattr(FashionMNIST, "system_folders", (("dataset-fashion-mnist", system),))
    root = tmp_path / "data"  # empty data root: the system folder is found without a command
    dataset = FashionMNIST()
    assert dataset.status(root) == "verified"
    loaded = dataset.load(dataset.Options(normalize=False), root, T=1)
    assert len(loaded.train) == 40 and str(system) in str(loaded.provenance["source"])
    assert loaded.provenance["files_sha256"] == FashionMNIST.content_sha256
    assert "files_md5" not in loaded.provenance  # not the upstream archives: no MD5 claimed
    listing = runner.invoke(app, ["datasets", "list", "--data-dir", str(root)], env={"COLUMNS": "300"})
    line = next(row for row in listing.output.splitlines() if "fashion-mnist" in row)
    assert "verified" in line and "dataset-fashion-mnist" in line and str(system) in line
    assert not root.exists()  # reading wrote nothing


@pytest.mark.parametrize("gzipped", [True, False])
def test_a_corrupted_idx_copy_is_refused_with_the_file_named_and_nothing_written(
    mirror, tmp_path, monkeypatch, gzipped
):
    from snnbench.data.mnist import ContentMismatchError, FashionMNIST

    served, _ = mirror
    files = publish(monkeypatch, served, "fashion-mnist")
    system = tmp_path / "usr-share"
    _idx_folder(system, files, gzipped=gzipped)
    monkeypatch.setattr(FashionMNIST, "system_folders", (("dataset-fashion-mnist", system),))
    import gzip

    bad = system / ("t10k-images-idx3-ubyte" + (".gz" if gzipped else ""))
    raw = bytearray(gzip.decompress(bad.read_bytes()) if gzipped else bad.read_bytes())
    raw[100] ^= 0xFF  # one pixel flipped: header and size intact
    bad.write_bytes(gzip.compress(bytes(raw)) if gzipped else bytes(raw))
    before = sorted(p.name for p in system.iterdir())
    root = tmp_path / "data"
    dataset = FashionMNIST()
    with pytest.raises(ContentMismatchError, match=f"^{bad}: refused: content sha256 "):
        dataset.load(dataset.Options(), root, T=1)
    result = runner.invoke(app, ["datasets", "verify", "fashion-mnist", "--data-dir", str(root)])
    assert result.exit_code == 1 and f"{bad}: refused" in result.stderr and "Traceback" not in result.output
    assert dataset.status(root).startswith(f"refused: {bad}")
    imported = runner.invoke(
        app, ["datasets", "import", "fashion-mnist", str(system), "--data-dir", str(root)]
    )
    assert imported.exit_code == 1 and f"{bad}: refused" in imported.stderr
    assert sorted(p.name for p in system.iterdir()) == before and not root.exists()  # nothing renamed/written


def test_datasets_import_copies_a_verified_folder_into_the_data_root(mirror, tmp_path, monkeypatch):
    from snnbench.data.mnist import MNIST

    served, _ = mirror
    files = publish(monkeypatch, served, "mnist")
    folder = tmp_path / "usb"
    _idx_folder(folder, files, gzipped=True)
    root = tmp_path / "data"
    result = runner.invoke(app, ["datasets", "import", "mnist", str(folder), "--data-dir", str(root)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (root / "mnist").iterdir()) == sorted(n.removesuffix(".gz") for n in files)
    loaded = MNIST().load(MNIST.Options(), root, T=1)
    assert str(root / "mnist") in str(loaded.provenance["source"]) and len(loaded.test) == 20
    partial = runner.invoke(
        app, ["datasets", "import", "mnist", str(tmp_path / "served" / "none"), "--data-dir", str(root)]
    )
    assert partial.exit_code == 1 and "missing train-images-idx3-ubyte" in partial.stderr


def test_mismatching_download_is_rejected(mirror, tmp_path, monkeypatch):
    served, _ = mirror
    publish(monkeypatch, served, "mnist")
    (served / "mnist" / "train-labels-idx1-ubyte.gz").write_bytes(b"tampered on the server")
    with pytest.raises(ChecksumError, match="train-labels-idx1-ubyte.gz.part: checksum mismatch"):
        datasets.get("mnist")().download(tmp_path / "data")
    assert not (tmp_path / "data" / "mnist" / "train-labels-idx1-ubyte.gz").exists()


def test_missing_dataset_fails_before_training_with_files_urls_and_command(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(
        app, ["run", "--suite", "mnist-lowT", "--budget", "smoke", "--data-dir", str(tmp_path)]
    )
    assert result.exit_code == 1
    assert f"dataset 'mnist' is not in {tmp_path / 'mnist'}; missing:" in result.stderr
    assert "train-images-idx3-ubyte.gz (md5 f68b3c2dcbeaaa9fbdd348bbdeb94873) from https://" in result.stderr
    assert "Run `snnbench datasets download mnist`" in result.stderr
    assert not (tmp_path / "results").exists()


def test_extracted_data_without_archives_is_accepted(mirror, tmp_path, monkeypatch):
    served, _ = mirror
    root = tmp_path / "data"
    publish(monkeypatch, served, "mnist")
    publish(monkeypatch, served, "nmnist")
    for name in ("mnist", "nmnist"):
        datasets.get(name)().download(root)
    import gzip

    for gz in (root / "mnist").glob("*.gz"):  # a lab that keeps the decompressed IDX files only
        gz.with_suffix("").write_bytes(gzip.decompress(gz.read_bytes()))
        gz.unlink()
    for archive in (root / "NMNIST").glob("*.zip"):
        archive.unlink()
    dataset = datasets.get("mnist")()  # IDX: the raw files' content is verified
    assert dataset.status(root) == "verified"
    loaded = dataset.load(dataset.Options(), root, T=4)
    assert len(loaded.train) == EXPECTED["mnist"][0] and len(loaded.provenance["files_sha256"]) == 4
    dataset = datasets.get("nmnist")()
    assert dataset.status(root) == "extracted"
    loaded = dataset.load(dataset.Options(), root, T=4)
    assert len(loaded.train) == EXPECTED["nmnist"][0]
    assert "extracted" in loaded.provenance["files_md5"]


class _Planted:
    """Pickles to a call of ``os.system``: a plain ``pickle.load`` runs the command."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def test_a_planted_cifar_pickle_fails_its_checksum_and_runs_no_code(mirror, tmp_path, monkeypatch):
    """Extracted CIFAR batches are checked against their published MD5s, and unpickled with only the
    globals the format uses: a planted ``data_batch_1`` never runs code."""
    import pickle
    import tarfile

    from snnbench.data.cifar import CIFAR10
    from snnbench.data.download import md5sum

    served, _ = mirror
    publish(monkeypatch, served, "cifar10")
    root = tmp_path / "data"
    dataset = datasets.get("cifar10")()
    (archive,) = dataset.download(root)
    with tarfile.open(archive) as tar:
        tar.extractall(archive.parent, filter="data")
    archive.unlink()
    extracted = archive.parent / "cifar-10-batches-py"
    # the fixture's genuine batches stand in for the published ones
    monkeypatch.setattr(CIFAR10, "members_md5", {m: md5sum(extracted / m) for m in CIFAR10.members_md5})
    assert dataset.verify(root)["cifar-10-batches-py/test_batch"] == CIFAR10.members_md5["test_batch"]
    marker = tmp_path / "ran"
    planted = pickle.dumps(_Planted(marker), protocol=2)
    (extracted / "data_batch_1").write_bytes(planted)

    result = CliRunner().invoke(app, ["datasets", "verify", "cifar10", "--data-dir", str(root)])
    assert result.exit_code != 0 and "data_batch_1: checksum mismatch" in result.stderr
    assert (extracted / "data_batch_1.corrupt").exists() and not marker.exists()

    # where no published checksum would catch it, the unpickler refuses it
    (extracted / "data_batch_1").write_bytes(planted)
    monkeypatch.setitem(CIFAR10.members_md5, "data_batch_1", md5sum(extracted / "data_batch_1"))
    with pytest.raises(SnnbenchError, match=r"data_batch_1: not a CIFAR pickle \(posix.system is not part"):
        dataset.load(dataset.Options(), root, T=1)
    assert not marker.exists()


def test_event_frames_are_cached_by_every_parameter(mirror, tmp_path, monkeypatch):
    served, _ = mirror
    publish(monkeypatch, served, "nmnist")
    root = tmp_path / "data"
    dataset = datasets.get("nmnist")()
    dataset.download(root)
    first = dataset.load(dataset.Options(), root, T=4)
    assert len(list((root / "cache" / "nmnist").glob("*.pt"))) == 2
    import tonic.datasets

    monkeypatch.setattr(tonic.datasets.NMNIST, "__getitem__", lambda *a: pytest.fail("events read again"))
    again = dataset.load(dataset.Options(), root, T=4)
    assert torch.equal(first.train.x, again.train.x) and torch.equal(first.test.y, again.test.y)
    with pytest.raises(pytest.fail.Exception, match="events read again"):  # another T is another key
        dataset.load(dataset.Options(), root, T=5)
    with pytest.raises(pytest.fail.Exception, match="events read again"):  # so is another option
        dataset.load(dataset.Options(binary=True), root, T=4)


def test_frames_bin_events_exactly(mirror, tmp_path, monkeypatch):
    """Every event lands in one frame, except those at the recording's last timestamp: tonic's
    ``n_time_bins`` slices are half-open [t_first, t_last) (documented in docs/datasets.md)."""
    served, _ = mirror
    files = publish(monkeypatch, served, "nmnist")
    root = tmp_path / "data"
    dataset = datasets.get("nmnist")()
    dataset.download(root)
    loaded = dataset.load(dataset.Options(), root, T=3)
    with zipfile.ZipFile(root / "NMNIST" / "test.zip") as z:
        first = sorted(n for n in z.namelist() if n.endswith(".bin"))[0]
        raw = np.frombuffer(z.read(first), np.uint8).astype(np.int64).reshape(-1, 5)
    ts = ((raw[:, 2] & 127) << 16) | (raw[:, 3] << 8) | raw[:, 4]
    assert "test.zip" in files and int(loaded.test.x[0].sum()) == int((ts < ts.max()).sum())


def test_crop_and_flip_is_a_crop_of_the_padded_image():
    x = torch.arange(2 * 3 * 5 * 5, dtype=torch.float32).view(2, 3, 5, 5)
    out = crop_and_flip(2, (-1.0, -2.0, -3.0))(x, torch.Generator().manual_seed(0))
    padded = torch.nn.functional.pad(x, [2] * 4)
    for c, fill in enumerate((-1.0, -2.0, -3.0)):
        padded[:, c][padded[:, c] == 0] = fill
    padded[0, 0, 2, 2] = 0.0  # the one true zero pixel
    for i in range(2):
        candidates = [padded[i, :, r : r + 5, s : s + 5] for r in range(5) for s in range(5)]
        candidates += [c.flip(-1) for c in candidates]
        assert any(torch.equal(out[i], c) for c in candidates)


def test_crop_shifts_cover_every_offset_and_half_the_images_flip():
    """Padding 1: each image moves by −1, 0 or +1 rows (its pixel (1, 1) lands in row 0, 1 or 2), and about
    half of them are mirrored (pixel (1, 1) in column 2 − dx, or 1 + dx when mirrored)."""
    x = torch.arange(1.0, 17.0).view(1, 1, 4, 4).repeat(400, 1, 1, 1)
    out = crop_and_flip(1)(x, torch.Generator().manual_seed(0))
    rows, cols = (out[:, 0] == 6.0).nonzero()[:, 1:].T  # value 6 is pixel (1, 1)
    assert set(rows.tolist()) == {0, 1, 2} and set(cols.tolist()) == {0, 1, 2, 3}
    neighbour = (out[:, 0] == 7.0).nonzero()[:, 2]  # pixel (1, 2): left of pixel (1, 1) when mirrored
    flipped = neighbour < cols
    assert 150 < int(flipped.sum()) < 250


def test_datasets_list_shows_every_dataset_with_status(tmp_path):
    result = runner.invoke(app, ["datasets", "list", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0
    for name in datasets.names():
        assert name in result.output
    assert "embedded" in result.output and "missing" in result.output


SUITES = [
    "mnist-lowT",
    "fmnist-lowT",
    "fmnist-cpu",
    "cifar10-lowT",
    "cifar100-lowT",
    "nmnist",
    "dvsgesture",
    "cifar10dvs",
    "shd",
]


def test_cifar10dvs_split_is_the_shipped_seeded_index():
    """The shipped index regenerates from its seed: 100 of each class's 1,000 sorted recordings are test."""
    import json

    from snnbench.data.neuromorphic import SPLITS, make_split_index

    shipped = json.loads((SPLITS / "cifar10dvs.json").read_text())
    assert shipped == make_split_index(dict.fromkeys(shipped["per_class"], 1000), seed=shipped["seed"])
    assert len(shipped["per_class"]) == 10 and all(len(v) == 100 for v in shipped["test"].values())


def test_cifar10dvs_split_is_disjoint_stratified_and_recorded(mirror, tmp_path, monkeypatch):
    served, _ = mirror
    publish(monkeypatch, served, "cifar10dvs")
    root = tmp_path / "data"
    dataset = datasets.get("cifar10dvs")()
    dataset.download(root)
    options = dataset.Options(**fixture_options("cifar10dvs", tmp_path))
    loaded = dataset.load(options, root, T=2)
    assert (
        torch.bincount(loaded.test.y).tolist() == [1] * 10
        and torch.bincount(loaded.train.y).tolist() == [9] * 10
    )
    assert len(loaded.provenance["split_sha256"]) == 64
    with pytest.raises(SnnbenchError, match="split index is for"):  # the 1,000-per-class index does not fit
        dataset.load(dataset.Options(), root, T=2)


# Three samples in one batch per entry: every network, method, input coding and preprocessing of every suite
# trains and is evaluated on the real file formats, at a fifth to a tenth of the smoke budget's cost (the
# CIFAR suites' smoke budgets train VGG-scale networks on ~40 samples: minutes per suite on one core).
FIXTURE_BUDGET = Budget(epochs=1, batch_size=4, train_subset=4, test_subset=2)


def _run_every_entry_on_the_fixtures(suite_name, budget_name, mirror, tmp_path, monkeypatch):
    served, _ = mirror
    suite = load_suite(suite_name)
    options = {**suite.dataset_options, **fixture_options(suite.dataset, tmp_path)}
    budgets = {**suite.budgets, "fixture": FIXTURE_BUDGET}
    suite = suite.model_copy(update={"dataset_options": options, "budgets": budgets})
    publish(monkeypatch, served, suite.dataset)
    root = tmp_path / "data"
    datasets.get(suite.dataset)().download(root)
    # one T and one seed per method; the grid is tested on digits
    T = min(suite.timesteps)
    result = run_suite(
        suite,
        Overrides(budget=budget_name, seeds=[0], timesteps=[T]),
        out_dir=tmp_path / "results",
        data_dir=root,
    )
    assert {r.entry for r in result.records} == set(suite.algorithms)
    assert all(r.status == "ok" and r.T == T for r in result.records), [r.error for r in result.records]
    assert all(r.budget == budget_name for r in result.records)
    assert all(
        r.dataset_provenance.get("files_md5") or r.dataset_provenance.get("files_sha256")
        for r in result.records
    )
    shutil.rmtree(root / "cache", ignore_errors=True)
    return result.records


@pytest.mark.parametrize("suite_name", SUITES)
def test_every_suite_entry_trains_and_evaluates_on_the_fixtures(suite_name, mirror, tmp_path, monkeypatch):
    records = _run_every_entry_on_the_fixtures(suite_name, "fixture", mirror, tmp_path, monkeypatch)
    # the fixture budget reached every entry, including those with their own smoke budget
    sizes = {(r.metrics["train_size"] + r.metrics["val_size"], r.metrics["test_size"]) for r in records}
    assert sizes == {(FIXTURE_BUDGET.train_subset, FIXTURE_BUDGET.test_subset)}


@pytest.mark.slow
@pytest.mark.parametrize("suite_name", SUITES)
def test_every_suite_runs_its_smoke_budget_on_the_fixtures(suite_name, mirror, tmp_path, monkeypatch):
    _run_every_entry_on_the_fixtures(suite_name, "smoke", mirror, tmp_path, monkeypatch)


def test_a_poisoned_manifest_does_not_let_fake_cifar_load(mirror, tmp_path, monkeypatch):
    """Issue 47: a fake CIFAR archive of the genuine size and mtime, with a manifest entry claiming the
    published MD5 (the old size + mtime layout), trained and the record claimed the MD5. The entry is not
    this user's (no MAC under their key, and the ctime moved): the file is rehashed and refused."""
    import json
    import os

    from snnbench.data.download import MANIFEST

    served, _ = mirror
    files = publish(monkeypatch, served, "cifar10")
    root = tmp_path / "data"
    datasets.get("cifar10")().download(root)
    (archive,) = (root / "cifar10").glob("*.tar.gz")
    stat = archive.stat()
    archive.write_bytes(bytes(reversed(files[archive.name])))
    os.utime(archive, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    poisoned = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "md5": _md5(files[archive.name])}
    (archive.parent / MANIFEST).write_text(json.dumps({archive.name: poisoned}))
    result = runner.invoke(app, ["datasets", "verify", "cifar10", "--data-dir", str(root)])
    assert result.exit_code == 1 and f"{archive}: checksum mismatch" in result.stderr
    with pytest.raises(DatasetMissingError):
        datasets.get("cifar10")().load(datasets.get("cifar10").Options(), root, 1)


def _md5(data: bytes) -> str:
    import hashlib

    return hashlib.md5(data).hexdigest()
