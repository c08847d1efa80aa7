"""One tie rule for every read-out (snnbench.ties): expected top-1 under uniform random tie-breaking, scored
by the runner; the method's own read-out kept as a labelled secondary figure; old records kept apart."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest
import torch

from snnbench.algorithms import algorithms
from snnbench.grid import run_suite
from snnbench.ties import PROTOCOL, as_scored_by, tie_aware_top1

PLUGIN = Path(__file__).parent / "fixtures" / "plugins" / "testing_methods.py"


def brute_force(logits: list[list[int]], labels: list[int]) -> tuple[float, float, float]:
    """An independent formulation: average, over every order of the classes, the accuracy of the rule
    'the first class in that order with the top score wins'; ties counted by sorting the scores."""
    classes = len(logits[0])
    orders = list(itertools.permutations(range(classes)))
    correct = 0.0
    for order in orders:
        for scores, label in zip(logits, labels, strict=True):
            best = max(scores)
            winner = next(c for c in order if scores[c] == best)
            correct += winner == label
    ties = sum(sorted(s, reverse=True)[0] == sorted(s, reverse=True)[1] for s in logits)
    official = sum(s.index(max(s)) == y for s, y in zip(logits, labels, strict=True))
    n = len(labels)
    return 100.0 * correct / (len(orders) * n), ties / n, 100.0 * official / n


@pytest.mark.parametrize("seed", range(8))
def test_expected_top1_is_the_average_over_every_tie_breaking_order(seed):
    generator = torch.Generator().manual_seed(seed)
    classes = 3 + seed % 3  # 3 to 5 classes: up to 120 orders
    logits = torch.randint(0, 3, (40, classes), generator=generator)  # small integers: many ties
    labels = torch.randint(0, classes, (40,), generator=generator)
    got = tie_aware_top1(logits.float(), labels)
    want = brute_force(logits.tolist(), labels.tolist())
    assert got.expected_top1 == pytest.approx(want[0], abs=1e-9)
    assert got.tie_fraction == pytest.approx(want[1], abs=1e-12)
    assert got.official_top1 == pytest.approx(want[2], abs=1e-12)
    assert 0 < want[1] < 1  # the draw has ties and non-ties


def test_planted_cases():
    logits = torch.tensor(
        [
            [3.0, 3.0, 1.0],  # tie of 2, label in it: 1/2
            [3.0, 3.0, 3.0],  # tie of 3, label in it: 1/3
            [0.0, 5.0, 5.0],  # tie of 2, label not in it: 0
            [1.0, 2.0, 0.0],  # no tie, right: 1
            [2.0, 1.0, 0.0],  # no tie, wrong: 0
            [float("nan"), 1.0, 0.0],  # no maximum: no credit, no tie
        ]
    )
    labels = torch.tensor([1, 2, 0, 1, 2, 1])
    got = tie_aware_top1(logits, labels)
    assert got.expected_top1 == pytest.approx(100.0 * (1 / 2 + 1 / 3 + 1) / 6)
    assert got.tie_fraction == pytest.approx(3 / 6)
    assert got.official_top1 == pytest.approx(
        100.0 * 1 / 6
    )  # argmax: the ties go to class 0, only row 4 right
    all_tied = tie_aware_top1(torch.zeros(7, 10), torch.arange(7))
    assert all_tied == (pytest.approx(10.0), 1.0, pytest.approx(100.0 / 7))  # label 0 is one of seven
    assert all(math.isnan(v) for v in tie_aware_top1(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long)))
    with pytest.raises(ValueError, match="expected logits"):
        tie_aware_top1(torch.zeros(3, 4), torch.zeros(2, dtype=torch.long))


def test_a_retrain_of_an_old_record_is_compared_by_the_old_rule():
    new = {"top1": 40.0, "top1_official_ties": 33.7, "val_top1": 41.0, "val_top1_official_ties": 35.0}
    assert as_scored_by(None, new, PROTOCOL, "top1") == 33.7  # the committed record gave ties to class 0
    assert as_scored_by(None, new, PROTOCOL, "val_top1") == 35.0
    assert as_scored_by(PROTOCOL, new, PROTOCOL, "top1") == 40.0
    assert as_scored_by(None, {"top1": 50.0}, None, "top1") == 50.0


@pytest.fixture(scope="module")
def plugins():
    if "tied-scores" not in algorithms:
        algorithms.add_plugin_file(PLUGIN)


def test_the_runner_scores_tied_outputs_by_the_expected_rule(plugins, write_suite, tmp_path):
    """A method that trains (its loss falls) and answers with all ten scores tied: every figure the runner
    records is 10 % exactly (1/10 credit per image), the method's own read-out is the share of class 0."""
    path = write_suite(
        {
            "algorithms": {"tied-scores": {"arch": "mlp", "lr": 0.01}},
            "validation": {"fraction": 0.1, "seed": 0, "select": True},
        }
    )
    record = run_suite(path, out_dir=tmp_path / "out", device="cpu").records[0]
    assert record.status == "ok", record.error
    assert record.metrics_protocol == {"ties": "expected-uniform"}
    m = record.metrics
    from snnbench.data import data_root
    from snnbench.runner import load_data
    from snnbench.suite import RunSpec

    test = load_data(RunSpec.model_validate(record.spec), data_root(None)).test.take(
        record.spec["test_subset"]
    )
    class0 = 100.0 * float((test.y == 0).double().mean())
    assert m["top1"] == pytest.approx(10.0) and m["tie_fraction"] == 1.0
    assert m["top1_official_ties"] == pytest.approx(class0) and class0 != pytest.approx(10.0)
    assert m["val_top1"] == pytest.approx(10.0) and m["val_tie_fraction"] == 1.0
    assert m["top1_val_selected"] == pytest.approx(10.0) and m["val_selected_tie_fraction"] == 1.0
    assert m["top1_val_selected_official_ties"] == pytest.approx(class0)
    assert all(row["val_top1"] == pytest.approx(10.0) for row in record.history)
