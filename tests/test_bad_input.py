"""Bad input, as a hostile user or a faulty machine gives it (issue 47), one case per row: what was tried and
what must come out. Every suite case fails at load, before any training, with one line on stderr that names
the file and the field, no traceback, and a non-zero exit code; quoted values are cut short."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from snnbench.cli import app

runner = CliRunner()
PLUGIN = Path(__file__).parent / "fixtures" / "plugins" / "testing_methods.py"


def billion_laughs() -> str:
    """The classic alias bomb (10⁹ leaves once expanded) as a suite's ``timesteps``."""
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, 10):
        prev = f"*a{level - 1}"
        lines.append(f"a{level}: &a{level} [{', '.join([prev] * 10)}]")
    return "\n".join(lines) + "\ntimesteps: *a9\n"


def bptt(**changes):
    return {"algorithms": {"bptt": {"arch": "mlp", "lr": 0.01, **changes}}}


# (case, what the suite file gets: a dict merged into the tiny suite or YAML text appended, field, message)
SUITE_CASES = [
    ("billion laughs (YAML aliases)", billion_laughs(), "(file)", "aliases expand to over 100,000"),
    ("alias into itself", "loop: &loop [1, *loop]\n", "(file)", "alias refers to a value that contains it"),
    ("nesting 100,000 deep", "deep: " + "[" * 100_000 + "]" * 100_000 + "\n", "(file)", "nested too deeply"),
    ("file over 1 MiB", f"description: {'x' * (1 << 20)}\n", "(file)", "over the 1 MiB of a suite file"),
    ("seed 2**70", {"seeds": [2**70]}, "seeds.0", "less than 4294967296"),
    ("negative seed", {"seeds": [-1]}, "seeds.0", "greater than or equal to 0"),
    ("seed given twice", {"seeds": [0, 1, 0]}, "seeds", "given more than once: [0]"),
    ("T given twice", {"timesteps": [2, 4, 2]}, "timesteps", "given more than once: [2]"),
    ("T over 100,000", {"timesteps": [100_001]}, "timesteps.0", "less than or equal to 100000"),
    ("entry's T given twice", bptt(timesteps=[4, 4]), "algorithms.bptt.timesteps", "more than once: [4]"),
    ("split_seed 2**40", {"dataset_options": {"split_seed": 2**40}}, "dataset_options.split_seed", "less"),
    ("validation seed 2**40", {"validation": {"seed": 2**40}}, "validation.seed", "less than 4294967296"),
    ("tuning T 10**6", {"tuning": {"trials": 2, "T": 10**6}}, "tuning.T", "less than or equal to 100000"),
    ("width 10**9", bptt(arch="1000000000"), "algorithms.bptt.arch", "sizes from 1 to 65,536"),
    ("a 65,537-unit layer", bptt(arch="400-65537"), "algorithms.bptt.arch", "sizes from 1 to 65,536"),
    ("a 65,537-channel block", bptt(arch="B65537"), "algorithms.bptt.arch", "sizes from 1 to 65,536"),
    ("a size of 5,000 digits", bptt(arch="1" * 5000), "algorithms.bptt.arch", "at most 6 digits"),
    ("an arch name of 500,000 characters", bptt(arch="x" * 500_000), "algorithms.bptt.arch", "unknown arch"),
    ("lr .inf", bptt(lr=float("inf")), "algorithms.bptt.lr", "expected a finite number, got inf"),
    ("lr .nan", bptt(lr=float("nan")), "algorithms.bptt.lr", "expected a finite number, got nan"),
    ("negative lr", bptt(lr=-1.0), "algorithms.bptt.lr", "greater than 0"),
    ("energy 1e308 pJ", {"energy": {"e_ac_pj": 1e308}}, "energy.e_ac_pj", "less than or equal to 1000000"),
    ("energy .inf", {"energy": {"e_mac_pj": float("inf")}}, "energy.e_mac_pj", "expected a finite number"),
    ("NaN in preprocess", bptt(preprocess={"mean": [float("nan")], "std": [1.0]}),
     "algorithms.bptt.preprocess.mean.0", "expected a finite number"),
    ("a 500,000-character name", {"name": "n" * 500_000 + "!"}, "name", "expected a name"),
    # issue 47 item 3: pydantic reads the strings "inf"/"nan" (YAML's unquoted `inf`) as floats
    ("lr 'inf' (a string)", bptt(lr="inf"), "algorithms.bptt.lr", "expected a finite number, got inf"),
    ("tuned lr 'inf'", bptt(tuned={"values": {"lr": "inf"}, "trials": 2}), "algorithms.bptt.tuned.values.lr",
     "expected a finite number, got inf"),
    ("reference top1 'nan'", {"reference": [{"algorithm": "bptt", "top1": "nan", "source": "x"}]},
     "reference.0.top1", "expected a finite number"),
    ("preprocess mean 'nan'", bptt(preprocess={"mean": ["nan"], "std": [1.0]}),
     "algorithms.bptt.preprocess.mean", "expected finite numbers"),
    ("preprocess std 0", bptt(preprocess={"mean": [0.0], "std": [0.0]}),
     "algorithms.bptt.preprocess.std", "positive numbers"),
    ("preprocess std 1e-300 (0 in float32)", bptt(preprocess={"mean": [0.0], "std": [1e-300]}),
     "algorithms.bptt.preprocess.std", "(float32)"),
    ("preprocess for a method that ignores it", bptt(preprocess={"mean": [0.5], "std": [0.5]}),
     "algorithms.bptt.preprocess", "bptt does not normalise its input"),
    ("preprocess for temporal-surrogate-bp without normalize_input",
     {"algorithms": {"temporal-surrogate-bp": {"arch": "mlp", "normalize_input": False,
                                               "preprocess": {"mean": [0.5], "std": [0.5]}}}},
     "algorithms.temporal-surrogate-bp.preprocess", "does not normalise its input"),
]  # fmt: skip


def write(tmp_path: Path, change: dict | str) -> Path:
    from conftest import TINY_SUITE

    path = tmp_path / "bad.yaml"
    if isinstance(change, dict):
        text = yaml.safe_dump({**TINY_SUITE, **change}, sort_keys=False)
    else:  # YAML text: appended to the suite, replacing its timesteps where it gives them
        replaced = {k: v for k, v in TINY_SUITE.items() if k != "timesteps" or "timesteps:" not in change}
        text = yaml.safe_dump(replaced, sort_keys=False) + change
    path.write_text(text)
    return path


@pytest.mark.parametrize("case", SUITE_CASES, ids=[c[0] for c in SUITE_CASES])
def test_a_bad_suite_file_fails_at_load_on_one_line(case, tmp_path, monkeypatch):
    name, change, field, message = case
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path, change)
    result = runner.invoke(app, ["run", "--suite", str(path.name), "--out", "out", "--device", "cpu"])
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit)  # no traceback
    line = result.stderr
    assert line.startswith(f"Error: bad.yaml: {field}: ") and line.count("\n") == 1, line[:500]
    assert message in line, line[:500]
    assert len(line) < 1200  # values are quoted cut short (a 35 MB repr once)
    assert not (tmp_path / "out").exists()  # nothing trained
    if "alias" in name:  # refused before anything is built (the bomb once hung `run` > 150 s)
        from snnbench.errors import SuiteError
        from snnbench.suite import load_suite

        started = time.perf_counter()
        with pytest.raises(SuiteError):
            load_suite(path)
        assert time.perf_counter() - started < 0.5


def test_the_billion_laughs_document_is_small():
    assert len(billion_laughs().encode()) <= 1200  # 10⁹ "lol"s from at most the issue's 1.2 KB


CLI_CASES = [
    ("--seeds 2**70", ["--seeds", str(2**70)], "--seeds"),
    ("--seeds -1", ["--seeds", "-1"], "--seeds"),
    ("--seeds 0,0", ["--seeds", "0,0"], "given more than once"),
    ("--timesteps 2,2", ["--timesteps", "2,2"], "given more than once"),
    ("--timesteps 10**6", ["--timesteps", str(10**6)], "from 1 to 100000"),
]


@pytest.mark.parametrize("case", CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_bad_command_line_values_fail_before_training(case, write_suite, tmp_path):
    _, options, message = case
    path = write_suite()
    result = runner.invoke(app, ["run", "--suite", str(path), "--out", "out", "--device", "cpu", *options])
    flat = " ".join(result.output.replace("│", " ").split())  # Click's error box wraps the message
    assert result.exit_code == 2 and message in flat, result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)
    assert not (tmp_path / "out").exists()


def test_a_failed_run_exits_3_and_a_killed_write_leaves_no_tmp_file(write_suite, tmp_path):
    """`run` exited 0 when runs failed; `.tmp` files of killed atomic writes were never removed."""
    path = write_suite({"algorithms": {"crashing": {"arch": "mlp"}, "bptt": {"arch": "mlp", "lr": 0.01}}})
    runs = tmp_path / "out" / "tiny" / "runs"
    runs.mkdir(parents=True)
    host = socket.gethostname()
    killed = runs / f".x.json.999999999@{host}+k1ll3d00.tmp"  # its writer is gone
    unnamed = runs / ".y.json.abcdefgh.tmp"  # an older snnbench's, two hours old
    other_host = runs / ".z.json.42@elsewhere.example+abcdefgh.tmp"  # may still be writing: kept
    live = runs / f".w.json.{os.getpid()}@{host}+abcdefgh.tmp"  # this process writing: kept
    for file in (killed, unnamed, other_host, live):
        file.write_bytes(b"{half a rec")
    two_hours_ago = time.time() - 7200
    os.utime(unnamed, (two_hours_ago, two_hours_ago))
    command = [
        "run",
        "--suite",
        str(path),
        "--out",
        "out",
        "--device",
        "cpu",
        "--plugin",
        str(PLUGIN),
        "--quiet",
    ]
    result = runner.invoke(app, command)
    assert result.exit_code == 3, result.output
    assert result.stderr.startswith("Error: 1 of 2 runs failed") and result.stderr.count("\n") == 1
    assert "crashing_T2_s0_smoke_" in result.stderr
    assert sorted(p.name for p in runs.glob(".*.tmp")) == sorted([other_host.name, live.name])
    again = runner.invoke(app, command)  # the failed run is retried, fails again: still 3
    assert again.exit_code == 3 and "Trained 1 runs, skipped 1 with records." in again.output


def test_the_billion_laughs_is_refused_in_well_under_a_second_in_a_fresh_process(tmp_path):
    """Out of process, so that a loader without the alias budget fails this test (by its timeout) rather
    than hanging the test run."""
    import subprocess
    import sys

    path = write(tmp_path, billion_laughs())
    probe = (
        "import sys, time; from snnbench.suite import load_suite; from snnbench.errors import SuiteError\n"
        "import snnbench.algorithms, snnbench.data\n"
        "start = time.perf_counter()\n"
        "try:\n    load_suite(sys.argv[1])\nexcept SuiteError as exc:\n    print(exc)\n"
        "print(f'{time.perf_counter() - start:.3f}')\n"
    )
    try:
        done = subprocess.run(
            [sys.executable, "-c", probe, str(path)], capture_output=True, text=True, timeout=60
        )
    except subprocess.TimeoutExpired:
        pytest.fail("loading the billion-laughs suite did not end within 60 s")
    message, seconds = done.stdout.splitlines()
    assert "aliases expand to over 100,000 values" in message and float(seconds) < 0.5, done.stdout


# issue 47 item 3: divergence and numerics ---------------------------------------------------------------
def test_the_preprocess_readers_are_the_methods_that_normalise():
    """Which shipped methods honour ``preprocess`` (suite.PREPROCESS_READERS) is read off their code: a method
    normalises its input through ``self.data.normalize``, where the runner puts the entry's statistics."""
    import inspect

    from snnbench.algorithms import algorithms
    from snnbench.suite import PREPROCESS_READERS, reads_preprocess

    shipped = [n for n in algorithms.names() if algorithms.get(n).__module__.startswith("snnbench.")]

    def source(cls: type) -> str:
        """The class, the shipped methods it inherits from (soft-lif: conversion) and the functions it takes
        from another (s-resnet: ``_encode = BNTT._encode``)."""
        shipped_classes = [c for c in cls.__mro__ if c.__module__.startswith("snnbench.")]
        taken = [
            inspect.getsource(f)
            for c in shipped_classes
            for f in vars(c).values()
            if inspect.isfunction(f) and f.__module__.startswith("snnbench.")
        ]
        return "".join([*map(inspect.getsource, shipped_classes), *taken])

    normalising = {n for n in shipped if "self.data.normalize(" in source(algorithms.get(n))}
    assert normalising == set(PREPROCESS_READERS)
    tsbp = algorithms.get("temporal-surrogate-bp")
    assert reads_preprocess(tsbp, tsbp.Config(normalize_input=True))
    assert not reads_preprocess(tsbp, tsbp.Config(normalize_input=False))
    assert not reads_preprocess(algorithms.get("bptt"), algorithms.get("bptt").Config())


def test_an_entry_of_a_method_that_normalises_keeps_its_preprocess(write_suite):
    from snnbench.suite import expand, load_suite

    path = write_suite(
        {"algorithms": {"tssl-bp": {"arch": "mlp", "preprocess": {"mean": [0.25], "std": [0.5]}}}}
    )
    assert expand(load_suite(path))[0].preprocess == {"mean": [0.25], "std": [0.5]}


def test_non_finite_inputs_are_found_after_normalisation():
    import torch

    from snnbench.data import DatasetInfo, Split
    from snnbench.runner import non_finite_inputs

    info = DatasetInfo("t", (1, 2, 2), 2, mean=(0.0,), std=(1.0,))
    clean = Split(torch.zeros(5, 1, 2, 2), torch.zeros(5, dtype=torch.long))
    dirty = Split(clean.x.clone(), clean.y)
    dirty.x[3, 0, 1, 1] = float("nan")
    dirty.x[4, 0, 0, 0] = float("inf")
    assert non_finite_inputs({"training": clean, "test": clean}, info, True) is None
    message = non_finite_inputs({"training": clean, "test": dirty}, info, False)
    assert message == "the test split holds 2 non-finite input values (NaN or ±inf)"
    zero_std = DatasetInfo("t", (1, 2, 2), 2, mean=(0.0,), std=(0.0,))
    assert non_finite_inputs({"training": clean}, zero_std, False) is None
    assert "training split holds 20 non-finite" in non_finite_inputs({"training": clean}, zero_std, True)


def test_a_dataset_with_nan_inputs_fails_the_run_with_one_line(write_suite, tmp_path, monkeypatch):
    """bntt trained on NaN inputs was recorded ok with a loss of ln 10."""
    import snnbench.runner as runner_module
    from snnbench.grid import run_suite

    real = runner_module.load_data

    def poisoned(spec, root):
        import copy

        data = copy.copy(real(spec, root))
        data.train = type(data.train)(data.train.x.clone(), data.train.y)
        data.train.x[::7] = float("nan")
        return data

    monkeypatch.setattr(runner_module, "load_data", poisoned)
    (record,) = run_suite(write_suite(), out_dir=tmp_path, device="cpu").records
    assert record.status == "failed" and record.error.count("\n") == 0, record.error
    assert record.error.startswith("InputDataError: the training split holds ") and "NaN" in record.error


def test_the_stall_rule():
    from snnbench.runner import stalled

    def history(losses, last_val):
        return [{"epoch": i + 1, "loss": v, "val_top1": 50.0} for i, v in enumerate(losses[:-1])] + [
            {"epoch": len(losses), "loss": losses[-1], "val_top1": last_val}
        ]

    assert "did not fall" in stalled(history([2.3026, 2.3026, 2.3026], 9.0), 10, 200)  # flat at chance
    assert "at chance" in stalled(history([40.0, 2.3026, 2.3026], 11.0), 10, 200)  # blew up, then dead
    assert stalled(history([2.30307, 2.30298, 2.30294], 11.5), 10, 26) is None  # slowly falling: learning
    assert stalled(history([2.3, 2.3, 2.3], 9.0), 10, 200) is not None  # also right at the chance bound
    assert stalled(history([2.3, 2.2, 2.1], 9.0), 10, 200) is None  # still falling: ok (listed at chance)
    assert stalled(history([2.3, 2.3, 2.3], 40.0), 10, 200) is None  # above chance: learned
    assert stalled(history([2.3], 9.0), 10, 200) is None  # one epoch: no trend
    assert stalled(history([2.3, 2.3], 9.0), 10, 0) is None  # no validation split


def test_a_run_at_chance_whose_loss_never_falls_is_diverged_and_unranked(write_suite, tmp_path):
    """lr 1e6 / 1e20: 7 of 21 runs (bounded losses saturated at ln C) were recorded ok at chance, ranked."""
    from snnbench.algorithms import algorithms
    from snnbench.grid import run_suite

    if "stuck" not in algorithms:
        algorithms.add_plugin_file(PLUGIN)
    path = write_suite({"algorithms": {"stuck": {"arch": "mlp"}, "bptt": {"arch": "mlp", "lr": 0.01}}})
    records = {r.entry: r for r in run_suite(path, out_dir=tmp_path, device="cpu").records}
    stuck = records["stuck"]
    assert stuck.status == "diverged" and "at chance" in stuck.error and "did not fall" in stuck.error
    assert "top1" not in stuck.metrics and len(stuck.history) == 3
    assert records["bptt"].status == "ok"  # a learning run under the same rule
