"""Write the chosen values of a suite's tuning records into its suite file's ``tuned:`` blocks.

``python tools/paste_tuned.py SUITE [--out results] [--algorithms A,B] [--timesteps 1,2]``: for every tuned
entry (a tuned track, or its own ``search``; only the listed ones with ``--algorithms``, the others untouched
and needing no record; with ``--timesteps``, a per-T entry's block holds only those T), the ``tuned:`` block
that ``snnbench tune`` printed (per T when the suite tunes per T), with each record's validation top-1 and
trial as a comment, replaces the entry's ``tuned:`` block in
``suites/SUITE.yaml`` (or is added after the entry's ``track:`` line). Only those blocks change; the rest of
the file (comments included) is kept. Reads the records through
:func:`snnbench.tuning.with_tuning_records`, the same path as ``run --tuned``.
"""

import argparse
import json
import re
from pathlib import Path

from snnbench.suite import find_suite, load_suite
from snnbench.tuning import is_tuned, with_tuning_records

ENTRY = re.compile(r"^  ([A-Za-z0-9_.-]+):")  # an entry key under `algorithms:`
FIELD = re.compile(r"^    \S")  # a field of the entry


def _comment(record_path: str, default_budget: str | None = None) -> str:
    """The record's choice as a comment; its trial budget named when it is not the suite's default one (a
    reduced tuning budget is stated beside every value it chose)."""
    record = json.loads(Path(record_path).read_text())
    chosen = record["chosen"]
    budget = (record.get("budget") or {}).get("budget")
    on_budget = f", {budget} budget" if budget and budget != default_budget else ""
    if chosen.get("val_top1") is None:
        return "  # no trial scored: every trial diverged or failed (the entry's own values kept)"
    at_chance = "; every trial at chance" if record.get("all_trials_at_chance") else ""
    widened = f" of {len(record['trials'])}, widened range" if record.get("widened") else ""
    return (
        f"  # val top-1 {chosen['val_top1']:.2f} % (trial {chosen['trial']}{widened}{on_budget}{at_chance})"
    )


def _flow(block) -> str:
    shown = {k: f"{v:.6g}" if isinstance(v, float) else v for k, v in block.values.items()}
    values = ", ".join(f"{k}: {v}" for k, v in shown.items())
    return f"{{values: {{{values}}}, trials: {block.trials}, record: {block.record}}}"


def block_lines(tuned, default_budget: str | None = None) -> list[str]:
    """The suite-file lines of one entry's ``tuned:`` block."""
    if tuned.by_T is None:
        return [f"    tuned: {_flow(tuned)}{_comment(tuned.record, default_budget)}"]
    lines = ["    tuned:", "      by_T:"]
    lines += [
        f"        {T}: {_flow(block)}{_comment(block.record, default_budget)}"
        for T, block in tuned.by_T.items()
    ]
    return lines


def paste(lines: list[str], entry: str, new: list[str]) -> list[str]:
    """``lines`` with ``entry``'s ``tuned:`` block replaced by ``new`` (or inserted after ``track:``)."""
    start = next(i for i, line in enumerate(lines) if ENTRY.match(line) and ENTRY.match(line)[1] == entry)
    end = next((i for i in range(start + 1, len(lines)) if not lines[i].startswith("    ")), len(lines))
    for i in range(start + 1, end):
        if lines[i].startswith("    tuned:"):
            stop = next((j for j in range(i + 1, end) if FIELD.match(lines[j])), end)
            return lines[:i] + new + lines[stop:]
    track = next(i for i in range(start + 1, end) if lines[i].startswith("    track:"))
    return lines[: track + 1] + new + lines[track + 1 :]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("suite")
    parser.add_argument("--out", default="results", help="the records folder holding SUITE/tuning/")
    parser.add_argument(
        "--algorithms", help="comma-separated entries to paste (default: every tuned entry; others untouched)"
    )
    parser.add_argument(
        "--timesteps", help="comma-separated T: per-T tuning, paste only these T (a T left out runs untuned)"
    )
    args = parser.parse_args()
    path = find_suite(args.suite)
    entries = args.algorithms.split(",") if args.algorithms else None
    timesteps = [int(t) for t in args.timesteps.split(",")] if args.timesteps else None
    suite = with_tuning_records(load_suite(path), args.out, entries, timesteps)
    lines = path.read_text().splitlines()
    for key, entry in suite.algorithms.items():
        if entries is not None and key not in entries:
            continue
        if entry.tuned is not None and is_tuned(suite, entry):  # a tuned track, or the entry's own search
            lines = paste(lines, key, block_lines(entry.tuned, suite.default_budget))
    path.write_text("\n".join(lines) + "\n")
    load_suite(path)  # the file still loads
    print(f"wrote the tuned blocks of {path}")


if __name__ == "__main__":
    main()
