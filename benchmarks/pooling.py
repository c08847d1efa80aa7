"""Average pooling: the native loops (snnbench/pooling.py) against torch's ``avg_pool2d`` on the maps our
networks pool, and what that does to a whole BPTT training step.

Part 1, per map: forward and input gradient of a 2×2 average pool, torch's operator and ours, timed in
interleaved rounds (median), with the floor of the same memory traffic measured in the same run: a read of
the input (``sum``) and a write of the output (``fill_`` of a buffer allocated beforehand; an operator also
allocates its output, and on large maps the first touch of that new memory is part of its time, not of the
floor's). Part 2,
per network: one BPTT training step (forward, backward, optimiser) with the native pooling and with torch's,
interleaved, and the ratio. Outputs are bit-identical (tests/test_pooling.py), so only time differs.

    python benchmarks/pooling.py                  # all shapes, 2 threads
    python benchmarks/pooling.py --threads 1 --rounds 21 --network-rounds 3
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from method_cost import training_step  # benchmarks/ is the script's directory

from snnbench import kernels
from snnbench.data import DatasetInfo
from snnbench.environment import cpu_description

# [T·B, C, H, W] inputs of the 2×2 pools: the digits conv net (16C3-AP2-32C3-AP2-128, T = 8, batch 64) and
# a CIFAR VGG-11 (64C3-128C3-P2-256C3-256C3-P2-512C3-512C3-P2-512C3-512C3-P2, T = 6, batch 16)
MAPS = {
    "digits convnet, AP2 1": (512, 16, 8, 8),
    "digits convnet, AP2 2": (512, 32, 4, 4),
    "VGG-11, pool 1": (96, 128, 32, 32),
    "VGG-11, pool 2": (96, 256, 16, 16),
    "VGG-11, pool 3": (96, 512, 8, 8),
    "VGG-11, pool 4": (96, 512, 4, 4),
}
NETWORKS = {
    "digits convnet (T = 8, batch 64)": (
        "16C3-AP2-32C3-AP2-128",
        DatasetInfo("digits", (1, 8, 8), 10),
        8,
        64,
    ),
    "VGG-11, AP2 (T = 6, batch 16)": (
        "64C3-128C3-AP2-256C3-256C3-AP2-512C3-512C3-AP2-512C3-512C3-AP2",
        DatasetInfo("cifar10", (3, 32, 32), 10),
        6,
        16,
    ),
}


def interleaved(functions: dict[str, object], rounds: int) -> dict[str, float]:
    """Median milliseconds of each callable, timed in turn in every round (after one warm-up call each)."""
    times: dict[str, list[float]] = {name: [] for name in functions}
    for f in functions.values():
        f()  # type: ignore[operator]
    for _ in range(rounds):
        for name, f in functions.items():
            tick = time.perf_counter()
            f()  # type: ignore[operator]
            times[name].append(1e3 * (time.perf_counter() - tick))
    return {name: statistics.median(values) for name, values in times.items()}


def map_times(native, shape: tuple[int, int, int, int], rounds: int) -> dict[str, float]:
    """Median ms of each pooling pass and of its floor on a spike map of ``shape``."""
    x = (torch.rand(shape) < 0.2).float()
    out = F.avg_pool2d(x, 2)
    grad = torch.randn_like(out)
    big, small = torch.empty_like(x), torch.empty_like(out)
    h, w = shape[2:]
    return interleaved(
        {
            "torch fwd": lambda: F.avg_pool2d(x, 2),
            "torch bwd": lambda: torch.ops.aten.avg_pool2d_backward(
                grad, x, [2, 2], [2, 2], [0, 0], False, True, None
            ),
            "ours fwd": lambda: native.avg_pool_forward(x, 2),
            "ours bwd": lambda: native.avg_pool_backward(grad, 2, h, w),
            "floor fwd": lambda: (x.sum(), small.fill_(0.0)),
            "floor bwd": lambda: (grad.sum(), big.fill_(0.0)),
        },
        rounds,
    )


def per_map(rounds: int) -> None:
    native = kernels.native_for("pooling", torch.zeros(1))
    assert native is not None, "the native pooling loops did not build"
    print(
        "| map [T·B, C, H, W] | torch fwd / bwd ms | ours fwd / bwd ms | × faster fwd / bwd "
        "| floor fwd / bwd ms |"
    )
    print("|---|---|---|---|---|")
    for name, shape in MAPS.items():
        ms = map_times(native, shape, rounds)
        print(
            f"| {name} {list(shape)} | {ms['torch fwd']:.2f} / {ms['torch bwd']:.2f} | "
            f"{ms['ours fwd']:.2f} / {ms['ours bwd']:.2f} | {ms['torch fwd'] / ms['ours fwd']:.1f} / "
            f"{ms['torch bwd'] / ms['ours bwd']:.1f} | {ms['floor fwd']:.2f} / {ms['floor bwd']:.2f} |"
        )


def per_network(rounds: int) -> None:
    original = kernels.native_for

    def without_pooling(stem: str, x: torch.Tensor):
        return None if stem == "pooling" else original(stem, x)

    def switched(step, use_native: bool):
        def run() -> None:
            kernels.native_for = original if use_native else without_pooling  # type: ignore[assignment]
            try:
                step()
            finally:
                kernels.native_for = original  # type: ignore[assignment]

        return run

    print("\n| BPTT step | torch pooling ms | native pooling ms | × faster |")
    print("|---|---|---|---|")
    for name, network in NETWORKS.items():
        step = training_step("bptt", *network)
        ms = interleaved({"torch": switched(step, False), "native": switched(step, True)}, rounds)
        print(f"| {name} | {ms['torch']:.1f} | {ms['native']:.1f} | {ms['torch'] / ms['native']:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=11, help="rounds per map")
    parser.add_argument("--network-rounds", type=int, default=5, help="rounds per network step")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{cpu_description()}, {args.threads} threads, torch {torch.__version__}\n")
    per_map(args.rounds)
    per_network(args.network_rounds)


if __name__ == "__main__":
    main()
