"""``snnbench status``: where a suite's grid stands, from its records, lock files and checkpoints alone.

Each run of the expanded grid is ``done`` (an ok or diverged record of the current method version and
source), ``stale`` (a record made by another version or source: ``run`` keeps it, the leaderboard flags it),
``failed``, ``running`` (its lock is held by a live process, or by another host that keeps refreshing it),
``resumable`` (a checkpoint but no holder: ``run`` resumes it) or ``pending``. A stale lock (its process is
gone or its pid reused, another host stopped refreshing it, an empty or unreadable file: see
:mod:`snnbench.executors`) does not make a run ``running``: it is listed apart, and ``run`` takes it over.
The time left is the mean wall time of the entry's finished records (start to end, evaluation included)
times its unfinished runs, one at a time.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from snnbench.records import RecordStore, read_record
from snnbench.suite import Overrides, Suite, expand

STATES = ["done", "stale", "failed", "running", "resumable", "pending"]
UNFINISHED = ("failed", "running", "resumable", "pending")


@dataclass
class EntryStatus:
    """Counts of one suite entry's runs per state, and the time its unfinished runs should take."""

    entry: str
    counts: Counter[str] = field(default_factory=Counter)
    seconds_per_run: float | None = None  # mean over finished records; None when there are none
    running: list[str] = field(default_factory=list)  # "run_id (host:pid)"
    stale_locks: list[str] = field(default_factory=list)  # "run_id (host:pid: why it is stale)"

    @property
    def eta_s(self) -> float | None:
        """Seconds left for the unfinished runs (None: no finished record to estimate from)."""
        left = sum(self.counts[s] for s in UNFINISHED)
        if not left:
            return 0.0
        return None if self.seconds_per_run is None else left * self.seconds_per_run


def _seconds(started: str, finished: str) -> float:
    return (dt.datetime.fromisoformat(finished) - dt.datetime.fromisoformat(started)).total_seconds()


def suite_status(suite: Suite, out_dir: str | Path, budget: str | None = None) -> list[EntryStatus]:
    """The state of every run in ``suite``'s grid (budget default: the suite's), grouped by entry."""
    from snnbench.executors import lock_state
    from snnbench.leaderboard import _current_sources

    current = _current_sources()
    store = RecordStore(out_dir, suite.name)
    entries: dict[str, EntryStatus] = {}
    durations: dict[str, list[float]] = {}
    for spec in expand(suite, Overrides(budget=budget)):
        status = entries.setdefault(spec.entry, EntryStatus(spec.entry))
        path = store.record_path(spec.run_id)
        if path.is_file():
            record = read_record(path)
            if record.status == "failed":
                state = "failed"
            else:
                durations.setdefault(spec.entry, []).append(_seconds(record.started_at, record.finished_at))
                made_by = (record.algorithm_version, record.algorithm_source_sha256)
                state = "done" if current.get(record.algorithm) == made_by else "stale"
        elif (lock := lock_state(store, spec.run_id)) is not None and lock.stale is None:
            state = "running"
            status.running.append(f"{spec.run_id} ({lock.owner})")
        else:
            if lock is not None:
                status.stale_locks.append(f"{spec.run_id} ({lock.owner}: {lock.stale})")
            state = "resumable" if store.checkpoint_path(spec.run_id).is_file() else "pending"
        status.counts[state] += 1
    for entry, seconds in durations.items():
        entries[entry].seconds_per_run = sum(seconds) / len(seconds)
    return list(entries.values())


def format_duration(seconds: float | None) -> str:
    """``1 h 05 min``, ``4 min 10 s``, ``12 s``; ``?`` when unknown."""
    if seconds is None:
        return "?"
    seconds = round(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    if seconds >= 60:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds} s"


def summary_line(statuses: list[EntryStatus]) -> str:
    """One line: total runs per state and the time left (a lower bound when some entries have no record)."""
    total: Counter[str] = Counter()
    for s in statuses:
        total.update(s.counts)
    etas = [s.eta_s for s in statuses]
    known = sum(e for e in etas if e is not None)
    unknown = [s.entry for s, e in zip(statuses, etas, strict=True) if e is None]
    parts = ", ".join(f"{total[s]} {s}" for s in STATES if total[s])
    line = f"{sum(total.values())} runs: {parts}; time left ≈ {format_duration(known)} (one run at a time)"
    if unknown:
        line += f" plus the runs of {', '.join(unknown)} (no finished record to estimate from)"
    return line


__all__ = ["EntryStatus", "format_duration", "suite_status", "summary_line"]
