"""Time estimates before training (``run --dry-run``): the scaling arithmetic, records, shared training,
data that is not on disk and the GPU warning."""

from __future__ import annotations

import math

import pytest
from typer.testing import CliRunner

from snnbench import estimate
from snnbench.cli import app
from snnbench.estimate import describe, duration, estimate_suite
from snnbench.records import RecordStore, RunRecord
from snnbench.suite import Overrides, expand, load_suite

CIFAR_SUITE = """\
name: tiny-cifar
version: 1
dataset: cifar10
timesteps: [2]
seeds: [0]
default_budget: full
budgets:
  full: {epochs: 3, batch_size: 50, eval_batch_size: 400, num_gpus: 1}
algorithms:
  bptt: {arch: mlp}
"""


@pytest.fixture
def fixed_timing(monkeypatch):
    """1 s per training batch and 0.25 s per evaluation batch, whatever the network."""
    monkeypatch.setattr(estimate, "_time_batches", lambda *args: (1.0, 0.25))


def test_unknown_data_is_timed_on_synthetic_input_at_published_sizes_with_a_gpu_warning(
    tmp_path, fixed_timing
) -> None:
    (tmp_path / "tiny-cifar.yaml").write_text(CIFAR_SUITE)
    grid = estimate_suite(tmp_path / "tiny-cifar.yaml", out_dir=tmp_path, data_dir=tmp_path / "no-data")
    (run,) = grid.runs
    # 3 epochs × ⌈50,000/50⌉ training batches + (3 + 2) × ⌈10,000/400⌉ evaluation batches
    assert run.seconds == 3 * 1000 * 1.0 + 5 * 25 * 0.25
    assert run.source == "timed"
    assert grid.synthetic_shape == (3, 32, 32)
    lines = describe(grid)
    assert "cifar10 is not on disk: timed on synthetic input of its shape (3, 32, 32)" in lines[1]
    assert lines[-2] == "Total: 51 min run one after another on cpu."
    # one run cannot be split over workers: the longest run bounds the wall time
    on_two = "Total: 51 min run one after another on cpu; about 51 min on 2 workers."
    assert describe(grid, workers=2)[-2] == on_two
    assert lines[-1].startswith("Warning: budget 'full' asks for 1 GPU per run (num_gpus) but this estimate")


def test_synthetic_batches_really_train(tmp_path) -> None:
    """The real timing path on synthetic CIFAR-shaped input (no monkeypatch): positive, finite."""
    (tmp_path / "tiny-cifar.yaml").write_text(CIFAR_SUITE.replace("batch_size: 50", "batch_size: 4"))
    (run,) = estimate_suite(tmp_path / "tiny-cifar.yaml", out_dir=tmp_path, data_dir=tmp_path).runs
    assert 0 < run.seconds < math.inf


def test_methods_that_train_once_per_seed_pay_training_once(tmp_path, fixed_timing) -> None:
    overrides = Overrides(budget="smoke", algorithms=["conversion-rate"], timesteps=[2, 4], seeds=[0])
    first, second = estimate_suite("digits-lowT", overrides, out_dir=tmp_path).runs
    evaluation = (2 + 2) * math.ceil(128 / 256) * 0.25  # smoke: 2 epochs, 128 test samples
    assert first.seconds == 2 * math.ceil(256 / 64) * 1.0 + evaluation
    assert (second.seconds, second.source) == (evaluation, "timed (training shared)")


def _record(spec, started: str, finished: str) -> RunRecord:
    return RunRecord(
        run_id=spec.run_id,
        suite=spec.suite,
        suite_version=spec.suite_version,
        entry=spec.entry,
        algorithm=spec.algorithm,
        algorithm_version=1,
        algorithm_source_sha256="",
        dataset=spec.dataset,
        T=spec.T,
        seed=spec.seed,
        budget=spec.budget,
        spec=spec.model_dump(mode="json"),
        spec_hash=spec.spec_hash,
        status="ok",
        started_at=started,
        finished_at=finished,
    )


def test_records_give_done_runs_and_measured_times_for_other_seeds(tmp_path, fixed_timing) -> None:
    overrides = Overrides(budget="smoke", algorithms=["bptt"], timesteps=[2], seeds=[0, 1])
    done, other = expand(load_suite("digits-lowT"), overrides)
    RecordStore(tmp_path, "digits-lowT").save(
        _record(done, "2026-01-01T00:00:00+00:00", "2026-01-01T00:01:30+00:00")
    )
    first, second = estimate_suite("digits-lowT", overrides, out_dir=tmp_path).runs
    assert (first.seconds, first.source) == (0.0, "done")
    assert (second.seconds, second.source) == (90.0, f"record {done.run_id}")
    rerun = estimate_suite("digits-lowT", overrides, out_dir=tmp_path, resume=False).runs
    assert [r.source for r in rerun] == [f"record {done.run_id}"] * 2


def test_duration_units() -> None:
    assert [duration(s) for s in (45, 600, 7200, 3 * 86400)] == ["45 s", "10 min", "2.0 h", "3.0 d"]


def test_dry_run_lists_the_grid_and_trains_nothing(tmp_path) -> None:
    args = ["run", "--suite", "digits-lowT", "--budget", "smoke", "--algorithms", "bptt,proxy"]
    result = CliRunner().invoke(
        app, [*args, "--timesteps", "2", "--seeds", "0,1", "--out", str(tmp_path), "--dry-run"]
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "Estimate for digits-lowT on cpu (4 runs):"
    assert [line.split()[:4] for line in lines[1:3]] == [
        ["bptt", "T=2", "2/2", "to"],
        ["proxy", "T=2", "2/2", "to"],
    ]
    assert lines[3].startswith("Total: ")
    assert not (tmp_path / "digits-lowT").exists()


def test_run_prints_the_estimate_before_a_long_grid(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(estimate, "_time_batches", lambda *args: (100.0, 1.0))  # 2 × 4 batches: 13 min
    args = ["run", "--suite", "digits-lowT", "--budget", "smoke", "--algorithms", "bptt", "--timesteps", "2"]
    result = CliRunner().invoke(app, [*args, "--seeds", "0", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Estimate for digits-lowT on cpu (1 runs):\n")
    assert "Total: 13 min run one after another on cpu." in result.output
    assert "Trained 1 runs" in result.output


def test_a_pool_run_estimates_the_wall_time_its_workers_share(tmp_path, fixed_timing) -> None:
    """--executor pool (2 workers) on 6 equal runs: half the one-after-another total."""
    args = ["run", "--suite", "digits-lowT", "--budget", "smoke", "--algorithms", "bptt,proxy", "--dry-run"]
    args += ["--timesteps", "2", "--out", str(tmp_path), "--executor", "pool"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "Total: 54 s run one after another on cpu; about 27 s on 2 workers." in result.output


@pytest.mark.parametrize("collecting", [True, False])
def test_probes_are_timed_without_garbage_collection(collecting) -> None:
    """A full collection (0.1-0.2 s on a grid's heap) inside a 2-sample probe was scaled by the batch size
    (88 min per run estimated for a 20 s run): the timed steps run with the collector paused, the warm-up
    step does not, and the collector's state is restored afterwards, also when a step raises."""
    import gc

    seen: list[tuple[int, bool]] = []

    def step(n: int) -> None:
        seen.append((n, gc.isenabled()))

    (gc.enable if collecting else gc.disable)()
    try:
        estimate._per_batch(step, 64, timed=2)
        assert seen == [(2, collecting), (2, False), (2, False), (64, collecting), (64, False), (64, False)]
        assert gc.isenabled() is collecting

        def failing(n: int) -> None:
            if len(seen) > 6:
                raise RuntimeError("step failed")
            seen.append((n, gc.isenabled()))

        with pytest.raises(RuntimeError, match="step failed"):
            estimate._per_batch(failing, 64, timed=2)
        assert gc.isenabled() is collecting
    finally:
        gc.enable()
