"""Where a run ran (package versions, device and processor names, git revision and dirty flag), and the
process-level settings a run starts with."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import platform
import re
import subprocess
import sys
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from snnbench.errors import SnnbenchError

_PACKAGES = ("snnbench", "torch", "numpy", "scikit-learn", "pydantic", "tonic", "snntorch", "spikingjelly")


def resolve_device(device: str) -> torch.device:
    """``auto`` → CUDA when available, else CPU; ``cuda`` without a GPU is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SnnbenchError("--device cuda asked for, but torch sees no CUDA device (use auto or cpu)")
    if device != "cpu" and not device.startswith("cuda"):
        raise SnnbenchError(f"unknown device {device!r}; expected auto, cpu or cuda")
    return torch.device(device)


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages that can change a result."""
    versions: dict[str, str | None] = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


@functools.lru_cache(maxsize=2)
def _first_processor(cpuinfo: Path = Path("/proc/cpuinfo")) -> dict[str, str]:
    """The fields of the first processor's block of ``/proc/cpuinfo`` (empty where it is missing)."""
    fields: dict[str, str] = {}
    try:
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if not key:
                break  # the first processor's block ends
            fields[key] = value.strip()
    except OSError:
        pass
    return fields


def _cpu_model() -> str:
    return _first_processor().get("model name") or platform.processor() or platform.machine()


def cpu_identity(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """``family F model M stepping S`` from ``/proc/cpuinfo`` (x86), or empty: virtual machines often name
    their CPU only ``AMD EPYC`` or ``Intel(R) Xeon(R) Processor``, which hides which generation ran."""
    fields = _first_processor(cpuinfo)
    if not all(key in fields for key in ("cpu family", "model", "stepping")):
        return ""
    return f"family {fields['cpu family']} model {fields['model']} stepping {fields['stepping']}"


def cpu_description() -> str:
    """The CPU in one line for benchmark headers: model name, generation and the SIMD level torch uses."""
    identity = f", {cpu_identity()}" if cpu_identity() else ""
    return f"{_cpu_model()}{identity}, torch CPU capability {torch_build()['cpu_capability']}"


_SIMD = ("sse", "avx", "fma", "f16c", "amx")  # the instruction-set flags that change which kernels run


def cpu_flags() -> list[str]:
    """The processor's SIMD flags from ``/proc/cpuinfo`` (empty where it is missing)."""
    return sorted(f for f in _first_processor().get("flags", "").split() if f.startswith(_SIMD))


@functools.lru_cache(maxsize=1)
def torch_build() -> dict[str, str | None]:
    """What torch computes with: the ATen CPU capability it dispatches to and, from ``torch.__config__``,
    its BLAS and LAPACK backends, OpenMP and oneDNN. Different values can change the last bits of a sum."""
    settings = dict(re.findall(r"(\w+)=([^,\s]*)", torch.__config__.show()))
    build = {
        key.lower(): settings.get(key) for key in ("BLAS_INFO", "LAPACK_INFO", "USE_OPENMP", "USE_MKLDNN")
    }
    return {"cpu_capability": torch.backends.cpu.get_cpu_capability(), **build}


def git_revision(path: Path | None = None) -> dict[str, Any]:
    """``{"revision": sha or None, "dirty": bool or None}`` of the checkout holding snnbench."""
    where = path or Path(__file__).resolve().parent.parent
    try:
        revision = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
        return {"revision": revision, "dirty": bool(status.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"revision": None, "dirty": None}


def environment(device: torch.device) -> dict[str, Any]:
    """Everything a record needs to say where its numbers came from. Builds the fused LIF kernels if they
    are not built yet (``lif_kernel`` says which path runs), so that no build lands in a timed region."""
    from snnbench.neurons.functional import kernel_path

    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    return {
        "packages": package_versions(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "device": str(device),
        "cpu": _cpu_model(),
        "cpu_identity": cpu_identity(),
        "cpu_flags": cpu_flags(),
        "torch_build": torch_build(),
        "gpu": gpu,
        "torch_threads": torch.get_num_threads(),
        "lif_kernel": kernel_path(device),
        "flush_denormal": flushes_denormals(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "git": git_revision(),
    }


def reuse_freed_cpu_memory(limit_bytes: int = 1 << 30) -> bool:
    """Let glibc keep freed CPU buffers up to ``limit_bytes`` in the heap for reuse; True if it applied.

    By default glibc gives every allocation above its mmap threshold (32 MiB at most) fresh pages from the
    kernel and unmaps them on free, so a ``[T, B, C, H, W]`` activation above that size page-faults on every
    training step. On the project's 2-core VM that costs about 10 ms per 33 MB tensor, more than the LIF
    kernel that fills it (benchmarks/README.md). Raising the mmap and trim thresholds serves such buffers
    from the heap and keeps them there after free, as jemalloc/tcmalloc do (PyTorch's CPU performance guide
    recommends those). The price: the heap can hold more than is in use (blocks kept for reuse; peak
    resident memory of three training steps measured in benchmarks/README.md). A no-op on other C
    libraries. Process-wide: the runner calls it in each worker.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (AttributeError, OSError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
    return bool(mallopt(m_mmap_threshold, limit_bytes)) and bool(mallopt(m_trim_threshold, limit_bytes))


def flushes_denormals() -> bool:
    """Whether this thread's CPU arithmetic flushes subnormal floats to zero (the smallest normal float32
    halved is 0)."""
    tiny = torch.tensor(torch.finfo(torch.float32).tiny)
    return bool((tiny * 0.5).item() == 0.0)


@contextlib.contextmanager
def flushed_denormals() -> Iterator[bool]:
    """Flush subnormal floats to zero (FTZ/DAZ) inside the block, then restore the previous mode; yields
    whether the CPU supports it.

    A silent spiking layer's surrogate gradients fall to ~1e-38 and their products with the inputs into the
    subnormal range, which Intel cores compute with a microcode assist per operation: the Open
    Neuromorphic benchmark shape ran 1.30× the ANN floor with subnormals and 1.11× without on the project's
    Intel Xeon (benchmarks/README.md). Such values cannot change a sum of normal numbers: all 240 digits
    records were reproduced bit for bit (top-1 and every epoch's loss) with it. The runner's workers run
    each task inside it. The mode is per thread, and threads inherit it only when created inside the block
    (a pool worker's torch threads are; an in-process run's earlier threads are not):
    ``environment.flush_denormal`` records the calling thread's mode.
    """
    previous = flushes_denormals()
    supported = bool(torch.set_flush_denormal(True))
    try:
        yield supported
    finally:
        torch.set_flush_denormal(previous)
