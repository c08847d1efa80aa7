"""`snnbench tune`: a line per finished trial, resume from the trial records of an earlier `tune`, and
`run --tuned` needing only the selected entries' tuning records."""

from __future__ import annotations

import json
import re

from typer.testing import CliRunner

from snnbench.cli import app

BUDGETS = {"smoke": {"epochs": 1, "batch_size": 32, "train_subset": 120}}
ALGORITHMS = {
    "bptt": {"arch": "mlp", "track": "controlled", "lr": 0.01},
    "proxy": {"arch": "mlp", "track": "controlled"},
}
TUNING = {"trials": 3, "T": 1, "seed": 1}


def counting_run_one(monkeypatch):
    """Count the trainings of `tune` (snnbench.runner.run_one, looked up at call time)."""
    import snnbench.runner

    trained: list[str] = []
    real = snnbench.runner.run_one

    def counted(spec, *args, **kwargs):
        trained.append(spec.run_id)
        return real(spec, *args, **kwargs)

    monkeypatch.setattr(snnbench.runner, "run_one", counted)
    return trained


def test_tune_prints_a_line_per_trial_and_a_rerun_reuses_the_trial_records(
    write_suite, tmp_path, monkeypatch
):
    path = write_suite({"budgets": BUDGETS, "algorithms": ALGORITHMS, "tuning": TUNING})
    out = tmp_path / "out"
    trained = counting_run_one(monkeypatch)
    args = ["tune", "--suite", str(path), "--algorithms", "bptt", "--out", str(out)]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    record = json.loads((out / "tiny" / "tuning" / "bptt.json").read_text())
    n = len(record["trials"])  # 3, or 6 when the choice sat at an edge and a widened round followed
    assert len(trained) == n and n in (3, 6)
    lines = re.findall(r"^bptt: trial (\d)/3(?: of round 2 \(widened range\))?: lr=(\S+): "
                       r"validation top-1 (\d+\.\d\d) % \((\d+\.\d) s\)$", first.output, re.M)  # fmt: skip
    assert [int(k) for k, *_ in lines] == [1, 2, 3] * (n // 3), first.output
    assert lines[0][1] == "0.01"  # trial 0: the entry's own value
    assert [f"{t['val_top1']:.2f}" for t in record["trials"]] == [v for _, _, v, _ in lines]

    trained.clear()
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0, again.output
    assert trained == []  # every trial's record reused, none retrained
    assert again.output.count("record reused") == n and f"{n} of {n} trials reused" in again.output
    resumed = json.loads((out / "tiny" / "tuning" / "bptt.json").read_text())
    assert resumed["chosen"] == record["chosen"]
    assert [t["values"] for t in resumed["trials"]] == [t["values"] for t in record["trials"]]

    # an interrupted study: the last trial's record is missing, so only that trial trains
    last = record["trials"][-1]["run_id"]
    (out / "tiny" / "tuning" / "trials" / "runs" / f"{last}.json").unlink()
    trained.clear()
    resumed_once = CliRunner().invoke(app, args)
    assert resumed_once.exit_code == 0, resumed_once.output
    assert trained == [last] and resumed_once.output.count("record reused") == n - 1


def test_a_trial_record_of_another_source_is_retrained(write_suite, tmp_path, monkeypatch):
    path = write_suite({"budgets": BUDGETS, "algorithms": ALGORITHMS, "tuning": {**TUNING, "trials": 1}})
    out = tmp_path / "out"
    trained = counting_run_one(monkeypatch)
    args = ["tune", "--suite", str(path), "--algorithms", "bptt", "--out", str(out), "--quiet"]
    assert CliRunner().invoke(app, args).exit_code == 0
    (trial,) = (out / "tiny" / "tuning" / "trials" / "runs").glob("*.json")
    data = json.loads(trial.read_text())
    data["algorithm_source_sha256"] = "0" * 64  # made by another version of the method's code
    trial.write_text(json.dumps(data))
    trained.clear()
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert len(trained) == 1 and "record reused" not in result.output


def test_run_tuned_needs_only_the_selected_entries_tuning_record(write_suite, tmp_path):
    path = write_suite({"budgets": BUDGETS, "algorithms": ALGORITHMS, "tuning": {**TUNING, "trials": 1}})
    out = tmp_path / "out"
    tuned = CliRunner().invoke(app, ["tune", "--suite", str(path), "--algorithms", "bptt", "--out", str(out)])
    assert tuned.exit_code == 0, tuned.output
    run = ["run", "--suite", str(path), "--out", str(out), "--tuned", "--timesteps", "1", "--quiet"]
    result = CliRunner().invoke(app, [*run, "--algorithms", "bptt"])  # proxy has no tuning record
    assert result.exit_code == 0, result.output
    (record,) = (out / "tiny" / "runs").glob("bptt_*.json")
    assert json.loads(record.read_text())["spec"]["tuning_trials"] == 1
    missing = CliRunner().invoke(app, [*run, "--algorithms", "proxy"])
    assert missing.exit_code == 1
    assert "no tuning record" in missing.output and "--algorithms proxy" in missing.output
