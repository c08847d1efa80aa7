"""scikit-learn's handwritten digits: 1,797 real 8×8 images, 10 classes, shipped with scikit-learn.

The embedded default dataset: no download, trains in seconds on a CPU. Pixels (0–16) are scaled to
[0, 1]. The train/test split is stratified and fixed by ``split_seed`` and ``test_fraction``, which the
suite records; the split's fingerprint goes into every run record.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from pydantic import Field

from snnbench.data import datasets
from snnbench.data._base import Dataset, DatasetInfo, DatasetOptions, LoadedDataset, Split


class DigitsOptions(DatasetOptions):
    """Split of the 1,797 images."""

    test_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    split_seed: int = Field(0, ge=0, lt=2**32)  # scikit-learn's random_state range


@datasets.register("digits")
class Digits(Dataset):
    """scikit-learn ``load_digits``, 8×8 grey images in [0, 1], stratified fixed split."""

    description = "scikit-learn handwritten digits, 1,797 real 8×8 images (embedded, no download)"
    Options = DigitsOptions

    def info(self, options: DatasetOptions) -> DatasetInfo:
        # mean/std of all 1,797 images scaled to [0, 1], for methods that normalise their input
        return DatasetInfo("digits", (1, 8, 8), 10, mean=(0.3053,), std=(0.3760,))

    def load(self, options: DatasetOptions, root: Path, T: int) -> LoadedDataset:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        assert isinstance(options, DigitsOptions)
        bunch = load_digits()
        images = (bunch.images / 16.0).astype(np.float32)[:, None, :, :]
        labels = bunch.target.astype(np.int64)
        x_train, x_test, y_train, y_test = train_test_split(
            images, labels, test_size=options.test_fraction, random_state=options.split_seed, stratify=labels
        )
        train = Split(torch.from_numpy(x_train), torch.from_numpy(y_train))
        test = Split(torch.from_numpy(x_test), torch.from_numpy(y_test))
        provenance = {
            "source": "sklearn.datasets.load_digits",
            "split": {"test_fraction": options.test_fraction, "split_seed": options.split_seed},
            "train_fingerprint": train.fingerprint(),
            "test_fingerprint": test.fingerprint(),
        }
        return LoadedDataset(self.info(options), train, test, provenance=provenance)
