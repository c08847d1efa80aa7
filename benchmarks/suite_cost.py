"""Per-run cost of a suite's grid, measured: one epoch of every entry on a fixed share of the training set.

``--records DIR`` reads finished records instead (a probe's, or the suite's own runs: then the table is
the measured cost of the real runs, per epoch and per run).

The estimator behind ``run --dry-run`` times a few batches and scales them; on a busy 2-core VM those probes
swing by 10–200x. This script measures instead: it writes a copy of the suite whose budget is one epoch on
``--subset`` training images (the suite's validation carve applied to them, ``--test-subset`` test images),
one seed, every entry at every T of its grid, runs it through the normal runner (``--jobs`` workers, one
compute thread each, as the suite's own runs), and prints per (entry, T) the measured training seconds of
that epoch, the per-epoch cost scaled linearly to the suite's training-set size, and the projected cost of
the entry's full budget (epochs × seeds). Methods that train once for every T (conversion, STDBP, soft-LIF)
are charged once, to the first T, and labelled. Not counted: data loading and evaluation (both are printed
as measured from the records' wall times: ``finished_at − started_at`` minus training).

    python benchmarks/suite_cost.py --suite fmnist-cpu                  # the table in docs/suites/
    python benchmarks/suite_cost.py --suite fmnist-cpu --algorithms bptt,ide --subset 6000
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import tempfile
from datetime import datetime
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def probe_suite(suite_path: Path, subset: int, test_subset: int, algorithms: list[str] | None) -> dict:
    """The suite as a one-epoch, one-seed probe on ``subset`` training images (cards dropped: the probe's
    budget is not the entry's)."""
    data = yaml.safe_load(suite_path.read_text())
    data["name"] = f"{data['name']}-cost-probe"
    budget = data["budgets"][data.get("default_budget", "full")]
    data["budgets"] = {
        "probe": {
            "epochs": 1,
            "batch_size": budget["batch_size"],
            "train_subset": subset,
            "test_subset": test_subset,
        }
    }
    data["default_budget"] = "probe"
    data["seeds"] = [0]
    for key in ("reference", "tuning"):
        data.pop(key, None)
    for name, entry in list(data["algorithms"].items()):
        if algorithms and name not in algorithms:
            del data["algorithms"][name]
            continue
        entry.pop("fidelity", None)
        entry.pop("tuned", None)
        own = (entry.pop("budgets", None) or {}).get(data.get("default_budget", "full"), {})
        if "batch_size" in own:
            entry["budgets"] = {"probe": {"batch_size": own["batch_size"]}}
    return data


def full_budget(suite_path: Path) -> tuple[dict, dict]:
    data = yaml.safe_load(suite_path.read_text())
    return data, data["budgets"][data.get("default_budget", "full")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", required=True, help="suite name (suites/NAME.yaml) or path")
    parser.add_argument("--subset", type=int, default=6000, help="training images of the probe epoch")
    parser.add_argument("--test-subset", type=int, default=2000)
    parser.add_argument("--algorithms", help="comma-separated entries (default: all)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument(
        "--train-size",
        type=int,
        help="training images of a full epoch (default: the "
        "dataset's training split minus the suite's validation fraction)",
    )
    parser.add_argument("--records", type=Path, help="read an earlier probe's records instead of running")
    args = parser.parse_args()
    suite_path = Path(args.suite) if args.suite.endswith(".yaml") else ROOT / "suites" / f"{args.suite}.yaml"
    suite, budget = full_budget(suite_path)
    algorithms = args.algorithms.split(",") if args.algorithms else None
    if args.records is None:
        work = Path(tempfile.mkdtemp(prefix="suite-cost-"))
        probe = probe_suite(suite_path, args.subset, args.test_subset, algorithms)
        (work / "probe.yaml").write_text(yaml.safe_dump(probe, sort_keys=False))
        command = [
            sys.executable,
            "-m",
            "snnbench",
            "run",
            "--suite",
            str(work / "probe.yaml"),
            "--out",
            str(work / "out"),
            "--executor",
            "pool",
            "--jobs",
            str(args.jobs),
            "--quiet",
        ]
        subprocess.run(command, check=False, cwd=work)
        records_dir = work / "out" / probe["name"] / "runs"
    else:
        records_dir = args.records
    from snnbench.data import datasets
    from snnbench.suite import load_suite

    info = datasets.get(suite["dataset"])().info(
        datasets.get(suite["dataset"]).Options(**suite.get("dataset_options", {}))
    )
    fraction = (suite.get("validation") or {}).get("fraction", 0.0)
    train_size = args.train_size or round(info.sizes[0] * (1 - fraction))
    resolved = load_suite(suite_path)
    from snnbench.rows import machine_kind

    measured: dict[tuple[str, int], list[tuple[float, float, float, str, str | None, float]]] = {}
    machines: dict[tuple[str, int], set[str]] = {}
    for path in sorted(records_dir.glob("*.json")):
        record = json.loads(path.read_text())
        if record["entry"] not in resolved.algorithms or record.get("budget") != resolved.default_budget:
            continue  # another suite's entry, or another budget (e.g. official-epochs): not the grid
        metrics = record.get("metrics", {})
        shared = record.get("training_shared_with")
        epochs_done = int(metrics.get("epochs_completed") or 1)
        seconds = float(metrics.get("train_time_s") or 0.0) / epochs_done  # one epoch, as measured
        size = int(metrics.get("train_size") or args.subset)
        wall = datetime.fromisoformat(record["finished_at"]) - datetime.fromisoformat(record["started_at"])
        other = wall.total_seconds() - (0.0 if shared else seconds * epochs_done)  # evaluation, simulation
        key = (record["entry"], int(record["T"]))
        machines.setdefault(key, set()).add(machine_kind(record.get("environment")))
        measured.setdefault(key, []).append(
            (seconds, size, other, record["status"], shared, wall.total_seconds())
        )
    seeds = len(suite["seeds"])
    total = walls = 0.0
    sizes = ", ".join(sorted({str(m[1]) for found in measured.values() for m in found}))
    print(
        f"One epoch per (entry, T) as measured ({sizes} training images; median over the records found), "
        f"{args.jobs} workers x 1 thread; the machine of each row's records in its last column; "
        f"a full epoch = {train_size} images."
    )
    print()
    print(
        "| entry | T | records | measured epoch (s) | full epoch (s, scaled) | epochs | per run (min) | "
        "x seeds (min) | evaluation etc. per run (s) | measured wall per run (s) | machine |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for (name, T), found in sorted(measured.items()):
        entry = resolved.algorithms[name]
        own = entry.budgets.get(suite.get("default_budget", "full"))
        epochs = own.epochs if own is not None and own.epochs else budget["epochs"]
        seconds = statistics.median(m[0] for m in found)
        size = found[0][1]
        other = statistics.median(m[2] for m in found)
        shared = all(m[4] for m in found)
        per_epoch = 0.0 if shared else seconds * train_size / size
        run = per_epoch * epochs
        total += run * seeds
        note = " (trained once for every T: charged to its first T)" if shared else ""
        failed = sorted({m[3] for m in found} - {"ok"})
        note += f" ({', '.join(failed)})" if failed else ""
        cells = [name + note, T, len(found), f"{seconds:.2f}", f"{per_epoch:.0f}", epochs, f"{run / 60:.1f}"]
        cells += [f"{run * seeds / 60:.1f}", f"{other:.0f}", f"{statistics.median(m[5] for m in found):.0f}"]
        cells += [" + ".join(sorted(machines[(name, T)]))]
        walls += sum(m[5] for m in found)
        print("| " + " | ".join(str(c) for c in cells) + " |")
    print()
    print(f"Measured wall time of the records read, summed: {walls / 3600:.2f} CPU-hours (one core each)")
    for kind in sorted(set().union(*machines.values())):
        keys = [k for k, found in measured.items() if kind in machines[k]]
        hours = sum(m[5] for k in keys for m in measured[k]) / 3600
        print(f"  of which on {kind}: {hours:.2f} CPU-hours ({len(keys)} rows)")
    print(
        f"Training time of the whole grid (scaled, no loading or evaluation): {total / 3600:.2f} CPU-hours "
        f"({math.ceil(total / 60)} CPU-minutes)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
