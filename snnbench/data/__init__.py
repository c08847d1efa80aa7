"""Datasets (one file per format family) and input encodings, each behind a registry."""

from __future__ import annotations

import os
from pathlib import Path

from snnbench.data._base import Dataset, DatasetInfo, DatasetOptions, LoadedDataset, Split
from snnbench.registry import Registry

datasets: Registry[type[Dataset]] = Registry(
    "dataset", base=Dataset, package="snnbench.data", entry_point_group="snnbench.datasets"
)


def data_root(explicit: str | Path | None = None) -> Path:
    """``--data-dir``, else ``$SNNBENCH_DATA``, else the user's cache directory."""
    if explicit:
        return Path(explicit).expanduser()
    if os.environ.get("SNNBENCH_DATA"):
        return Path(os.environ["SNNBENCH_DATA"]).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("snnbench")) / "data"


__all__ = ["Dataset", "DatasetInfo", "DatasetOptions", "LoadedDataset", "Split", "datasets", "data_root"]
