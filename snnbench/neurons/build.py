"""Build a C++ extension once per (source, flags, compiler, ninja, torch, Python, CPU) into a shared cache.

The cache (``$SNNBENCH_KERNEL_DIR``, default ``~/.cache/snnbench/kernels``) holds one folder per key,
``<stem>_<key>/``, that appears by an atomic rename of a private build folder: it is complete or absent.
A builder holds an ``flock`` on ``<stem>_<key>.lock`` while it compiles; the kernel releases it when the
process dies (``kill -9`` included), so a killed build never blocks the next one, and the next builder
removes the dead one's private folder. Torch's own build lock lives inside the private folder, where no
other process looks. A process that finds the lock held waits for the finished folder at most
``$SNNBENCH_BUILD_WAIT_S`` seconds (default 300; a build takes 20–60 s), then raises
:class:`BuildWaitTimeout` naming the holder.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType

DEFAULT_WAIT_S = 300.0
POLL_S = 0.2
# -march=native: built on the machine that runs it (the build key holds the CPU's model and flags);
# -mtune=generic: the same instructions, scheduled for current cores (gcc's Zen 1 tuning keeps AVX2 to 128-bit
# vectors: the LIF backward 12.9 -> 11.5 ms on [500, 16, 1024] there, outputs bit-identical);
# -ffp-contract=off: no fused multiply-adds, the kernels repeat torch's arithmetic operation by operation;
# -fno-trapping-math lets the compiler vectorise clamps without AVX-512 masks
NATIVE_FLAGS = ("-O3", "-march=native", "-mtune=generic", "-ffp-contract=off", "-fno-trapping-math")


class BuildWaitTimeout(Exception):
    """Another live process held the build lock for longer than the wait allowed."""


def cache_root() -> Path:
    """``$SNNBENCH_KERNEL_DIR``, or ``snnbench/kernels`` under ``$XDG_CACHE_HOME`` (``~/.cache``)."""
    if os.environ.get("SNNBENCH_KERNEL_DIR"):
        return Path(os.environ["SNNBENCH_KERNEL_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "snnbench" / "kernels"


def _tool_version(command: Sequence[str]) -> str:
    """First line of ``command``'s output, or why there is none."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"unavailable ({type(exc).__name__})"
    return (done.stdout or done.stderr).strip().split("\n")[0]


def cpu_signature() -> str:
    """This CPU's model and instruction-set flags (``-march=native`` builds for exactly these)."""
    cpuinfo = Path("/proc/cpuinfo")
    text = cpuinfo.read_text() if cpuinfo.exists() else ""
    lines = [line for line in text.splitlines() if line.startswith(("model name", "flags", "Features"))][:2]
    return "\n".join(lines) or f"{platform.machine()} {platform.processor()}"


def build_key(source: Path, flags: Sequence[str]) -> str:
    """sha256 of everything that changes the built library: source, flags, compiler, ninja, torch, Python
    ABI and CPU."""
    import torch

    parts = [
        source.read_bytes(),
        " ".join(flags).encode(),
        _tool_version([os.environ.get("CXX", "c++"), "--version"]).encode(),
        _tool_version(["ninja", "--version"]).encode(),
        torch.__version__.encode(),
        sys.implementation.cache_tag.encode(),
        cpu_signature().encode(),
    ]
    return hashlib.sha256(b"\0".join(parts)).hexdigest()


def _import(name: str, folder: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, folder / f"{name}.so")
    if spec is None or spec.loader is None:
        raise ImportError(f"{folder / name}.so cannot be imported")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _compile(name: str, source: Path, flags: Sequence[str], folder: Path) -> ModuleType:
    from torch.utils.cpp_extension import load

    return load(name, [str(source)], extra_cflags=list(flags), build_directory=str(folder), verbose=False)


def build_extension(
    stem: str, source: Path, flags: Sequence[str], *, root: Path | None = None, wait_s: float | None = None
) -> ModuleType:
    """The extension built from ``source`` with ``flags``: from the cache, or compiled into it now.

    Raises :class:`BuildWaitTimeout` when another live process builds it for longer than ``wait_s``, and
    whatever the compiler raises when the build fails."""
    name = f"{stem}_{build_key(source, flags)[:16]}"
    return build_once(
        name,
        lambda folder: _compile(name, source, flags, folder),
        lambda folder: _import(name, folder),
        root=root,
        wait_s=wait_s,
    )


def native_extension(stem: str, source: Path, what: str) -> tuple[ModuleType | None, str]:
    """``source`` built as ``stem`` for this machine with :data:`NATIVE_FLAGS`, and which path that is:
    ``native`` (with -fopenmp: at::parallel_for on torch's own OpenMP runtime), ``native-serial`` (a
    compiler without OpenMP) or ``torch-ops`` (None: ``SNNBENCH_NATIVE=0``, or, with a warning naming
    ``what``, no C++ toolchain or another process's build outlasting the wait)."""
    if os.environ.get("SNNBENCH_NATIVE", "1") == "0":
        return None, "torch-ops"
    failure: Exception | None = None
    for extra, path in ((["-fopenmp"], "native"), ([], "native-serial")):
        try:
            return build_extension(stem, source, [*NATIVE_FLAGS, *extra]), path
        except BuildWaitTimeout as exc:
            failure = exc
            break
        except Exception as exc:  # noqa: BLE001 - any build failure means "try the next way"
            failure = exc
    warnings.warn(f"snnbench: {what} unavailable, using torch ops ({failure})", stacklevel=3)
    return None, "torch-ops"


def build_once(
    name: str,
    build: Callable[[Path], ModuleType],
    load: Callable[[Path], ModuleType],
    *,
    root: Path | None = None,
    wait_s: float | None = None,
) -> ModuleType:
    """``load(root/name)`` if it was built; else ``build(private folder)`` under the lock, renamed to
    ``root/name`` when it succeeds (see the module docstring)."""
    root = root or cache_root()
    wait = float(os.environ.get("SNNBENCH_BUILD_WAIT_S", DEFAULT_WAIT_S)) if wait_s is None else wait_s
    final = root / name
    if final.is_dir():
        return load(final)
    root.mkdir(parents=True, exist_ok=True)
    lock_path = root / f"{name}.lock"
    deadline = time.monotonic() + wait
    with open(lock_path, "a+") as lock:
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if final.is_dir():
                    return load(final)
                if time.monotonic() > deadline:
                    holder = lock_path.read_text().strip() or "another process"
                    raise BuildWaitTimeout(
                        f"waited {wait:g} s for {final} while {holder} builds it (lock {lock_path}); "
                        f"set SNNBENCH_BUILD_WAIT_S to wait longer"
                    ) from None
                time.sleep(POLL_S)
        try:
            if final.is_dir():  # built while this process waited
                return load(final)
            for leftover in root.glob(f".{name}.build-*"):  # a killed builder's (it held this lock)
                shutil.rmtree(leftover, ignore_errors=True)
            lock.seek(0)
            lock.truncate()
            since = datetime.now(timezone.utc).isoformat(timespec="seconds")
            lock.write(f"pid {os.getpid()} on {socket.gethostname()} since {since}\n")
            lock.flush()
            from snnbench.records import umask_mode

            private = Path(tempfile.mkdtemp(prefix=f".{name}.build-", dir=root))
            try:
                module = build(private)
                private.chmod(umask_mode(0o777))  # mkdtemp's 0700 would hide it from other users
                os.rename(private, final)
            except BaseException:
                shutil.rmtree(private, ignore_errors=True)
                raise
            return module
        finally:
            lock.seek(0)
            lock.truncate()
            fcntl.flock(lock, fcntl.LOCK_UN)
