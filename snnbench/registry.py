"""A small generic name → object registry with lazy, complete discovery.

Registration is explicit (``@algorithms.register("ottt")``); discovery imports every public module of the
registry's package, then the entry-point group, then plugin files given on the command line. Failed
lookups suggest near names (lm-eval's registry shape).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import importlib.util
import inspect
import os
import pkgutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Generic, TypeVar

from snnbench.errors import SnnbenchError, UnknownNameError

T = TypeVar("T")


def _plugin_variable(group: str) -> str:
    """Environment variable listing the plugin files of a registry (inherited by worker processes)."""
    return "SNNBENCH_PLUGINS_" + group.rsplit(".", 1)[-1].upper()


class Registry(Generic[T]):
    """Name → object. ``base`` (a class) is enforced at registration for class entries."""

    def __init__(
        self,
        kind: str,
        *,
        base: type | None = None,
        package: str | None = None,
        entry_point_group: str | None = None,
    ) -> None:
        self.kind = kind
        self.base = base
        self.package = package
        self.entry_point_group = entry_point_group
        self._entries: dict[str, T] = {}
        self._origins: dict[str, str] = {}
        self._discovered = False
        self._frozen = False
        self._plugin_files: list[Path] = []

    # registration -----------------------------------------------------------------------------------
    def register(self, name: str, obj: T | None = None, *, origin: str | None = None) -> Any:
        """Register ``obj`` under ``name``; used bare as a decorator when ``obj`` is omitted."""

        def add(target: T) -> T:
            if self._frozen:
                raise SnnbenchError(f"the {self.kind} registry is frozen; cannot register {name!r} now")
            if self.base is not None and inspect.isclass(target) and not issubclass(target, self.base):
                raise TypeError(f"{self.kind} {name!r}: {target!r} must subclass {self.base.__name__}")
            where = origin or _origin_of(target)
            if name in self._entries and self._entries[name] is not target:
                raise ValueError(
                    f"{self.kind} {name!r} is registered twice: {self._origins[name]} and {where}"
                )
            self._entries[name] = target
            self._origins[name] = where
            if inspect.isclass(target):
                target.registry_name = name  # type: ignore[attr-defined]
            return target

        return add if obj is None else add(obj)

    # discovery --------------------------------------------------------------------------------------
    def add_plugin_file(self, path: str | Path) -> None:
        """Import a plugin file now; its ``register`` calls add entries (``--plugin path.py``)."""
        path = Path(path)
        if not path.is_file():
            raise SnnbenchError(f"plugin file {path} does not exist")
        self._discover()
        if path.resolve() in {p.resolve() for p in self._plugin_files}:
            return
        module_name = f"snnbench_plugin_{path.stem.replace('-', '_')}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise SnnbenchError(f"plugin file {path} cannot be imported as a Python module")
        module = importlib.util.module_from_spec(spec)
        before = set(self._entries)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except SnnbenchError:
            raise
        except Exception as exc:  # a user's file: report it as input, not as our bug
            raise SnnbenchError(f"plugin file {path} failed to import: {type(exc).__name__}: {exc}") from exc
        if not set(self._entries) - before:
            raise SnnbenchError(f"plugin file {path} registers no {self.kind} (use @register(...))")
        self._plugin_files.append(path)
        if self.entry_point_group:  # worker processes (pool, Ray) load the same files at discovery
            variable = _plugin_variable(self.entry_point_group)
            known = [p for p in os.environ.get(variable, "").split(os.pathsep) if p]
            os.environ[variable] = os.pathsep.join([*known, str(path.resolve())])

    def _discover(self) -> None:
        if self._discovered:
            return
        self._discovered = True
        if self.package:
            package = importlib.import_module(self.package)
            for info in pkgutil.iter_modules(package.__path__):
                if not info.name.startswith("_"):
                    importlib.import_module(f"{self.package}.{info.name}")
        if self.entry_point_group:
            for entry_point in importlib.metadata.entry_points(group=self.entry_point_group):
                entry_point.load()
            for file in os.environ.get(_plugin_variable(self.entry_point_group), "").split(os.pathsep):
                if file:
                    self.add_plugin_file(file)

    @contextlib.contextmanager
    def frozen(self) -> Iterator[None]:
        """Forbid registration inside the block (a run must not change the registry halfway)."""
        self._discover()
        previous, self._frozen = self._frozen, True
        try:
            yield
        finally:
            self._frozen = previous

    # lookups ----------------------------------------------------------------------------------------
    def get(self, name: str) -> T:
        """The entry for ``name``, or :class:`UnknownNameError` with suggestions."""
        self._discover()
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(self.kind, name, self._entries, where=self._where()) from None

    def names(self) -> list[str]:
        """All registered names, sorted."""
        self._discover()
        return sorted(self._entries)

    def origin(self, name: str) -> str:
        """Where ``name`` was registered (``file.py:line`` or the plugin's distribution)."""
        self.get(name)
        return self._origins[name]

    def __contains__(self, name: str) -> bool:
        self._discover()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def _where(self) -> str:
        places = [f"package {self.package}"] if self.package else []
        if self.entry_point_group:
            places.append(f"entry points {self.entry_point_group}")
        places += [f"plugin {p}" for p in self._plugin_files]
        return ", ".join(places)


def _origin_of(obj: Callable[..., Any] | Any) -> str:
    try:
        file = inspect.getsourcefile(obj) or "?"
        line = inspect.getsourcelines(obj)[1]
    except (TypeError, OSError):
        return getattr(obj, "__module__", "?")
    try:
        file = str(Path(file).resolve().relative_to(Path(__file__).resolve().parent.parent))
    except ValueError:
        pass
    return f"{file}:{line}"
