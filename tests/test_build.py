"""The fused-kernel build cache: a killed builder never blocks the next one, concurrent first builds build
once, a live builder is waited for only a bounded time, and the runner builds before any timed region."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from snnbench.neurons import build as build_module
from snnbench.neurons.build import BuildWaitTimeout, build_once

# a stand-in for the compiler: writes a one-line module (after ``delay`` seconds; logging each build)
FAKE = textwrap.dedent(
    """
    import importlib.util, sys, time
    from pathlib import Path
    from snnbench.neurons.build import build_once

    def load(folder):
        spec = importlib.util.spec_from_file_location("fake_ext", folder / "fake_ext.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    def fake_build(log, delay):
        def build(folder):
            with open(log, "a") as handle:
                handle.write(f"{folder.name}\\n")
            print("building", flush=True)
            time.sleep(delay)
            (folder / "fake_ext.py").write_text("VALUE = 42\\n")
            return load(folder)
        return build
    """
)
exec(FAKE)  # the same helpers in this process  # noqa: S102


def _spawn(root: Path, delay: float, wait_s: float = 60.0) -> subprocess.Popen:
    script = FAKE + (
        f"module = build_once('fake_ext', fake_build({str(root / 'builds.log')!r}, {delay}), load, "
        f"root=Path({str(root)!r}), wait_s={wait_s})\nprint('value', module.VALUE, flush=True)\n"
    )
    return subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parent.parent
    )


def _builds(root: Path) -> list[str]:
    log = root / "builds.log"
    return log.read_text().split() if log.exists() else []


def test_a_build_killed_mid_compile_does_not_block_the_next(tmp_path):
    killed = _spawn(tmp_path, delay=3600)
    assert killed.stdout.readline().strip() == "building"  # it holds the lock, its private folder exists
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait()
    leftover = _builds(tmp_path)
    assert (tmp_path / leftover[0]).is_dir() and (tmp_path / "fake_ext.lock").exists()

    module = build_once("fake_ext", fake_build(tmp_path / "builds.log", 0), load, root=tmp_path, wait_s=10)  # noqa: F821
    assert module.VALUE == 42
    assert len(_builds(tmp_path)) == 2
    assert not (tmp_path / leftover[0]).exists()  # the dead builder's private folder is gone
    assert sorted(p.name for p in tmp_path.iterdir()) == ["builds.log", "fake_ext", "fake_ext.lock"]


def test_concurrent_first_builds_build_once_and_all_load_it(tmp_path):
    processes = [_spawn(tmp_path, delay=2) for _ in range(3)]
    outputs = [p.communicate(timeout=120)[0] for p in processes]
    assert all(p.returncode == 0 for p in processes)
    assert all(out.strip().endswith("value 42") for out in outputs)
    assert len(_builds(tmp_path)) == 1


def test_a_live_builder_is_waited_for_a_bounded_time_with_a_message_naming_it(tmp_path):
    holder = _spawn(tmp_path, delay=3600)
    try:
        assert holder.stdout.readline().strip() == "building"
        with pytest.raises(
            BuildWaitTimeout, match=rf"waited 0.5 s for .*fake_ext while pid {holder.pid} on "
        ):
            build_once("fake_ext", fake_build(tmp_path / "builds.log", 0), load, root=tmp_path, wait_s=0.5)  # noqa: F821
    finally:
        holder.kill()
        holder.wait()
    assert len(_builds(tmp_path)) == 1


def test_the_build_key_changes_with_source_and_flags(tmp_path):
    source = tmp_path / "k.cpp"
    source.write_text("int f();\n")
    key = build_module.build_key(source, ["-O3"])
    assert build_module.build_key(source, ["-O2"]) != key
    source.write_text("int g();\n")
    assert build_module.build_key(source, ["-O3"]) != key


def test_a_timed_out_wait_falls_back_to_torch_ops_with_a_warning(monkeypatch):
    from snnbench.neurons import functional

    def busy(*args, **kwargs):
        raise BuildWaitTimeout("waited 300 s for X while pid 1 on h builds it")

    monkeypatch.setattr(build_module, "build_extension", busy)
    monkeypatch.delenv("SNNBENCH_NATIVE", raising=False)
    functional._kernels.cache_clear()
    try:
        with pytest.warns(UserWarning, match="using torch ops .*waited 300 s"):
            assert functional._kernels() == (None, "torch-ops")
    finally:
        functional._kernels.cache_clear()


def test_the_runner_builds_the_kernels_before_training_and_records_the_path(write_suite, monkeypatch):
    """A first build (20–60 s) must not land in ``train_time_s``: it happens while the record's environment is
    gathered, before the run starts."""
    from snnbench.grid import run_suite
    from snnbench.neurons import functional

    order: list[str] = []

    def kernels():
        order.append("build")
        return None, "native"

    monkeypatch.setattr(functional, "_kernels", kernels)
    monkeypatch.setattr(functional, "native_kernels", lambda: None)  # the test trains on torch ops

    def log(event):
        order.append(type(event).__name__)

    smoke = {"epochs": 1, "batch_size": 32, "train_subset": 64, "test_subset": 32}
    result = run_suite(write_suite({"budgets": {"smoke": smoke}}), out_dir="out", on_event=log)
    assert order.index("build") < order.index("RunStarted") < order.index("EpochEnd")
    assert result.records[0].environment["lif_kernel"] == "native"
