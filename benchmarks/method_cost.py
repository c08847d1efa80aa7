"""Per-method cost: one training step of every registered method on the same network and T as BPTT.

Each method builds the same layer list (its own neurons and rule), takes the same random batch in its own
encoding, and runs one step through its public contract (``train_epoch`` over one batch: forward, its own
gradient or update rule, optimiser step). Steps are timed in interleaved rounds (median over rounds, after
a warm-up step), so that a drifting machine shifts every method alike; the ratio to BPTT is the figure to
read. Peak memory is the resident-set growth of one step, measured in a fresh subprocess per method.

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

import torch

from snnbench.algorithms import RunContext, algorithms
from snnbench.architectures import resolve_architecture
from snnbench.data import DatasetInfo
from snnbench.data.encoding import encodings
from snnbench.environment import reuse_freed_cpu_memory

SHAPES = {
    "mlp": ("256", DatasetInfo("digits", (1, 8, 8), 10), 4, 64),
    "vgg11": (
        "64C3-128C3-P2-256C3-256C3-P2-512C3-512C3-P2-512C3-512C3-P2",
        DatasetInfo("cifar10", (3, 32, 32), 10, mean=(0.49, 0.48, 0.45), std=(0.25, 0.24, 0.26)),
        6,
        16,
    ),
}


def make_step(name: str, shape: str):
    """A closure running one training step of method ``name`` on ``shape`` (or raising why it cannot)."""
    notation, info, T, batch = SHAPES[shape]
    cls = algorithms.get(name)
    torch.manual_seed(0)
    algorithm = cls(cls.Config(), resolve_architecture(notation), info)
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


def peak_memory(name: str, shape: str) -> float | None:
    """Resident-set growth (MiB) of one step, measured in a fresh process."""
    code = (
        "import psutil, sys, json; sys.argv=['x']; from benchmarks.method_cost import make_step;"
        f"from snnbench.metrics import PeakMemory; import torch; step = make_step({name!r}, {shape!r}); "
        "base = psutil.Process().memory_info().rss\n"
        "with PeakMemory(torch.device('cpu')) as m: step()\n"
        "print(json.dumps((m.peak_bytes - base) / 2**20))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900)
    return json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=[*SHAPES, "all"], default="all")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-memory", action="store_true", help="skip the per-method memory subprocesses")
    args = parser.parse_args()
    reuse_freed_cpu_memory()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for shape in SHAPES if args.shape == "all" else [args.shape]:
        notation, info, T, batch = SHAPES[shape]
        steps, skipped = {}, {}
        for name in algorithms.names():
            try:
                steps[name] = make_step(name, shape)
                steps[name]()  # warm-up (kernel build, allocator)
            except Exception as exc:  # noqa: BLE001 - report why a method cannot run this shape
                skipped[name] = f"{type(exc).__name__}: {exc}"
                steps.pop(name, None)
        times: dict[str, list[float]] = {name: [] for name in steps}
        for _ in range(args.rounds):
            for name, step in steps.items():
                tick = time.perf_counter()
                step()
                times[name].append(time.perf_counter() - tick)
        base = statistics.median(times["bptt"])
        print(f"\n{shape}: {notation} on {info.input_shape}, T = {T}, batch {batch}, median of {args.rounds}")
        print("| method | step (ms) | samples/s | × BPTT | peak MiB |")
        print("|---|---|---|---|---|")
        for name in sorted(steps, key=lambda n: statistics.median(times[n])):
            median = statistics.median(times[name])
            memory = None if args.no_memory else peak_memory(name, shape)
            mib = "–" if memory is None else f"{memory:.0f}"
            print(f"| {name} | {1e3 * median:.1f} | {batch / median:.0f} | {median / base:.2f} | {mib} |")
        for name, why in skipped.items():
            print(f"| {name} | n/a: {why[:100]} | | | |")


if __name__ == "__main__":
    main()
