"""One row = one set-up: how records become the rows of ``leaderboard``, ``compare`` and ``report``.

A row's identity is :func:`snnbench.records.row_identity`: the full resolved spec less the seed (with the
record's suite, suite version, entry, method, method version, dataset, T and budget). Records of another
suite, dataset or set-up (an ``lr`` edited without a suite version bump, other tuning, another track, another
method version) never share a row, even under the same entry and T: they become rows of their own, labelled
with the fields that tell them apart (``bptt (spec.hparams.lr=0.1)``), and ``leaderboard --check`` fails on
them in a committed suite (:func:`row_problems`).

A seed counts once per row. Two files holding the same record (a copy under a second file name: the same
content hash) count once, the file named after its ``run_id`` kept; two *different* records of one seed in
one row are refused, naming both files, since nothing tells which is true.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import pandas as pd

from snnbench.errors import SnnbenchError


@dataclass(frozen=True)
class Row:
    """The records of one set-up at one T, each seed once."""

    entry: str
    T: int
    key: str  # sha256 of the row identity
    label: str  # the entry, or the entry with the fields telling it from other set-ups at this T
    records: pd.DataFrame
    duplicates: tuple[str, ...]  # files left out as copies of a record already in the row


def _flat(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict) and data:
        return {k: v for key, value in data.items() for k, v in _flat(value, f"{prefix}{key}.").items()}
    return {prefix.rstrip("."): data}


def _short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= 24 else text[:21] + "..."


def differences(identities: list[dict[str, Any]]) -> list[str]:
    """The (flattened) fields whose values differ between row identities, in a stable order."""
    flat = [_flat(identity) for identity in identities]
    keys = sorted({k for f in flat for k in f})
    return [k for k in keys if len({json.dumps(f.get(k), sort_keys=True) for f in flat}) > 1]


def _identity(group: pd.DataFrame) -> dict[str, Any]:
    return json.loads(group["row_identity"].iloc[0]) if "row_identity" in group else {}


def _files(group: pd.DataFrame) -> list[str]:
    return [str(f) for f in (group["file"] if "file" in group else group.get("run_id", group.index))]


def _one_per_seed(group: pd.DataFrame, where: str) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """The row's records with each seed once: copies dropped (returned by file), different records refused."""
    keep: list[Any] = []
    dropped: list[str] = []
    for seed, same in group.groupby("seed", sort=False):
        if len(same) == 1:
            keep.append(same.index[0])
            continue
        files = _files(same)
        contents = set(same["content_key"]) if "content_key" in same else {None}
        if len(contents) > 1 or None in contents:
            raise SnnbenchError(
                f"{files[0]} and {files[1]}: two different records of {where} seed {seed} in one set-up; "
                "nothing tells which is true: remove one"
            )
        named = [
            i
            for i, f in zip(same.index, files, strict=True)
            if f.rsplit("/", 1)[-1] == f"{same.loc[i, 'run_id']}.json"
        ]
        chosen = named[0] if named else same.index[0]
        keep.append(chosen)
        dropped += [f for i, f in zip(same.index, files, strict=True) if i != chosen]
    return group.loc[sorted(keep, key=list(group.index).index)], tuple(dropped)


def group_rows(df: pd.DataFrame) -> list[Row]:
    """The rows of ``df`` (records as :func:`snnbench.records.load_records` reads them), in the order of each
    row's first record. A frame without ``row_key`` (records built in memory) groups by entry × T."""
    if df.empty:
        return []
    df = df.reset_index(drop=True)  # positions: frames concatenated in memory repeat index labels
    keys = df["row_key"] if "row_key" in df else df["entry"].astype(str) + "\0" + df["T"].astype(str)
    groups = [(key, df.loc[index]) for key, index in df.groupby(keys, sort=False).groups.items()]
    groups.sort(key=lambda kg: kg[1].index[0])
    at: dict[tuple[str, int], list[tuple[str, pd.DataFrame]]] = {}
    for key, group in groups:
        at.setdefault((str(group["entry"].iloc[0]), int(group["T"].iloc[0])), []).append((str(key), group))
    labels: dict[str, str] = {}
    for (entry, _T), same in at.items():
        if len(same) == 1:
            labels[same[0][0]] = entry
            continue
        fields = differences([_identity(group) for _, group in same])
        for key, group in same:
            values = _flat(_identity(group))
            shown = ", ".join(f"{f}={_short(values.get(f))}" for f in fields[:3]) or f"set-up {key[:8]}"
            labels[key] = f"{entry} ({shown}{', ...' if len(fields) > 3 else ''})"
    rows = []
    for key, group in groups:
        entry, T = str(group["entry"].iloc[0]), int(group["T"].iloc[0])
        records, duplicates = _one_per_seed(group, f"{entry} T={T}")
        rows.append(Row(entry, T, str(key), labels[str(key)], records, duplicates))
    return rows


def row_problems(df: pd.DataFrame, suite_name: str) -> list[str]:
    """What ``leaderboard --check`` refuses in a committed suite's records ``df`` (all of ``runs/``, before
    :func:`snnbench.leaderboard.select_records`): records of another suite, several set-ups under one entry
    × T of the same suite version and budget, and copies of one record under two file names."""
    if df.empty:
        return []
    problems = [
        f"{file}: a record of suite {other!r}, not {suite_name!r}: it belongs in its own suite's folder"
        for file, other in zip(_files(df), df["suite"], strict=True)
        if other != suite_name
    ]
    df = df[df["suite"] == suite_name]
    for _, part in df.groupby(["suite_version", "budget"], sort=True):
        rows = group_rows(part)
        at: dict[tuple[str, int], list[Row]] = {}
        for row in rows:
            at.setdefault((row.entry, row.T), []).append(row)
            problems += [f"{file}: a copy of a record already in the row {row.label} T={row.T}: remove it"
                         for file in row.duplicates]  # fmt: skip
        for (entry, T), same in at.items():
            if len(same) > 1:
                fields = differences([_identity(r.records) for r in same])
                problems.append(
                    f"{entry} T={T}: records of {len(same)} set-ups (differing in {', '.join(fields[:5])}) "
                    "share one entry and suite version: bump the suite version or remove the old records ("
                    + "; ".join(f"{r.label}: {', '.join(_files(r.records)[:2])}" for r in same)
                    + ")"
                )
    return problems


_CPU_NOISE = re.compile(r"\((?:R|TM|tm)\)|\bCPU\b|\bProcessor\b|@\s*[\d.]+\s*[GM]Hz")


def machine_kind(environment: dict[str, Any] | None) -> str:
    """What ran a record, as rows are compared by it: ``cpu: <CPU name> family F model M`` (the name less
    trademarks and clock, the x86 family and model from ``environment.cpu_identity``; the stepping left out),
    ``cuda: <GPU name>`` on a GPU, ``unknown`` without an environment. Virtual machines often name only the
    vendor and line (``AMD EPYC``): the family and model tell the generation, and a CPU change alone moved
    a digits-lowT row's mean by up to :data:`snnbench.compare.CROSS_CPU_TOLERANCE` points."""
    env = environment or {}
    device = str(env.get("device") or "").split(":")[0]
    if not device:
        return "unknown"
    if device == "cuda":
        return f"cuda: {env.get('gpu') or 'unknown GPU'}"
    name = " ".join(_CPU_NOISE.sub(" ", str(env.get("cpu") or "")).split()) or "unknown CPU"
    found = re.match(r"family (\d+) model (\d+)", str(env.get("cpu_identity") or ""))
    return f"{device}: {name} " + (f"family {found[1]} model {found[2]}" if found else "(family unknown)")


MACHINES = " + "  # joins a row's machine kinds (sorted) in the ``machine`` column


def machine_counts(df: pd.DataFrame) -> dict[str, int]:
    """Machine kind → records of ``df`` made on it (the ``machine`` column of
    :func:`snnbench.records.load_records`), most records first, then by name: the first is the majority."""
    if df.empty or "machine" not in df:
        return {}
    counts = df["machine"].astype(str).value_counts()
    return dict(sorted(((str(k), int(v)) for k, v in counts.items()), key=lambda kv: (-kv[1], kv[0])))
