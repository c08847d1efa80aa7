"""Rich rendering of run events for the CLI (a library caller passes its own ``on_event``)."""

from __future__ import annotations

from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from snnbench import events as ev


class ProgressRenderer:
    """One bar for the suite and one for the running run's epochs (loss, accuracy, ETA)."""

    def __init__(self, console: Console, quiet: bool = False) -> None:
        self.console, self.quiet = console, quiet
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
            disable=quiet,
        )
        self.suite_task: Any = None
        self.run_task: Any = None

    def __enter__(self) -> ProgressRenderer:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.progress.__exit__(None, None, None)

    def __call__(self, event: ev.Event) -> None:
        if self.quiet:
            return
        if isinstance(event, ev.SuiteStarted):
            self.suite_task = self.progress.add_task(
                f"[bold]{event.suite}", total=event.to_run, info=f"{event.total - event.to_run} with records"
            )
        elif isinstance(event, ev.RunStarted):
            if self.run_task is not None:
                self.progress.remove_task(self.run_task)
            spec = event.spec
            resumed = f" (resumed at epoch {event.resumed_from})" if event.resumed_from else ""
            self.run_task = self.progress.add_task(
                f"{spec.entry} T={spec.T} seed={spec.seed}",
                total=spec.epochs,
                completed=event.resumed_from,
                info=resumed.strip(),
            )
        elif isinstance(event, ev.EpochEnd):
            info = f"loss {event.loss:.4f}"
            if event.val_top1 is not None:
                info += f"  val {event.val_top1:.2f}%"
            self.progress.update(self.run_task, completed=event.epoch, info=info)
        elif isinstance(event, ev.RunFinished):
            record = event.record
            top1 = record.metrics.get("top1")
            status = f"top-1 {top1:.2f}%" if top1 is not None else record.status
            if record.status != "ok":
                status = f"[red]{record.status}[/red]"
            self.progress.console.print(f"  {record.run_id}: {status}")
            if self.suite_task is not None:
                self.progress.advance(self.suite_task)
        elif isinstance(event, ev.TrialFinished):
            self.progress.console.print(trial_line(event), markup=False, highlight=False, soft_wrap=True)


def trial_line(event: ev.TrialFinished) -> str:
    """One line per finished tuning trial: entry, trial k/n, values, validation top-1, seconds."""
    values = ", ".join(f"{name}={value:.4g}" if isinstance(value, float) else f"{name}={value}"
                       for name, value in event.values.items())  # fmt: skip
    score = f"validation top-1 {event.val_top1:.2f} %" if event.val_top1 is not None else event.status
    if event.val_top1 is not None and event.status != "ok":
        score += f" ({event.status})"
    took = f"{event.seconds:.1f} s" + (", record reused" if event.reused else "")
    widened = f" of round {event.round} (widened range)" if event.round > 1 else ""
    return f"{event.entry}: trial {event.number}/{event.trials}{widened}: {values}: {score} ({took})"


def summary_table(result: Any) -> Table:
    """Per algorithm × T: mean top-1 over the runs of this invocation's grid."""
    from collections import defaultdict
    from statistics import mean, stdev

    table = Table(title=f"{result.suite.name}: final-epoch top-1 (%)", header_style="bold")
    for column in ("algorithm", "T", "top-1 mean ± std", "n", "status"):
        table.add_column(column)
    groups: dict[tuple[str, int], list[Any]] = defaultdict(list)
    for record in result.records:
        groups[(record.entry, record.T)].append(record)
    for (entry, T), records in sorted(groups.items()):
        values = [r.metrics["top1"] for r in records if r.status == "ok"]
        text = f"{mean(values):.2f} ± {stdev(values) if len(values) > 1 else 0.0:.2f}" if values else "–"
        statuses = ",".join(sorted({r.status for r in records}))
        table.add_row(entry, str(T), text, str(len(values)), statuses)
    return table


def reproduction_tables(result: Any) -> list[Table]:
    """``snnbench reproduce``: the records, the rows against their committed CIs, and what differs in the
    environment (a :class:`~snnbench.reproduce.Reproduction`)."""
    from snnbench.reproduce import environment_differences

    records = Table(title="records retrained", header_style="bold")
    for column in ("run", "committed top-1", "new top-1", "Δ top-1", "max |Δ loss|", "result"):
        records.add_column(column, overflow="fold")
    for c in result.records:
        new = "–" if c.new_top1 is None else f"{c.new_top1:.2f}"
        delta = "–" if c.new_top1 is None else f"{c.new_top1 - c.committed_top1:+.2f}"
        loss = "–" if c.max_loss_difference is None else f"{c.max_loss_difference:.3g}"
        verdict = "[green]exact[/green]" if c.exact else "[yellow]differs[/yellow]"
        if c.new_top1 is None:
            verdict = f"[red]{c.status}[/red]"
        records.add_row(c.run_id, f"{c.committed_top1:.2f}", new, delta, loss, verdict)
    rows = Table(title="rows: new mean against the committed 95 % CI", header_style="bold")
    for column in ("algorithm", "T", "committed mean [95 % CI] (n)", "new mean (n)", "within"):
        rows.add_column(column)
    for r in result.rows:
        within = {True: "[green]yes[/green]", False: "[red]no[/red]", None: "no CI (n = 1)"}[r.within]
        rows.add_row(
            r.entry,
            str(r.T),
            f"{r.committed_mean:.2f} [{r.ci_low:.2f}, {r.ci_high:.2f}] ({r.committed_n})",
            f"{r.new_mean:.2f} ({r.new_n})",
            within,
        )
    environment = Table(title="environment (committed → here)", header_style="bold")
    environment.add_column("differs")
    for line in environment_differences(result) or ["nothing that changes numbers"]:
        environment.add_row(line)
    return [records, rows, environment]
