"""Shared fixtures: small suite files in a temporary directory; one compute thread per xdist worker."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]


def pytest_configure(config: pytest.Config) -> None:
    """Processes the tests start (``python -m snnbench ...``) import the snnbench under test, not whichever
    one is installed (an editable install of another checkout ran other code: a killed run then resumed
    under a different run id). Under pytest-xdist, each worker (and every process it starts) computes on
    one thread: two workers with a thread per core each would oversubscribe the cores, and OpenMP's
    spinning threads then wait on each other."""
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    # the dataset manifests' key (snnbench.data.download.manifest_key): the tests' own, not the user's
    os.environ.setdefault("SNNBENCH_MANIFEST_KEY", os.path.join(tempfile.mkdtemp(), "manifest.key"))
    if os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ["OMP_NUM_THREADS"] = "1"
        torch.set_num_threads(1)


FIXTURES = Path(__file__).parent / "fixtures"

TINY_SUITE = {
    "name": "tiny",
    "version": 1,
    "description": "digits, tiny budget, for tests",
    "dataset": "digits",
    "timesteps": [2],
    "seeds": [0],
    "default_budget": "smoke",
    "budgets": {"smoke": {"epochs": 3, "batch_size": 32, "train_subset": 256, "test_subset": 96}},
    "algorithms": {"bptt": {"arch": "mlp", "lr": 0.01}},
}


@pytest.fixture
def write_suite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Write a suite dict (default: a tiny digits suite, updated with ``changes``) into the working
    directory (a fresh tmp dir) and return its path."""
    monkeypatch.chdir(tmp_path)

    def write(changes: dict | None = None, name: str = "tiny.yaml") -> Path:
        data = {**TINY_SUITE, **(changes or {})}
        path = Path(name)
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    return write
