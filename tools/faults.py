"""Planted-fault check of the tests (`make faults`): the catch rate of a curated list of plausible bugs.

Each fault in ``tools/faults.yaml`` is a small patch (file, exact old text, new text) and the tests that
should catch it. The script copies the committed tree (tracked and untracked, not ignored, files) into a
temporary directory once, then for each fault patches the copy, runs its tests there (one process, first
failure stops) and restores the file; the working tree is never touched. A fault whose old text does not
occur exactly once is "not applicable" (the code moved on: update the fault) and is never counted as caught.

A plain script, not a mutation tool such as mutmut: mutmut mutates operators at random (thousands of mutants,
each a test run of seconds to minutes on two cores), cannot mutate the C++ kernels, and does not name the
bug a mutant stands for; a curated list is small enough to run in minutes, names each fault, and grows with
every bug found.

Usage: python tools/faults.py [--only ID ...] [--check] [--min-rate 90]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
FAULTS = Path(__file__).with_name("faults.yaml")


def tree_files() -> list[str]:
    """Tracked and untracked (not ignored) files of the working tree."""
    listing = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout.decode()
    return [name for name in listing.split("\0") if name and (ROOT / name).is_file()]


def copy_tree(target: Path) -> None:
    for name in tree_files():
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target / name)


def run_fault(fault: dict, copy: Path, env: dict[str, str], timeout: float) -> tuple[str, float]:
    """Apply one fault to ``copy``, run its tests, restore; returns (outcome, seconds)."""
    path = copy / fault["file"]
    original = path.read_text() if path.is_file() else ""
    if original.count(fault["old"]) != 1:
        return "not applicable", 0.0
    path.write_text(original.replace(fault["old"], fault["new"]))
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:xdist", "-p", "no:cacheprovider"]
    tick = time.monotonic()
    try:
        result = subprocess.run(
            [*command, *fault["tests"]], cwd=copy, env=env, capture_output=True, timeout=timeout
        )
        outcome = {0: "SURVIVED", 1: "caught"}.get(
            result.returncode, f"caught (pytest exit {result.returncode})"
        )
    except subprocess.TimeoutExpired:
        outcome = "timed out"
    finally:
        path.write_text(original)
    return outcome, time.monotonic() - tick


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", metavar="ID", help="run these faults only")
    parser.add_argument("--check", action="store_true", help="only report which faults still apply")
    parser.add_argument("--min-rate", type=float, default=90.0, help="exit 1 below this catch rate (%%)")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per fault")
    args = parser.parse_args()
    faults = yaml.safe_load(FAULTS.read_text())
    if args.only:
        unknown = set(args.only) - {f["id"] for f in faults}
        if unknown:
            parser.error(f"unknown fault ids: {', '.join(sorted(unknown))}")
        faults = [f for f in faults if f["id"] in args.only]
    outcomes: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="snnbench-faults-") as scratch:
        copy = Path(scratch) / "tree"
        copy_tree(copy)
        env = {**os.environ, "PYTHONPATH": str(copy), "PYTHONDONTWRITEBYTECODE": "1"}  # the copy's snnbench
        # faulty kernels are built apart, never in the shared build cache; other faults load the cached build
        kernel_env = {**env, "TORCH_EXTENSIONS_DIR": str(Path(scratch) / "torch_extensions")}
        for fault in faults:
            if args.check:
                text = (copy / fault["file"]).read_text() if (copy / fault["file"]).is_file() else ""
                outcome, seconds = ("applies" if text.count(fault["old"]) == 1 else "not applicable"), 0.0
            else:
                fault_env = kernel_env if fault["file"].endswith(".cpp") else env
                outcome, seconds = run_fault(fault, copy, fault_env, args.timeout)
            outcomes[fault["id"]] = outcome
            print(f"{outcome:>16}  {fault['id']}  ({fault['file']}, {seconds:.0f} s)", flush=True)
    if args.check:
        return int(any(o == "not applicable" for o in outcomes.values()))
    applicable = {k: v for k, v in outcomes.items() if v != "not applicable"}
    caught = [k for k, v in applicable.items() if v.startswith("caught")]
    rate = 100.0 * len(caught) / len(applicable) if applicable else 0.0
    print(f"\ncaught {len(caught)} of {len(applicable)} applicable faults: {rate:.0f} %")
    notes = {f["id"]: f.get("note", "no explanation yet") for f in faults}
    for label in ("SURVIVED", "timed out", "not applicable"):
        for name in [k for k, v in outcomes.items() if v == label]:
            print(f"{label}: {name}: {notes[name]}")
    return int(rate < args.min_rate)


if __name__ == "__main__":
    sys.exit(main())
