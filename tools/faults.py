"""Planted-fault check of the tests (`make faults`): the behavioural catch rate of a curated list of bugs.

Each fault in ``tools/faults.yaml`` is a small patch (file, exact old text, new text) and the tests that
catch it. The script copies the committed tree (tracked and untracked, not ignored, files) into a temporary
directory once, then for each fault patches the copy, runs tests there (first failure stops) and restores
the file; the working tree is never touched. A fault whose old text does not occur exactly once is "not
applicable" (the code moved on: update the fault) and is never counted as caught.

What counts as caught: a failure of a test that checks behaviour. The source-hash tripwires
(:data:`TRIPWIRES`: tests that compare the committed digits results with what the current code would report)
fail on any edit of a method's code, a comment included, because the committed records then turn stale; they
are deselected (``--deselect``) from every behavioural run. Per fault:

1. its listed ``tests`` (the tripwires deselected): a failure is "caught";
2. only if they pass, the whole default (non-slow) suite less the tripwires, the test files that import the
   faulty module first: a failure is "caught elsewhere" (counted, but the fault's ``tests`` should name the
   test that failed: it is printed);
3. only if nothing failed, the tripwires alone: a failure is "tripwire only", counted as missed, else
   "SURVIVED".

A pytest usage error (a listed test that does not exist) is "bad tests", counted as missed. ``--check``
runs nothing: it reports which faults still apply, checks every fault's fields and that its ``tests`` exist
and name no tripwire, and prints the faults per module (the file's module group, :data:`MODULES`); a required
module without a fault is a problem.

A plain script, not a mutation tool such as mutmut: mutmut mutates operators at random (thousands of mutants,
each a test run of seconds to minutes on two cores), cannot mutate the C++ kernels, and does not name the
bug a mutant stands for; a curated list is small enough to run in a session, names each fault, and grows
with every bug found.

``--workers N`` runs the whole-suite step on N pytest-xdist workers (the listed tests and the tripwires run in
one process: xdist's start-up would cost more than they take). ``--jobs N`` runs N faults at once, each job
on its own copy of the tree (the faults dealt round-robin; `make faults` uses two, one per core).

Usage: python tools/faults.py [--only ID ...] [--check] [--min-rate 90] [--workers N] [--jobs N]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

# Tests that fail because the committed digits-lowT records' source hash no longer matches the code (any edit
# of a file in a method's source-hash set, a comment included): they regenerate the committed leaderboard,
# whose `stale` column then changes. Kept in the default suite, never counted as a behavioural catch.
TRIPWIRES = (
    "tests/test_docs.py::test_committed_records_regenerate_the_committed_leaderboard",
    "tests/test_check.py::test_committed_digits_results_are_current",
)

# A fault's module: the first prefix of its file path that matches (paths relative to the repository root).
MODULES: tuple[tuple[str, str], ...] = (
    ("snnbench/algorithms/", "rules"),
    ("snnbench/neurons/functional.py", "rules"),
    ("snnbench/neurons/layers.py", "rules"),
    ("snnbench/neurons/", "kernels"),  # lif_cpu.cpp and its build
    ("snnbench/kernels/", "kernels"),
    ("snnbench/pooling.py", "kernels"),
    ("snnbench/models/", "recipes"),
    ("snnbench/architectures.py", "recipes"),
    ("snnbench/networks.py", "recipes"),
    ("suites/", "recipes"),
    ("snnbench/metrics.py", "metrics"),
    ("snnbench/data/", "data"),
    ("snnbench/records.py", "records"),
    ("snnbench/rows.py", "records"),
    ("snnbench/provenance.py", "records"),
    ("snnbench/check.py", "check"),
    ("snnbench/reproduce.py", "check"),
    ("snnbench/leaderboard.py", "leaderboard"),
    ("snnbench/plots.py", "leaderboard"),
    ("snnbench/report.py", "leaderboard"),
    ("snnbench/compare.py", "compare"),
    ("snnbench/tuning.py", "tuning"),
    ("snnbench/suite.py", "suite"),
    ("snnbench/registry.py", "suite"),
    ("snnbench/export.py", "export"),
    ("snnbench/cli/", "CLI"),
    ("snnbench/ui.py", "CLI"),
    ("snnbench/show.py", "CLI"),
    ("snnbench/errors.py", "CLI"),
    ("snnbench/", "runner"),  # runner, executors, grid, environment, estimate, status, events
)
REQUIRED_MODULES = (
    "rules", "recipes", "kernels", "metrics", "data", "records", "check", "leaderboard", "compare", "tuning",
    "suite", "export", "CLI",
)  # fmt: skip
FIELDS = ("id", "file", "old", "new", "tests")


def module_of(file: str) -> str:
    """The module group of a fault's file (:data:`MODULES`), else the file's top folder."""
    for prefix, module in MODULES:
        if file == prefix or file.startswith(prefix):
            return module
    return file.split("/")[0]


def tree_files(root: Path) -> list[str]:
    """Tracked and untracked (not ignored) files of the working tree."""
    listing = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root,
        check=True,
        capture_output=True,
    ).stdout.decode()
    return [name for name in listing.split("\0") if name and (root / name).is_file()]


def copy_tree(root: Path, target: Path) -> None:
    for name in tree_files(root):
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, target / name)


def test_problems(root: Path, node: str, tripwires: Sequence[str]) -> list[str]:
    """Why ``node`` (a path or ``path::name[...]``) cannot be a fault's catching test; [] when it can."""
    if node in tripwires:
        return [f"{node} is a source-hash tripwire, not a behavioural test"]
    path, _, rest = node.partition("::")
    if not (root / path).exists():
        return [f"{path} does not exist"]
    names = [re.sub(r"\[.*\]$", "", part) for part in rest.split("::")] if rest else []
    text = (root / path).read_text() if names and (root / path).is_file() else ""
    for name in names:
        if not re.search(rf"^\s*(?:async\s+)?(?:def|class)\s+{re.escape(name)}\b", text, flags=re.M):
            return [f"{node}: no test {name} in {path}"]
    return []


def check_faults(faults: list[dict], root: Path, tripwires: Sequence[str], whole_list: bool) -> list[str]:
    """Print each fault's applicability and the faults per module; return the problems found."""
    problems = [f"tripwire {p}" for node in tripwires for p in test_problems(root, node, ())]
    ids = Counter(str(f.get("id")) for f in faults)
    problems += [f"fault id {name} occurs {n} times" for name, n in ids.items() if n > 1]
    for fault in faults:
        name = fault.get("id", "?")
        missing = [f for f in FIELDS if f not in fault or (f != "new" and not fault[f])]  # new "" deletes
        if missing:
            problems.append(f"{name}: missing {', '.join(missing)}")
            continue
        path = root / fault["file"]
        text = path.read_text() if path.is_file() else ""
        applies = text.count(fault["old"]) == 1
        if not applies:
            problems.append(f"{name}: not applicable (its old text occurs {text.count(fault['old'])} times)")
        if fault["old"] == fault["new"]:
            problems.append(f"{name}: new text equals old text")
        tests = fault["tests"] if isinstance(fault["tests"], list) else [fault["tests"]]
        problems += [f"{name}: {p}" for node in tests for p in test_problems(root, str(node), tripwires)]
        status = "applies" if applies else "not applicable"
        print(f"{status:>16}  {name}  ({fault['file']}: {module_of(fault['file'])})")
    counts = Counter(module_of(f["file"]) for f in faults if f.get("file"))
    print(f"\n{len(faults)} faults per module:")
    for module in [*REQUIRED_MODULES, *sorted(set(counts) - set(REQUIRED_MODULES))]:
        print(f"  {module:<12} {counts.get(module, 0):>4}")
    if whole_list:
        problems += [f"module {m}: no fault" for m in REQUIRED_MODULES if not counts.get(m)]
    return problems


def related_first(copy: Path, fault: dict, listed: Sequence[str]) -> list[str]:
    """The suite's test files, those that import the fault's module (or are named after it) first; files a
    fault's ``tests`` ran whole are left out (they just passed)."""
    stem = Path(fault["file"]).stem.removesuffix("_cpu")
    dotted = fault["file"].removesuffix(".py").removesuffix(".cpp").replace("/", ".")
    if fault["file"].endswith(".cpp"):
        dotted = dotted.rpartition(".")[0]  # the package whose loader builds the kernel
    ran_whole = {node for node in listed if "::" not in node}
    files = sorted(p.relative_to(copy).as_posix() for p in (copy / "tests").rglob("test_*.py"))
    files = [f for f in files if f not in ran_whole]

    def related(name: str) -> bool:
        text = (copy / name).read_text(errors="replace")
        return stem in Path(name).stem or dotted in text or f"import {stem}" in text

    return sorted(files, key=lambda name: not related(name))


def pytest(
    copy: Path, env: dict[str, str], args: Sequence[str], timeout: float, workers: int
) -> tuple[int | None, list[str]]:
    """Run pytest in ``copy``: (exit code, or None on timeout; the failing tests)."""
    parallel = ["-n", str(workers), "--dist", "worksteal"] if workers > 1 else ["-p", "no:xdist"]
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-rfE", "-p", "no:cacheprovider", *parallel]
    try:
        result = subprocess.run([*command, *args], cwd=copy, env=env, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, []
    lines = result.stdout.decode(errors="replace").splitlines()
    failed = [line.split()[1] for line in lines if re.match(r"^(FAILED|ERROR) \S", line)]
    return result.returncode, failed


def run_fault(
    fault: dict,
    copy: Path,
    env: dict[str, str],
    timeout: float,
    tripwires: Sequence[str] = TRIPWIRES,
    workers: int = 0,
) -> tuple[str, float, str]:
    """Apply one fault to ``copy``, run its tests, then if needed the suite and the tripwires; restore.
    Returns (outcome, seconds, detail: the failing test or why)."""
    path = copy / fault["file"]
    original = path.read_text() if path.is_file() else ""
    if original.count(fault["old"]) != 1:
        return "not applicable", 0.0, ""
    listed = [str(t) for t in (fault["tests"] if isinstance(fault["tests"], list) else [fault["tests"]])]
    deselect = [arg for node in tripwires for arg in ("--deselect", node)]
    path.write_text(original.replace(fault["old"], fault["new"]))
    tick = time.monotonic()
    try:
        code, failed = pytest(copy, env, [*deselect, *listed], timeout, 0)
        if code is None:
            return "timed out", time.monotonic() - tick, "its tests"
        if code in (1, 2):  # a test failed, or collection failed (the fault broke an import)
            return "caught", time.monotonic() - tick, ", ".join(failed)
        if code not in (0, 5):  # 5: every listed test was a tripwire, deselected
            return "bad tests", time.monotonic() - tick, f"pytest exit {code} on {' '.join(listed)}"
        suite = related_first(copy, fault, listed)
        code, failed = pytest(copy, env, ["-m", "not slow", *deselect, *suite], timeout, workers)
        if code is None:
            return "timed out", time.monotonic() - tick, "the suite"
        if code in (1, 2):
            return "caught elsewhere", time.monotonic() - tick, ", ".join(failed)
        code, failed = pytest(copy, env, list(tripwires), timeout, 0)
        if code in (1, 2):
            return "tripwire only", time.monotonic() - tick, ", ".join(failed)
        return "SURVIVED", time.monotonic() - tick, ""
    finally:
        path.write_text(original)


def main(argv: Sequence[str] | None = None, root: Path = ROOT, tripwires: Sequence[str] = TRIPWIRES) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", metavar="ID", help="run these faults only")
    parser.add_argument(
        "--check", action="store_true", help="run nothing: applicability, tests that exist, faults per module"
    )
    parser.add_argument(
        "--min-rate", type=float, default=90.0, help="exit 1 below this behavioural rate (%%)"
    )
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per pytest run")
    parser.add_argument("--workers", type=int, default=0, help="xdist workers for the whole-suite runs")
    parser.add_argument(
        "--jobs", type=int, default=1, help="faults run at once, each job on its own copy of the tree"
    )
    parser.add_argument(
        "--faults", type=Path, default=None, help="the fault list (default tools/faults.yaml)"
    )
    args = parser.parse_args(argv)
    faults_file = args.faults or root / "tools" / "faults.yaml"
    faults = yaml.safe_load(faults_file.read_text())
    if args.only:
        unknown = set(args.only) - {f.get("id") for f in faults}
        if unknown:
            parser.error(f"unknown fault ids: {', '.join(sorted(unknown))}")
        faults = [f for f in faults if f.get("id") in args.only]
    if args.check:
        problems = check_faults(faults, root, tripwires, whole_list=not args.only)
        for problem in problems:
            print(f"problem: {problem}")
        print(f"{len(problems)} problem(s)")
        return int(bool(problems))
    outcomes: dict[str, tuple[str, str]] = {}
    start = time.monotonic()
    printing = threading.Lock()

    def run_shard(shard: list[dict]) -> None:
        """One job: its own copy of the tree, its faults one after another."""
        with tempfile.TemporaryDirectory(prefix="snnbench-faults-") as scratch:
            copy = Path(scratch) / "tree"
            copy_tree(root, copy)
            env = {
                **os.environ,
                "PYTHONPATH": str(copy),
                "PYTHONDONTWRITEBYTECODE": "1",
            }  # the copy's snnbench
            # faulty kernels are built apart, never in the shared build cache; the others load the cached one
            kernel_env = {**env, "TORCH_EXTENSIONS_DIR": str(Path(scratch) / "torch_extensions")}
            for fault in shard:
                fault_env = kernel_env if fault["file"].endswith(".cpp") else env
                outcome, seconds, detail = run_fault(
                    fault, copy, fault_env, args.timeout, tripwires, args.workers
                )
                with printing:
                    outcomes[fault["id"]] = (outcome, detail)
                    line = f"{outcome:>16}  {fault['id']}  ({fault['file']}, {seconds:.0f} s)  {detail}"
                    print(line, flush=True)

    jobs = max(1, min(args.jobs, len(faults)))
    with ThreadPoolExecutor(max_workers=jobs) as pool:  # the work is in pytest subprocesses
        list(pool.map(run_shard, [faults[k::jobs] for k in range(jobs)]))
    outcomes = {f["id"]: outcomes[f["id"]] for f in faults if f["id"] in outcomes}  # the list's order
    applicable = {k: v for k, (v, _) in outcomes.items() if v != "not applicable"}
    listed = [k for k, v in applicable.items() if v == "caught"]
    elsewhere = [k for k, v in applicable.items() if v == "caught elsewhere"]
    tripwire = [k for k, v in applicable.items() if v == "tripwire only"]
    rate = 100.0 * (len(listed) + len(elsewhere)) / len(applicable) if applicable else 0.0
    print(
        f"\nbehavioural catch rate: {len(listed) + len(elsewhere)} of {len(applicable)} applicable faults, "
        f"{rate:.0f} % ({len(listed)} by their listed tests, {len(elsewhere)} only elsewhere in the suite)"
    )
    print(f"caught only by the source-hash tripwires (counted as missed): {len(tripwire)}")
    notes = {f["id"]: f.get("note", "no explanation yet") for f in faults}
    for label in ("SURVIVED", "tripwire only", "timed out", "bad tests", "not applicable"):
        for name in [k for k, (v, _) in outcomes.items() if v == label]:
            print(f"{label}: {name}: {notes[name]}")
    for name in elsewhere:
        print(f"caught elsewhere: {name}: its tests should name {outcomes[name][1]}")
    print(f"total time: {time.monotonic() - start:.0f} s")
    return int(rate < args.min_rate)


if __name__ == "__main__":
    sys.exit(main())
