"""Keep committed results true: ``leaderboard --check`` (stale reports) and ``merge`` (records from
several machines folded into one results directory)."""

from __future__ import annotations

import difflib
import json
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from snnbench.errors import SnnbenchError
from snnbench.records import atomic_write_bytes, content_problem, read_record
from snnbench.suite import Suite


def check_records(runs: Path) -> list[str]:
    """Records whose content hash is missing (``unhashed``) or does not match their content (edited)."""
    problems = []
    for path in sorted(runs.glob("*.json")):
        read_record(path)  # a corrupt record is an error naming it
        if problem := content_problem(json.loads(path.read_bytes())):
            problems.append(f"{path}: {problem}")
    return problems


def _git(cwd: Path, *args: str) -> str | None:
    """``git args`` in ``cwd``; None when git is missing or fails (not a checkout)."""
    try:
        done = subprocess.run(
            ["git", "-c", "core.quotepath=off", *args], cwd=cwd, capture_output=True, text=True, check=False
        )
    except OSError:
        return None
    return done.stdout if done.returncode == 0 else None


def _blobs(top: Path, names: list[str]) -> dict[str, bytes | None]:
    """``commit:path`` → its bytes (None: missing), read by one ``git cat-file --batch``."""
    if not names:
        return {}
    listing = "".join(name + "\n" for name in names).encode()
    out = subprocess.run(
        ["git", "cat-file", "--batch"], cwd=top, input=listing, capture_output=True, check=True
    )
    blobs: dict[str, bytes | None] = {}
    data, at = out.stdout, 0
    for name in names:
        end = data.index(b"\n", at)
        header = data[at:end].split()
        at = end + 1
        if len(header) != 3:  # "<name> missing"
            blobs[name] = None
            continue
        size = int(header[2])
        blobs[name] = data[at : at + size]
        at += size + 1
    return blobs


def _started_at(data: bytes | None) -> object:
    try:
        return json.loads(data).get("started_at") if data is not None else None
    except (ValueError, AttributeError):
        return None


def check_git_history(runs: Path) -> list[str]:
    """Committed records that differ from the content the commit that added their run gave them.

    A record is one run, named by its ``started_at``: the commit that added it is the oldest commit in the
    file's history (newest first, back to its addition) whose version still has the current ``started_at``.
    The file (working tree) must be byte-identical to that version: a record edited after the commit that
    added it fails, even with a recomputed content hash and regenerated reports. A version with another
    ``started_at`` is another run (a regeneration), which git history shows as such; a new record not yet
    committed is not checked. Skipped (no problems) outside a git checkout, without git, or when no record
    is tracked; a shallow clone checks back to its first commit only. Unkeyed like the content hash: it
    makes every edit visible in history, it does not prove a record true (``reproduce`` retrains)."""
    runs = runs.resolve()
    top_line = _git(runs, "rev-parse", "--show-toplevel") if runs.is_dir() else None
    if not top_line:
        return []
    top = Path(top_line.strip()).resolve()
    if not runs.is_relative_to(top):
        return []
    folder = runs.relative_to(top).as_posix()
    tracked = _git(top, "ls-files", "--", folder)
    names = [n for n in (tracked or "").splitlines() if n.endswith(".json") and (top / n).parent == runs]
    if not names:
        return []
    log = _git(top, "log", "--topo-order", "--no-renames", "--format=@%H", "--name-status", "--", folder)
    history: dict[str, list[tuple[str, str]]] = {name: [] for name in names}  # newest first
    commit = ""
    for line in (log or "").splitlines():
        if line.startswith("@"):
            commit = line[1:]
        elif "\t" in line:
            status, name = line.split("\t", 1)
            if name in history:
                history[name].append((commit, status[:1]))
    versions: dict[str, list[str]] = {name: [] for name in names}  # commits back to the last addition
    for name in names:
        for commit, status in history[name]:
            if status == "D":
                break
            versions[name].append(commit)
            if status == "A":
                break
    blobs = _blobs(top, [f"{commit}:{name}" for name in names for commit in versions[name]])
    problems = []
    for name in names:
        current = (top / name).read_bytes()
        run = _started_at(current)
        origin: tuple[str, bytes] | None = None
        for commit in versions[name]:
            blob = blobs[f"{commit}:{name}"]
            if blob is None or _started_at(blob) != run:
                break  # an older run of this record (a regeneration)
            origin = (commit, blob)
        if origin is not None and origin[1] != current:
            problems.append(
                f"{top / name}: differs from the record commit {origin[0][:12]} added (run started {run}): "
                "edited after it was committed"
            )
    return problems


# Committed suites whose records made from a dirty tree are a warning, not a failure, until regenerated.
# Every entry is a debt: the lead removes it once the suite's records are made again from a clean tree.
# suites whose committed records predate clean-tree enforcement, with why (none left: digits-lowT was
# regenerated from a clean revision); an entry only warns, and a test fails once its records are clean
DIRTY_RECORDS_ALLOWED: dict[str, str] = {}


def _tracked_records(runs: Path) -> list[Path]:
    """The records of ``runs`` that git tracks (committed or staged); empty outside a checkout."""
    runs = runs.resolve()
    top_line = _git(runs, "rev-parse", "--show-toplevel") if runs.is_dir() else None
    if not top_line:
        return []
    top = Path(top_line.strip()).resolve()
    if not runs.is_relative_to(top):
        return []
    tracked = _git(top, "ls-files", "--", runs.relative_to(top).as_posix())
    return sorted(
        top / n for n in (tracked or "").splitlines() if n.endswith(".json") and (top / n).parent == runs
    )


def check_clean_tree(runs: Path, suite_name: str) -> tuple[list[str], list[str]]:
    """``(problems, warnings)``: committed records (tracked by git) whose ``environment.git.dirty`` is true:
    made from uncommitted code, so the revision they name did not produce them. A problem, unless the suite
    is in :data:`DIRTY_RECORDS_ALLOWED` (then one warning naming the count). Records not yet committed and
    records made outside a checkout (``dirty`` null) are not checked; skipped outside a git checkout."""
    dirty: list[tuple[Path, str]] = []
    for path in _tracked_records(runs):
        if not path.is_file():
            continue  # tracked, deleted in the working tree
        git = (json.loads(path.read_bytes()).get("environment") or {}).get("git") or {}
        if git.get("dirty") is True:
            dirty.append((path, str(git.get("revision"))[:12]))
    if not dirty:
        return [], []
    if suite_name in DIRTY_RECORDS_ALLOWED:
        return [], [
            f"{len(dirty)} committed record(s) of {suite_name} made from a dirty tree "
            "(environment.git.dirty); allowed by snnbench.check.DIRTY_RECORDS_ALLOWED: "
            + DIRTY_RECORDS_ALLOWED[suite_name]
        ]
    return [
        f"{path}: made from a dirty tree (environment.git.dirty: uncommitted code, so revision {revision} "
        "did not produce it): commit the code, then run it again"
        for path, revision in dirty
    ], []


def check_tuning(suite: Suite, suite_dir: Path) -> tuple[list[str], list[str]]:
    """``(problems, warnings)`` of the tuning records ``suite_dir/tuning/<entry>.json`` (and, tuned per T,
    ``<entry>_T<T>.json``; :func:`snnbench.tuning.tuning_states`): a stale record (a code hash that differs
    from today's method, or another untuned set-up) is a problem; records without a code hash (made before
    hashes were recorded) are one warning, not a failure, until the entries are tuned again."""
    from snnbench.tuning import UNVERIFIABLE, tuning_states

    states = tuning_states(suite, suite_dir)
    problems = [
        f"{state.path}: stale tuning record ({state.stale}); tune again with `snnbench tune --suite "
        f"{suite.name} --algorithms {entry}`"
        for (entry, _), state in states.items()
        if state.stale
    ]
    old = sorted(
        entry + ("" if T is None else f" at T={T}")
        for (entry, T), state in states.items()
        if state.unverifiable
    )
    warnings = []
    if old:
        warnings.append(
            f"{len(old)} tuning record(s) of {suite.name} {UNVERIFIABLE}: {', '.join(old)}; not a failure "
            f"(nothing to compare), labelled `unverifiable` in the tuning column; `snnbench tune --suite "
            f"{suite.name}` records the hash"
        )
    return problems, warnings


def check_reports(
    suite: Suite, suite_dir: Path, budget: str | None = None, warnings: list[str] | None = None
) -> list[str]:
    """Records that fail :func:`check_records`, :func:`check_git_history`, :func:`check_clean_tree` or
    :func:`snnbench.rows.row_problems` (another suite's records, several set-ups under one entry × T,
    copies), stale tuning records (:func:`check_tuning`; its
    warnings are appended to ``warnings`` when given), then differences between the committed reports of
    ``suite_dir`` (of ``budget``: see :func:`~snnbench.leaderboard.report_dir`) and what its records produce.

    Returns one message per problem (a unified diff for text files); empty when everything matches.
    """
    from snnbench.leaderboard import report_dir, write_reports

    if not (suite_dir / "runs").is_dir():
        raise SnnbenchError(f"no records for suite {suite.name} under {suite_dir}")
    from snnbench.records import load_records
    from snnbench.rows import row_problems

    reports = report_dir(suite, suite_dir, budget)
    problems = check_records(suite_dir / "runs")
    problems += check_git_history(suite_dir / "runs")  # committed records: as the commit that added them
    problems += row_problems(load_records(suite_dir), suite.name)  # one row = one set-up, each record once
    dirty, dirty_allowed = check_clean_tree(suite_dir / "runs", suite.name)  # committed: from a clean tree
    problems += dirty
    stale_tuning, old_tuning = check_tuning(suite, suite_dir)
    problems += stale_tuning
    if warnings is not None:
        warnings += dirty_allowed + old_tuning
    with tempfile.TemporaryDirectory() as tmp:
        for regenerated in write_reports(suite, suite_dir, budget, into=Path(tmp)):
            committed = reports / regenerated.name
            if not committed.is_file():
                problems.append(f"{committed}: missing (the records produce it)")
            elif committed.read_bytes() != regenerated.read_bytes():
                if regenerated.suffix in (".md", ".csv"):
                    diff = difflib.unified_diff(
                        committed.read_text().splitlines(),
                        regenerated.read_text().splitlines(),
                        f"{committed} (committed)",
                        f"{committed} (from records)",
                        lineterm="",
                    )
                    problems.append("\n".join(diff))
                else:
                    problems.append(f"{committed}: differs from what the records produce")
    return problems


@dataclass
class MergeReport:
    """What ``merge`` did: copied run ids, identical duplicates, and conflicts left untouched."""

    copied: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)


def _comparable(path: Path) -> tuple[object, ...]:
    """What two records of the same run must share to be duplicates (wall-clock figures may differ)."""
    record = read_record(path)  # validates: a corrupt record is an error, never merged
    losses = [row.get("loss") for row in record.history]
    return record.spec_hash, record.status, record.metrics.get("top1"), losses


def merge(sources: list[Path], target: Path) -> MergeReport:
    """Fold the ``<suite>/runs/*.json`` records of several results directories into ``target``.

    A record already in ``target`` with the same numbers is a duplicate (skipped); one with different
    numbers is a conflict (reported, the target's record kept). Writes are atomic.
    """
    report = MergeReport()
    for source in sources:
        if not source.is_dir():
            raise SnnbenchError(f"{source} is not a directory")
        for path in sorted(source.glob("*/runs/*.json")):
            suite, name = path.parent.parent.name, path.name
            destination = target / suite / "runs" / name
            run = f"{suite}/{path.stem}"
            if destination.is_file():
                if _comparable(destination) == _comparable(path):
                    report.duplicates.append(run)
                else:
                    report.conflicts.append(f"{run} ({source} differs from {target})")
                continue
            _comparable(path)
            atomic_write_bytes(destination, path.read_bytes())
            report.copied.append(run)
    return report


def merge_summary(report: MergeReport) -> str:
    """Human-readable lines."""
    lines = [
        f"copied {len(report.copied)}, duplicates {len(report.duplicates)}, conflicts {len(report.conflicts)}"
    ]
    lines += [f"conflict: {c}" for c in report.conflicts]
    return "\n".join(lines)


__all__ = [
    "MergeReport",
    "DIRTY_RECORDS_ALLOWED",
    "check_clean_tree",
    "check_git_history",
    "check_records",
    "check_reports",
    "check_tuning",
    "merge",
    "merge_summary",
]
