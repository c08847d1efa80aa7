"""The ``snnbench`` command line: options → one library call → rich rendering.

Only :class:`~snnbench.errors.SnnbenchError` is caught (one red line, exit 1, or 2 for bad input); any
other exception is a bug and keeps its traceback. Heavy imports (torch) happen inside commands.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

app = typer.Typer(
    name="snnbench",
    help="Benchmark spiking-neural-network training methods: same data, same protocol, comparable results.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
console = Console()
err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])


def _fail(exc: Exception) -> typer.Exit:
    err_console.print(f"[red]Error:[/red] {exc}", highlight=False, markup=True, soft_wrap=True)
    return typer.Exit(getattr(exc, "exit_code", 1))


def _version(value: bool) -> None:
    if value:
        from snnbench import __version__

        say(f"snnbench {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="print the version and exit")
    ] = False,
) -> None:
    pass  # options of the whole program only; the commands do the work


Plugins = Annotated[
    list[Path] | None,
    typer.Option("--plugin", help="a method file to load (one-file plugin; repeatable)"),
]


def _load_plugins(plugins: list[Path] | None) -> None:
    from snnbench.algorithms import algorithms

    for path in plugins or []:
        algorithms.add_plugin_file(path)


def say(text: str) -> None:
    """One plain line on stdout, never wrapped (paths stay copyable)."""
    console.print(text, soft_wrap=True, highlight=False, markup=False)


def _ints(value: str | None, option: str, bounds: tuple[int, int] | None = None) -> list[int] | None:
    if value is None:
        return None
    try:
        values = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise typer.BadParameter(
            f"expected comma-separated integers, got {value!r}", param_hint=option
        ) from None
    if bounds is not None and not (values and all(bounds[0] <= v <= bounds[1] for v in values)):
        raise typer.BadParameter(
            f"expected comma-separated integers from {bounds[0]} to {bounds[1]}, got {value!r}",
            param_hint=option,
        )
    return values


def _names(value: str | None) -> list[str] | None:
    return None if value is None else [v.strip() for v in value.split(",") if v.strip()]


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class Executor(str, Enum):
    local = "local"
    pool = "pool"
    ray = "ray"


class Format(str, Enum):
    md = "md"
    csv = "csv"
    json = "json"


class Listing(str, Enum):
    algorithms = "algorithms"
    datasets = "datasets"
    suites = "suites"
    architectures = "architectures"
    encodings = "encodings"


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
            "--save-models", help="keep each run's final network (<out>/<suite>/models/, for export)"
        ),
    ] = False,
) -> None:
    """Train and evaluate a suite's grid (algorithms × T × seeds); write records, leaderboard and plots."""
    from snnbench.errors import SnnbenchError

    try:
        _load_plugins(plugin)
        from snnbench.estimate import PRINT_BEFORE_RUN_S, describe, estimate_suite
        from snnbench.grid import run_suite
        from snnbench.suite import MAX_TIMESTEPS, Overrides, load_suite
        from snnbench.tuning import with_tuning_records

        loaded = load_suite(suite)
        if tuned:
            loaded = with_tuning_records(loaded, out)

        overrides = Overrides(
            budget=budget,
            algorithms=_names(algorithms),
            timesteps=_ints(timesteps, "--timesteps", (1, MAX_TIMESTEPS)),
            seeds=_ints(seeds, "--seeds"),
        )
        if dry_run or not quiet:
            grid = estimate_suite(
                suite, overrides, out_dir=out, device=device.value, resume=resume, data_dir=data_dir,
                synthetic=dry_run,
            )  # fmt: skip
            if dry_run or grid.total_s > PRINT_BEFORE_RUN_S:
                for line in describe(grid):
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
    if not result.trained:  # the one line --quiet keeps (errors are printed either way)
        say(
            f"Nothing to train: all {len(result.skipped)} runs already have records "
            "(use --no-resume to rerun)."
        )
    else:
        say(f"Trained {len(result.trained)} runs, skipped {len(result.skipped)} with records.")
    if not quiet:
        say(f"Records: {result.out_dir / 'runs'}")
        for path in result.files:
            say(f"Wrote {path}")


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
) -> None:
    """Search each entry's declared hyperparameters on the validation split, the same trials for every
    method (seeded TPE, trial 0 = the entry's values); write tuning records and print the `tuned:` blocks."""
    from snnbench.errors import SnnbenchError

    try:
        _load_plugins(plugin)
        import yaml

        from snnbench.suite import load_suite
        from snnbench.tuning import tune_suite, tuned_block

        loaded = load_suite(suite)
        records = tune_suite(
            loaded, _names(algorithms), out_dir=out, trials=trials, jobs=jobs, data_dir=data_dir
        )
    except SnnbenchError as exc:
        raise _fail(exc) from None
    for record in records:
        path = out / loaded.name / "tuning" / f"{record['entry']}.json"
        scored = [t for t in record["trials"] if t["val_top1"] is not None]
        low = min(t["val_top1"] for t in scored)
        say(
            f"{record['entry']}: {len(record['trials'])} trials at T={record['budget']['T']}, "
            f"validation top-1 {low:.2f}–{record['chosen']['val_top1']:.2f} %; "
            f"chosen {record['chosen']['values']} (trial {record['chosen']['trial']}); record {path}"
        )
        block = tuned_block(record, path).model_dump()
        console.print(yaml.safe_dump({record["entry"]: {"tuned": block}}, sort_keys=False), markup=False)


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

    console.print(render_entry(loaded, key, fields), markup=False, highlight=False, soft_wrap=True)


@app.command(name="list", epilog="Example: snnbench list algorithms")
def list_(what: Annotated[Listing, typer.Argument(help="what to list")], plugin: Plugins = None) -> None:
    """List algorithms, datasets, suites, architectures or encodings, one line each."""
    from rich.table import Table

    from snnbench.errors import SnnbenchError

    try:
        _load_plugins(plugin)
        table = Table(show_header=True, header_style="bold")
        if what is Listing.algorithms:
            from snnbench.algorithms import algorithms as registry

            table.add_column("algorithm"), table.add_column("description"), table.add_column("paper")
            table.add_column("v"), table.add_column("origin")
            for name in registry.names():
                cls = registry.get(name)
                cite = cls.paper.cite() if cls.paper else ""
                table.add_row(name, cls.description, cite, str(cls.version), registry.origin(name))
        elif what is Listing.datasets:
            from snnbench.data import data_root, datasets

            table.add_column("dataset"), table.add_column("description"), table.add_column("status")
            for name in datasets.names():
                cls = datasets.get(name)
                table.add_row(name, cls.description, cls().status(data_root()))
        elif what is Listing.suites:
            from snnbench.suite import load_suite, suite_names

            table.add_column("suite"), table.add_column("dataset"), table.add_column("description")
            for name in suite_names():
                s = load_suite(name)
                table.add_row(name, s.dataset, s.description.strip().splitlines()[0] if s.description else "")
        elif what is Listing.architectures:
            from snnbench.architectures import architectures

            table.add_column("architecture"), table.add_column("layers"), table.add_column("source")
            for name in architectures.names():
                arch = architectures.get(name)
                table.add_row(name, arch.notation, arch.source or arch.description)
        else:
            from snnbench.data.encoding import encodings

            table.add_column("encoding"), table.add_column("description")
            for name in encodings.names():
                doc = (encodings.get(name).__doc__ or "").strip().splitlines()
                table.add_row(name, doc[0] if doc else "")
    except SnnbenchError as exc:
        raise _fail(exc) from None
    console.print(table)


@app.command(epilog="Example: snnbench leaderboard --suite digits-lowT --format csv")
def leaderboard(
    suite: Annotated[str, typer.Option(help="suite name or path")],
    format: Annotated[
        Format, typer.Option(help="print as markdown, CSV or JSON (rows with units and provenance)")
    ] = Format.md,
    out: Annotated[Path, typer.Option(help="output directory holding <suite>/runs")] = Path("results"),
    budget: Annotated[str | None, typer.Option(help="budget to rank (default: the suite's)")] = None,
    check: Annotated[
        bool, typer.Option("--check", help="only verify the committed files equal what the records produce")
    ] = False,
    columns: Annotated[
        str | None,
        typer.Option(help="comma-separated metric columns (see docs/metrics.md), e.g. spike_rate,energy_nj"),
    ] = None,
    plugin: Plugins = None,
) -> None:
    """Rebuild the leaderboard (and plots) of a suite from its records and print it."""
    from snnbench.errors import SnnbenchError

    try:
        _load_plugins(plugin)
    except SnnbenchError as exc:
        raise _fail(exc) from None
    if check:
        try:
            from snnbench.check import check_reports
            from snnbench.suite import load_suite

            loaded = load_suite(suite)
            problems = check_reports(loaded, out / loaded.name, budget)
        except SnnbenchError as exc:
            raise _fail(exc) from None
        if problems:
            err_console.print(
                f"[red]Error:[/red] {len(problems)} problem(s) in {out / loaded.name} (stale reports: "
                f"regenerate with `snnbench leaderboard --suite {suite}`; edited or unhashed records)",
                soft_wrap=True,
            )
            for problem in problems:
                err_console.print(problem, markup=False, highlight=False, soft_wrap=True)
            raise typer.Exit(1)
        say(f"{out / loaded.name}: leaderboard and plots match the records")
        return
    try:
        from snnbench.leaderboard import write_reports
        from snnbench.suite import load_suite

        loaded = load_suite(suite)
        if columns is None:
            files = write_reports(loaded, out / loaded.name, budget)
        if columns is not None or format is Format.json:  # a view printed; the written files stay as they are
            import pandas as pd

            from snnbench.leaderboard import by_track, select_records, to_json, to_markdown
            from snnbench.records import load_records

            chosen = budget or loaded.default_budget
            df = select_records(load_records(out / loaded.name), loaded, budget)
            tables = by_track(df, None if columns is None else _names(columns))
            combined = pd.concat(list(tables.values()), ignore_index=True)
            text = {
                Format.md: lambda: to_markdown(tables, loaded, len(df), [], chosen),
                Format.csv: lambda: combined.to_csv(index=False, float_format="%.4f"),
                Format.json: lambda: to_json(combined, df, loaded, chosen),
            }[format]()
        else:
            text = (files[0] if format is Format.md else files[1]).read_text()
    except SnnbenchError as exc:
        raise _fail(exc) from None
    sys.stdout.write(text)


class Axis(str, Enum):
    T = "T"
    sops = "sops"
    energy = "energy"


@app.command(epilog="Example: snnbench plot --suite digits-lowT --x energy")
def plot(
    suite: Annotated[str, typer.Option(help="suite name or path")],
    out: Annotated[Path, typer.Option(help="output directory holding <suite>/runs")] = Path("results"),
    budget: Annotated[str | None, typer.Option(help="budget to plot (default: the suite's)")] = None,
    x: Annotated[
        Axis, typer.Option("--x", help="x axis: time steps, synaptic operations or energy")
    ] = Axis.T,
) -> None:
    """Draw the suite's Pareto plot (accuracy vs T, synaptic operations or energy) from its records."""
    from snnbench.errors import SnnbenchError

    try:
        from snnbench.leaderboard import by_track, report_dir, select_records
        from snnbench.plots import pareto
        from snnbench.records import load_records
        from snnbench.suite import load_suite

        loaded = load_suite(suite)
        suite_dir = out / loaded.name
        if not (suite_dir / "runs").is_dir():
            raise SnnbenchError(f"no records for suite {loaded.name} under {suite_dir}")
        tables = by_track(select_records(load_records(suite_dir), loaded, budget))
        if not tables:
            raise SnnbenchError(f"no records of budget {budget or loaded.default_budget!r} under {suite_dir}")
        stem = "pareto" if x is Axis.T else f"pareto-{x.value}"
        paths = []
        for track, table in tables.items():  # one plot per track: tracks are never drawn together
            target = report_dir(loaded, suite_dir, budget) / f"{stem}-{track}"
            paths += pareto(table, loaded, target, x=x.value, track=track)
    except SnnbenchError as exc:
        raise _fail(exc) from None
    for path in paths:
        say(f"Wrote {path}")


@app.command(
    epilog="Example: snnbench report --suite digits-lowT  (then open results/digits-lowT/site/index.html)"
)
def report(
    suite: Annotated[str, typer.Option(help="suite name or path")],
    out: Annotated[Path | None, typer.Option(help="site directory (default: RESULTS/<suite>/site)")] = None,
    results: Annotated[Path, typer.Option(help="directory holding <suite>/runs")] = Path("results"),
    budget: Annotated[str | None, typer.Option(help="budget to report (default: the suite's)")] = None,
    check: Annotated[
        bool, typer.Option("--check", help="only verify the site equals what the records produce")
    ] = False,
) -> None:
    """Write a static HTML site (opens offline from disk): leaderboards, interactive Pareto plots, a page
    per run."""
    from snnbench.errors import SnnbenchError

    try:
        from snnbench.report import check_site, write_site
        from snnbench.suite import load_suite

        loaded = load_suite(suite)
        suite_dir = results / loaded.name
        site = out or suite_dir / "site"
        if check:
            problems = check_site(loaded, suite_dir, site, budget)
            if problems:
                raise SnnbenchError(
                    f"{len(problems)} stale file(s) in {site}; regenerate with "
                    f"`snnbench report --suite {suite}`\n" + "\n".join(problems)
                )
            say(f"{site}: the report matches the records")
            return
        files = write_site(loaded, suite_dir, site, budget)
    except SnnbenchError as exc:
        raise _fail(exc) from None
    say(f"Wrote {len(files)} files; open {site / 'index.html'}")


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
    say(summary_line(statuses))


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
    out: Annotated[Path, typer.Option(help="output directory holding <suite>/runs")] = Path("results"),
) -> None:
    """Write a saved network as a NIR graph (Neuromorphic Intermediate Representation); see docs/export.md."""
    from snnbench.errors import SnnbenchError

    try:
        from snnbench.export import export_run

        found = sorted(out.glob(f"*/runs/{run_id}.json"))
        if not found:
            raise SnnbenchError(f"no record {run_id}.json under {out}/*/runs")
        suite = found[0].parent.parent.name
        path = export_run(out, suite, run_id, to or out / suite / "models" / f"{run_id}.{format.value}")
    except SnnbenchError as exc:
        raise _fail(exc) from None
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
    plugin: Plugins = None,
) -> None:
    """Retrain a sample of records in a temporary folder: per record exact match or the difference, per
    row whether the new mean lies in the committed 95 % CI (exit 1 when one does not)."""
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
        )
    except SnnbenchError as exc:
        raise _fail(exc) from None
    from snnbench.ui import reproduction_tables

    for table in reproduction_tables(result):
        console.print(table)
    if any(row.within is False for row in result.rows):
        raise typer.Exit(1)


if __name__ == "__main__":  # pragma: no cover
    app()


datasets_app = typer.Typer(help="Dataset files: list, download, verify, path.", no_args_is_help=True)
app.add_typer(datasets_app, name="datasets")
DataDir = Annotated[
    Path | None, typer.Option("--data-dir", help="data root (default: $SNNBENCH_DATA or the user cache dir)")
]


def _dataset(name: str) -> Any:
    from snnbench.data import datasets

    return datasets.get(name)()


@datasets_app.command("list", epilog="Example: snnbench datasets list --data-dir /data")
def datasets_list(data_dir: DataDir = None) -> None:
    """Every dataset with its status (embedded, present, extracted, missing), size on disk and folder."""
    from rich.table import Table

    from snnbench.data import data_root, datasets

    root = data_root(data_dir)
    table = Table(show_header=True, header_style="bold")
    for column in ("dataset", "status", "size", "folder"):
        table.add_column(column, overflow="fold")
    for name in datasets.names():
        dataset = datasets.get(name)()
        folder = dataset.folder(root)
        size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.exists() else 0
        shown = "—" if not dataset.remote_files() else str(folder)
        table.add_row(name, dataset.status(root), f"{size / 2**20:.1f} MiB", shown)
    console.print(table)


@datasets_app.command(
    "download",
    epilog="Example: snnbench datasets download mnist  "
    "(SNNBENCH_MIRROR=http://lab-server/data: use a mirror)",
)
def datasets_download(
    name: Annotated[str, typer.Argument(help="dataset name")], data_dir: DataDir = None
) -> None:
    """Download (resuming interrupted files), verify the published checksums, and unpack if needed."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    from snnbench.data import data_root
    from snnbench.errors import SnnbenchError

    try:
        dataset = _dataset(name)
        columns = ("{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn())
        with Progress(*columns, console=err_console, transient=True) as progress:
            paths = dataset.download(data_root(data_dir), progress)
        for path in paths:
            say(f"{path} ok")
    except SnnbenchError as exc:
        raise _fail(exc) from None


@datasets_app.command("verify", epilog="Example: snnbench datasets verify cifar10")
def datasets_verify(
    name: Annotated[str, typer.Argument(help="dataset name")], data_dir: DataDir = None
) -> None:
    """Check every file against its published MD5 (a bad file is set aside and named, exit 1)."""
    from snnbench.data import data_root
    from snnbench.errors import SnnbenchError

    try:
        for file, digest in _dataset(name).verify(data_root(data_dir)).items():
            say(f"{file} md5 {digest} ok")
    except SnnbenchError as exc:
        raise _fail(exc) from None


@datasets_app.command("path", epilog="Example: snnbench datasets path nmnist")
def datasets_path(
    name: Annotated[str, typer.Argument(help="dataset name")], data_dir: DataDir = None
) -> None:
    """Print the folder where the dataset's files are expected."""
    from snnbench.data import data_root
    from snnbench.errors import SnnbenchError

    try:
        say(str(_dataset(name).folder(data_root(data_dir))))
    except SnnbenchError as exc:
        raise _fail(exc) from None


class CompareFormat(str, Enum):
    table = "table"
    md = "md"
    csv = "csv"
    json = "json"


@app.command(
    epilog="Example: snnbench compare --suite digits-lowT --method ottt --baselines bptt --timesteps 4  "
    "(entries with committed records; a plugin's entry: add --plugin FILE after running it)"
)
def compare(
    suite: Annotated[str, typer.Option(help="suite name or path")],
    method: Annotated[str, typer.Option(help="the suite entry to judge")],
    baselines: Annotated[
        str | None, typer.Option(help="comma-separated entries (default: all others)")
    ] = None,
    timesteps: Annotated[str | None, typer.Option(help="comma-separated T values (default: all)")] = None,
    out: Annotated[Path, typer.Option(help="output directory holding <suite>/runs")] = Path("results"),
    budget: Annotated[str | None, typer.Option(help="budget (default: the suite's)")] = None,
    format: Annotated[CompareFormat, typer.Option(help="table, md, csv or json")] = CompareFormat.table,
    plugin: Plugins = None,
) -> None:
    """Is METHOD better than the baselines at each T, or is it noise? Mean ± std, bootstrap CI of the
    difference, paired or Welch t-test, verdict with the seeds needed; published rows marked."""
    from snnbench.errors import SnnbenchError

    try:
        _load_plugins(plugin)
        from snnbench.compare import compare as run_compare
        from snnbench.compare import to_frame, to_markdown
        from snnbench.leaderboard import select_records
        from snnbench.records import load_records
        from snnbench.suite import load_suite

        loaded = load_suite(suite)
        records = select_records(load_records(out / loaded.name), loaded, budget)
        if records.empty:
            raise SnnbenchError(
                f"no records of budget {budget or loaded.default_budget!r} under {out / loaded.name}"
            )
        rows = run_compare(records, loaded, method, _names(baselines), _ints(timesteps, "--timesteps"))
    except SnnbenchError as exc:
        raise _fail(exc) from None
    frame = to_frame(rows)
    if format is CompareFormat.md:
        sys.stdout.write(to_markdown(rows, method))
    elif format is CompareFormat.csv:
        sys.stdout.write(frame.to_csv(index=False, float_format="%.4f"))
    elif format is CompareFormat.json:
        sys.stdout.write(frame.to_json(orient="records", indent=1) + "\n")
    else:
        from rich.table import Table

        table = Table(title=f"{loaded.name}: {method} against the baselines", header_style="bold")
        for column in ("T", method, "baseline", "baseline top-1", "Δ [95 % CI]", "test, p", "verdict"):
            table.add_column(column, overflow="fold")
        for r in rows:
            base = f"{r.base_mean:.2f}" + (
                f" ± {r.base_std:.2f} (n={r.base_n})" if r.kind == "measured" else " published"
            )
            style = {"better": "green", "worse": "red"}.get(r.verdict, "")
            table.add_row(
                str(r.T),
                f"{r.new_mean:.2f} ± {r.new_std:.2f} (n={r.new_n})",
                r.baseline,
                base,
                f"{r.difference:+.2f} [{r.ci_low:+.2f}, {r.ci_high:+.2f}]",
                f"{r.test}, {r.p_value:.3g}",
                f"[{style}]{r.verdict}[/{style}]" if style else r.verdict,
            )
        console.print(table)
