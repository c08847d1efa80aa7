"""Per-method cost: one training step of every registered method on the same network and T as BPTT.

Each method builds the same layer list (its own neurons and rule), takes the same random batch in its own
encoding, and runs one step through its public contract (``train_epoch`` over one batch: forward, its own
gradient or update rule, optimiser step). Steps are timed in interleaved rounds (median over rounds, after
a warm-up step), so that a drifting machine shifts every method alike; the ratio to BPTT is the figure to
read. Each method runs in its own subprocess, timed in rounds interleaved with a BPTT step built in the same
process (so a drifting machine shifts both alike), under an address-space cap (``--memory-limit``): a
method that needs more is reported as such instead of taking the machine down. Peak memory is the
resident-set growth of one step, measured in a further fresh subprocess per method.

    python benchmarks/method_cost.py                    # both shapes
    python benchmarks/method_cost.py --shape mlp --rounds 7

Shapes: ``mlp`` — the digits MLP (64-256-10 on 1×8×8 inputs, T = 4, batch 64); ``vgg11`` — a CIFAR-shaped
VGG-11 (3×32×32, 10 classes, ``64C3-128C3-P2-256C3-256C3-P2-512C3-512C3-P2-512C3-512C3-P2``, T = 6,
batch 16; every method pools with its own pooling). A method that cannot build a shape says why.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

import psutil
import torch

from snnbench.algorithms import RunContext, algorithms
from snnbench.architectures import resolve_architecture
from snnbench.data import DatasetInfo
from snnbench.data.encoding import encodings
from snnbench.environment import _cpu_model as cpu_model
from snnbench.metrics import PeakMemory

SHAPES = {
    "mlp": ("256", DatasetInfo("digits", (1, 8, 8), 10), 4, 64),
    "vgg11": (
        "64C3-128C3-P2-256C3-256C3-P2-512C3-512C3-P2-512C3-512C3-P2",
        DatasetInfo("cifar10", (3, 32, 32), 10, mean=(0.49, 0.48, 0.45), std=(0.25, 0.24, 0.26)),
        6,
        16,
    ),
}


# settings a method needs at these shapes (its digits-lowT entry's): desire-bp's default target count is
# T − 4 spikes, none at T = 4
SETTINGS = {"desire-bp": {"margin_scaling": "proportional"}}


def make_step(name: str, shape: str):
    """A closure running one training step of method ``name`` on ``shape`` (or raising why it cannot)."""
    notation, info, T, batch = SHAPES[shape]
    cls = algorithms.get(name)
    torch.manual_seed(0)
    algorithm = cls(cls.Config(**SETTINGS.get(name, {})), resolve_architecture(notation), info)
    net = algorithm.build(T)
    generator = torch.Generator().manual_seed(0)
    ctx = RunContext(
        T=T,
        device=torch.device("cpu"),
        epochs=10,
        batch_size=batch,
        eval_batch_size=batch,
        encoding=cls.default_encoding,
        generator=generator,
        encode_fn=encodings.get(cls.default_encoding),
    )
    state = algorithm.configure(net, ctx)
    x = torch.rand(batch, *info.input_shape, generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, info.num_classes, (batch,), generator=torch.Generator().manual_seed(2))
    net.train()
    return lambda: algorithm.train_epoch(net, state, [(x, y)], ctx)


def measure(name: str, shape: str, rounds: int) -> dict:
    """Median step of ``name`` and of BPTT, timed in interleaved rounds in this process."""
    steps = {"bptt": make_step("bptt", shape), name: make_step(name, shape)}
    for step in steps.values():
        step()  # warm-up (kernel build, allocator)
    times: dict[str, list[float]] = {key: [] for key in steps}
    for _ in range(rounds):
        for key, step in steps.items():
            tick = time.perf_counter()
            step()
            times[key].append(time.perf_counter() - tick)
    return {key: statistics.median(values) for key, values in times.items()}


def peak_memory(name: str, shape: str) -> float:
    """Resident-set growth (MiB) of one step of ``name`` alone in this (fresh) process."""
    step = make_step(name, shape)
    base = psutil.Process().memory_info().rss
    with PeakMemory(torch.device("cpu")) as memory:
        step()
    return (memory.peak_bytes - base) / 2**20


def in_subprocess(task: str, name: str, shape: str, rounds: int, limit_gib: float) -> dict:
    """Run ``task`` for one method in a fresh process capped at ``limit_gib`` of address space."""
    code = (
        "import json, resource, sys; sys.path.insert(0, '.');"
        f"resource.setrlimit(resource.RLIMIT_AS, ({int(limit_gib * 2**30)}, resource.RLIM_INFINITY));"
        "from snnbench.environment import reuse_freed_cpu_memory; reuse_freed_cpu_memory();"
        "import benchmarks.method_cost as m;"
        f"r = m.measure({name!r}, {shape!r}, {rounds}) if {task!r} == 'time' else m.peak_memory({name!r}, {shape!r});"
        "print('RESULT', json.dumps(r))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=3600)
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return {"value": json.loads(line[7:])}
    lines = (done.stderr.strip() or f"exit {done.returncode}").splitlines()
    why = lines[-1]
    if "MemoryError" in done.stderr or "DefaultCPUAllocator" in done.stderr:
        why = f"needs more than {limit_gib:g} GiB"
    return {"error": why}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=[*SHAPES, "all"], default="all")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--algorithms", help="comma-separated subset (default: every registered method)")
    parser.add_argument("--memory-limit", type=float, default=8.0, help="GiB of address space per method")
    parser.add_argument("--no-memory", action="store_true", help="skip the per-method memory subprocesses")
    args = parser.parse_args()
    names = args.algorithms.split(",") if args.algorithms else algorithms.names()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {cpu_model()}")
    for shape in SHAPES if args.shape == "all" else [args.shape]:
        notation, info, T, batch = SHAPES[shape]
        rows, skipped = [], {}
        for name in names:
            timed = in_subprocess("time", name, shape, args.rounds, args.memory_limit)
            if "error" in timed:
                skipped[name] = timed["error"]
                continue
            memory = None if args.no_memory else in_subprocess("memory", name, shape, 0, args.memory_limit)
            rows.append((name, timed["value"][name], timed["value"]["bptt"], memory))
        print(f"\n{shape}: {notation} on {info.input_shape}, T = {T}, batch {batch}, median of {args.rounds}")
        print("| method | step (ms) | samples/s | × BPTT (same process) | peak MiB |")
        print("|---|---|---|---|---|")
        for name, step, bptt, memory in sorted(rows, key=lambda row: row[1] / row[2]):
            mib = "–" if not memory or "error" in memory else f"{memory['value']:.0f}"
            print(f"| {name} | {1e3 * step:.1f} | {batch / step:.0f} | {step / bptt:.2f} | {mib} |")
        for name, why in skipped.items():
            print(f"| {name} | n/a: {why[:110]} | | | |")


if __name__ == "__main__":
    main()
