"""The real Fashion-MNIST from the operating system's package (Debian/Ubuntu ``dataset-fashion-mnist``,
installed by ``.ci/run`` where apt is available): found without a command, verified by content, and learned
from. Skipped cleanly where the package is not installed."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from snnbench.cli import app
from snnbench.data.mnist import FashionMNIST

runner = CliRunner()
SYSTEM = FashionMNIST.system_folders[0][1]
pytestmark = pytest.mark.skipif(
    not all((SYSTEM / f"{name}.gz").is_file() for name in FashionMNIST.content_sha256),
    reason=f"the real Fashion-MNIST is not installed in {SYSTEM} (apt-get install dataset-fashion-mnist)",
)


def test_datasets_list_reports_fashion_mnist_verified_from_the_system_package(tmp_path):
    result = runner.invoke(app, ["datasets", "list", "--data-dir", str(tmp_path)], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    line = next(row for row in result.output.splitlines() if "fashion-mnist" in row)
    assert "verified" in line and "system package dataset-fashion-mnist" in line and str(SYSTEM) in line
    assert not any(tmp_path.iterdir())  # the data root was only read


def test_the_real_files_are_the_originals():
    """Published facts of the upstream set: 6,000 training images per class, pixel mean/std 0.2860/0.3530."""
    dataset = FashionMNIST()
    loaded = dataset.load(FashionMNIST.Options(normalize=False), SYSTEM / "no-data-root", T=1)
    assert (len(loaded.train), len(loaded.test)) == (60_000, 10_000)
    assert (
        loaded.train.y.bincount().tolist() == [6000] * 10 and loaded.test.y.bincount().tolist() == [1000] * 10
    )
    assert float(loaded.train.x.mean()) == pytest.approx(0.2860, abs=5e-5)
    assert float(loaded.train.x.std()) == pytest.approx(0.3530, abs=5e-5)
    assert loaded.provenance["files_sha256"] == FashionMNIST.content_sha256
    assert "system package dataset-fashion-mnist" in str(loaded.provenance["source"])


def test_bptt_learns_real_fashion_mnist_in_one_short_epoch(tmp_path):
    """One epoch of the fmnist-cpu suite's bptt entry on a 2,000-image real subset (T = 1): far above the
    10 % of chance on 1,000 real test images; the record names the verified source and the test size."""
    import yaml

    from snnbench.grid import run_suite
    from snnbench.suite import load_suite

    real = load_suite("fmnist-cpu")
    data = {
        "name": "fmnist-real-check",
        "version": 1,
        "dataset": real.dataset,
        "dataset_options": real.dataset_options,
        "timesteps": [1],
        "seeds": [0],
        "budgets": {"check": {"epochs": 1, "batch_size": 64, "train_subset": 2000, "test_subset": 1000}},
        "default_budget": "check",
        "validation": {"fraction": 0.1, "seed": 0, "select": False},
        "algorithms": {"bptt": real.algorithms["bptt"].model_dump(exclude_defaults=True, mode="json")},
    }
    path = tmp_path / "check.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    empty_root = tmp_path / "data"
    (record,) = run_suite(path, out_dir=tmp_path / "out", device="cpu", data_dir=empty_root).records
    assert record.status == "ok", record.error
    assert record.metrics["test_size"] == 1000 and record.metrics["train_size"] == 1800
    assert record.metrics["top1"] > 55.0, record.metrics["top1"]  # chance 10 %
    assert record.dataset_provenance["files_sha256"] == FashionMNIST.content_sha256
    assert "system package dataset-fashion-mnist" in str(record.dataset_provenance["source"])
