"""The contract every built-in method keeps, parametrised over the registries (no exclusion lists).

Each method runs its digits-lowT entry on a few dozen samples for one epoch, twice: a valid ``ok`` record,
class scores of the right shape, identical numbers for the same seed, a citation, and defaults that validate.
"""

from __future__ import annotations

import sys

import pytest
import torch

from snnbench.algorithms import Algorithm, EpochTally, algorithms
from snnbench.architectures import architectures, resolve_architecture
from snnbench.data import datasets
from snnbench.data.encoding import encodings
from snnbench.grid import run_suite
from snnbench.suite import Overrides, load_suite

BUILT_IN = [n for n in algorithms.names() if algorithms.get(n).__module__.startswith("snnbench.algorithms.")]
DIGITS = load_suite("digits-lowT")


def entries_of(name: str) -> list[str]:
    return [key for key, entry in DIGITS.algorithms.items() if (entry.algorithm or key) == name]


@pytest.mark.parametrize("name", BUILT_IN)
def test_method_metadata_and_defaults(name):
    cls: type[Algorithm] = algorithms.get(name)
    assert cls.paper is not None and cls.paper.url.startswith("http") and cls.paper.year > 1990
    assert isinstance(cls.version, int) and cls.version >= 1 and len(cls.changelog) >= 1
    assert cls.description and cls.default_encoding in encodings
    cls.Config()  # every hyperparameter has a default
    module_doc = sys.modules[cls.__module__].__doc__ or ""
    assert (cls.__doc__ or "").strip() and str(cls.paper.year) in module_doc  # the docstring cites the paper
    assert entries_of(name), f"{name} is not registered in suites/digits-lowT.yaml"


@pytest.mark.parametrize("name", BUILT_IN)
def test_method_runs_one_epoch_reproducibly(name, tmp_path):
    key = entries_of(name)[0]
    entry = DIGITS.algorithms[key]
    T = (entry.timesteps or DIGITS.timesteps)[0]
    tiny = DIGITS.model_copy(
        update={
            "budgets": {
                "contract": DIGITS.budgets["smoke"].model_copy(
                    update={"epochs": 1, "train_subset": 64, "test_subset": 40}
                )
            },
            "default_budget": "contract",
        }
    )
    overrides = Overrides(algorithms=[key], timesteps=[T], seeds=[0])
    first = run_suite(tiny, overrides, out_dir=tmp_path / "a", device="cpu", write_reports=False).records[0]
    second = run_suite(tiny, overrides, out_dir=tmp_path / "b", device="cpu", write_reports=False).records[0]
    assert first.status == "ok", first.error
    assert first.metrics["test_size"] == 40 and 0.0 <= first.metrics["top1"] <= 100.0
    assert first.metrics["top1"] == second.metrics["top1"]
    assert [h["loss"] for h in first.history] == [h["loss"] for h in second.history]
    assert all(torch.isfinite(torch.tensor(h["loss"])) for h in first.history)


@pytest.mark.parametrize("name", architectures.names())
def test_architectures_parse(name):
    arch = resolve_architecture(name)
    assert arch.layers and arch.notation


@pytest.mark.parametrize("name", datasets.names())
def test_datasets_describe_themselves(name):
    cls = datasets.get(name)
    info = cls().info(cls.Options())
    assert cls.description and info.num_classes >= 2 and all(d > 0 for d in info.input_shape)


@pytest.mark.parametrize("name", encodings.names())
def test_encodings_are_time_major(name):
    x = torch.rand(3, 1, 4, 4)
    if name == "events":
        x = torch.rand(3, 5, 1, 4, 4)
    out = encodings.get(name)(x, 5, torch.Generator().manual_seed(0))
    assert out.shape[:2] == (5, 3)


def test_epoch_tally_means_over_samples_not_batches():
    tally = EpochTally()
    tally.add(3.0, torch.tensor([[0.0, 1.0], [2.0, 0.0], [0.0, 5.0]]), torch.tensor([1, 1, 1]))  # 2 of 3
    tally.add(1.0, torch.tensor([[1.0, 0.0]]), torch.tensor([0]))  # 1 of 1 right
    assert tally.summary() == {"loss": 1.0, "train_top1": 75.0}  # (3 + 1)/4 samples, 3 of 4 correct
