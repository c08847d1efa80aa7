"""Where a run ran: package versions, device and processor names, git revision and dirty flag."""

from __future__ import annotations

import functools
import platform
import subprocess
import sys
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


@functools.lru_cache(maxsize=1)
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


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
    """Everything a record needs to say where its numbers came from."""
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    return {
        "packages": package_versions(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "device": str(device),
        "cpu": _cpu_model(),
        "gpu": gpu,
        "torch_threads": torch.get_num_threads(),
        "git": git_revision(),
    }
