"""Progress events: the library reports through an ``on_event`` callback, the CLI renders them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from snnbench.records import RunRecord
    from snnbench.suite import RunSpec


@dataclass(frozen=True)
class SuiteStarted:
    """The grid is expanded: how many runs there are and how many will train."""

    suite: str
    total: int
    to_run: int
    out_dir: Path


@dataclass(frozen=True)
class RunSkipped:
    """A run already has a record (resume)."""

    spec: RunSpec
    status: str


@dataclass(frozen=True)
class RunStarted:
    """A run begins (``resumed_from``: the epoch a checkpoint brought it to)."""

    spec: RunSpec
    index: int
    total: int
    resumed_from: int = 0


@dataclass(frozen=True)
class EpochEnd:
    """One epoch done."""

    spec: RunSpec
    epoch: int  # 1-based, the number of epochs completed
    epochs: int
    loss: float
    train_top1: float | None
    val_top1: float | None
    seconds: float


@dataclass(frozen=True)
class RunFinished:
    """A run ended with a record (ok, diverged or failed)."""

    spec: RunSpec
    record: RunRecord


@dataclass(frozen=True)
class SuiteFinished:
    """Everything ran; where the outputs are."""

    suite: str
    out_dir: Path
    trained: int
    skipped: int
    files: tuple[Path, ...]


@dataclass(frozen=True)
class TrialFinished:
    """``snnbench tune``: one trial of an entry's search ended (``reused``: its record from an earlier,
    interrupted or repeated ``tune`` of the same spec was taken instead of retraining)."""

    entry: str
    number: int  # 1-based
    trials: int
    values: dict[str, Any]
    val_top1: float | None
    status: str
    seconds: float
    reused: bool
    round: int = 1  # 2: the second round over a widened range (a choice of round 1 sat at an edge)


Event = SuiteStarted | RunSkipped | RunStarted | EpochEnd | RunFinished | SuiteFinished | TrialFinished
EventSink = Callable[[Event], None]


def ignore(event: Event) -> None:
    """The no-op sink (``--quiet`` and library use)."""
