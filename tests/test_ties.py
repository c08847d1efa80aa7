"""One tie rule for every read-out (snnbench.ties): expected top-1 under uniform random tie-breaking, scored
by the runner; the method's own read-out kept as a labelled secondary figure; old records kept apart."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pandas as pd
import pytest
import torch

from snnbench.algorithms import algorithms
from snnbench.grid import run_suite
from snnbench.leaderboard import build
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


def ruled(entry: str, T: int, seed: int, top1: float, ties: float, own: float):
    """A leaderboard record scored by the tie rule: :func:`test_leaderboard.record` and its fields."""
    from test_leaderboard import record

    old = record(entry, T, seed, top1, test_size=360)
    metrics = {**old.metrics, "tie_fraction": ties, "top1_official_ties": own}
    return old.model_copy(update={"metrics": metrics, "metrics_protocol": dict(PROTOCOL)})


@pytest.fixture
def mixed(write_suite, tmp_path):
    """desire-bp at T = 2 scored by the rule (3 seeds), bptt at T = 2 made before it (3 seeds)."""
    from test_leaderboard import record

    from snnbench.records import RecordStore
    from snnbench.suite import load_suite

    suite = load_suite(
        write_suite(
            {"seeds": [0, 1, 2], "algorithms": {"bptt": {"arch": "mlp"}, "desire-bp": {"arch": "mlp"}}}
        )
    )
    store = RecordStore(tmp_path / "results", "tiny")
    for seed in range(3):
        store.save(ruled("desire-bp", 2, seed, 30.0 + seed, 0.69, 33.7))
        store.save(record("bptt", 2, seed, 60.0 + seed, test_size=360))
    return suite, store


def test_old_records_never_share_a_row_with_records_of_the_rule(mixed):
    from test_leaderboard import record

    from snnbench.leaderboard import select_records
    from snnbench.records import load_records
    from snnbench.rows import row_problems

    suite, store = mixed
    old = record("desire-bp", 2, 0, 20.0, test_size=360)  # desire-bp's records always had a tie_fraction
    store.save(
        old.model_copy(update={"run_id": "old-desire", "metrics": {**old.metrics, "tie_fraction": 0.5}})
    )
    df = select_records(load_records(store.root), suite)
    table = build(df)
    rows = table[table["algorithm"].str.startswith("desire-bp")]
    assert len(rows) == 2 and sorted(rows["n"]) == [1, 3]  # the old seed 0 is a row of its own
    assert sorted(rows["ties_rule"]) == ["expected-uniform", "lowest-index"]
    assert sorted(rows["tie_fraction_mean"].fillna(-1)) == [-1, pytest.approx(0.69)]  # never an old figure
    assert any("metrics_protocol" in p for p in row_problems(df, "tiny"))  # --check refuses the mix


def test_the_leaderboard_shows_ties_and_the_own_read_out_where_records_have_the_rule(mixed):
    from snnbench.leaderboard import select_records, to_markdown
    from snnbench.records import load_records

    suite, store = mixed
    df = select_records(load_records(store.root), suite)
    tables = {"official": build(df)}
    rows = tables["official"].set_index("algorithm")
    assert rows.loc["desire-bp", "tie_fraction_mean"] == pytest.approx(0.69)
    assert math.isnan(rows.loc["bptt", "tie_fraction_mean"])  # an old record's figure is never read
    markdown = to_markdown(tables, suite, len(df), [], "smoke")
    assert "| 1 | bptt | 61.00 ± 2.48 | [58.52, 63.48] | 3 | ✓ | n/a (lowest index) |" in markdown
    assert "| desire-bp | 31.00 ± 2.48 | [28.52, 33.48] | 3 |  | 69.0 |" in markdown
    line = next(row for row in markdown.splitlines() if row.startswith("| 2 | desire-bp | 2 |"))
    assert "| 69.0 | 33.70 |" in line  # All rows: ties and the method's own read-out, secondary
    assert "| n/a (lowest index) | = top-1 |" in next(r for r in markdown.splitlines() if "| bptt | 2 |" in r)
    assert "**ties (%)**" in markdown and "uniform random tie-breaking" in markdown


def test_tables_of_old_records_only_are_unchanged(write_suite, tmp_path):
    from test_leaderboard import record

    from snnbench.leaderboard import TIE_COLUMNS

    df = pd.DataFrame([{**record("bptt", 2, s, 60.0 + s).model_dump(), "top1": 60.0 + s} for s in range(2)])
    df["track"], df["ties_rule"] = "official", "lowest-index"
    table = build(df)
    assert not set(TIE_COLUMNS) & set(table.columns)


def test_compare_and_site_show_the_ties_column(mixed, tmp_path):
    from snnbench.compare import compare, to_markdown
    from snnbench.leaderboard import select_records
    from snnbench.records import load_records
    from snnbench.report import write_site

    suite, store = mixed
    df = select_records(load_records(store.root), suite)
    rows = compare(df, suite, "desire-bp", ["bptt"])
    text = to_markdown(rows, "desire-bp")
    assert "| ties (%) | verdict |" in text and "| 69.0 / n/a (lowest index) |" in text
    assert "other tie rule" in text and "uniform random tie-breaking" in text
    write_site(suite, store.root, tmp_path / "site")
    index = (tmp_path / "site" / "index.html").read_text()
    assert "<th>ties %</th>" in index and "n/a (lowest index)" in index
    page = next((tmp_path / "site" / "runs").glob("desire-bp_*.html")).read_text()
    assert "69.0 % of test images tied" in page and "33.70 %" in page


def test_a_checkpoint_written_before_the_rule_is_not_resumed():
    from types import SimpleNamespace

    from snnbench.runner import checkpoint_problem

    spec = SimpleNamespace(run_id="r", spec_hash="h", seed=0, epochs=3)
    checkpoint = {"source_sha256": "s", "run_id": "r", "spec_hash": "h", "seed": 0, "epoch": 1}
    checkpoint["history"] = [{"epoch": 1}]
    assert "tie rule" in checkpoint_problem(checkpoint, spec, "s")  # its validation top-1s: lowest index
    assert checkpoint_problem({**checkpoint, "metrics_protocol": dict(PROTOCOL)}, spec, "s") is None
