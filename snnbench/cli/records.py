"""Single entries and records: ``show``, ``merge``, ``export``, ``evaluate``, ``reproduce``."""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from snnbench.cli import Plugins, _fail, _ints, _load_plugins, _names, app, console, say, say_wrapped


def _show_entry(entry: str, budget: str | None, plugin: list[Path] | None) -> None:
    """Print a suite entry's fidelity card (official configuration, deviations) and its resolved config."""
    from snnbench.errors import SnnbenchError

    try:
        _load_plugins(plugin)
        suite_name, key = entry.rsplit("/", 1)
        from snnbench.suite import load_suite, resolved_fields

        loaded = load_suite(suite_name)
        if key not in loaded.algorithms:
            from snnbench.errors import UnknownNameError

            raise UnknownNameError(f"entry of suite {loaded.name}", key, loaded.algorithms)
        fields = resolved_fields(loaded, key, budget)
    except SnnbenchError as exc:
        raise _fail(exc) from None
    from snnbench.show import render_entry

    say_wrapped(render_entry(loaded, key, fields, budget))


class ShowFormat(str, Enum):
    text = "text"
    json = "json"


@app.command(
    epilog="Example: snnbench show cifar10-lowT/ottt;  snnbench show bptt_T4_s0_full_<hash8> --format json"
    "  (run ids: results/<suite>/runs/*.json)"
)
def show(
    target: Annotated[
        str,
        typer.Argument(
            help="SUITE/ENTRY: a suite entry's fidelity card and resolved configuration; "
            "RUN_ID: one run's record"
        ),
    ],
    out: Annotated[Path, typer.Option(help="directory holding <suite>/runs")] = Path("results"),
    format: Annotated[ShowFormat, typer.Option(help="text, or the whole record as JSON")] = ShowFormat.text,
    budget: Annotated[str | None, typer.Option(help="SUITE/ENTRY: the budget whose epochs are shown")] = None,
    plugin: Plugins = None,
) -> None:
    """A suite entry (fidelity card, resolved configuration) or one run's record (configuration, metrics,
    fidelity card, provenance and the command that reproduces it)."""
    from snnbench.errors import SnnbenchError

    if "/" in target:
        _show_entry(target, budget, plugin)
        return
    run_id = target
    try:
        from snnbench.report import find_record, record_sections
        from snnbench.suite import load_suite

        record = find_record(out, run_id)
        if format is ShowFormat.json:
            sys.stdout.write(json.dumps(record.model_dump(mode="json"), indent=2) + "\n")
            return
        try:
            suite = load_suite(record.suite)
        except SnnbenchError:  # a record of a suite file not at hand: shown without the suite's card
            suite = None
        sections = record_sections(record, suite)
    except SnnbenchError as exc:
        raise _fail(exc) from None
    from rich.table import Table

    for title, items in sections:
        table = Table(title=title, title_justify="left", show_header=False, box=None, title_style="bold")
        table.add_column(style="dim", no_wrap=True)
        table.add_column(overflow="fold")
        for key, value in items:
            table.add_row(str(key), str(value))
        console.print(table)
        console.print()


@app.command(epilog="Example: snnbench merge machine-a/results machine-b/results --out results")
def merge(
    sources: Annotated[list[Path], typer.Argument(help="results directories to fold in")],
    out: Annotated[Path, typer.Option(help="target results directory")] = Path("results"),
) -> None:
    """Fold the records of several results directories into one; report duplicates and conflicts."""
    from snnbench.errors import SnnbenchError

    try:
        from snnbench.check import merge as merge_records
        from snnbench.check import merge_summary

        report = merge_records(sources, out)
    except SnnbenchError as exc:
        raise _fail(exc) from None
    say(merge_summary(report))
    if report.conflicts:
        raise typer.Exit(1)


class ExportFormat(str, Enum):
    nir = "nir"


@app.command(
    epilog="Example: snnbench run --suite digits-lowT --algorithms bptt --save-models; "
    "snnbench export bptt_T4_s0_full_1a2b3c4d --to bptt.nir"
)
def export(
    run_id: Annotated[str, typer.Argument(help="a run saved with `run --save-models`")],
    to: Annotated[
        Path | None, typer.Option(help="file to write (default: <out>/<suite>/models/RUN_ID.nir)")
    ] = None,
    format: Annotated[ExportFormat, typer.Option(help="graph format")] = ExportFormat.nir,
    out: Annotated[Path, typer.Option(help="the records folder the run was trained into (run --out)")] = Path(
        "results"
    ),
    plugin: Plugins = None,
) -> None:
    """Write a saved network as a NIR graph (Neuromorphic Intermediate Representation); see docs/export.md.
    A plugin method (--plugin) is exported when it subclasses an exported method without overriding build."""
    from snnbench.errors import SnnbenchError

    try:
        _load_plugins(plugin)
        from snnbench.export import export_run
        from snnbench.report import find_record

        suite = find_record(out, run_id).suite
        path = export_run(out, suite, run_id, to or out / suite / "models" / f"{run_id}.{format.value}")
    except SnnbenchError as exc:
        raise _fail(exc) from None
    say(f"Wrote {path}")


class Split(str, Enum):
    test = "test"
    val = "val"


@app.command(
    epilog="Example: snnbench run --suite digits-lowT --budget smoke --algorithms bptt --timesteps 2 "
    "--save-models --out mine; snnbench evaluate bptt_T2_s0_smoke_1a2b3c4d --timesteps 8 --out mine"
)
def evaluate(
    run_id: Annotated[str, typer.Argument(help="a run saved with `run --save-models`")],
    timesteps: Annotated[
        int | None, typer.Option(help="T to run the network at (default: the T it was trained at)", min=1)
    ] = None,
    split: Annotated[Split, typer.Option(help="the run's test subset or its validation split")] = Split.test,
    out: Annotated[Path, typer.Option(help="the records folder the run was trained into (run --out)")] = Path(
        "results"
    ),
    data_dir: Annotated[Path | None, typer.Option(help="dataset root")] = None,
    plugin: Plugins = None,
) -> None:
    """Run a saved network again, at any T its method can build with the same parameters, on the test or
    validation split of its data; print top-1 and spike metrics and write an evaluation record
    (<out>/<suite>/evaluations/: not a training record, never in leaderboards or comparisons)."""
    from snnbench.errors import SnnbenchError

    try:
        _load_plugins(plugin)
        from snnbench.report import find_record
        from snnbench.saved import evaluate_saved

        suite = find_record(out, run_id).suite
        result, path = evaluate_saved(out, suite, run_id, T=timesteps, split=split.value, data_dir=data_dir)
    except SnnbenchError as exc:
        raise _fail(exc) from None
    m = result.metrics
    say(
        f"{run_id} (trained at T = {result.trained_T}) at T = {result.T} on {result.split} "
        f"({result.samples} samples): top-1 {m['top1']:.2f} %"
    )
    spikes = [
        f"{label} {m[key]:{fmt}}"
        for key, label, fmt in (
            ("spike_rate", "spike rate", ".4f"),
            ("synops_per_sample", "synaptic ops/sample", ",.0f"),
            ("energy_nj", "energy/sample (nJ)", ".3g"),
        )
        if isinstance(m.get(key), (int, float))
    ]
    if spikes:
        say("  " + "; ".join(spikes))
    say(f"Wrote {path}")


@app.command(
    epilog="Example: snnbench reproduce --suite digits-lowT --sample 2 --algorithms bptt --timesteps 1"
)
def reproduce(
    suite: Annotated[str, typer.Option(help="suite name or path")],
    sample: Annotated[int, typer.Option(help="how many records to retrain", min=1)] = 3,
    seed: Annotated[int, typer.Option(help="seed of the sample (the same records on every machine)")] = 0,
    algorithms: Annotated[str | None, typer.Option(help="comma-separated entries to sample from")] = None,
    timesteps: Annotated[str | None, typer.Option(help="comma-separated T values to sample from")] = None,
    out: Annotated[Path, typer.Option(help="output directory holding <suite>/runs")] = Path("results"),
    budget: Annotated[str | None, typer.Option(help="budget (default: the suite's)")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="dataset root")] = None,
    tolerance: Annotated[
        float, typer.Option(help="percentage points of top-1 a retrained record may differ by", min=0.0)
    ] = 1.0,  # = snnbench.reproduce.TOLERANCE_PP (tested)
    plugin: Plugins = None,
) -> None:
    """Retrain a sample of records in a temporary folder: per record exact match or the difference, per
    row whether the new mean lies in the committed 95 % CI. Exit 1 when a retrain fails, a record differs
    by more than --tolerance points of top-1, or a row's new mean falls outside its CI."""
    from snnbench.errors import SnnbenchError

    try:
        _load_plugins(plugin)
        from snnbench.reproduce import reproduce as run_reproduce
        from snnbench.suite import load_suite

        loaded = load_suite(suite)
        result = run_reproduce(
            loaded,
            out / loaded.name,
            sample,
            seed=seed,
            budget=budget,
            entries=_names(algorithms),
            timesteps=_ints(timesteps, "--timesteps"),
            data_dir=data_dir,
            tolerance=tolerance,
        )
    except SnnbenchError as exc:
        raise _fail(exc) from None
    from snnbench.ui import reproduction_tables

    for table in reproduction_tables(result):
        console.print(table)
    if problems := result.problems():
        for line in problems:
            say(f"does not reproduce: {line}")
        raise typer.Exit(1)
