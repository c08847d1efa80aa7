"""Shared fixtures: small suite files written into a temporary directory."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

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
