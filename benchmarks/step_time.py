"""Training step time and peak memory: snnbench's LIF kernel vs snnTorch and SpikingJelly vs the ANN floor.

Same networks, same data, same threads, one process for the timings (median of ``--iters`` steps taken in
interleaved rounds, after ``--warmup``); peak memory of each configuration is measured in a fresh subprocess (CPU: resident-set
growth over the model's baseline; CUDA: max allocated). Before timing, the forward spikes and the input
gradients of the three SNN implementations are compared for the same neuron settings
(decay-input LIF, τ = 2, ϑ = 1, hard reset to 0, sigmoid surrogate α = 4).

    python benchmarks/step_time.py                 # all shapes, CPU
    python benchmarks/step_time.py --device cuda   # unchanged on a GPU
    python benchmarks/step_time.py --only mlp --T 4

The floor is the same layers with ReLU and no neuron dynamics, in the faster of two forms measured in the
same run: one batch of T×B rows, or T passes over B rows.

Every implementation runs with the CPU allocator setting that snnbench's runner applies to its workers
(:func:`snnbench.environment.reuse_freed_cpu_memory`: freed buffers stay in the heap instead of being
unmapped and page-faulted back in at every step); ``--system-allocator`` measures glibc's defaults instead.
Likewise subnormal floats are flushed to zero for everyone, as in the runner's workers
(:func:`snnbench.environment.flushed_denormals`); ``--keep-subnormals`` computes them instead.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import torch
from torch import nn

from snnbench.environment import cpu_description, reuse_freed_cpu_memory
from snnbench.neurons.functional import LIFParams, lif_multistep
from snnbench.neurons.layers import LIF, TimeDistributed

TAU, THRESHOLD, ALPHA = 2.0, 1.0, 4.0


# ---- networks: a list of synaptic layers; neurons after every layer but the last ---------------------
def synapses(shape: str, n: int) -> tuple[list[nn.Module], tuple[int, ...], int]:
    """Layers, input shape per sample, batch size."""
    if shape == "mlp":
        return [nn.Linear(784, 512), nn.Linear(512, 512), nn.Linear(512, 10)], (784,), 128
    if shape == "conv":
        layers = [
            nn.Conv2d(3, 64, 3, padding=1),
            nn.Sequential(nn.AvgPool2d(2), nn.Conv2d(64, 128, 3, padding=1)),
            nn.Sequential(nn.AvgPool2d(2), nn.Flatten(), nn.Linear(128 * 8 * 8, 10)),
        ]
        return layers, (3, 32, 32), 32
    return [nn.Linear(n, n)], (n,), 16  # Open Neuromorphic benchmark shape: one Linear + LIF


class Ours(nn.Module):
    def __init__(self, layers: list[nn.Module], spiking_last: bool, detach_reset: bool = False) -> None:
        super().__init__()
        mods: list[nn.Module] = []
        for i, layer in enumerate(layers):
            mods.append(TimeDistributed(layer))
            if i < len(layers) - 1 or spiking_last:
                mods.append(LIF(LIFParams(TAU, THRESHOLD, 0.0, "sigmoid", ALPHA, detach_reset)))
        self.net = nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class SpikingJelly(nn.Module):
    def __init__(self, layers: list[nn.Module], spiking_last: bool) -> None:
        super().__init__()
        from spikingjelly.activation_based import functional, layer, neuron, surrogate

        mods: list[nn.Module] = []
        for i, synapse in enumerate(layers):
            mods.append(layer.SeqToANNContainer(synapse))
            if i < len(layers) - 1 or spiking_last:
                mods.append(
                    neuron.LIFNode(
                        tau=TAU, v_threshold=THRESHOLD, v_reset=0.0, surrogate_function=surrogate.Sigmoid(alpha=ALPHA),
                        step_mode="m",
                    )
                )  # fmt: skip
        self.net = nn.Sequential(*mods)
        self.reset = lambda: functional.reset_net(self.net)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.reset()
        return self.net(x)


class SnnTorch(nn.Module):
    """snn.Leaky with β = 1 − 1/τ on inputs scaled by 1/τ: the decay-input LIF, reset to zero."""

    def __init__(self, layers: list[nn.Module], spiking_last: bool) -> None:
        super().__init__()
        import snntorch as snn
        from snntorch import surrogate

        self.layers = nn.ModuleList(layers)
        count = len(layers) if spiking_last else len(layers) - 1
        grad = surrogate.sigmoid(slope=ALPHA)
        self.neurons = nn.ModuleList(
            snn.Leaky(beta=1 - 1 / TAU, threshold=THRESHOLD, spike_grad=grad, reset_mechanism="zero")
            for _ in range(count)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mems = [neuron.init_leaky() for neuron in self.neurons]
        out = []
        for x_t in x:
            h = x_t
            for i, synapse in enumerate(self.layers):
                h = synapse(h)
                if i < len(self.neurons):
                    h, mems[i] = self.neurons[i](h / TAU, mems[i])
            out.append(h)
        return torch.stack(out)


class Floor(nn.Module):
    """The same layers with ReLU: ``batched`` runs T×B rows at once, else T passes over B rows."""

    def __init__(self, layers: list[nn.Module], batched: bool) -> None:
        super().__init__()
        mods: list[nn.Module] = []
        for i, layer in enumerate(layers):
            mods.append(layer)
            if i < len(layers) - 1:
                mods.append(nn.ReLU())
        self.net, self.batched = nn.Sequential(*mods), batched

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.batched:
            y = self.net(x.flatten(0, 1))
            return y.reshape(x.shape[0], x.shape[1], *y.shape[1:])
        return torch.stack([self.net(x_t) for x_t in x])


IMPLEMENTATIONS: dict[str, Callable[[list[nn.Module], bool], nn.Module]] = {
    "snnbench": Ours,
    "snnbench (detached reset)": lambda layers, last: Ours(layers, last, detach_reset=True),
    "snntorch": SnnTorch,
    "spikingjelly": SpikingJelly,
    "floor (T×B rows)": lambda layers, last: Floor(layers, True),
    "floor (T passes)": lambda layers, last: Floor(layers, False),
}


def build(name: str, shape: str, n: int, seed: int = 0) -> tuple[nn.Module, tuple[int, ...], int]:
    torch.manual_seed(seed)
    layers, in_shape, batch = synapses(shape, n)
    return IMPLEMENTATIONS[name](layers, shape == "on"), in_shape, batch


def loss_of(shape: str, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if shape == "on":
        return out.sum()
    return nn.functional.cross_entropy(out.sum(0), y)  # CE on spike counts / summed outputs


def step_fn(name: str, shape: str, T: int, n: int, device: str):
    net, in_shape, batch = build(name, shape, n)
    net = net.to(device)
    opt = torch.optim.SGD(net.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(1)
    x = (torch.rand(T, batch, *in_shape, generator=g) * 2.0).to(device)
    y = torch.randint(0, 10, (batch,), generator=g).to(device)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss_of(shape, net(x), y).backward()
        opt.step()

    return step


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def median_ms(
    steps: dict[str, Callable[[], None]], device: str, warmup: int, iters: int, rounds: int
) -> dict[str, float]:
    """Median step time of each implementation over ``iters`` steps, taken in ``rounds`` interleaved rounds
    (each round times every implementation in turn), so that a drift of the machine's speed during the
    measurement hits all implementations alike instead of whichever ran at the time."""
    for step in steps.values():
        for _ in range(warmup):
            step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    per_round = max(1, iters // rounds)
    for _ in range(rounds):
        for name, step in steps.items():
            for _ in range(per_round):
                sync(device)
                tick = time.perf_counter()
                step()
                sync(device)
                times[name].append((time.perf_counter() - tick) * 1000)
    return {name: statistics.median(values) for name, values in times.items()}


def peak_memory_mib(name: str, shape: str, T: int, n: int, device: str, tuned_allocator: bool) -> float:
    """Peak memory of three training steps in a fresh process: CUDA max allocated, or CPU resident-set
    growth over the process with the model and data built (sampled every 2 ms)."""
    code = (
        "import sys, json, torch, psutil, threading\n"
        "sys.argv=['x']\n"
        "from snnbench.environment import reuse_freed_cpu_memory\n"
        f"if {tuned_allocator}: reuse_freed_cpu_memory()\n"
        f"import importlib.util; spec=importlib.util.spec_from_file_location('b', {__file__!r}); "
        "b=importlib.util.module_from_spec(spec); spec.loader.exec_module(b)\n"
        f"step=b.step_fn({name!r}, {shape!r}, {T}, {n}, {device!r})\n"
        "p=psutil.Process(); base=p.memory_info().rss; peak=[base]; stop=threading.Event()\n"
        "def s():\n  while not stop.wait(0.002): peak[0]=max(peak[0], p.memory_info().rss)\n"
        "t=threading.Thread(target=s); t.start()\n"
        f"if {device!r}.startswith('cuda'): torch.cuda.reset_peak_memory_stats()\n"
        "[step() for _ in range(3)]; stop.set(); t.join()\n"
        f"m=torch.cuda.max_memory_allocated() if {device!r}.startswith('cuda') else peak[0]-base\n"
        "print(json.dumps(m/2**20))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def kernel_throughput(T: int, n: int, batch: int, device: str, reps: int = 11) -> dict[str, float]:
    """The LIF layer alone, forward + backward with a dense ∂L/∂s, on ``[T, batch, n]``, against a plain
    copy between two buffers of the same size measured in the same loop (interleaved, medians).

    Memory traffic per neuron-step: forward reads x and writes s and h, backward reads h and ∂L/∂s and writes
    ∂L/∂x (over h): 6 × 4 bytes in float32. A copy moves 2 × 4 bytes per element, so the fraction of the
    copy bandwidth the kernel reaches is ``3 · t_copy / t_kernel`` (the forward of tensors this size writes
    with streaming stores, which skip the read for ownership that a cached store adds; the 24 bytes stay the
    yardstick)."""
    g = torch.Generator().manual_seed(3)
    x = (torch.randn(T, batch, n, generator=g) * 1.5 + 0.8).to(device)
    grad = torch.randn(T, batch, n, generator=g).to(device)
    src, dst = torch.randn(T, batch, n, generator=g).to(device), torch.empty(T, batch, n, device=device)
    params = LIFParams(TAU, THRESHOLD, 0.0, "sigmoid", ALPHA)

    def kernel() -> None:
        lif_multistep(x.detach().requires_grad_(), params).backward(grad)

    def copy() -> None:
        dst.copy_(src)

    times: dict[str, list[float]] = {"kernel": [], "copy": []}
    kernel(), copy()  # warm-up
    for _ in range(reps):
        for name, fn in (("kernel", kernel), ("copy", copy)):
            sync(device)
            tick = time.perf_counter()
            fn()
            sync(device)
            times[name].append(time.perf_counter() - tick)
    t_kernel, t_copy = statistics.median(times["kernel"]), statistics.median(times["copy"])
    steps = x.numel()
    return {
        "kernel_ms": t_kernel * 1000,
        "neuron_steps_per_s": steps / t_kernel,
        "kernel_gb_s": 24 * steps / t_kernel / 1e9,
        "copy_gb_s": 8 * steps / t_copy / 1e9,
        "fraction_of_copy": 3 * t_copy / t_kernel,
    }


def check_agreement(shape: str, T: int, n: int, device: str) -> str:
    """Forward outputs and input gradients of the three SNNs on one batch."""
    results = {}
    for name in ("snnbench", "snnbench (detached reset)", "snntorch", "spikingjelly"):
        net, in_shape, batch = build(name, shape, n)
        net = net.to(device)  # float32: snnTorch's spikes are float32 whatever the input dtype
        g = torch.Generator().manual_seed(2)
        x = (torch.rand(T, min(batch, 8), *in_shape, generator=g) * 2.0).to(device)
        x.requires_grad_(True)
        out = net(x)
        out.pow(2).sum().backward()
        results[name] = (out.detach(), x.grad.detach())
    lines = []
    # snnTorch's reset is computed from the previous membrane without gradient: our detach_reset variant
    for name, ours in (("snntorch", "snnbench (detached reset)"), ("spikingjelly", "snnbench")):
        ref_out, ref_grad = results[ours]
        out, grad = results[name]
        same = torch.equal(out, ref_out)
        err = (grad - ref_grad).abs().max().item() / max(ref_grad.abs().max().item(), 1e-30)
        lines.append(
            f"{name} vs {ours}: outputs {'equal' if same else 'DIFFER'}, input-gradient rel. diff {err:.1e}"
        )
    return "; ".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--only", choices=["mlp", "conv", "on"], action="append")
    parser.add_argument("--T", type=int, action="append")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--iters", type=int, default=15, help="timed steps per implementation")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds the steps are split into")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument(
        "--system-allocator", action="store_true", help="glibc's default mmap/trim thresholds for everyone"
    )
    parser.add_argument(
        "--keep-subnormals",
        action="store_true",
        help="subnormal floats computed as such for everyone, instead of flushed to zero as in snnbench's "
        "runner workers: shows what the CPU's subnormal arithmetic costs, e.g. in the 'on' shape, whose "
        "layer is silent after one SGD step",
    )
    args = parser.parse_args()
    tuned = not args.system_allocator and reuse_freed_cpu_memory()
    flushed = not args.keep_subnormals and torch.set_flush_denormal(True)  # before torch's threads start
    grid = [
        ("mlp", 4, 0),
        ("mlp", 16, 0),
        ("conv", 4, 0),
        ("conv", 16, 0),
        ("on", 100, 1024),
        ("on", 500, 1024),
    ]
    grid = [g for g in grid if (not args.only or g[0] in args.only) and (not args.T or g[1] in args.T)]
    print(
        f"{cpu_description()}; torch {torch.__version__}, threads {torch.get_num_threads()}, "
        f"device {args.device}, "
        f"allocator {'snnbench runner setting' if tuned else 'system default'}"
        + (", subnormals flushed to zero" if flushed else "")
    )
    rows = []
    for shape, T, n in grid:
        print(f"\n## {shape} T={T}" + (f" n={n}" if n else ""))
        print("agreement: " + check_agreement(shape, T, n if n else 0, args.device))
        steps = {name: step_fn(name, shape, T, n, args.device) for name in IMPLEMENTATIONS}
        times = median_ms(steps, args.device, args.warmup, args.iters, args.rounds)
        del steps
        floor = min(times["floor (T×B rows)"], times["floor (T passes)"])
        fastest_peer = min(times["snntorch"], times["spikingjelly"])
        print("| implementation | step ms | × floor | × fastest peer | peak MiB |\n|---|---|---|---|---|")
        for name, ms in times.items():
            memory = "" if args.no_memory else f"{peak_memory_mib(name, shape, T, n, args.device, tuned):.0f}"
            print(f"| {name} | {ms:.1f} | {ms / floor:.2f} | {ms / fastest_peer:.2f} | {memory} |")
            rows.append(
                {"shape": shape, "T": T, "impl": name, "ms": ms, "x_floor": ms / floor, "peak_mib": memory}
            )
        if shape == "on":
            k = kernel_throughput(T, n, 16, args.device)
            print(
                f"LIF kernel alone on [{T}, 16, {n}] (forward + backward, dense ∂L/∂s): "
                f"{k['kernel_ms']:.1f} ms, {k['neuron_steps_per_s'] / 1e9:.2f} G neuron-steps/s, "
                f"{k['kernel_gb_s']:.1f} GB/s at 24 B per neuron-step = {100 * k['fraction_of_copy']:.0f} % "
                f"of this run's copy bandwidth ({k['copy_gb_s']:.1f} GB/s, a tensor copy of the same size)"
            )
            rows.append({"shape": shape, "T": T, "impl": "LIF kernel alone", **k})
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=1)


if __name__ == "__main__":
    main()
