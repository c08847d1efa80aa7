"""Writing results when the disk says no: a read-only ``--out`` and a full disk are clean errors, and no
record, leaderboard or plot is ever left torn."""

from __future__ import annotations

import builtins
import errno
import os
from pathlib import Path

import pytest
from test_leaderboard import record
from typer.testing import CliRunner

from snnbench.cli import app
from snnbench.errors import OutputError
from snnbench.grid import run_suite
from snnbench.leaderboard import write_reports
from snnbench.records import RecordStore, atomic_write_bytes
from snnbench.suite import load_suite

runner = CliRunner()


class _Capped:
    """A file on a disk with ``disk.free`` bytes left: writes what fits, then fails with ENOSPC."""

    def __init__(self, handle, disk):
        self._handle, self._disk = handle, disk

    def write(self, data):
        room = max(0, self._disk.free)
        self._handle.write(bytes(data[:room]))
        self._disk.free -= len(data)
        if len(data) > room:
            raise OSError(errno.ENOSPC, "No space left on device")
        return len(data)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._handle.close()

    def __getattr__(self, name):
        return getattr(self._handle, name)


@pytest.fixture
def full_disk(monkeypatch, tmp_path):
    """Files opened for writing under tmp_path share ``free`` bytes (set by the test; unlimited at first)."""

    class Disk:
        free = 1 << 40

    disk = Disk()
    real_open, real_fdopen = builtins.open, os.fdopen

    def capped(opener, target, mode="r", *args, **kwargs):
        handle = opener(target, mode, *args, **kwargs)
        path = Path(target) if isinstance(target, (str, os.PathLike)) else None
        under = path is None or str(path.resolve()).startswith(str(tmp_path.resolve()))
        return _Capped(handle, disk) if ("w" in mode or "a" in mode) and "b" in mode and under else handle

    monkeypatch.setattr(builtins, "open", lambda t, m="r", *a, **k: capped(real_open, t, m, *a, **k))
    monkeypatch.setattr(os, "fdopen", lambda fd, m="r", *a, **k: capped(real_fdopen, fd, m, *a, **k))
    return disk


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_full_disk_leaves_reports_and_plots_whole(write_suite, tmp_path, full_disk):
    """Each report file is either the old one or the complete new one, whichever byte the disk fills at."""
    suite = load_suite(write_suite({"timesteps": [1, 4]}))
    store = RecordStore(tmp_path / "results", "tiny")
    for T, top1 in ((1, 80.0), (4, 90.0)):
        store.save(record("bptt", T, 0, top1))
    write_reports(suite, store.root)
    store.save(record("bptt", 4, 1, 94.0))  # the next reports differ in every file
    before = _snapshot(store.root)
    sizes = []
    for free in (0, 100, 5_000, 30_000):  # in the first file, inside the markdown, the csv, a plot
        full_disk.free = free
        with pytest.raises(OutputError, match="No space left on device"):
            write_reports(suite, store.root)
        sizes.append(_snapshot(store.root))
    full_disk.free = 1 << 40
    write_reports(suite, store.root)
    after = _snapshot(store.root)
    assert all(
        before[name] != after[name] for name in ("leaderboard.md", "leaderboard.csv", "pareto-official.svg")
    )
    for snapshot in sizes:
        assert set(snapshot) == set(before)  # no temporary files left
        assert all(snapshot[name] in (before[name], after[name]) for name in snapshot)
    assert sizes[-1]["leaderboard.md"] == after["leaderboard.md"]  # the last failure got as far as a plot


def test_full_disk_during_a_run_is_a_clean_error_and_no_torn_record(write_suite, tmp_path, full_disk):
    out = tmp_path / "results"
    full_disk.free = 0
    result = runner.invoke(app, ["run", "--suite", str(write_suite()), "--out", str(out), "--quiet"])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"Error: {out / 'tiny'}: cannot write (No space left on device)")
    assert not list(out.rglob("*.json")) and not list(out.rglob("*.tmp"))


def test_record_write_failing_mid_run_stops_the_suite_without_a_torn_record(
    write_suite, tmp_path, monkeypatch
):
    store_save = RecordStore.save

    def save_on_full_disk(self, record):
        monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space")))
        return store_save(self, record)

    monkeypatch.setattr(RecordStore, "save", save_on_full_disk)
    out = tmp_path / "results"
    with pytest.raises(OutputError, match=r"runs/bptt_T2_s0_smoke_\w+\.json: cannot write \(No space\)"):
        run_suite(load_suite(write_suite()), out_dir=out, device="cpu")
    assert not list(out.rglob("*.json")) and not list(out.rglob("*.tmp"))


def test_read_only_out_is_a_clean_error_before_training(write_suite, tmp_path, monkeypatch):
    out = tmp_path / "results"
    out.mkdir()
    if os.geteuid() == 0:  # root writes anywhere: have the file system refuse as a read-only mount would
        import tempfile

        def refuse(*args, **kwargs):
            raise OSError(errno.EROFS, "Read-only file system")

        monkeypatch.setattr(tempfile, "mkstemp", refuse)
    else:
        out.chmod(0o555)
    result = runner.invoke(app, ["run", "--suite", str(write_suite()), "--out", str(out), "--quiet"])
    out.chmod(0o755)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"Error: {out / 'tiny'}: cannot write (")
    assert "Traceback" not in result.output and not list(out.rglob("*.json"))


def test_output_error_crosses_process_pools():
    import pickle

    error = pickle.loads(pickle.dumps(OutputError("/x/y.json", "No space left on device")))
    assert (
        str(error) == "/x/y.json: cannot write (No space left on device); choose another --out or free space"
    )


def test_atomic_write_keeps_the_old_file_when_the_disk_fills(tmp_path, full_disk):
    path = tmp_path / "record.json"
    atomic_write_bytes(path, b"old contents")
    full_disk.free = 3
    with pytest.raises(OutputError):
        atomic_write_bytes(path, b"new contents that do not fit")
    assert path.read_bytes() == b"old contents" and [p.name for p in tmp_path.iterdir()] == ["record.json"]


def test_a_checkpoint_on_a_full_disk_is_not_recorded_as_the_methods_failure(
    write_suite, tmp_path, monkeypatch
):
    def full(path, obj):
        raise OutputError(path, "No space left on device")

    monkeypatch.setattr("snnbench.runner.atomic_torch_save", full)
    monkeypatch.setenv("SNNBENCH_CHECKPOINT_EVERY_S", "0")  # a checkpoint after the first epoch
    out = tmp_path / "results"
    with pytest.raises(OutputError, match=r"checkpoints/bptt_T2_s0_smoke_\w+\.pt: cannot write"):
        run_suite(load_suite(write_suite()), out_dir=out, device="cpu")
    assert not list(out.rglob("*.json"))
