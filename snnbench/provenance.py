"""Provenance of results: which code produced a record (hashes that flag stale records)."""

from __future__ import annotations

import hashlib
import inspect
import sys
from pathlib import Path
from types import ModuleType


def source_sha256(cls: type) -> str:
    """sha256 of the code behind ``cls`` (recorded to flag stale results): the file that defines it and every
    module of its package or of snnbench that the file uses, transitively through module globals, with the
    C++ sources beside them. A change in shared code (the neuron kernels, the network builder) thus makes
    the method's records stale too. Files are keyed by their path inside their package: the same hash on
    every machine. Imports made inside functions are not followed."""
    files = code_files(inspect.getmodule(cls))
    if not files:
        return ""
    digest = hashlib.sha256()
    for key in sorted(files):
        digest.update(key.encode() + b"\0" + files[key].read_bytes() + b"\0")
    return digest.hexdigest()


def code_files(module: ModuleType | None) -> dict[str, Path]:
    """Source files of ``module`` and of the snnbench (or same-package) modules it uses, transitively."""
    if module is None:
        return {}
    packages = {"snnbench", module.__name__.split(".")[0]}
    files: dict[str, Path] = {}
    seen: set[str] = set()
    queue = [module]
    while queue:
        current = queue.pop()
        if current.__name__ in seen or not getattr(current, "__file__", None):
            continue
        seen.add(current.__name__)
        path = Path(current.__file__)
        top = sys.modules.get(current.__name__.split(".")[0])
        # keys relative to the directory holding the top-level package (or a single-file module)
        package_file = getattr(top, "__file__", None) if hasattr(top, "__path__") else None
        root = Path(package_file).parent.parent if package_file else path.parent
        for source in [path, *sorted(path.parent.glob("*.cpp"))]:
            files[source.relative_to(root).as_posix()] = source
        for value in list(vars(current).values()):
            owner = getattr(value, "__module__", None)
            used = value if isinstance(value, ModuleType) else sys.modules.get(str(owner))
            if used is not None and used.__name__.split(".")[0] in packages:
                queue.append(used)
    return files
