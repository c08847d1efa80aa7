"""``list``: the registered algorithms, datasets, suites, architectures and encodings."""

from __future__ import annotations

import re
from enum import Enum
from typing import Annotated, Any

import typer

from snnbench.cli import Plugins, _fail, _load_plugins, app, console, rows_view, summary


class Listing(str, Enum):
    algorithms = "algorithms"
    datasets = "datasets"
    suites = "suites"
    architectures = "architectures"
    encodings = "encodings"


def citation(paper: Any) -> str:
    """``Authors (Venue Year)``, the year left out where the venue already gives it (a method of two papers
    names both venues with their years: "…, 2017; ICLR 2022")."""
    if re.search(rf"\b{paper.year}\b", paper.venue):
        return f"{paper.authors} ({paper.venue})"
    return paper.cite()


@app.command(name="list", epilog="Example: snnbench list algorithms")
def list_(what: Annotated[Listing, typer.Argument(help="what to list")], plugin: Plugins = None) -> None:
    """List algorithms, datasets, suites, architectures or encodings, one line each (`list datasets` is an
    alias of `snnbench datasets list`)."""
    from snnbench.errors import SnnbenchError

    try:
        _load_plugins(plugin)
        if what is Listing.algorithms:
            from snnbench.algorithms import algorithms as registry

            headers = ["algorithm", "description", "paper", "v", "origin"]
            rows = []
            for name in registry.names():
                cls = registry.get(name)
                cite = citation(cls.paper) if cls.paper else ""
                rows.append([name, cls.description, cite, str(cls.version), registry.origin(name)])
        elif what is Listing.datasets:
            from snnbench.cli.data import dataset_rows

            headers, rows = dataset_rows(None)
        elif what is Listing.suites:
            from snnbench.suite import load_suite, suite_names

            headers = ["suite", "dataset", "description"]
            rows = []
            for name in suite_names():
                s = load_suite(name)
                rows.append([name, s.dataset, s.description.strip().splitlines()[0] if s.description else ""])
        elif what is Listing.architectures:
            from snnbench.architectures import architectures

            headers = ["architecture", "layers", "source"]
            rows = []
            for name in architectures.names():
                arch = architectures.get(name)
                rows.append([name, arch.notation, arch.source or arch.description])
        else:
            from snnbench.data.encoding import encodings

            headers = ["encoding", "description"]
            rows = [[name, summary(encodings.get(name).__doc__)] for name in encodings.names()]
    except SnnbenchError as exc:
        raise _fail(exc) from None
    console.print(rows_view(headers, rows))
