"""Networks to take away: ``run --save-models`` when records exist, ``evaluate``, ``export --plugin``, and
loading a saved network from Python as docs/export.md shows."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from snnbench.cli import app
from snnbench.records import read_record, record_sha256

ROOT = Path(__file__).resolve().parent.parent
SMOKE = ["--suite", "digits-lowT", "--budget", "smoke", "--timesteps", "2", "--seeds", "0", "--quiet"]


def run(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def only_record(out: Path, entry: str = "bptt") -> Path:
    (path,) = (out / "digits-lowT" / "runs").glob(f"{entry}_*.json")
    return path


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> tuple[Path, str]:
    """A smoke digits BPTT run at T = 2 trained with --save-models: (out folder, run id)."""
    out = tmp_path_factory.mktemp("saved")
    result = run("run", *SMOKE, "--algorithms", "bptt", "--save-models", "--out", out)
    assert result.exit_code == 0, result.output
    return out, only_record(out).stem


def test_save_models_gets_a_network_for_an_existing_record_without_rewriting_it(tmp_path) -> None:
    result = run("run", *SMOKE, "--algorithms", "bptt", "--out", tmp_path)  # records, no networks
    assert result.exit_code == 0, result.output
    record_path = only_record(tmp_path)
    run_id, committed = record_path.stem, record_path.read_bytes()
    models = tmp_path / "digits-lowT" / "models"
    result = run("export", run_id, "--out", tmp_path)
    assert result.exit_code == 1
    assert "no saved network" in result.output and "--save-models --out" in result.output

    result = run("run", *SMOKE, "--algorithms", "bptt", "--save-models", "--out", tmp_path)
    assert result.exit_code == 0, result.output
    assert "Retrained 1 runs that had records but no saved network" in result.output
    assert record_path.read_bytes() == committed  # the record is not rewritten
    sidecar = json.loads((models / f"{run_id}.json").read_text())
    assert sidecar["record_content_sha256"] == json.loads(committed)["content_sha256"]
    assert (models / f"{run_id}.pt").is_file()
    result = run("export", run_id, "--out", tmp_path, "--to", tmp_path / "n.nir")
    assert result.exit_code == 0, result.output
    result = run("run", *SMOKE, "--algorithms", "bptt", "--save-models", "--out", tmp_path)
    assert "Nothing to train: all 1 runs already have records" in result.output  # it has its network now

    # a record rewritten since (here: another top-1, rehashed) is not the network's: refused, and its
    # retrain does not reproduce it, so nothing is kept and the run exits 3 saying what to do
    data = json.loads(committed)
    data["metrics"]["top1"] = data["metrics"]["top1"] - 1.0
    data["content_sha256"] = record_sha256(data)
    record_path.write_text(json.dumps(data))
    (models / f"{run_id}.pt").unlink()
    (models / f"{run_id}.json").unlink()
    result = run("run", *SMOKE, "--algorithms", "bptt", "--save-models", "--out", tmp_path)
    assert result.exit_code == 3, result.output
    line = " ".join(result.output.split())
    assert f"{run_id}: the retrain gave top-1" in line and "was not kept" in line
    assert "--save-models --out DIR" in line
    assert not (models / f"{run_id}.pt").exists()
    assert json.loads(record_path.read_text()) == data


def test_a_sidecar_of_another_record_is_refused(saved, tmp_path) -> None:
    import shutil

    from snnbench.records import RecordStore
    from snnbench.saved import expected_sha256, has_saved_model, sidecar_path

    out, run_id = saved
    shutil.copytree(out / "digits-lowT", tmp_path / "digits-lowT")
    store = RecordStore(tmp_path, "digits-lowT")
    record = read_record(store.record_path(run_id))
    assert has_saved_model(store, record)
    unsaved = record.model_copy(update={"model_sha256": None})  # as a record made without the flag
    assert not has_saved_model(store, unsaved)
    sidecar = {"run_id": run_id, "model_sha256": record.model_sha256, "record_content_sha256": "0" * 64}
    sidecar_path(store, run_id).write_text(json.dumps(sidecar))
    assert expected_sha256(store, unsaved) is None  # names another record's content
    sidecar["record_content_sha256"] = unsaved.content_sha256
    sidecar_path(store, run_id).write_text(json.dumps(sidecar))
    assert expected_sha256(store, unsaved) == record.model_sha256


def test_reproduces_needs_the_same_top1s_and_close_losses(saved) -> None:
    from snnbench.saved import reproduces

    out, run_id = saved
    record = read_record(only_record(out))
    assert reproduces(record, record)

    def changed(**metrics):
        return record.model_copy(update={"metrics": {**record.metrics, **metrics}})

    assert not reproduces(record, changed(top1=record.metrics["top1"] + 0.1))
    assert not reproduces(record, changed(val_top1=record.metrics["val_top1"] - 0.1))
    history = [dict(h) for h in record.history]
    history[-1]["loss"] *= 1 + 1e-6
    assert reproduces(record, record.model_copy(update={"history": history}))
    history[-1]["loss"] *= 1 + 1e-3
    assert not reproduces(record, record.model_copy(update={"history": history}))


def test_evaluate_at_the_training_T_gives_the_records_figures(saved) -> None:
    out, run_id = saved
    record = read_record(only_record(out))
    result = run("evaluate", run_id, "--out", out)
    assert result.exit_code == 0, result.output
    assert f"at T = 2 on test ({record.metrics['test_size']} samples)" in result.output
    assert f"top-1 {record.metrics['top1']:.2f} %" in result.output and "spike rate" in result.output
    path = out / "digits-lowT" / "evaluations" / f"{run_id}_T2_test.json"
    evaluation = json.loads(path.read_text())
    assert evaluation["kind"] == "evaluation" and evaluation["trained_T"] == evaluation["T"] == 2
    assert evaluation["metrics"]["top1"] == record.metrics["top1"]
    assert evaluation["model_sha256"] == record.model_sha256
    assert evaluation["content_sha256"] == record_sha256(evaluation)

    result = run("evaluate", run_id, "--out", out, "--split", "val")
    assert result.exit_code == 0, result.output
    val = json.loads((path.parent / f"{run_id}_T2_val.json").read_text())
    assert val["samples"] == record.metrics["val_size"]
    assert val["metrics"]["top1"] == record.metrics["val_top1"]  # the record's validation top-1 ...
    for key in ("spike_rate", "synops_per_sample", "energy_nj"):  # ... and its spike metrics (on val)
        assert val["metrics"][key] == pytest.approx(record.metrics[key], rel=1e-12), key


def test_evaluate_at_another_T_runs_that_many_steps(saved) -> None:
    out, run_id = saved
    result = run("evaluate", run_id, "--out", out, "--timesteps", "8", "--split", "val")
    assert result.exit_code == 0, result.output
    assert "(trained at T = 2) at T = 8 on val" in result.output
    folder = out / "digits-lowT" / "evaluations"
    at8 = json.loads((folder / f"{run_id}_T8_val.json").read_text())
    record = read_record(only_record(out))
    assert at8["T"] == 8 and at8["trained_T"] == 2
    # four times the steps: about four times the synaptic operations of the run at T = 2
    assert at8["metrics"]["synops_per_sample"] > 2.5 * record.metrics["synops_per_sample"]


def test_evaluations_are_not_training_records(saved, tmp_path) -> None:
    import shutil

    from snnbench.leaderboard import write_reports
    from snnbench.suite import load_suite

    out, run_id = saved
    assert run("evaluate", run_id, "--out", out).exit_code == 0
    assert not list((out / "digits-lowT" / "runs").glob("*_test.json"))
    shutil.copytree(out / "digits-lowT" / "runs", tmp_path / "alone" / "digits-lowT" / "runs")
    write_reports(load_suite("digits-lowT"), tmp_path / "alone" / "digits-lowT", "smoke")
    write_reports(load_suite("digits-lowT"), out / "digits-lowT", "smoke")
    alone = (tmp_path / "alone" / "digits-lowT" / "budgets" / "smoke" / "leaderboard.csv").read_text()
    assert (out / "digits-lowT" / "budgets" / "smoke" / "leaderboard.csv").read_text() == alone


def test_evaluate_errors_are_one_line(saved) -> None:
    out, run_id = saved
    result = run("evaluate", run_id[:-1] + "x", "--out", out)
    assert result.exit_code == 2 and "did you mean" in result.output
    result = run("evaluate", run_id, "--out", out, "--timesteps", "100001")
    assert result.exit_code == 1 and "--timesteps: expected 1 to" in result.output
    result = run("evaluate", run_id, "--out", out, "--split", "train")
    assert result.exit_code == 2


def test_a_network_with_other_parameters_at_another_T_is_refused(saved) -> None:
    from snnbench.errors import SnnbenchError
    from snnbench.saved import build_network, load_model, network_at

    out, run_id = saved
    record, _ = load_model(out, "digits-lowT", run_id)
    spec = {**record.spec, "algorithm": "bntt", "hparams": {}}  # batch norm per time step
    bntt = record.model_copy(update={"algorithm": "bntt", "spec": spec})
    net = build_network(spec)
    assert network_at(bntt, net, 2) is net
    with pytest.raises(SnnbenchError, match="at T = 4 has other parameters .* cannot run at another T"):
        network_at(bntt, net, 4)


def test_export_takes_plugin_methods(tmp_path) -> None:
    nir = pytest.importorskip("nir")
    plugin = ROOT / "examples" / "my_method.py"
    common = ("--plugin", plugin, "--out", tmp_path)
    from test_plugin_path import write_plugin_tuning_record

    write_plugin_tuning_record(tmp_path)  # a plugin entry of the controlled track runs tuned (issue 44)
    result = run("run", *SMOKE, "--algorithms", "bptt-arctan", "--save-models", "--tuned", *common)
    assert result.exit_code == 0, result.output
    run_id = only_record(tmp_path, "bptt-arctan").stem
    # a fresh process, as a user runs it: the plugin is known only if `export` loads it
    # (without the plugin list this process hands its workers: SNNBENCH_PLUGINS_ALGORITHMS)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNNBENCH_PLUGINS_")}
    export = [sys.executable, "-m", "snnbench", "export", run_id, "--out", str(tmp_path)]
    common_run = {"capture_output": True, "text": True, "env": env}
    done = subprocess.run([*export, "--to", str(tmp_path / "bare.nir")], **common_run)
    assert done.returncode != 0 and "bptt-arctan" in done.stderr and "Traceback" not in done.stderr
    done = subprocess.run(
        [*export, "--plugin", str(plugin), "--to", str(tmp_path / "arctan.nir")], **common_run
    )
    assert done.returncode == 0, done.stderr
    graph = nir.read(tmp_path / "arctan.nir")
    kinds = sorted(type(n).__name__ for n in graph.nodes.values())  # BPTT's MLP: one hidden LIF layer
    assert kinds == sorted(["Input", "Flatten", "Affine", "LIF", "Affine", "LI", "Output"])
    result = run("evaluate", run_id, *common)
    assert result.exit_code == 0, result.output


def test_a_plugin_with_its_own_network_is_not_exported_with_its_parents_mapping() -> None:
    from snnbench.algorithms import algorithms
    from snnbench.algorithms.bptt import BPTT
    from snnbench.errors import SnnbenchError
    from snnbench.export import mapped_algorithm

    class OwnNet(BPTT):
        def build(self, T):  # pragma: no cover - never called
            return super().build(T)

    class SameNet(BPTT):
        pass

    algorithms.register("test-own-net", OwnNet)
    algorithms.register("test-same-net", SameNet)
    assert mapped_algorithm("test-same-net") == "bptt"
    with pytest.raises(SnnbenchError, match="builds its own network"):
        mapped_algorithm("test-own-net")


def python_example() -> str:
    text = (ROOT / "docs" / "export.md").read_text()
    block = text.split("<!-- example:load-saved -->")[1]
    return re.search(r"```python\n(.*?)```", block, flags=re.S).group(1)


def test_the_docs_python_example_loads_and_runs_a_saved_network(saved, capsys) -> None:
    out, run_id = saved
    code = python_example()
    placeholder = 'load_model("results", "digits-lowT", "bptt_T4_s0_full_c9cc3525")'
    assert code.count(placeholder) == 1
    namespace: dict = {}
    exec(code.replace(placeholder, f'load_model("{out}", "digits-lowT", "{run_id}")'), namespace)
    record = namespace["record"]
    assert namespace["accuracy"] == pytest.approx(record.metrics["top1"], abs=1e-9)
    assert f"{record.metrics['top1']:.2f}" in capsys.readouterr().out
