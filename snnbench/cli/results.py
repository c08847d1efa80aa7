"""A suite's records as tables, plots and verdicts: ``leaderboard``, ``plot``, ``report``, ``compare``."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from snnbench.cli import Plugins, _fail, _ints, _load_plugins, _names, app, console, err_console, say


class Format(str, Enum):
    md = "md"
    csv = "csv"
    json = "json"


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
            warnings: list[str] = []
            problems = check_reports(loaded, out / loaded.name, budget, warnings)
        except SnnbenchError as exc:
            raise _fail(exc) from None
        for warning in warnings:
            err_console.print(f"[yellow]Warning:[/yellow] {warning}", soft_wrap=True, highlight=False)
        if problems:
            err_console.print(
                f"[red]Error:[/red] {len(problems)} problem(s) in {out / loaded.name} (stale reports: "
                f"regenerate with `snnbench leaderboard --suite {suite}`; edited, unhashed or copied "
                "records, records of another suite or of several set-ups in one row, committed records made "
                "from a dirty tree; stale tuning records: "
                f"tune again with `snnbench tune --suite {suite}`)",
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

            from snnbench.leaderboard import by_track, label_tuning, select_records, to_json, to_markdown
            from snnbench.records import load_records
            from snnbench.rows import machine_counts

            chosen = budget or loaded.default_budget
            df = select_records(load_records(out / loaded.name), loaded, budget)
            df = label_tuning(df, loaded, out / loaded.name)
            tables = by_track(df, None if columns is None else _names(columns))
            combined = pd.concat(list(tables.values()), ignore_index=True)
            text = {
                Format.md: lambda: to_markdown(tables, loaded, len(df), [], chosen, machine_counts(df)),
                Format.csv: lambda: combined.to_csv(index=False, float_format="%.4f"),
                Format.json: lambda: to_json(combined, df, loaded, chosen),
            }[format]()
        else:
            text = (files[0] if format is Format.md else files[1]).read_text()
    except SnnbenchError as exc:
        raise _fail(exc) from None
    sys.stdout.write(text)


def _no_records(every: Any, suite: Any, budget: str | None, suite_dir: Path) -> Exception:
    """No record of the chosen budget: name the budgets that do have records (e.g. only smoke runs)."""
    from snnbench.errors import SnnbenchError

    chosen = budget or suite.default_budget
    current = every if every.empty else every[every["suite_version"] == suite.version]
    have = [] if current.empty else sorted(set(current["budget"]) - {chosen})
    hint = f"; there are records of budget {', '.join(map(repr, have))}: add --budget {have[0]}"
    return SnnbenchError(f"no records of budget {chosen!r} under {suite_dir}{hint if have else ''}")


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
        every = load_records(suite_dir)
        tables = by_track(select_records(every, loaded, budget))
        if not tables:
            raise _no_records(every, loaded, budget, suite_dir)
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
    out: Annotated[Path, typer.Option(help="output directory holding <suite>/runs")] = Path("results"),
    site_dir: Annotated[
        Path | None, typer.Option(help="where the site is written (default: OUT/<suite>/site)")
    ] = None,
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
        suite_dir = out / loaded.name
        site = site_dir or suite_dir / "site"
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
    """Is METHOD better than the baselines at each T, or is it noise? Mean ± std and each run's binomial
    error, the difference in points and test images with a bootstrap CI, an exact sign-flip (paired) or
    permutation test Holm-corrected over all rows, t-test p for reference; "better"/"worse" only when
    separated after Holm and larger than what another CPU family moves a mean."""
    from snnbench.errors import SnnbenchError

    try:
        _load_plugins(plugin)
        from snnbench.compare import cells, has_ties, notes, to_frame, to_markdown
        from snnbench.compare import compare as run_compare
        from snnbench.leaderboard import select_records
        from snnbench.records import load_records
        from snnbench.suite import load_suite

        loaded = load_suite(suite)
        every = load_records(out / loaded.name)
        records = select_records(every, loaded, budget)
        if records.empty:
            raise _no_records(every, loaded, budget, out / loaded.name)
        rows = run_compare(records, loaded, method, _names(baselines), _ints(timesteps, "--timesteps"))
    except SnnbenchError as exc:
        raise _fail(exc) from None
    frame = to_frame(rows)
    if format is CompareFormat.md:
        sys.stdout.write(to_markdown(rows, method))
    elif format is CompareFormat.csv:
        for column in ("new_binomial_se", "base_binomial_se"):  # per run, in seed order
            frame[column] = [";".join(f"{v:.4f}" for v in values) for values in frame[column]]
        sys.stdout.write(frame.to_csv(index=False, float_format="%.6g"))  # p-values far below 1e-4 too
    elif format is CompareFormat.json:
        sys.stdout.write(frame.to_json(orient="records", indent=1) + "\n")
    else:
        from rich.table import Table

        table = Table(title=f"{loaded.name}: {method} against the baselines", header_style="bold")
        headings = (
            "T",
            method,
            "baseline",
            "baseline top-1",
            "Δ (images) [95 % CI]",
            "exact test, p",
            "t-test, p",
        )
        ties = has_ties(rows)
        for column in (*headings, *(["ties (%)"] if ties else []), "verdict"):
            table.add_column(column, overflow="fold")
        for r in rows:
            style = {"better": "green", "worse": "red"}.get(r.verdict, "")
            shown = list(
                cells(r, ties).values()
            )  # the verdict cell says when the baseline ran on another machine
            shown[-1] = f"[{style}]{shown[-1]}[/{style}]" if style else shown[-1]
            table.add_row(*shown)
        console.print(table)
        for line in notes(rows):
            console.print(line, highlight=False)
