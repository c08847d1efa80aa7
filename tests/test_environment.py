"""Process settings a run starts with."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

STEPS = """
import resource, sys, torch
from snnbench.environment import reuse_freed_cpu_memory
applied = reuse_freed_cpu_memory() if sys.argv[1] == "reuse" else False
def page_faults_of_a_step():  # three 40 MiB activations, freed at the end, like a training step's
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    x = torch.empty(10 * 2**20).fill_(1.0)
    y = x * 2
    z = y + x
    del x, y, z
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
faults = [page_faults_of_a_step() for _ in range(12)]
print(applied, sum(faults[5:]))
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the setting is glibc's")
def test_freed_cpu_buffers_are_reused_instead_of_page_faulted_in_again():
    def steady_state_faults(mode: str) -> tuple[str, int]:
        out = subprocess.run([sys.executable, "-c", STEPS, mode], capture_output=True, text=True, check=True)
        applied, faults = out.stdout.split()
        return applied, int(faults)

    applied, reused = steady_state_faults("reuse")
    _, default = steady_state_faults("default")
    assert applied == "True"
    assert default > 7 * 3 * 10 * 2**20 * 4 // 4096 * 0.9  # glibc maps fresh pages at every step
    assert reused < default / 4


def test_records_say_what_changes_cpu_numbers():
    import re
    from pathlib import Path

    import torch

    from snnbench.environment import environment

    env = environment(torch.device("cpu"))
    assert env["torch_build"]["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    blas = re.search(r"BLAS_INFO=(\w+)", torch.__config__.show())
    assert env["torch_build"]["blas_info"] == (blas.group(1) if blas else None)
    assert env["torch_threads"] == torch.get_num_threads() and env["torch_interop_threads"] >= 1
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists() and "avx2" in cpuinfo.read_text():
        assert "avx2" in env["cpu_flags"] and not any(f.startswith("vmx") for f in env["cpu_flags"])
    if cpuinfo.exists() and "cpu family" in cpuinfo.read_text():
        assert env["cpu_identity"].startswith("family ")


def test_the_cpu_generation_is_read_from_the_first_processor(tmp_path):
    """A VM that names its CPU only "AMD EPYC" still tells Zen 1 from Zen 4 by family and model."""
    from snnbench.environment import cpu_identity

    block = "processor\t: {n}\nvendor_id\t: AuthenticAMD\ncpu family\t: {f}\nmodel\t\t: {m}\n"
    block += "model name\t: AMD EPYC\nstepping\t: 2\n\n"
    info = tmp_path / "cpuinfo"
    info.write_text(block.format(n=0, f=23, m=1) + block.format(n=1, f=25, m=17))
    assert cpu_identity(info) == "family 23 model 1 stepping 2"
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd\n\n")
    assert cpu_identity(arm) == ""


SUBNORMAL_WORKER = """
import torch
from snnbench.environment import flushed_denormals, flushes_denormals
before = flushes_denormals()
with flushed_denormals() as supported:  # nothing ran in parallel before: torch's threads start inside
    x = torch.full((1 << 18,), torch.finfo(torch.float32).tiny)
    inside = flushes_denormals(), bool((x * 0.5).eq(0).all()), bool((x * 0.5 * 4).eq(0).all())
print(supported, before, inside, flushes_denormals())
"""


def test_subnormals_are_flushed_inside_the_block_and_restored_after():
    """Inside the block (in a fresh process, as a pool worker runs a task) every element of a subnormal
    product is 0, on torch's threads too, and a product's subnormal input reads as 0 (DAZ); the calling
    thread's mode is restored after the block."""
    out = subprocess.run(
        [sys.executable, "-c", SUBNORMAL_WORKER], capture_output=True, text=True, check=True
    ).stdout.split(" ", 1)
    if out[0] != "True":
        pytest.skip("this CPU has no flush-to-zero mode")
    assert out[1].strip() == "False (True, True, True) False"
