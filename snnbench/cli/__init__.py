"""The ``snnbench`` command line: options → one library call → rich rendering.

One module per command family, each registering its commands on :data:`app`:

- :mod:`~snnbench.cli.run`: ``run``, ``tune``, ``status`` (training a suite's grid and where it stands);
- :mod:`~snnbench.cli.listing`: ``list`` (registered algorithms, datasets, suites, architectures, encodings);
- :mod:`~snnbench.cli.results`: ``leaderboard``, ``plot``, ``report``, ``compare`` (a suite's records as
  tables, plots and verdicts);
- :mod:`~snnbench.cli.records`: ``show``, ``merge``, ``export``, ``evaluate``, ``reproduce`` (single records,
  entries and saved networks);
- :mod:`~snnbench.cli.data`: the ``datasets`` group (``list``, ``download``, ``verify``, ``path``).

This module holds the app, the shared options and helpers. Only :class:`~snnbench.errors.SnnbenchError` is
caught (one red line, exit 1, or 2 for bad input); any other exception is a bug and keeps its traceback.
Exit codes of a command that ran but whose verdict is negative: `run` 3 when any run failed (the others and
the reports are written); `reproduce`, `leaderboard --check` and `datasets verify` 1.
Heavy imports (torch) happen inside commands.
"""

from __future__ import annotations

import os
import re
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, get_args

import typer
from rich.console import Console, RenderableType
from rich.text import Text
from typer.core import TyperCommand, TyperGroup


def _type_label(param: Any, ctx: Any) -> str | None:
    """The value column of ``--help``: nothing for a flag, ``PATH…`` for a list of paths, else Typer's."""
    if getattr(param, "is_flag", False) or getattr(param, "count", False):
        return ""
    descriptor = getattr(param, "type_descriptor", None)
    if descriptor is not None and descriptor.is_list and get_args(descriptor.annotation) == (Path,):
        return "PATH…"
    return type(param).display_type_rich(param, ctx)


def _readable_metavars(command: Any, ctx: Any) -> None:
    for param in command.get_params(ctx):
        if hasattr(param, "display_type_rich"):
            param.display_type_rich = lambda ctx, param=param: _type_label(param, ctx)


class Command(TyperCommand):
    """A Typer command whose help shows flags without a value and lists of paths as ``PATH…``."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        _readable_metavars(self, ctx)
        super().format_help(ctx, formatter)


class Group(TyperGroup):
    """The same for a command group's own options (``--version``, ``--help``)."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        _readable_metavars(self, ctx)
        super().format_help(ctx, formatter)


app = typer.Typer(
    name="snnbench",
    help="Benchmark spiking-neural-network training methods: same data, same protocol, comparable results.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    cls=Group,
)
console = Console()
err_console = Console(stderr=True)


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
    # options of the whole program only; the commands do the work. Rich reads COLUMNS once, when a console
    # is made: read it again at every invocation (a test runner or a long-lived process changes it)
    columns = os.environ.get("COLUMNS", "")
    for each in (console, err_console):
        each.width = int(columns) if columns.isdigit() else None  # type: ignore[assignment]  # None: detect


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


def plain(text: str) -> str:
    """Docstring markup shown as plain text: reST ``x`` → x."""
    return re.sub(r"``([^`]+)``", r"\1", text)


def say_wrapped(text: str) -> None:
    """Lines wrapped at word boundaries to the terminal's width, continuation lines indented under their
    line's own indentation (a word longer than the width, such as a path, is kept whole)."""
    width = max(console.width, 40)
    for line in plain(text).splitlines():
        indent = " " * (len(line) - len(line.lstrip(" ")))
        wrapped = textwrap.fill(
            line.strip(),
            width,
            initial_indent=indent,
            subsequent_indent=indent + "    ",
            break_long_words=False,
            break_on_hyphens=False,
        )
        say(wrapped or line)


def summary(doc: str | None) -> str:
    """A docstring's first paragraph on one line, markup made plain."""
    paragraph = textwrap.dedent(doc or "").strip().split("\n\n")[0]
    return plain(" ".join(paragraph.split()))


def rows_view(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> RenderableType:
    """A table when every column fits its longest word (cells then wrap at word boundaries, nothing is cut);
    on a narrower terminal one block per row: the first cell, then each other cell under its header, so
    that descriptions wrap at words and paths stay whole."""
    from rich.table import Table

    rows = [[plain(cell) for cell in row] for row in rows]

    def longest_word(text: str) -> int:
        return max((len(word) for word in text.split()), default=0)

    # each column: its widest word + one space of padding either side + one border; one more border
    needed = 1 + sum(
        3 + max(longest_word(h), *(longest_word(r[i]) for r in rows)) for i, h in enumerate(headers)
    )
    if needed <= console.width:
        table = Table(show_header=True, header_style="bold")
        for header in headers:
            table.add_column(header, overflow="fold")
        for row in rows:
            table.add_row(*row)
        return table
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True)
    grid.add_column(overflow="fold")
    for row in rows:
        grid.add_row(Text(row[0], style="bold"), "")
        for header, cell in zip(headers[1:], row[1:], strict=True):
            if cell:
                grid.add_row(Text(f"  {header}", style="dim"), cell)
    return grid


def _ints(value: str | None, option: str, bounds: tuple[int, int] | None = None) -> list[int] | None:
    if value is None:
        return None
    try:
        values = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise typer.BadParameter(
            f"expected comma-separated integers, got {value[:100]!r}", param_hint=option
        ) from None
    if bounds is not None and not (values and all(bounds[0] <= v <= bounds[1] for v in values)):
        raise typer.BadParameter(
            f"expected comma-separated integers from {bounds[0]} to {bounds[1]}, got {value[:100]!r}",
            param_hint=option,
        )
    if repeated := sorted({v for v in values if values.count(v) > 1}):
        raise typer.BadParameter(
            f"expected distinct values; given more than once: {repeated}", param_hint=option
        )
    return values


def _names(value: str | None) -> list[str] | None:
    return None if value is None else [v.strip() for v in value.split(",") if v.strip()]


# The command families register their commands on `app` (imported for that effect, after the helpers above).
from snnbench.cli import data, listing, records, results, run  # noqa: E402, F401

_ORDER = ("run", "tune", "list", "leaderboard", "plot", "report", "show", "status", "merge", "export",
          "evaluate", "reproduce", "compare")  # fmt: skip
app.registered_commands.sort(key=lambda info: _ORDER.index(info.name or info.callback.__name__))
for _info in app.registered_commands + data.datasets_app.registered_commands:
    if _info.cls in (None, TyperCommand):
        _info.cls = Command
    if _info.short_help is None and _info.callback is not None:  # the commands list: one line per paragraph,
        _info.short_help = summary(_info.callback.__doc__)  # wrapped to the terminal, not the docstring
