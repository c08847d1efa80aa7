"""Your method against the baselines: the example plugin declares the controlled track, a plugin entry there
runs only with a tuning record made with the suite's tuning budget, and `tune --plugin` → `run --tuned` →
`compare` gives a verdict (on a small copy of digits-lowT, so that the whole path runs in seconds)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from typer.testing import CliRunner

from snnbench.cli import app

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "my_method.py"
runner = CliRunner()


def write_plugin_tuning_record(out: Path, suite: str = "digits-lowT", lr: float = 1e-3, **budget) -> Path:
    """Tuning records of the example's entry as `tune` writes them, made with the suite's tuning budget (or
    ``budget``'s changes to it): what `run --tuned` needs to place the entry in the controlled track. A
    suite tuned per T gets one record per T of the suite's grid (``bptt-arctan_T<T>.json``); the path of
    the first is returned."""
    from snnbench.suite import load_suite

    loaded = load_suite(suite)
    assert loaded.tuning is not None
    per_T = loaded.tuning.per_T
    paths = []
    for T in loaded.timesteps if per_T else [loaded.tuning.T]:
        made_with = {
            "trials": loaded.tuning.trials,
            "T": T,
            "seed": loaded.tuning.seed,
            "budget": loaded.tuning.budget or loaded.default_budget,
            **budget,
        }
        record = {
            "suite": loaded.name,
            "entry": "bptt-arctan",
            "algorithm": "bptt-arctan",
            "budget": made_with,
            "trials": [
                {"number": k, "values": {"lr": lr}, "val_top1": 90.0, "status": "ok", "run_id": f"x{k}"}
                for k in range(made_with["trials"])
            ],
            "chosen": {"values": {"lr": lr}, "val_top1": 90.0, "trial": 0},
            **({"per_T": True} if per_T else {}),
        }
        paths.append(
            out / loaded.name / "tuning" / (f"bptt-arctan_T{T}.json" if per_T else "bptt-arctan.json")
        )
        paths[-1].parent.mkdir(parents=True, exist_ok=True)
        paths[-1].write_text(json.dumps(record))
    return paths[0]


def test_the_example_plugin_declares_the_controlled_track():
    from snnbench.algorithms import algorithms

    algorithms.add_plugin_file(EXAMPLE)
    entry = algorithms.get("bptt-arctan").suite_entries["digits-lowT"]["bptt-arctan"]
    assert entry["track"] == "controlled"


def test_an_untuned_plugin_entry_in_the_controlled_track_is_refused_saying_how(tmp_path):
    run = ["run", "--suite", "digits-lowT", "--budget", "smoke", "--plugin", str(EXAMPLE), "--algorithms",
           "bptt-arctan", "--seeds", "0", "--timesteps", "1", "--out", str(tmp_path), "--quiet"]  # fmt: skip
    untuned = runner.invoke(app, run)
    assert untuned.exit_code == 1
    message = " ".join(untuned.stderr.split())
    assert "bptt-arctan: a plugin's entry in the controlled track of digits-lowT" in message
    assert "8 trials on validation" in message and "no tuned values" in message
    assert re.search(
        r"`snnbench tune --suite digits-lowT --plugin \S*examples/my_method.py --algorithms bptt-arctan",
        message,
    )
    assert "--tuned`" in message
    assert not (tmp_path / "digits-lowT" / "runs").exists()  # nothing trained

    write_plugin_tuning_record(tmp_path, trials=2)  # tuned, but with fewer trials than the baselines got
    fewer = runner.invoke(app, [*run, "--tuned"])
    assert fewer.exit_code == 1 and "not the suite's tuning budget" in " ".join(fewer.stderr.split())

    write_plugin_tuning_record(tmp_path, lr=0.002)
    tuned = runner.invoke(app, [*run, "--tuned"])
    assert tuned.exit_code == 0, tuned.output
    (record,) = (tmp_path / "digits-lowT" / "runs").glob("bptt-arctan_*.json")
    spec = json.loads(record.read_text())["spec"]
    assert spec["track"] == "controlled" and spec["hparams"]["lr"] == 0.002 and spec["tuning_trials"] == 8


def test_tune_plugin_then_run_tuned_then_compare_gives_a_verdict(tmp_path, monkeypatch):
    """The documented path (docs/adding-a-method.md), on digits-lowT made small: its own name (the example's
    `suite_entries` are keyed by it), two seeds at T = 1, a two-trial tuning budget of a one-epoch budget."""
    monkeypatch.chdir(tmp_path)
    suite = yaml.safe_load((ROOT / "suites" / "digits-lowT.yaml").read_text())
    small = {"epochs": 1, "batch_size": 64, "train_subset": 256, "test_subset": 128}
    suite["budgets"]["small"] = small
    suite.update(
        tuning={"trials": 2, "T": 1, "seed": 0, "budget": "small", "tracks": ["controlled"]},
        algorithms={"bptt": {"track": "controlled", "arch": "mlp", "encoding": "direct"}},
    )
    Path("digits-lowT.yaml").write_text(yaml.safe_dump(suite, sort_keys=False))
    plugin = ["--suite", "digits-lowT.yaml", "--plugin", str(EXAMPLE), "--out", "out", "--budget", "small"]
    tuned = runner.invoke(app, ["tune", *plugin[:-2], "--algorithms", "bptt,bptt-arctan"])
    assert tuned.exit_code == 0, tuned.output
    assert "bptt-arctan: trial 2/2" in tuned.output
    grid = ["--timesteps", "1", "--seeds", "0,1", "--tuned", "--quiet"]
    ran = runner.invoke(app, ["run", *plugin, "--algorithms", "bptt,bptt-arctan", *grid])
    assert ran.exit_code == 0, ran.output
    compared = runner.invoke(
        app, ["compare", *plugin, "--method", "bptt-arctan", "--baselines", "bptt", "--format", "json"]
    )
    assert compared.exit_code == 0, compared.output
    (row,) = json.loads(compared.stdout)
    assert row["baseline"] == "bptt" and row["T"] == 1 and row["verdict"]


def test_the_built_in_methods_entries_are_in_the_suite_file_and_inject_nothing(tmp_path, monkeypatch):
    """desire-bp, ide, ... are written in suites/digits-lowT.yaml, tuned in the repository, and run from any
    folder without `run --tuned`; a method shipped in snnbench.algorithms adds no entry through
    `suite_entries` (only plugins do)."""
    import yaml

    from snnbench.algorithms import algorithms
    from snnbench.suite import find_suite, load_suite
    from snnbench.tuning import refuse_untuned_plugin_entries

    written = yaml.safe_load(find_suite("digits-lowT").read_text())["algorithms"]
    cls = algorithms.get("desire-bp")
    ghost = {"digits-lowT": {"ghost": {"arch": "mlp", "track": "controlled"}}}
    monkeypatch.setattr(cls, "suite_entries", ghost)
    monkeypatch.chdir(tmp_path)  # their `tuned.record` paths are relative to the repository
    suite = load_suite("digits-lowT")
    assert list(suite.algorithms)[: len(written)] == list(written)  # every entry of the file, in order
    assert "ghost" not in suite.algorithms  # an in-house method's suite_entries inject nothing
    added = set(suite.algorithms) - set(written)  # only plugins registered in this process (bptt-arctan)
    assert added == set(suite.plugin_entries) and all(
        algorithms.get(k).__module__ != cls.__module__ for k in added
    )
    assert "desire-bp" in suite.algorithms and suite.algorithms["desire-bp"].track == "controlled"
    refuse_untuned_plugin_entries(suite, ["desire-bp"])  # no error


def test_no_built_in_method_declares_suite_entries():
    """`suite_entries` is for plugins; an in-house method's would be dead code that can drift from the suite
    file the runs read (desire-bp, ide, soft-lif and biolcnet carried such copies until 2026-12-08)."""
    from snnbench.algorithms import algorithms

    built_in = [
        name for name in algorithms.names() if algorithms.get(name).__module__.startswith("snnbench.")
    ]
    assert len(built_in) >= 20
    assert [name for name in built_in if algorithms.get(name).suite_entries] == []
