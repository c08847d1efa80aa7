"""Tuning records that stay true: code hashes (stale / unverifiable), chance labels, widened ranges."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
from pydantic import Field
from typer.testing import CliRunner

from snnbench.check import check_tuning
from snnbench.cli import app
from snnbench.suite import load_suite
from snnbench.tuning import Search, all_at_chance, at_edge, search_rounds, seed_note, tuning_specs, widen

COMMITTED = Path(__file__).resolve().parents[1] / "results" / "digits-lowT"


def stub(score):
    """An objective that trains nothing: ``score(values) -> val_top1``; records each call."""
    calls = []

    def objective(values):
        calls.append(values)
        return {"val_top1": score(values), "status": "ok", "run_id": f"trial{len(calls)}", "val_size": 142}

    return objective, calls


def test_edges_are_a_factor_1_5_on_log_ranges_and_the_outer_5_percent_on_linear_ones():
    log = Search(low=1e-3, high=1e-1, log=True)
    assert at_edge(log, 1.4e-3) == "low" and at_edge(log, 1.6e-3) is None
    assert at_edge(log, 0.07) == "high" and at_edge(log, 0.06) is None and at_edge(log, 0.01) is None
    linear = Search(low=0.0, high=1.0)
    assert at_edge(linear, 0.04) == "low" and at_edge(linear, 0.96) == "high" and at_edge(linear, 0.5) is None
    assert at_edge(Search(choices=["a", "b"]), "a") is None
    # ×10 beyond the edge for a log range, the range's width for a linear one, never past the field's bound
    assert widen(log, "high").high == pytest.approx(1.0) and widen(log, "high").low == 1e-3
    assert widen(log, "low").low == pytest.approx(1e-4)
    assert (widen(linear, "low").low, widen(linear, "high").high) == (-1.0, 2.0)
    assert widen(linear, "low", Field(ge=0.0)).low == 0.0  # no room: unchanged
    assert widen(linear, "high", Field(lt=1.5)).high == 1.25  # a strict bound: halfway to it


def test_a_choice_at_the_edge_widens_the_range_and_searches_again_with_as_many_trials():
    # validation top-1 keeps rising with lr past the range's top: round 1 picks a value at its high edge
    objective, calls = stub(lambda v: min(99.0, 60.0 + 10.0 * math.log10(v["lr"] / 1e-3)))
    space = {"lr": Search(low=1e-3, high=1e-1, log=True)}
    found = search_rounds(space, {"lr": 1e-2}, 6, 0, objective)
    assert len(calls) == 12 and [t["round"] for t in found["trials"]] == [0] * 6 + [1] * 6
    assert found["widened"] == ["lr"] and len(found["rounds"]) == 2
    first, second = found["rounds"]
    assert first["edges"] == {"lr": "high"} and first["space"]["lr"]["high"] == 0.1
    assert second["space"]["lr"]["low"] == 1e-3 and second["space"]["lr"]["high"] == pytest.approx(1.0)
    assert all(1e-3 <= t["values"]["lr"] <= 1.0 for t in found["trials"][6:])
    assert any(t["values"]["lr"] > 0.1 for t in found["trials"][6:])  # the second round looked beyond
    best = max(found["trials"], key=lambda t: t["val_top1"])
    assert (
        found["chosen"]["values"] == best["values"]
        and found["chosen"]["val_top1"] > first["chosen"]["val_top1"]
    )
    assert [t["number"] for t in found["trials"]] == list(range(12))


def test_a_choice_inside_the_range_is_searched_once():
    objective, calls = stub(lambda v: 90.0 - 10.0 * abs(math.log10(v["lr"] / 1e-2)))
    found = search_rounds({"lr": Search(low=1e-3, high=1e-1, log=True)}, {"lr": 1e-2}, 6, 0, objective)
    assert len(calls) == 6 and found["widened"] == [] and len(found["rounds"]) == 1
    assert found["chosen"]["values"] == {"lr": 1e-2} and found["rounds"][0]["edges"] == {}


def test_every_trial_at_chance_is_told_from_one_above_it():
    # 10 classes, 142 validation images: the bound is 14.08 %
    trials = [{"val_top1": 9.86, "val_size": 142}, {"val_top1": None, "val_size": None}]
    assert all_at_chance(trials, 10) is True
    assert all_at_chance([*trials, {"val_top1": 20.0, "val_size": 142}], 10) is False
    assert all_at_chance([{"val_top1": 9.86}], 10) is None  # size unknown
    assert all_at_chance([{"val_top1": 9.86}], 10, val_size=142) is True


def test_a_tuning_seed_that_is_an_evaluation_seed_is_said_so():
    digits, fmnist = load_suite("digits-lowT"), load_suite("fmnist-cpu")
    for suite in (digits, fmnist):  # the shipped suites tune with seed 100, never an evaluation seed
        assert suite.tuning.seed not in suite.seeds and seed_note(suite) is None
    reused = digits.model_copy(update={"tuning": digits.tuning.model_copy(update={"seed": digits.seeds[0]})})
    assert "tuning seed = evaluation seed" in seed_note(reused)
    assert "tuning seed = evaluation seed" not in (COMMITTED / "leaderboard.md").read_text()


def _copy(tmp_path: Path) -> Path:
    target = tmp_path / "digits-lowT"
    shutil.copytree(COMMITTED, target, ignore=shutil.ignore_patterns("site"))
    return target


def _hash(path: Path, **fields) -> None:
    record = json.loads(path.read_text())
    path.write_text(json.dumps({**record, **fields}, indent=2) + "\n")


def _current(entry: str, T: int = 1) -> dict:
    """The code and set-up fields a tuning record of ``entry`` at ``T`` has when made by today's code."""
    from snnbench.algorithms import algorithms
    from snnbench.provenance import source_sha256

    method = algorithms.get(entry)
    (spec,) = [s for s in tuning_specs(load_suite("digits-lowT"), [entry]) if s.T == T]
    return {
        "algorithm_version": method.version,
        "algorithm_source_sha256": source_sha256(method),
        "spec_hash": spec.spec_hash,
    }


def test_leaderboard_check_fails_on_a_stale_tuning_record_of_digits(tmp_path):
    copy = _copy(tmp_path)
    args = ["leaderboard", "--suite", "digits-lowT", "--out", str(tmp_path), "--check"]
    assert "tuning record" not in CliRunner().invoke(app, args).stderr  # committed: all current, per T
    _hash(copy / "tuning" / "bntt_T2.json", **{**_current("bntt", 2), "algorithm_source_sha256": "0" * 64})
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1
    assert f"{copy / 'tuning' / 'bntt_T2.json'}: stale tuning record (the method's code" in result.stderr
    assert "snnbench tune --suite digits-lowT --algorithms bntt" in result.stderr
    assert "| 8 trials on val (stale) |" in result.stderr  # the table's tuning column says so too
    assert "bntt_T1.json" not in result.stderr and "bntt_T4.json" not in result.stderr  # each T its own


def test_a_current_record_is_neither_stale_nor_unverifiable_and_a_changed_set_up_is_stale(tmp_path):
    suite = load_suite("digits-lowT")
    copy = _copy(tmp_path)
    record = copy / "tuning" / "bptt_T1.json"
    assert check_tuning(suite, copy) == ([], [])  # every committed record made by today's code
    _hash(record, spec_hash="f" * 64)
    problems, _ = check_tuning(suite, copy)
    assert len(problems) == 1 and "stale tuning record (the entry's set-up" in problems[0]
    _hash(record, **{**_current("bptt"), "algorithm_version": _current("bptt")["algorithm_version"] + 1})
    problems, _ = check_tuning(suite, copy)
    assert len(problems) == 1 and "stale tuning record (the method's code or version" in problems[0]


def test_a_record_without_a_code_hash_is_unverifiable_a_warning_not_a_failure(tmp_path):
    """Records made before tuning records carried a code hash (fmnist-cpu's) cannot be compared: the check
    warns and the table labels them, but does not fail on them (there is nothing to compare)."""
    suite = load_suite("digits-lowT")
    copy = _copy(tmp_path)
    record = copy / "tuning" / "bptt_T1.json"
    data = json.loads(record.read_text())
    for field in ("algorithm_version", "algorithm_source_sha256"):
        data.pop(field)
    record.write_text(json.dumps(data, indent=2) + "\n")
    problems, warnings = check_tuning(suite, copy)
    assert not [p for p in problems if "bptt" in p]
    assert [w for w in warnings if "unverifiable" in w and "bptt at T=1" in w]


def test_trials_on_a_reduced_budget_are_labelled_with_it(tmp_path):
    """A suite may tune on a reduced budget (fmnist-cpu's `tune`): the table says which, beside the trials."""
    from snnbench.tuning import tuning_states

    suite = load_suite("digits-lowT")
    copy = _copy(tmp_path)
    assert all(state.budget is None for state in tuning_states(suite, copy).values())  # all on `full`
    record = copy / "tuning" / "bptt_T1.json"
    data = json.loads(record.read_text())
    data["budget"]["budget"] = "smoke"
    record.write_text(json.dumps(data, indent=2) + "\n")
    state = tuning_states(suite, copy)[("bptt", 1)]
    assert state.budget == "smoke" and "smoke budget" in state.labels()
    assert tuning_states(suite, copy)[("bptt", 2)].budget is None


def test_entries_whose_every_trial_was_at_chance_are_labelled_so_in_the_tuning_column():
    """The label comes from the records: a (method, T) whose tuning trials all stayed at chance says so."""
    board = (COMMITTED / "leaderboard.md").read_text()
    at_chance = set()
    for path in (COMMITTED / "tuning").glob("*.json"):
        record = json.loads(path.read_text())
        if record.get("all_trials_at_chance"):
            at_chance.add((record["entry"], record["budget"]["T"] if record.get("per_T") else None))
    assert "trials on val (unverifiable" not in board
    rows = [line for line in board.splitlines() if line.startswith("| ") and "trials on val" in line]
    assert rows
    for line in rows:
        cells = [c.strip() for c in line.split("|")]
        name, T = cells[2].rstrip(" ‡†"), int(cells[3])
        labelled = "all trials at chance" in line
        assert labelled == ((name, T) in at_chance or (name, None) in at_chance), line


def test_a_widened_entry_reads_as_tuned_with_the_same_budget_as_the_others(tmp_path):
    """A second, widened round is the same rule for every entry: the tuned block states the budget per round
    (8 trials), not the 16 trials run, so that tables and `compare` see entries tuned alike."""
    from snnbench.tuning import tuned_block

    record = {
        "chosen": {"values": {"lr": 0.004}, "val_top1": 98.6, "trial": 13},
        "budget": {"trials": 8, "T": 2, "seed": 100, "budget": "full"},
        "trials": [{"number": k} for k in range(16)],
        "widened": ["lr"],
    }
    block = tuned_block(record, tmp_path / "bptt_T2.json")
    assert block.trials == 8 and block.values == {"lr": 0.004}
