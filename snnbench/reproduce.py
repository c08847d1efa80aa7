"""``snnbench reproduce``: retrain a deterministic sample of a suite's records into a temporary folder and
say how far the new numbers are from the committed ones.

Per record: *exact* when the final top-1 and every epoch's loss are identical, otherwise the differences.
Per row of the sample (one set-up at one T, as the leaderboard groups them; a seed once): whether the new
mean top-1 lies inside the 95 % confidence interval of the committed row's mean (Student's t over the
committed seeds). Identical numbers need the same CPU model and thread count: the environment of both is
reported beside the figures. A record whose spec does not validate or hash to its run id is refused before
any training.

The verdict (:meth:`Reproduction.problems`, ``reproduce`` exits 1 on any): a retrain that did not end ok, a
record whose new top-1 is more than ``tolerance`` percentage points (default :data:`TOLERANCE_PP`) from the
committed one, or a row whose new mean lies outside the committed CI. Before any training, every record
that would be sampled or enter a row's CI must carry its content hash
(:func:`~snnbench.records.content_problem`): an edited or unhashed record is refused with its file named.
"""

from __future__ import annotations

import json
import math
import random
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from scipy import stats

from snnbench import events as ev
from snnbench.errors import RecordError, SnnbenchError
from snnbench.records import (
    RecordStore,
    RunRecord,
    content_problem,
    metrics_problem,
    read_record,
    row_identity,
)
from snnbench.suite import RunSpec, Suite, canonical_sha256
from snnbench.ties import as_scored_by

ENVIRONMENT_KEYS = ("cpu", "cpu_flags", "torch_build", "torch_threads")
TOLERANCE_PP = (
    1.0  # |Δ top-1| of one retrained record, in percentage points, beyond which it does not reproduce
)


@dataclass(frozen=True)
class RecordCheck:
    """One retrained record against its committed twin."""

    run_id: str
    entry: str
    T: int
    committed_top1: float
    new_top1: float | None  # None: the retrained run did not finish ok
    max_loss_difference: float | None  # largest |Δ| over the epochs' losses
    exact: bool
    status: str = "ok"  # of the retrained run
    error: str | None = None  # the retrained run's error, when it failed


@dataclass(frozen=True)
class RowCheck:
    """The sample's new mean of an (entry, T) row against the committed row's 95 % CI."""

    entry: str
    T: int
    committed_mean: float
    ci_low: float  # NaN when the committed row has a single seed
    ci_high: float
    committed_n: int
    new_mean: float
    new_n: int

    @property
    def within(self) -> bool | None:
        """Inside the interval (None: no interval from one seed)."""
        return None if math.isnan(self.ci_low) else self.ci_low <= self.new_mean <= self.ci_high


@dataclass
class Reproduction:
    """What :func:`reproduce` found."""

    records: list[RecordCheck] = field(default_factory=list)
    rows: list[RowCheck] = field(default_factory=list)
    committed_environments: list[dict[str, Any]] = field(default_factory=list)
    environment: dict[str, Any] = field(default_factory=dict)
    tolerance: float = TOLERANCE_PP

    def problems(self) -> list[str]:
        """A line per failed retrain, record beyond the tolerance, row outside its CI; empty: reproduced."""
        lines = []
        for c in self.records:
            if c.new_top1 is None:
                last = (c.error or "").strip().splitlines()[-1:] or ["no error recorded"]
                lines.append(f"{c.run_id}: the retrain ended {c.status} ({last[0][:200]})")
            elif abs(c.new_top1 - c.committed_top1) > self.tolerance:
                lines.append(
                    f"{c.run_id}: top-1 {c.new_top1:.2f} against the committed {c.committed_top1:.2f}, "
                    f"more than {self.tolerance:g} points apart"
                )
        lines += [
            f"{r.entry} T={r.T}: new mean {r.new_mean:.2f} outside the committed 95 % CI "
            f"[{r.ci_low:.2f}, {r.ci_high:.2f}]"
            for r in self.rows
            if r.within is False
        ]
        return lines


def mean_ci(values: list[float], level: float = 0.95) -> tuple[float, float, float]:
    """Mean and the ``level`` confidence interval of the mean (Student's t); NaN bounds for one value."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, math.nan, math.nan
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * std / math.sqrt(n)
    return mean, mean - half, mean + half


def sample(records: list[RunRecord], n: int, seed: int) -> list[RunRecord]:
    """``n`` records drawn without replacement by ``seed``: the same sample on every machine."""
    ordered = sorted(records, key=lambda r: r.run_id)
    return sorted(random.Random(seed).sample(ordered, min(n, len(ordered))), key=lambda r: r.run_id)


def _losses(record: RunRecord) -> list[float | None]:
    return [row.get("loss") for row in record.history]


def _check(old: RunRecord, new: RunRecord) -> RecordCheck:
    # the committed record's rule: a record made before the tie rule is compared with the retrain's own
    # read-out (argmax, a tie to the lowest index), not with its expected top-1 (snnbench.ties)
    new_top1 = (
        as_scored_by(old.metrics_protocol, new.metrics, new.metrics_protocol, "top1")
        if new.status == "ok"
        else None
    )
    if not isinstance(new_top1, (int, float)) or not math.isfinite(new_top1):
        new_top1 = None
    old_losses, new_losses = _losses(old), _losses(new)
    paired = [(a, b) for a, b in zip(old_losses, new_losses, strict=False) if a is not None and b is not None]
    loss_gap = (
        max((abs(a - b) for a, b in paired), default=None) if len(old_losses) == len(new_losses) else None
    )
    return RecordCheck(
        run_id=old.run_id,
        entry=old.entry,
        T=old.T,
        committed_top1=old.metrics["top1"],
        new_top1=new_top1,
        max_loss_difference=loss_gap,
        exact=new_top1 == old.metrics["top1"] and new_losses == old_losses,
        status=new.status if new_top1 is not None or new.status != "ok" else "ok without a top-1",
        error=new.error,
    )


def run_spec(record: RunRecord, path: Path) -> RunSpec:
    """The record's spec as a :class:`RunSpec`, refused (naming ``path`` and the field) when it does not
    validate (an entry like ``../../x`` would name files outside the output folder) or does not hash to the
    record's ``spec_hash`` and ``run_id``."""
    try:
        spec = RunSpec.model_validate(record.spec)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(p) for p in error["loc"])
        raise RecordError(path, f"spec.{field}: {error['msg']}") from None
    if spec.spec_hash != record.spec_hash or spec.run_id != record.run_id:
        raise RecordError(
            path, "spec does not hash to the record's spec_hash and run_id: edited after it was run"
        )
    return spec


def reproduce(
    suite: Suite,
    suite_dir: Path,
    n: int,
    *,
    seed: int = 0,
    budget: str | None = None,
    entries: list[str] | None = None,
    timesteps: list[int] | None = None,
    device: str = "cpu",
    data_dir: str | Path | None = None,
    on_event: ev.EventSink = ev.ignore,
    tolerance: float = TOLERANCE_PP,
) -> Reproduction:
    """Retrain ``n`` sampled ok records of ``suite_dir`` (of ``budget``, the suite's current version,
    optionally only ``entries``/``timesteps``) in a temporary folder and compare (``tolerance``: see
    :meth:`Reproduction.problems`)."""
    from snnbench.environment import environment, resolve_device
    from snnbench.runner import run_one

    budget = budget or suite.default_budget
    runs = RecordStore(suite_dir.parent, suite_dir.name).runs
    loaded = [(path, read_record(path)) for path in sorted(runs.glob("*.json"))] if runs.is_dir() else []
    file_of = {id(record): path for path, record in loaded}  # for errors naming the file
    committed = [
        r
        for _, r in loaded
        if r.status == "ok"
        and r.suite == suite.name
        and r.budget == budget
        and r.suite_version == suite.version
        and (entries is None or r.entry in entries)
        and (timesteps is None or r.T in timesteps)
    ]
    if not committed:
        raise SnnbenchError(f"no ok records of budget {budget!r} to reproduce under {suite_dir}")
    for record in committed:  # an ok record without a top-1 cannot be compared with
        if problem := metrics_problem(record, ranked=True):
            raise RecordError(file_of[id(record)], problem)
    for record in committed:  # an edited record is refused, not retrained against (nor in a row's CI)
        path = file_of[id(record)]
        if problem := content_problem(json.loads(path.read_bytes())):
            raise RecordError(path, problem)
    if not (tolerance >= 0 and math.isfinite(tolerance)):
        raise SnnbenchError(f"--tolerance: expected a number of percentage points >= 0, got {tolerance!r}")
    chosen = sample(committed, n, seed)
    specs = [run_spec(old, file_of[id(old)]) for old in chosen]  # every spec checked before any training
    result = Reproduction(environment=environment(resolve_device(device)), tolerance=tolerance)
    with tempfile.TemporaryDirectory() as tmp:
        store = RecordStore(tmp, suite.name)
        for i, (old, spec) in enumerate(zip(chosen, specs, strict=True), start=1):
            new = run_one(
                spec,
                store,
                device=device,
                data_dir=data_dir,
                on_event=on_event,
                index=i,
                total=len(chosen),
            )
            result.records.append(_check(old, new))
            result.committed_environments.append(old.environment)
    row_of = {id(r): canonical_sha256(row_identity(r)) for r in committed}  # one row = one set-up
    checked = list(zip(chosen, result.records, strict=True))
    for key in sorted(
        {row_of[id(old)] for old in chosen},
        key=lambda k: next((c.entry, c.T) for old, c in checked if row_of[id(old)] == k),
    ):
        entry, T = next((c.entry, c.T) for old, c in checked if row_of[id(old)] == key)
        by_seed = {r.seed: r.metrics["top1"] for r in committed if row_of[id(r)] == key}  # a copy counts once
        committed_top1 = list(by_seed.values())
        new = [c.new_top1 for old, c in checked if row_of[id(old)] == key and c.new_top1 is not None]
        if not new:
            continue
        mean, low, high = mean_ci(committed_top1)
        result.rows.append(
            RowCheck(entry, T, mean, low, high, len(committed_top1), sum(new) / len(new), len(new))
        )
    return result


def environment_differences(result: Reproduction) -> list[str]:
    """One line per reproducibility-relevant setting that differs between the committed runs and here."""
    lines = []
    for key in ENVIRONMENT_KEYS:
        committed = {repr(env.get(key)) for env in result.committed_environments}
        here = repr(result.environment.get(key))
        if committed != {here}:
            lines.append(f"{key}: committed {', '.join(sorted(committed))}; here {here}")
    return lines
