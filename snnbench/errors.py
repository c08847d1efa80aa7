"""The one exception family that crosses the CLI boundary.

Anything else raised inside snnbench is a bug and keeps its traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path


class SnnbenchError(Exception):
    """A user-facing error: bad input, missing data, unknown names. Printed as one line by the CLI."""

    exit_code: int = 1


class SuiteError(SnnbenchError):
    """A suite file is malformed: names the file, the field, what was expected and what was found."""

    exit_code = 2

    def __init__(self, path: str | Path, field: str, expected: str, got: object | None = None) -> None:
        self.path, self.field, self.expected, self.got = str(path), field, expected, got
        message = f"{path}: {field}: {expected}"
        if got is not None:
            message += f", got {got!r}"
        super().__init__(message)


class UnknownNameError(SnnbenchError):
    """A lookup of an unregistered name: suggests near names and lists the available ones."""

    exit_code = 2

    def __init__(self, kind: str, name: str, available: Iterable[str], where: str = "") -> None:
        self.kind, self.name = kind, name
        self.available = sorted(available)
        self.suggestions = suggest(name, self.available)
        message = f"unknown {kind} {name!r}"
        if self.suggestions:
            message += f"; did you mean {' or '.join(repr(s) for s in self.suggestions)}?"
        else:
            message += "."
        message += f" Available: {', '.join(self.available) or '(none)'}"
        if where:
            message += f" (searched {where})"
        super().__init__(message)


class RecordError(SnnbenchError):
    """A run record cannot be read (corrupt, or written by a newer snnbench)."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path, self.reason = str(path), reason
        super().__init__(f"{path}: {reason}")


class OutputError(SnnbenchError):
    """A result file cannot be written (read-only folder, full disk): names the file and the reason."""

    exit_code = 2

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path, self.reason = str(path), reason
        super().__init__(f"{path}: cannot write ({reason}); choose another --out or free space")

    def __reduce__(self) -> tuple[type, tuple[str, str]]:  # crosses process pools intact
        return type(self), (self.path, self.reason)


def suggest(name: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    """Near matches for a misspelt name (case-insensitive), best first."""
    candidates = list(candidates)
    lowered = {c.lower(): c for c in candidates}
    matches = difflib.get_close_matches(name.lower(), list(lowered), n=n, cutoff=0.6)
    return [lowered[m] for m in matches]
