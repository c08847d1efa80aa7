"""Tuning per T (``tuning.per_T``, issue 42): a record per (entry, T) trained at that T, a T-independent
method tuned once, ``tuned: {by_T: ...}`` resolving each T's own values, and staleness per T."""

from __future__ import annotations

import json
import re

import pytest
import yaml
from typer.testing import CliRunner

from snnbench.check import check_tuning
from snnbench.cli import app
from snnbench.errors import SuiteError
from snnbench.suite import expand, load_suite
from snnbench.tuning import tuning_specs, tuning_states

BUDGETS = {"smoke": {"epochs": 1, "batch_size": 32, "train_subset": 120, "test_subset": 64}}
ALGORITHMS = {
    "bptt": {"arch": "mlp", "track": "controlled", "lr": 0.01},
    # trained once for every T (`training_depends_on_T = False`): tuned once, at the tuning T
    "conversion": {"arch": "mlp", "track": "controlled"},
}
PER_T = {"trials": 1, "T": 2, "seed": 1, "per_T": True}


def per_T_suite(write_suite, **changes):
    return write_suite(
        {"timesteps": [1, 2], "budgets": BUDGETS, "algorithms": ALGORITHMS, "tuning": PER_T, **changes}
    )


def test_dry_run_lists_a_study_per_T_and_one_for_a_T_independent_method(write_suite):
    path = per_T_suite(write_suite)
    result = CliRunner().invoke(app, ["tune", "--suite", str(path), "--dry-run", "--out", "o"])
    assert result.exit_code == 0, result.output
    lines = re.findall(r"^(\S+): 1 trials at T=(\d+) .*: o/tiny/tuning/(\S+)$", result.output, re.M)
    assert lines == [
        ("bptt", "1", "bptt_T1.json"),
        ("bptt", "2", "bptt_T2.json"),
        ("conversion", "2", "conversion.json"),
    ], result.output
    assert not list(path.parent.glob("o/**/*.json"))  # nothing trained, nothing written
    # without per_T: one study per entry, at the tuning T, for every T (as before)
    single = per_T_suite(write_suite, tuning={**PER_T, "per_T": False})
    assert [(s.entry, s.T) for s in tuning_specs(load_suite(single))] == [("bptt", 2), ("conversion", 2)]


def test_a_by_T_block_resolves_each_T_to_its_own_values_and_a_T_it_lacks_to_untuned(write_suite):
    blocks = {1: {"values": {"lr": 0.1}, "trials": 8}, 2: {"values": {"lr": 0.002}, "trials": 16}}
    algorithms = {"bptt": {**ALGORITHMS["bptt"], "tuned": {"by_T": blocks}}}
    path = per_T_suite(write_suite, algorithms=algorithms, timesteps=[1, 2, 4])
    specs = {s.T: s for s in expand(load_suite(path))}
    assert {T: (s.hparams["lr"], s.tuned_fields, s.tuning_trials) for T, s in specs.items()} == {
        1: (0.1, ["lr"], 8),
        2: (0.002, ["lr"], 16),
        4: (0.01, [], None),  # not tuned at T = 4: the entry's own value, labelled untuned
    }
    # one form or the other, each T's values checked against the method's Config
    for tuned, field in (
        ({"by_T": blocks, "values": {"lr": 0.1}, "trials": 8}, "algorithms.bptt.tuned"),
        ({"by_T": {2: {"values": {"lr": -1.0}, "trials": 8}}}, "algorithms.bptt.tuned.by_T.2.values.lr"),
    ):
        bad = per_T_suite(write_suite, algorithms={"bptt": {**ALGORITHMS["bptt"], "tuned": tuned}})
        with pytest.raises(SuiteError) as caught:
            load_suite(bad)
        assert caught.value.field == field, str(caught.value)


def test_per_T_tuning_trains_each_T_at_that_T_and_run_tuned_applies_each_Ts_record(write_suite, tmp_path):
    path = per_T_suite(write_suite)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["tune", "--suite", str(path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    folder = out / "tiny" / "tuning"
    records = {p.name: json.loads(p.read_text()) for p in folder.glob("*.json")}
    assert set(records) == {"bptt_T1.json", "bptt_T2.json", "conversion.json"}
    suite = load_suite(path)
    specs = {(s.entry, s.T): s for s in tuning_specs(suite)}
    trial_runs = folder / "trials" / "runs"
    for name, T, per_T in (
        ("bptt_T1.json", 1, True),
        ("bptt_T2.json", 2, True),
        ("conversion.json", 2, False),
    ):
        record = records[name]
        assert record["budget"] == {"trials": 1, "T": T, "seed": 1, "budget": "smoke"}
        assert record["per_T"] is per_T and record["spec_hash"] == specs[(record["entry"], T)].spec_hash
        for trial in record["trials"]:  # every trial trained at the record's own T
            assert json.loads((trial_runs / f"{trial['run_id']}.json").read_text())["spec"]["T"] == T
    assert "bptt at T=1: trial 1/1" in result.output and "bptt at T=2: trial 1/1" in result.output
    # the block to paste: bptt per T, conversion one set for every T
    pasted = yaml.safe_load(result.output[result.output.index("bptt:\n") :])
    assert sorted(pasted["bptt"]["tuned"]["by_T"]) == [1, 2]
    assert pasted["bptt"]["tuned"]["by_T"][2]["record"] == str(folder / "bptt_T2.json")
    assert set(pasted["conversion"]["tuned"]) == {"values", "trials", "record"}

    # run --tuned: each T takes its own record's values
    for name in ("bptt_T1.json", "bptt_T2.json"):  # distinct values per T, so that a mix-up shows
        record = records[name]
        record["chosen"]["values"] = {"lr": 0.003 if name == "bptt_T1.json" else 0.004}
        (folder / name).write_text(json.dumps(record))
    run = ["run", "--suite", str(path), "--out", str(out), "--tuned", "--algorithms", "bptt", "--quiet"]
    ran = CliRunner().invoke(app, run)
    assert ran.exit_code == 0, ran.output
    runs = [json.loads(p.read_text())["spec"] for p in (out / "tiny" / "runs").glob("bptt_*.json")]
    assert sorted((s["T"], s["hparams"]["lr"], s["tuning_trials"]) for s in runs) == [
        (1, 0.003, 1),
        (2, 0.004, 1),
    ]

    # staleness per (entry, T): one changed record is stale at its T only
    assert check_tuning(suite, out / "tiny")[0] == []
    states = tuning_states(suite, out / "tiny")
    assert set(states) == {("bptt", 1), ("bptt", 2), ("conversion", None)}
    assert not any(state.stale for state in states.values())
    records["bptt_T2.json"]["spec_hash"] = specs[("bptt", 1)].spec_hash  # as if trained at the first T
    (folder / "bptt_T2.json").write_text(json.dumps(records["bptt_T2.json"]))
    problems, _ = check_tuning(suite, out / "tiny")
    assert len(problems) == 1 and "bptt_T2.json: stale tuning record (the entry's set-up" in problems[0]
    from snnbench.leaderboard import label_tuning
    from snnbench.records import load_records

    labelled = label_tuning(load_records(out / "tiny"), suite, out / "tiny")
    labels = dict(zip(labelled["T"], labelled["tuning"], strict=True))
    assert labels[1].startswith("1 trials on val") and "stale" not in labels[1]
    assert labels[2].startswith("1 trials on val (stale"), labels
    # a record for every T left from before the suite tuned per T is stale
    (folder / "bptt_T1.json").rename(folder / "bptt.json")
    problems, _ = check_tuning(suite, out / "tiny")
    assert any(
        "bptt.json: stale tuning record (the suite now tunes this entry at every T" in p for p in problems
    )
    board = CliRunner().invoke(app, ["leaderboard", "--suite", str(path), "--out", str(out), "--check"])
    assert board.exit_code == 1 and "stale tuning record" in board.output


def test_an_entry_with_its_own_search_is_tuned_in_any_track_over_exactly_that_space(write_suite, tmp_path):
    """An extra-track set-up whose values were once chosen by hand (st-rsbp-reservoir's lr and ϑ_rec) is
    re-chosen on validation by declaring its ``search`` in the suite file: tuned like a controlled entry, over
    the declared space only; an entry without one in the extra track is left alone."""
    algorithms = {
        "bptt": {"arch": "mlp", "track": "controlled", "lr": 0.01},
        "own": {
            "algorithm": "bptt",
            "arch": "mlp",
            "track": "extra",
            "lr": 0.02,
            "search": {
                "lr": {"low": 0.001, "high": 0.05, "log": True},
                "v_threshold": {"low": 0.5, "high": 1.5},
            },
        },
        "untuned": {"algorithm": "bptt", "arch": "mlp", "track": "extra"},
    }
    tuning = {"trials": 2, "T": 1, "seed": 1, "per_T": True}
    path = write_suite({"timesteps": [1], "budgets": BUDGETS, "algorithms": algorithms, "tuning": tuning})
    suite = load_suite(path)
    assert [s.entry for s in tuning_specs(suite)] == ["bptt", "own"]
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["tune", "--suite", str(path), "--out", str(out), "--algorithms", "own"])
    assert result.exit_code == 0, result.output
    record = json.loads((out / "tiny" / "tuning" / "own_T1.json").read_text())
    assert set(record["space"]) == {"lr", "v_threshold"}
    trials = [t["values"] for t in record["trials"]]
    assert trials[0] == {"lr": 0.02, "v_threshold": 1.0}  # trial 0: the entry's own values
    assert all(0.001 <= t["lr"] <= 0.05 and 0.5 <= t["v_threshold"] <= 1.5 for t in trials)
    assert set(tuning_states(suite, out / "tiny")) == {("own", 1)}
    untuned = ["tune", "--suite", str(path), "--out", str(out), "--algorithms", "untuned"]
    refused = CliRunner().invoke(app, untuned)
    assert refused.exit_code != 0 and "nor declares its own `search`" in refused.output


def test_a_search_block_naming_no_hyperparameter_or_an_empty_range_is_refused(write_suite, tmp_path):
    entry = {"algorithm": "bptt", "arch": "mlp", "track": "extra"}
    entry["search"] = {"lr": {"low": 0.1, "high": 0.01}}
    with pytest.raises(SuiteError, match="low"):
        load_suite(write_suite({"algorithms": {"own": entry}, "tuning": {"trials": 1, "T": 1}}))
    entry["search"] = {"speed": {"low": 1.0, "high": 2.0}}
    path = write_suite({"budgets": BUDGETS, "algorithms": {"own": entry}, "tuning": {"trials": 1, "T": 1}})
    result = CliRunner().invoke(app, ["tune", "--suite", str(path), "--out", str(tmp_path)])
    assert result.exit_code != 0 and "'speed' is not a hyperparameter of bptt (own)" in result.output
