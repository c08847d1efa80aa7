"""Keep committed results true: ``leaderboard --check`` (stale reports) and ``merge`` (records from
several machines folded into one results directory)."""

from __future__ import annotations

import difflib
import json
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


def check_reports(suite: Suite, suite_dir: Path, budget: str | None = None) -> list[str]:
    """Records that fail :func:`check_records` or :func:`snnbench.rows.row_problems` (another suite's
    records, several set-ups under one entry × T, copies), then differences between the committed reports of
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
    problems += row_problems(load_records(suite_dir), suite.name)  # one row = one set-up, each record once
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


__all__ = ["MergeReport", "check_records", "check_reports", "merge", "merge_summary"]
