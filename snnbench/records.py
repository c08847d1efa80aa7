"""Run records: one immutable JSON file per run, written atomically, versioned, self-describing.

Layout under an output directory ``OUT`` (``results`` by default)::

    OUT/<suite>/runs/<run_id>.json        the records (committed for the reference suites)
    OUT/<suite>/leaderboard.md, .csv, pareto*.png/.svg   reports of the suite's default budget
    OUT/<suite>/budgets/<budget>/…        reports of another budget (a smoke run never replaces the above)
    OUT/<suite>/checkpoints/<run_id>.pt   last checkpoint of an unfinished run (git-ignored)
    OUT/<suite>/cache/<training_key>.pt   trained networks shared across T (git-ignored)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from snnbench.errors import OutputError, RecordError

SCHEMA_VERSION = 1
Status = Literal["ok", "diverged", "failed"]

# upgrade functions for older schemas: {old_version: function(dict) -> dict of old_version + 1}
UPGRADES: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}


class RunRecord(BaseModel):
    """Everything about one run. ``metrics`` keys are documented in :data:`snnbench.metrics.METRICS`."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = SCHEMA_VERSION
    run_id: str
    suite: str
    suite_version: int
    entry: str
    algorithm: str
    algorithm_version: int
    algorithm_source_sha256: str
    dataset: str
    T: int
    seed: int
    budget: str
    spec: dict[str, Any]
    spec_hash: str
    status: Status
    error: str | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    # how the runner scored the metrics: {"ties": "expected-uniform"} (snnbench.ties); None: a record made
    # before the rule, whose top1 is the method's own read-out (argmax, a tie to the lowest class index)
    metrics_protocol: dict[str, str] | None = None
    history: list[dict[str, Any]] = Field(default_factory=list)
    dataset_provenance: dict[str, Any] = Field(default_factory=dict)
    environment: dict[str, Any] = Field(default_factory=dict)
    resumed_from_epoch: int = 0
    training_shared_with: str | None = None  # run trained once for all T (method ignores T in training)
    model_sha256: str | None = None  # sha256 of models/<run_id>.pt (``run --save-models``), else None
    started_at: str
    finished_at: str
    content_sha256: str | None = None  # of everything above (record_sha256); set by RecordStore.save


def record_sha256(data: dict[str, Any]) -> str:
    """A record's content hash: :func:`~snnbench.suite.canonical_sha256` of its JSON without this field."""
    from snnbench.suite import canonical_sha256

    return canonical_sha256({key: value for key, value in data.items() if key != "content_sha256"})


def content_problem(data: dict[str, Any]) -> str | None:
    """Why a record's JSON fails its content hash (missing, or not :func:`record_sha256` of the rest), or
    None. The hash is unkeyed: it catches accidental edits and copies that were not rehashed, not a forger
    who recomputes it (``snnbench reproduce`` retrains and is the check of truth)."""
    stored = data.get("content_sha256")
    if stored is None:
        return "unhashed record (no content_sha256; rerun it to rewrite it)"
    if stored != record_sha256(data):
        return "content hash mismatch: edited after it was written"
    return None


def umask_mode(mode: int) -> int:
    """``mode`` less the process's umask: what ``open``/``mkdir`` would create (``mkstemp`` ignores it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mode & ~mask


def temporary_prefix(path: Path) -> str:
    """The name start of ``path``'s temporary files: ``.<name>.<pid>@<host>+`` (then a random part and
    ``.tmp``), so that :meth:`RecordStore.remove_stale_temporaries` knows whose write left one behind."""
    return f".{path.name}.{os.getpid()}@{socket.gethostname()}+"


TEMPORARY = re.compile(r"\.(\d+)@([^+/@]*)\+[^/]*\.tmp$")
ORPHAN_AFTER_S = 3600.0  # a temporary file of another host (or unnamed) untouched this long is a leftover


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a temporary file in the same directory, fsync, then ``os.replace``: never half a file.
    The file gets the permissions a plain ``open`` would give (the umask's). A file system error (read-only
    folder, full disk) is an :class:`OutputError` naming ``path``; the old file, if any, stays whole.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=temporary_prefix(path), suffix=".tmp")
    except OSError as exc:
        raise OutputError(path, exc.strerror or str(exc)) from None
    try:
        os.fchmod(fd, umask_mode(0o666))
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise OutputError(path, exc.strerror or str(exc)) from None
        raise


def atomic_torch_save(path: Path, obj: Any) -> str:
    """``torch.save`` with the same atomic guarantee; returns the file's sha256."""
    import io

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())
    return hashlib.sha256(buffer.getvalue()).hexdigest()


def read_record(path: Path) -> RunRecord:
    """Load one record, upgrading older schemas and refusing newer ones by name."""
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RecordError(path, f"not a readable JSON record ({exc})") from None
    if not isinstance(data, dict):
        raise RecordError(path, f"expected a JSON object, got {type(data).__name__}")
    version = data.get("schema_version")
    if not isinstance(version, int):
        raise RecordError(path, "has no schema_version")
    if version > SCHEMA_VERSION:
        raise RecordError(
            path,
            f"was written with record schema {version}; this snnbench reads up to {SCHEMA_VERSION}: upgrade",
        )
    while version < SCHEMA_VERSION:
        data = UPGRADES[version](data)
        version = data["schema_version"]
    try:
        record = RunRecord.model_validate(data)
    except ValidationError as exc:
        raise RecordError(path, f"does not match the record schema: {exc.errors()[0]['msg']}") from None
    problem = metrics_problem(record)
    if problem:
        raise RecordError(path, problem)
    return record


# physical range of a metric by its unit (snnbench.metrics.METRICS); any other number need only be finite
_PERCENT, _FRACTION = (0.0, 100.0), (0.0, 1.0)
_NON_NEGATIVE_UNITS = {"count", "B", "s", "1/s", "MiB", "ms", "steps", "ops", "nJ", "1/step"}


def _metric_range(name: str) -> tuple[float, float] | None:
    from snnbench.metrics import METRICS
    from snnbench.ties import TIE_METRICS  # noqa: F401 - declares the tie metrics in METRICS

    metric = METRICS.get(name)
    if metric is None:
        return None
    if metric.unit == "%":
        return _PERCENT
    if metric.unit == "fraction":
        return _FRACTION
    return (0.0, math.inf) if metric.unit in _NON_NEGATIVE_UNITS else (-math.inf, math.inf)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def metrics_problem(record: RunRecord, ranked: bool = False) -> str | None:
    """Why a record's metrics cannot be true, or None: a documented metric that is not a number or lies
    outside its physical range (a percentage outside [0, 100], a count below 0), or any non-finite number
    (nested ones included). Missing values (``null``) are allowed, except, for a ``ranked`` record (one read
    for a leaderboard or ``reproduce``; a tuning trial never reads the test set), an ``ok`` run's ``top1``."""
    if ranked and record.status == "ok" and record.metrics.get("top1") is None:
        return "metrics.top1: an ok run must have a top-1"

    def walk(name: str, value: Any, bounds: tuple[float, float] | None) -> str | None:
        if value is None:
            return None
        if isinstance(value, dict):
            return next((p for k, v in value.items() if (p := walk(f"{name}.{k}", v, None))), None)
        if isinstance(value, list):
            return next((p for i, v in enumerate(value) if (p := walk(f"{name}[{i}]", v, None))), None)
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not number:
            return f"metrics.{name}: expected a number, got {_shown(value)}" if bounds else None
        if not math.isfinite(value):
            return f"metrics.{name}: expected a finite number, got {value}"
        if bounds and not bounds[0] <= value <= bounds[1]:
            low, high = bounds
            return f"metrics.{name}: {_shown(value)} is outside its physical range [{low:g}, {high:g}]"
        return None

    return next((p for k, v in record.metrics.items() if (p := walk(k, v, _metric_range(k)))), None)


class RecordStore:
    """The files of one suite under an output directory."""

    def __init__(self, out_dir: str | Path, suite: str) -> None:
        self.root = Path(out_dir) / suite
        self.runs = self.root / "runs"
        self.checkpoints = self.root / "checkpoints"
        self.cache = self.root / "cache"

    def record_path(self, run_id: str) -> Path:
        """Where the record of ``run_id`` lives."""
        return self.runs / f"{run_id}.json"

    def save(self, record: RunRecord) -> Path:
        """Write a record atomically, with its content hash."""
        path = self.record_path(record.run_id)
        data = record.model_dump(mode="json")
        data["content_sha256"] = record_sha256(data)
        text = json.dumps(data, indent=2, sort_keys=False, allow_nan=False)
        atomic_write_bytes(path, (text + "\n").encode())
        return path

    def ensure_writable(self) -> None:
        """Fail before any training when the records cannot be written (read-only ``--out``, full disk)."""
        probe = self.root / ".writable"
        try:
            atomic_write_bytes(probe, bytes(4096))  # one block: an empty file fits on a full disk
        except OutputError as exc:
            raise OutputError(self.root, exc.reason) from None
        probe.unlink()

    def remove_stale_temporaries(self) -> list[Path]:
        """Delete the ``.*.tmp`` files that killed atomic writes left under the suite's folder; returns them.
        A file is a leftover when the process named in it (this host) is gone or started after the file was
        last written, or when it names another host (or nothing) and is over :data:`ORPHAN_AFTER_S` old; a
        write in progress is never touched."""
        from snnbench.executors import process_started

        removed = []
        for path in self.root.rglob(".*.tmp") if self.root.is_dir() else []:
            try:
                modified = path.stat().st_mtime
            except OSError:
                continue
            match = TEMPORARY.search(path.name)
            if match and match[2] == socket.gethostname():
                started = process_started(int(match[1]))
                stale = started is None or started > modified + 1.0
            else:
                stale = time.time() - modified > ORPHAN_AFTER_S
            if stale:
                with contextlib.suppress(OSError):
                    path.unlink()
                    removed.append(path)
        return removed

    def load(self, run_id: str) -> RunRecord | None:
        """The record of ``run_id``, or None."""
        path = self.record_path(run_id)
        return read_record(path) if path.is_file() else None

    def all(self) -> list[RunRecord]:
        """Every record of the suite, sorted by run id."""
        if not self.runs.is_dir():
            return []
        return [read_record(p) for p in sorted(self.runs.glob("*.json"))]

    # checkpoints and shared training -----------------------------------------------------------------
    def checkpoint_path(self, run_id: str) -> Path:
        """The last checkpoint of an unfinished run (see :func:`snnbench.runner.checkpoint_interval`)."""
        return self.checkpoints / f"{run_id}.pt"

    @contextlib.contextmanager
    def reports_lock(self) -> Iterator[None]:
        """An exclusive lock around writing the suite's aggregated files (leaderboard, plots)."""
        import fcntl

        self.ensure_writable()
        with open(self.root / ".reports.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def model_path(self, run_id: str) -> Path:
        """The final network of a run saved with ``--save-models``: a plain state dict."""
        return self.root / "models" / f"{run_id}.pt"

    def trained_path(self, training_key: str) -> Path:
        """Trained network shared by runs that differ only in T."""
        return self.cache / f"{training_key[:16]}.pt"


def setup_columns(spec: dict[str, Any]) -> dict[str, Any]:
    """What a reader needs to judge whether two runs were set up alike: track, architecture, budget,
    encoding, preprocessing and where the hyperparameters came from."""
    trials = spec.get("tuning_trials")
    return {
        "track": spec.get("track", "official"),
        "arch": spec.get("arch"),
        "encoding": spec.get("encoding"),
        "epochs": spec.get("epochs"),
        "batch_size": spec.get("batch_size"),
        "preprocess": "entry" if spec.get("preprocess") else "dataset",
        "tuning": f"{trials} trials on val" if trials else "defaults",
    }


# RunSpec fields that do not change a run's numbers (scheduling, energy constants), and the seed: the
# fields a row's records share are everything else
_NOT_IDENTITY = ("seed", "num_cpus", "num_gpus", "energy")


def row_identity(record: RunRecord) -> dict[str, Any]:
    """What a leaderboard row's records share, as plain JSON: the full resolved spec less the seed and the
    fields that cannot change the numbers, the record's own suite, version, entry, method, code version,
    dataset, T and budget (so that a record of another suite, dataset, set-up or method version never
    joins a row), and the record's ``metrics_protocol`` where it has one (a record scored by the common tie
    rule never joins a row of records made before it, whose top-1 gave a tie to the lowest index; records
    without one keep the identity they always had). The method's source hash is not part of it: a changed
    source only flags a row stale."""
    identity = {
        "suite": record.suite,
        "suite_version": record.suite_version,
        "entry": record.entry,
        "algorithm": record.algorithm,
        "algorithm_version": record.algorithm_version,
        "dataset": record.dataset,
        "T": record.T,
        "budget": record.budget,
        "spec": {k: v for k, v in record.spec.items() if k not in _NOT_IDENTITY},
    }
    if record.metrics_protocol is not None:
        identity["metrics_protocol"] = record.metrics_protocol
    return identity


def load_records(path: str | Path) -> Any:
    """Records of a ``runs`` directory (or a suite directory) as a pandas DataFrame, one row per run.

    Columns: the record's scalar fields, one column per metric, the set-up columns, ``ties_rule`` (which tie
    rule made ``top1``: :func:`snnbench.ties.rule_of`), ``row_key`` and
    ``row_identity`` (:func:`row_identity`: which records may share a leaderboard row), ``content_key`` (the
    record's content hash: copies under two file names share it), ``file`` and ``machine``
    (:func:`snnbench.rows.machine_kind`).
    """
    import pandas as pd

    from snnbench.rows import machine_kind
    from snnbench.suite import canonical_sha256
    from snnbench.ties import rule_of

    path = Path(path)
    runs = path / "runs" if (path / "runs").is_dir() else path
    rows = []
    for file in sorted(runs.glob("*.json")):
        record = read_record(file)
        if problem := metrics_problem(record, ranked=True):
            raise RecordError(file, problem)
        row = {
            key: value
            for key, value in record.model_dump().items()
            if (not isinstance(value, (dict, list)) or key == "metrics") and key != "metrics_protocol"
        }
        row.update(row.pop("metrics"))
        row.update(setup_columns(record.spec))
        row["ties_rule"] = rule_of(record.metrics_protocol)  # which rule made top1 (snnbench.ties)
        identity = row_identity(record)
        row["row_key"] = canonical_sha256(identity)  # what a leaderboard row is: snnbench.rows
        row["row_identity"] = json.dumps(identity, sort_keys=True)
        row["content_key"] = record_sha256(record.model_dump(mode="json"))  # copies share it
        row["file"] = str(file)
        row["git_revision"] = record.environment.get("git", {}).get("revision")
        row["device"] = record.environment.get("device")
        row["machine"] = machine_kind(record.environment)  # device and CPU generation (snnbench.rows)
        rows.append(row)
    return pd.DataFrame(rows)
