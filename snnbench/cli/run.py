"""Training a suite's grid and where it stands: ``run``, ``tune``, ``status``."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from snnbench.cli import Plugins, _fail, _ints, _load_plugins, _names, app, console, err_console, say

RUN_FAILED_EXIT = 3  # `run` finished, but at least one run's record says failed


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class Executor(str, Enum):
    local = "local"
    pool = "pool"
    ray = "ray"


@app.command(
    epilog="Example: snnbench run --suite digits-lowT --budget smoke --algorithms bptt --timesteps 2,4"
)
def run(
    suite: Annotated[str, typer.Option(help="suite name (suites/NAME.yaml) or path to a suite file")],
    budget: Annotated[str | None, typer.Option(help="budget from the suite (e.g. smoke, full)")] = None,
    algorithms: Annotated[
        str | None, typer.Option(help="comma-separated subset of the suite's algorithms")
    ] = None,
    timesteps: Annotated[
        str | None, typer.Option(help="comma-separated T values, replacing the suite's")
    ] = None,
    seeds: Annotated[str | None, typer.Option(help="comma-separated seeds, replacing the suite's")] = None,
    device: Annotated[Device, typer.Option(help="where to train")] = Device.auto,
    out: Annotated[Path, typer.Option(help="output directory (records, leaderboard, plots)")] = Path(
        "results"
    ),
    resume: Annotated[
        bool, typer.Option(help="skip runs that already have a record; resume killed runs")
    ] = True,
    data_dir: Annotated[
        Path | None, typer.Option(help="dataset root (default $SNNBENCH_DATA or user cache)")
    ] = None,
    quiet: Annotated[bool, typer.Option(help="no progress output")] = False,
    executor: Annotated[
        Executor, typer.Option(help="in-process, local process pool, or Ray cluster")
    ] = Executor.local,
    jobs: Annotated[int, typer.Option(help="workers of the process pool", min=1)] = 2,
    address: Annotated[str | None, typer.Option(help="Ray cluster address: auto or HOST:PORT")] = None,
    tuned: Annotated[
        bool,
        typer.Option("--tuned", help="use the tuning records under OUT/SUITE/tuning (from `snnbench tune`)"),
    ] = False,
    plugin: Plugins = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="list the grid with a time estimate per run; train nothing")
    ] = False,
    save_models: Annotated[
        bool,
        typer.Option(
            "--save-models",
            help="keep each run's final network (<out>/<suite>/models/, for export and evaluate); runs "
            "with records but no network are retrained for it (kept when the record is reproduced)",
        ),
    ] = False,
) -> None:
    """Train and evaluate a suite's grid (algorithms × T × seeds); write records, leaderboard and plots.
    With --save-models, a selected run whose record exists without a network is retrained for it in a
    temporary folder; the network is kept when the retrain reproduces the record exactly (the record is
    not rewritten), else nothing is kept and the error says how to train your own. Exit 3 when any run
    failed (its record says why; the other runs and the reports are written) or a retrain for a network
    did not reproduce its record."""
    from snnbench.errors import SnnbenchError

    try:
        _load_plugins(plugin)
        from snnbench.estimate import (
            DRY_RUN_PROBE_BUDGET_S,
            PRINT_BEFORE_RUN_S,
            QUICK_PROBE_BUDGET_S,
            describe,
            estimate_suite,
        )
        from snnbench.executors import pool_threads
        from snnbench.grid import run_suite
        from snnbench.suite import MAX_TIMESTEPS, Overrides, load_suite
        from snnbench.tuning import refuse_untuned_plugin_entries, with_tuning_records

        loaded = load_suite(suite)
        overrides = Overrides(
            budget=budget,
            algorithms=_names(algorithms),
            timesteps=_ints(timesteps, "--timesteps", (1, MAX_TIMESTEPS)),
            seeds=_ints(seeds, "--seeds", (0, 2**32 - 1)),
        )
        if tuned:  # only the selected entries (at the selected T, when tuned per T) need a tuning record
            loaded = with_tuning_records(loaded, out, _names(algorithms), overrides.timesteps)
        refuse_untuned_plugin_entries(loaded, _names(algorithms), out, overrides.timesteps)
        if dry_run or not quiet:
            grid = estimate_suite(
                suite, overrides, out_dir=out, device=device.value, resume=resume, data_dir=data_dir,
                synthetic=dry_run, probe_budget_s=DRY_RUN_PROBE_BUDGET_S if dry_run else QUICK_PROBE_BUDGET_S,
                threads=pool_threads(jobs) if executor == Executor.pool else None,
            )  # fmt: skip
            if dry_run or grid.total_s > PRINT_BEFORE_RUN_S:
                for line in describe(grid, workers=jobs if executor == Executor.pool else 1):
                    say(line)
            if dry_run:
                return
        from snnbench.ui import ProgressRenderer, summary_table

        with ProgressRenderer(console, quiet=quiet) as renderer:
            result = run_suite(
                loaded,
                overrides,
                out_dir=out,
                device=device.value,
                resume=resume,
                data_dir=data_dir,
                on_event=renderer,
                executor=Executor(executor).value,
                jobs=jobs,
                address=address,
                save_models=save_models,
            )
    except SnnbenchError as exc:
        raise _fail(exc) from None
    if not quiet:
        console.print(summary_table(result))
    held = ""
    if result.held:  # claimed by live processes elsewhere: named, so that a stuck lock can be found
        shown = ", ".join(result.held[:5]) + (
            f" and {len(result.held) - 5} more" if len(result.held) > 5 else ""
        )
        held = f"; {len(result.held)} held by another process's lock: {shown}"
    if result.models_kept:
        say(
            f"Retrained {len(result.models_kept)} runs that had records but no saved network: each "
            f"reproduced its record (same test and validation top-1); networks in "
            f"{result.out_dir / 'models'} (records unchanged)."
        )
    if not result.trained and not result.held:  # the one line --quiet keeps (errors are printed either way)
        if result.models_kept or result.models_not_reproduced:  # retrained for networks: said above/below
            say(f"No run trained for a record: {len(result.skipped)} runs have records.")
        else:
            say(
                f"Nothing to train: all {len(result.skipped)} runs already have records "
                "(use --no-resume to rerun)."
            )
    elif not result.trained:
        say(f"Nothing trained here: {len(result.skipped)} runs have records{held}.")
    else:
        say(f"Trained {len(result.trained)} runs, skipped {len(result.skipped)} with records{held}.")
    if not quiet:
        say(f"Records: {result.out_dir / 'runs'}")
        for path in result.files:
            say(f"Wrote {path}")
    for line in result.models_not_reproduced:
        err_console.print(f"[red]Error:[/red] {line}", highlight=False, markup=True, soft_wrap=True)
    if result.failed:
        shown = ", ".join(result.failed[:5]) + (" …" if len(result.failed) > 5 else "")
        err_console.print(
            f"[red]Error:[/red] {len(result.failed)} of {len(result.trained)} runs failed (recorded with "
            f"status failed and their error; the others are complete): {shown}",
            highlight=False,
            markup=True,
            soft_wrap=True,
        )
        raise typer.Exit(RUN_FAILED_EXIT)
    if result.models_not_reproduced:
        raise typer.Exit(RUN_FAILED_EXIT)


@app.command(epilog="Example: snnbench tune --suite digits-lowT --algorithms bptt --trials 8")
def tune(
    suite: Annotated[str, typer.Option(help="suite name or path (it must have a `tuning:` block)")],
    algorithms: Annotated[
        str | None, typer.Option(help="comma-separated entries (default: every entry of the tuned tracks)")
    ] = None,
    trials: Annotated[
        int | None, typer.Option(help="trials per entry (default: the suite's tuning budget)", min=1)
    ] = None,
    out: Annotated[Path, typer.Option(help="output directory (writes OUT/SUITE/tuning/)")] = Path("results"),
    jobs: Annotated[int, typer.Option(help="entries tuned in parallel processes", min=1)] = 1,
    data_dir: Annotated[Path | None, typer.Option(help="dataset root")] = None,
    plugin: Plugins = None,
    quiet: Annotated[bool, typer.Option(help="no line per trial")] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="list the studies (entry, T, trials, record) and train nothing")
    ] = False,
    timesteps: Annotated[
        str | None,
        typer.Option(help="with tuning.per_T: tune only at these T (comma-separated; default: every T)"),
    ] = None,
) -> None:
    """Search each entry's declared hyperparameters on the validation split, the same trials for every
    method (seeded TPE, trial 0 = the entry's values), at the suite's tuning T or, with `tuning.per_T`, at
    every T of the entry's grid; print a line per finished trial; write tuning records and print the
    `tuned:` blocks. A re-run reuses the trials that already have records."""
    from snnbench.errors import SnnbenchError
    from snnbench.events import Event, TrialFinished

    try:
        _load_plugins(plugin)
        import yaml

        from snnbench.suite import load_suite
        from snnbench.tuning import (
            record_label,
            record_name,
            record_T,
            seed_note,
            tune_suite,
            tuned_block,
            tuned_blocks,
        )
        from snnbench.ui import trial_line

        def show(event: Event) -> None:  # one line per finished trial, as it finishes
            if isinstance(event, TrialFinished) and not quiet:
                say(trial_line(event))

        loaded = load_suite(suite)
        if dry_run:
            _list_studies(loaded, _names(algorithms), out, trials, _ints(timesteps, "--timesteps"))
            return
        if note := seed_note(loaded):
            err_console.print(f"[yellow]Warning:[/yellow] {note}", soft_wrap=True, highlight=False)
        records = tune_suite(
            loaded,
            _names(algorithms),
            out_dir=out,
            trials=trials,
            jobs=jobs,
            data_dir=data_dir,
            on_event=show,
            timesteps=_ints(timesteps, "--timesteps"),
        )
    except SnnbenchError as exc:
        raise _fail(exc) from None
    found = []
    for record in records:
        path = out / loaded.name / "tuning" / record_name(record["entry"], record_T(record))
        found.append((record["entry"], record_T(record), tuned_block(record, path)))
        scored = [t for t in record["trials"] if t["val_top1"] is not None]
        if not scored:
            say(
                f"{record_label(record)}: {len(record['trials'])} trials at T={record['budget']['T']}, none "
                f"scored (every trial failed or diverged); chosen {record['chosen']['values']}; record {path}"
            )
            continue
        low = min(t["val_top1"] for t in scored)
        say(
            f"{record_label(record)}: {len(record['trials'])} trials at T={record['budget']['T']}, "
            f"validation top-1 {low:.2f}–{record['chosen']['val_top1']:.2f} %; "
            f"chosen {record['chosen']['values']} (trial {record['chosen']['trial']}); record {path}"
            + (
                f"; a first choice at the edge of its range widened {', '.join(record['widened'])} for a "
                "second round"
                if record.get("widened")
                else ""
            )
            + ("; all trials at chance (arbitrary choice)" if record.get("all_trials_at_chance") else "")
        )
        reused = sum(1 for t in record["trials"] if t.get("reused"))
        if reused:
            say(f"{record_label(record)}: {reused} of {len(record['trials'])} trials reused their records")
    for entry, block in tuned_blocks(found).items():  # the `tuned:` block to paste: per T when tuned per T
        dumped = block.model_dump(exclude_defaults=True)
        console.print(
            yaml.safe_dump({entry: {"tuned": dumped}}, sort_keys=False), markup=False, soft_wrap=True
        )


def _list_studies(
    loaded: Any, entries: list[str] | None, out: Path, trials: int | None, timesteps: list[int] | None
) -> None:
    """``tune --dry-run``: one line per study that ``tune`` would run (entry, T, trials, record file)."""
    from snnbench.tuning import record_name, tuned_per_T, tuning_specs

    specs = tuning_specs(loaded, entries, timesteps)
    count = trials or loaded.tuning.trials
    for spec in specs:
        per_T = tuned_per_T(loaded, spec.algorithm, spec.hparams)
        path = out / loaded.name / "tuning" / record_name(spec.entry, spec.T if per_T else None)
        applies = f"for T={spec.T}" if per_T else "for every T"
        say(
            f"{spec.entry}: {count} trials at T={spec.T} (budget {spec.budget}, seed {spec.seed}), "
            f"{applies}: {path}"
        )
    say(
        f"{len(specs)} studies of {count} trials each (a second round as large where a choice sits at an "
        "edge)"
    )


@app.command(epilog="Example: snnbench status --suite digits-lowT --budget smoke")
def status(
    suite: Annotated[str, typer.Option(help="suite name or path")],
    out: Annotated[Path, typer.Option(help="directory holding <suite>/runs")] = Path("results"),
    budget: Annotated[str | None, typer.Option(help="budget (default: the suite's)")] = None,
) -> None:
    """What of a suite's grid is done, stale, failed, running (claimed), resumable or pending, with the
    time left estimated from the records."""
    from snnbench.errors import SnnbenchError

    try:
        from snnbench.status import STATES, format_duration, suite_status, summary_line
        from snnbench.suite import load_suite

        loaded = load_suite(suite)
        statuses = suite_status(loaded, out, budget)
    except SnnbenchError as exc:
        raise _fail(exc) from None
    from rich import box
    from rich.table import Table

    table = Table(
        title=f"{loaded.name} ({budget or loaded.default_budget}) under {out}",
        header_style="bold",
        box=box.SIMPLE,
        pad_edge=False,
        collapse_padding=True,
    )
    table.add_column("entry", no_wrap=True)
    for state in [*STATES, "time left"]:
        table.add_column(state, justify="right", min_width=len(state))
    for s in statuses:
        cells = [str(s.counts[state] or "·") for state in STATES]
        table.add_row(s.entry, *cells, format_duration(s.eta_s))
    console.print(table)
    for s in statuses:
        for line in s.running:
            say(f"running: {line}")
        for line in s.stale_locks:
            say(f"stale lock (run takes it over): {line}")
    say(summary_line(statuses))
