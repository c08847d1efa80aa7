"""One row = one set-up (snnbench.rows): records of another set-up, suite, dataset or suite version never
join a row; a record counts once; impossible numbers are refused on read; leaderboard, compare and
``--check`` agree. Built on copies of the committed digits records, planted as a user or a faulty merge
would plant them (every planted record rehashed, so that only the rule under test can refuse it)."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from snnbench.cli import app
from snnbench.compare import compare
from snnbench.errors import RecordError, SnnbenchError
from snnbench.leaderboard import build, by_track, select_records
from snnbench.records import load_records, read_record, record_sha256
from snnbench.rows import group_rows, row_problems
from snnbench.suite import canonical_sha256, load_suite

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "results" / "digits-lowT"
runner = CliRunner()


def committed(entry: str, T: int) -> list[Path]:
    return sorted((COMMITTED / "runs").glob(f"{entry}_T{T}_s*_full_*.json"))


def rehashed(data: dict, **changes) -> dict:
    """``data`` with top-level ``changes`` (``spec`` entries in ``spec``), spec_hash, run_id and content hash
    recomputed as the runner would have written them."""
    data = json.loads(json.dumps(data))
    spec = changes.pop("spec", {})
    data["spec"].update(spec)
    data.update(changes)
    for key in ("suite", "suite_version", "entry", "dataset", "budget", "T", "seed"):
        if key in spec:
            data[key] = spec[key]
        elif key in changes and key in data["spec"]:
            data["spec"][key] = changes[key]
    semantic = {k: v for k, v in data["spec"].items() if k not in ("num_cpus", "num_gpus", "energy")}
    data["spec_hash"] = canonical_sha256(semantic)
    s = data["spec"]
    data["run_id"] = f"{s['entry']}_T{s['T']}_s{s['seed']}_{s['budget']}_{data['spec_hash'][:8]}"
    data["content_sha256"] = record_sha256(data)
    return data


def write(runs: Path, data: dict, name: str | None = None) -> Path:
    path = runs / (name or f"{data['run_id']}.json")
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    """bptt and ottt at T = 4 (3 seeds each), copied from the committed records."""
    target = tmp_path / "results" / "digits-lowT" / "runs"
    target.mkdir(parents=True)
    for path in committed("bptt", 4) + committed("ottt", 4):
        shutil.copy(path, target)
    return target


def table(runs: Path):
    suite = load_suite("digits-lowT")
    return by_track(select_records(load_records(runs.parent), suite))["controlled"]


def rows_of(runs: Path) -> dict[tuple[str, int], tuple[int, float]]:
    return {(r.algorithm, r.T): (r.n, round(r.top1_mean, 6)) for r in table(runs).itertuples()}


def seed0(entry: str = "bptt") -> dict:
    return json.loads(committed(entry, 4)[0].read_text())


def committed_row(entry: str, T: int = 4) -> tuple[int, float]:
    """(ok seeds, mean top-1) of the committed records of ``entry`` at ``T``, read from the files themselves
    (not through the code under test), so that regenerated records never need an edit here."""
    tops = [d["metrics"]["top1"] for d in map(json.loads, (p.read_text() for p in committed(entry, T)))
            if d["status"] == "ok"]  # fmt: skip
    return len(tops), round(sum(tops) / len(tops), 6)


EXPECTED = {("bptt", 4): committed_row("bptt"), ("ottt", 4): committed_row("ottt")}
BPTT_MEAN = EXPECTED[("bptt", 4)][1]


def test_the_copied_committed_rows_are_the_committed_leaderboard_rows(runs):
    assert rows_of(runs) == EXPECTED
    assert all(n == 3 for n, _ in EXPECTED.values())  # three seeds each: the rows below add to them
    committed_csv = pd.read_csv(COMMITTED / "leaderboard.csv").set_index(["track", "algorithm", "T"])
    for (entry, T), (n, mean) in EXPECTED.items():
        assert committed_csv.loc[("controlled", entry, T), "n"] == n
        assert committed_csv.loc[("controlled", entry, T), "top1_mean"] == pytest.approx(mean, abs=5e-5)


def test_an_lr_edit_without_a_version_bump_is_a_row_of_its_own(runs):
    hparams = {**seed0()["spec"]["hparams"], "lr": 0.1}
    write(runs, rehashed(seed0(), spec={"hparams": hparams}, metrics={**seed0()["metrics"], "top1": 60.0}))
    assert rows_of(runs) == {  # each set-up labelled by what tells it apart: neither is "the" bptt
        ("bptt (spec.hparams.lr=0.001)", 4): EXPECTED[("bptt", 4)],
        ("bptt (spec.hparams.lr=0.1)", 4): (1, 60.0),
        ("ottt", 4): EXPECTED[("ottt", 4)],
    }
    (problem,) = row_problems(load_records(runs.parent), "digits-lowT")
    assert problem.startswith("bptt T=4: records of 2 set-ups (differing in spec.hparams.lr)")
    with pytest.raises(SnnbenchError, match=r"bptt has records of 2 set-ups at T=4"):
        suite = load_suite("digits-lowT")
        compare(select_records(load_records(runs.parent), suite), suite, "ottt", ["bptt"])


def test_tuning_track_and_code_version_split_rows(runs):
    write(runs, rehashed(seed0(), spec={"tuning_trials": None, "tuned_fields": [], "seed": 7}))
    write(runs, rehashed(seed0(), spec={"track": "official", "seed": 8}))
    write(runs, rehashed(seed0("ottt"), spec={"seed": 9}, algorithm_version=0))  # an older method version
    suite = load_suite("digits-lowT")
    df = select_records(load_records(runs.parent), suite)
    controlled = build(df[df["track"] == "controlled"])
    assert dict(zip(controlled["algorithm"], controlled["n"], strict=True)) == {
        'bptt (spec.tuned_fields=["lr"], spec.tuning_trials=8)': 3,
        "ottt (algorithm_version=3)": 3,
        "ottt (algorithm_version=0)": 1,
        "bptt (spec.tuned_fields=[], spec.tuning_trials=null)": 1,
    }
    assert list(build(df[df["track"] == "official"])["n"]) == [1]


def test_records_of_another_suite_or_dataset_are_never_averaged(runs):
    other = rehashed(seed0(), spec={"suite": "other-suite"}, metrics={**seed0()["metrics"], "top1": 10.0})
    write(runs, other)
    data = rehashed(
        seed0(), spec={"dataset": "fmnist", "seed": 5}, metrics={**seed0()["metrics"], "top1": 10.0}
    )
    write(runs, data)
    assert rows_of(runs) == {  # the other suite's record is not in this suite's table at all
        ("bptt (dataset=digits, spec.dataset=digits)", 4): EXPECTED[("bptt", 4)],
        ("bptt (dataset=fmnist, spec.dataset=fmnist)", 4): (1, 10.0),
        ("ottt", 4): EXPECTED[("ottt", 4)],
    }
    problems = row_problems(load_records(runs.parent), "digits-lowT")
    assert any("a record of suite 'other-suite', not 'digits-lowT'" in p for p in problems)
    assert any(
        p.startswith("bptt T=4: records of 2 set-ups (differing in dataset, spec.dataset)") for p in problems
    )


def test_the_same_record_under_two_file_names_counts_once(runs):
    original = committed("bptt", 4)[0]
    shutil.copy(original, runs / "zz-copy.json")
    shutil.copy(committed("bptt", 4)[1], runs / "aa-copy.json")  # sorts before its original
    assert rows_of(runs) == EXPECTED
    (row,) = [r for r in group_rows(load_records(runs.parent)) if r.entry == "bptt"]
    assert sorted(Path(f).name for f in row.duplicates) == ["aa-copy.json", "zz-copy.json"]
    assert all(Path(f).name != "aa-copy.json" for f in row.records["file"])  # the named file is kept
    suite = load_suite("digits-lowT")
    (verdict,) = compare(select_records(load_records(runs.parent), suite), suite, "ottt", ["bptt"])
    assert (verdict.new_n, verdict.base_n, verdict.base_mean) == (3, 3, pytest.approx(BPTT_MEAN))
    problems = row_problems(load_records(runs.parent), "digits-lowT")
    assert sorted(Path(p.split(":")[0]).name for p in problems) == ["aa-copy.json", "zz-copy.json"]


def test_two_different_records_of_one_seed_are_refused_naming_both_files(runs):
    data = seed0()
    data["metrics"]["top1"] = 99.0
    data["content_sha256"] = record_sha256(data)
    write(runs, data, "edited.json")
    with pytest.raises(
        SnnbenchError, match=r"bptt_T4_s0_full_b6b12cb3.json and .*edited.json: two different"
    ):
        table(runs)


@pytest.mark.parametrize(
    ("metrics", "message"),
    [
        ({"top1": 1e9}, "metrics.top1: 1000000000.0 is outside its physical range [0, 100]"),
        ({"top1": -0.5}, "metrics.top1: -0.5 is outside its physical range [0, 100]"),
        ({"top1": "97.5"}, "metrics.top1: expected a number, got '97.5'"),
        ({"top1": float("inf")}, "metrics.top1: expected a finite number, got inf"),
        ({"energy_nj": float("nan")}, "metrics.energy_nj: expected a finite number, got nan"),
        (
            {"spike_rate_per_layer": {"l1": float("-inf")}},
            "metrics.spike_rate_per_layer.l1: expected a finite",
        ),
        ({"train_time_s": -3.0}, "metrics.train_time_s: -3.0 is outside its physical range [0, inf]"),
        ({"top1_val_selected": 100.5}, "metrics.top1_val_selected: 100.5 is outside its physical range"),
    ],
)
def test_impossible_numbers_are_refused_on_read_naming_the_file(runs, metrics, message):
    data = seed0()
    data["metrics"].update(metrics)
    data["content_sha256"] = record_sha256(data)
    path = write(runs, data, f"{data['run_id']}.json")  # replaces the committed copy
    with pytest.raises(RecordError) as caught:
        read_record(path)
    assert str(caught.value).startswith(f"{path}: {message}")
    out = runner.invoke(app, ["leaderboard", "--suite", "digits-lowT", "--out", str(runs.parent.parent)])
    assert out.exit_code == 1 and "Traceback" not in out.output
    assert out.stderr == f"Error: {path}: {str(caught.value).split(': ', 1)[1]}\n"  # one line


def test_records_of_an_older_suite_version_do_not_change_the_row(runs):
    """The issue-48 survivor: select_records ignoring suite_version pooled three v1 records of top-1 50."""
    before = table(runs)
    for path in committed("bptt", 4):
        old = json.loads(path.read_text())
        write(runs, rehashed(old, spec={"suite_version": 1}, metrics={**old["metrics"], "top1": 50.0}))
    after = table(runs)
    assert after.equals(before)
    assert rows_of(runs) == EXPECTED
    assert row_problems(load_records(runs.parent), "digits-lowT") == []  # older versions are kept, not ranked


def test_leaderboard_and_compare_share_one_grouping(runs):
    write(runs, rehashed(seed0(), spec={"seed": 3}, metrics={**seed0()["metrics"], "top1": 90.0}))
    shutil.copy(committed("bptt", 4)[1], runs / "copy.json")
    suite = load_suite("digits-lowT")
    df = select_records(load_records(runs.parent), suite)
    rows = {(r.label, r.T): r for r in group_rows(df)}
    (verdict,) = compare(df, suite, "ottt", ["bptt"])
    leader = table(runs).set_index("algorithm").loc["bptt"]
    bptt = rows[("bptt", 4)].records
    assert verdict.base_n == leader["n"] == len(bptt) == 4
    assert verdict.base_mean == pytest.approx(leader["top1_mean"]) == pytest.approx(bptt["top1"].mean())


def test_check_fails_on_a_split_row_a_copy_and_another_suites_record(tmp_path):
    results = tmp_path / "results"
    shutil.copytree(COMMITTED, results / "digits-lowT", ignore=shutil.ignore_patterns("site", "tuning"))
    runs = results / "digits-lowT" / "runs"
    hparams = {**seed0()["spec"]["hparams"], "lr": 0.1}
    write(runs, rehashed(seed0(), spec={"hparams": hparams, "seed": 9}))
    shutil.copy(committed("ottt", 4)[0], runs / "copy.json")
    write(runs, rehashed(seed0(), spec={"suite": "other-suite"}))
    out = runner.invoke(app, ["leaderboard", "--suite", "digits-lowT", "--out", str(results), "--check"])
    assert out.exit_code == 1
    assert "bptt T=4: records of 2 set-ups (differing in spec.hparams.lr)" in out.stderr
    assert f"{runs / 'copy.json'}: a copy of a record already in the row ottt T=4" in out.stderr
    assert "a record of suite 'other-suite', not 'digits-lowT'" in out.stderr


def test_reproduce_refuses_an_entry_that_leaves_the_output_folder(tmp_path, monkeypatch):
    """issue 47: a record whose spec.entry is ../../x (rehashed) made reproduce write two levels up."""
    out = tmp_path / "D"
    runs = out / "digits-lowT" / "runs"
    runs.mkdir(parents=True)
    scratch = tmp_path / "scratch" / "a" / "b"
    scratch.mkdir(parents=True)
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    trained = []

    def fake_run_one(spec, store, **kwargs):  # what the runner does with the spec: a record at its run id
        trained.append(spec.run_id)
        path = store.record_path(spec.run_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}")
        return read_record(committed("bptt", 4)[0])

    monkeypatch.setattr("snnbench.runner.run_one", fake_run_one)
    for entry in ("../../x", "../../../../x"):
        hostile = write(runs, rehashed(seed0(), spec={"entry": entry}), "hostile.json")
        before = sorted(p for p in tmp_path.rglob("*"))
        done = runner.invoke(
            app,
            [
                "reproduce",
                "--suite",
                "digits-lowT",
                "--out",
                str(out),
                "--algorithms",
                entry,
                "--sample",
                "1",
            ],
        )
        assert done.exit_code == 1, done.output
        assert done.stderr.replace("\n", "").startswith(f"Error: {hostile}: spec.entry:")
        assert "Traceback" not in done.output
        assert trained == [] and sorted(p for p in tmp_path.rglob("*")) == before


def test_run_specs_refuse_entry_suite_and_budget_names_that_leave_the_output_folder():
    from pydantic import ValidationError

    from snnbench.suite import RunSpec

    assert RunSpec.model_validate(seed0()["spec"]).run_id == seed0()["run_id"]
    for field in ("entry", "suite", "budget"):
        for bad in ("../../x", "a/b", ".hidden", ""):
            with pytest.raises(ValidationError, match=f"{field}\n  Value error, expected a name"):
                RunSpec.model_validate({**seed0()["spec"], field: bad})


def test_an_ok_record_without_a_top1_is_refused_for_ranking_and_reproduce(runs, monkeypatch):
    monkeypatch.setattr("snnbench.runner.run_one", lambda *a, **k: pytest.fail("trained"))
    data = seed0()
    del data["metrics"]["top1"]
    data["content_sha256"] = record_sha256(data)
    path = write(runs, data)
    assert (
        read_record(path).metrics.get("top1") is None
    )  # a tuning trial's record reads (it has no test top-1)
    message = f"{path}: metrics.top1: an ok run must have a top-1"
    with pytest.raises(RecordError, match="an ok run must have a top-1") as caught:
        load_records(runs.parent)
    assert str(caught.value) == message
    from snnbench.reproduce import reproduce

    with pytest.raises(RecordError) as caught:
        reproduce(load_suite("digits-lowT"), runs.parent, 6)
    assert str(caught.value) == message


def test_reproduce_refuses_a_spec_that_does_not_hash_to_its_run_id(tmp_path, monkeypatch):
    monkeypatch.setattr("snnbench.runner.run_one", lambda *a, **k: pytest.fail("trained an edited spec"))
    runs = tmp_path / "digits-lowT" / "runs"
    runs.mkdir(parents=True)
    data = seed0()
    data["spec"]["hparams"]["lr"] = 0.5  # the spec edited, the content hash recomputed, spec_hash left
    data["content_sha256"] = record_sha256(data)
    path = write(runs, data)
    from snnbench.reproduce import reproduce

    with pytest.raises(RecordError) as caught:
        reproduce(load_suite("digits-lowT"), tmp_path / "digits-lowT", 1)
    assert (
        str(caught.value)
        == f"{path}: spec does not hash to the record's spec_hash and run_id: edited after it was run"
    )
