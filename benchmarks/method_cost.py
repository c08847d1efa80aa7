"""Per-method cost: one training step of every registered method on the same network and T as BPTT.

Each method builds the same layer list (its own neurons and rule), takes the same random batch in its own
encoding, and runs one step through its public contract (``train_epoch`` over one batch: forward, its own
gradient or update rule, optimiser step). Steps are timed in interleaved rounds (median over rounds, after
a warm-up step), so that a drifting machine shifts every method alike; the ratio to BPTT is the figure to
read. Each method runs in its own subprocess, timed in rounds interleaved with a BPTT step built in the same
process (so a drifting machine shifts both alike), under an address-space cap (``--memory-limit``): a
method that needs more is reported as such instead of taking the machine down. Peak memory is the
resident-set growth of one step, measured in a further fresh subprocess per method.

The operation columns explain a ratio: one further step of each is run under :class:`OperationCost`, which
counts every operation the step dispatches (and every native kernel call) with its FLOPs and bytes and
times each on its own. "own time × BPTT's" is the work ratio the method's algorithm asks for on this shape;
"step ÷ own time" is how much of the step is something other than its operations (Python, autograd
bookkeeping, allocation): near 1 when the step is its operations.

    python benchmarks/method_cost.py                    # both shapes
    python benchmarks/method_cost.py --shape mlp --rounds 7
    python benchmarks/method_cost.py --device cuda      # on a GPU (the memory cap via the CUDA allocator)

Shapes: ``mlp`` — the digits MLP (64-256-10 on 1×8×8 inputs, T = 4, batch 64); ``vgg11`` — a CIFAR-shaped
VGG-11 (3×32×32, 10 classes, ``64C3-128C3-P2-256C3-256C3-P2-512C3-512C3-P2-512C3-512C3-P2``, T = 6,
batch 16; every method pools with its own pooling). A method that cannot build a shape says why.

On CUDA every step is synchronised before its clock is read, each operation's own time too; peak memory is
the CUDA allocator's peak above what it held before one more step, exact, so taken in the timing process;
the cap is a share of the device's memory (an address-space cap would stop CUDA from starting).
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
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_map
from torch.utils.flop_counter import flop_registry

from snnbench import kernels
from snnbench.algorithms import RunContext, algorithms
from snnbench.architectures import resolve_architecture
from snnbench.data import DatasetInfo
from snnbench.data.encoding import encodings
from snnbench.environment import cpu_description
from snnbench.metrics import PeakMemory
from snnbench.neurons.functional import native_kernels

CPU = torch.device("cpu")
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


def make_step(name: str, shape: str, device: str = "cpu"):
    """A closure running one training step of method ``name`` on ``shape`` (or raising why it cannot),
    returning once the device has finished it."""
    return training_step(name, *SHAPES[shape], device=torch.device(device))


def synchronize(device: torch.device) -> None:
    """Wait for the work queued on ``device`` (CUDA runs asynchronously; a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def training_step(
    name: str, notation: str, info: DatasetInfo, T: int, batch: int, device: torch.device = CPU
):
    """A closure running one training step of method ``name`` (its defaults, its encoding) on the network
    ``notation`` for a random batch of ``info``'s shape, on ``device`` as the runner places a run (the
    network built, then moved; random draws from a CPU generator)."""
    cls = algorithms.get(name)
    torch.manual_seed(0)
    algorithm = cls(cls.Config(**SETTINGS.get(name, {})), resolve_architecture(notation), info)
    net = algorithm.build(T).to(device)
    generator = torch.Generator().manual_seed(0)
    ctx = RunContext(
        T=T,
        device=device,
        epochs=10,
        batch_size=batch,
        eval_batch_size=batch,
        encoding=cls.default_encoding,
        generator=generator,
        encode_fn=encodings.get(cls.default_encoding),
    )
    state = algorithm.configure(net, ctx)
    x = torch.rand(batch, *info.input_shape, generator=torch.Generator().manual_seed(1)).to(device)
    y = torch.randint(0, info.num_classes, (batch,), generator=torch.Generator().manual_seed(2)).to(device)
    net.train()

    def step() -> None:
        algorithm.train_epoch(net, state, [(x, y)], ctx)
        synchronize(device)

    return step


class OperationCost(TorchDispatchMode):
    """Counts the operations of a step and what they cost on their own.

    Every ATen operation the step dispatches (forward, autograd's backward, the optimiser) and every call of
    a native kernel (the fused LIF, ST-RSBP and STDBP loops, which bypass the dispatcher) is counted with its
    GEMM/convolution FLOPs, the bytes of the tensors it reads and writes (0 for views), and its own time:
    the operation re-run alone on the same inputs (mutated inputs cloned first), the quicker of ``repeats``
    runs. The sum of those times is the cost of the step's operations without the Python, autograd
    bookkeeping and allocation between them; the inputs of a re-run are warm in cache, so the sum is a
    lower bound on the memory-bound operations' cost in the step itself."""

    NATIVE = (
        (native_kernels, ("lif_forward", "lif_backward")),
        (
            lambda: kernels.native_for("spike_trains", torch.zeros(1)),
            ("integrate", "presynaptic_traces", "postsynaptic_kernel"),
        ),
        (
            lambda: kernels.native_for("spike_times", torch.zeros(1)),
            ("spike_times_forward", "spike_times_backward"),
        ),
    )

    def __init__(self, repeats: int = 2, device: torch.device = CPU) -> None:
        super().__init__()
        self.device = device
        self.repeats, self.ops, self.flops, self.bytes, self.seconds = repeats, 0, 0, 0, 0.0
        self.native_calls = 0
        self._inside_native = False
        self._restore: list[tuple[object, str, object]] = []

    def __enter__(self):
        for module_of, names in self.NATIVE:
            module = module_of()
            for name in names if module is not None else ():
                original = getattr(module, name)
                self._restore.append((module, name, original))
                setattr(module, name, self._timed_native(original))
        return super().__enter__()

    def __exit__(self, *exc):
        for module, name, original in self._restore:
            setattr(module, name, original)
        self._restore.clear()
        return super().__exit__(*exc)

    def _timed_native(self, kernel):
        def call(*args, **kwargs):
            self._inside_native = True  # the ATen calls it makes are part of its own time
            try:
                best, out = self._own_time(kernel, args, kwargs, mutates=False)
            finally:
                self._inside_native = False
            self.native_calls += 1
            self._count(best, args, kwargs, out, flops=0)
            return out

        return call

    def _own_time(self, func, args, kwargs, mutates: bool):
        out = func(*args, **kwargs)
        best = float("inf")
        for _ in range(self.repeats):
            clone = (lambda t: t.clone() if isinstance(t, torch.Tensor) else t) if mutates else (lambda t: t)
            again_args, again_kwargs = tree_map(clone, args), tree_map(clone, kwargs)
            synchronize(self.device)
            tick = time.perf_counter()
            func(*again_args, **again_kwargs)
            synchronize(self.device)
            best = min(best, time.perf_counter() - tick)
        return best, out

    def _count(self, seconds: float, args, kwargs, out, flops: int, view: bool = False) -> None:
        tensors = [t for t in tree_flatten((args, kwargs, out))[0] if isinstance(t, torch.Tensor)]
        self.ops += 1
        self.flops += flops
        self.bytes += 0 if view else sum(t.numel() * t.element_size() for t in tensors)
        self.seconds += seconds

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self._inside_native:
            return func(*args, **kwargs)
        best, out = self._own_time(func, args, kwargs, mutates=func._schema.is_mutable)
        packet = func.overloadpacket
        flops = flop_registry[packet](*args, **kwargs, out_val=out) if packet in flop_registry else 0
        self._count(best, args, kwargs, out, int(flops), view=func.is_view)
        return out


def measure(name: str, shape: str, rounds: int, device: str = "cpu") -> dict:
    """Median step of ``name`` and of BPTT, timed in interleaved rounds in this process, and their operation
    counts and own cost (:class:`OperationCost`)."""
    steps = {"bptt": make_step("bptt", shape, device), name: make_step(name, shape, device)}
    for step in steps.values():
        step()  # warm-up (kernel build, allocator)
    times: dict[str, list[float]] = {key: [] for key in steps}
    for _ in range(rounds):
        for key, step in steps.items():
            tick = time.perf_counter()
            step()
            times[key].append(time.perf_counter() - tick)
    result = {key: {"step_s": statistics.median(values)} for key, values in times.items()}
    for key, step in steps.items():
        with OperationCost(device=torch.device(device)) as cost:
            step()
        result[key].update(ops=cost.ops, gflop=cost.flops / 1e9, mbytes=cost.bytes / 1e6, own_s=cost.seconds)
    if device.startswith("cuda"):
        result[name]["peak_mib"] = step_growth(steps[name], torch.device(device))
    return result


def peak_memory(name: str, shape: str, device: str = "cpu") -> float:
    """Growth (MiB) of one step of ``name`` alone in this (fresh) process (:func:`step_growth`)."""
    return step_growth(make_step(name, shape, device), torch.device(device))


def step_growth(step, where: torch.device) -> float:
    """MiB one call of ``step`` adds at its peak: to the resident set on the CPU (so measured in a fresh
    process, whose heap holds nothing yet), to what the CUDA allocator had allocated before it on a GPU
    (exact, so measured after the timing, in the same process)."""
    base = torch.cuda.memory_allocated(where) if where.type == "cuda" else psutil.Process().memory_info().rss
    with PeakMemory(where) as memory:
        step()
    return (memory.peak_bytes - base) / 2**20


def memory_cap(device: str, limit_gib: float) -> str:
    """Code capping the subprocess at ``limit_gib``: its address space on the CPU, the CUDA allocator's
    share of the device's memory on a GPU (CUDA reserves far more address space than it uses)."""
    if device.startswith("cuda"):
        return (
            "import torch; total = torch.cuda.get_device_properties(0).total_memory;"
            f"torch.cuda.set_per_process_memory_fraction(min(1.0, {limit_gib * 2**30} / total));"
        )
    cap = int(limit_gib * 2**30)
    return f"import resource; resource.setrlimit(resource.RLIMIT_AS, ({cap}, resource.RLIM_INFINITY));"


def in_subprocess(
    task: str, name: str, shape: str, rounds: int, limit_gib: float, device: str = "cpu"
) -> dict:
    """Run ``task`` for one method in a fresh process capped at ``limit_gib`` (:func:`memory_cap`)."""
    code = (
        "import json, sys; sys.path.insert(0, '.');"
        + memory_cap(device, limit_gib)
        + "from snnbench.environment import reuse_freed_cpu_memory; reuse_freed_cpu_memory();"
        "import benchmarks.method_cost as m;"
        f"r = m.measure({name!r}, {shape!r}, {rounds}, {device!r}) if {task!r} == 'time' "
        f"else m.peak_memory({name!r}, {shape!r}, {device!r});"
        "print('RESULT', json.dumps(r))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=3600)
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return {"value": json.loads(line[7:])}
    lines = (done.stderr.strip() or f"exit {done.returncode}").splitlines()
    why = lines[-1]
    if any(sign in done.stderr for sign in ("MemoryError", "DefaultCPUAllocator", "CUDA out of memory")):
        why = f"needs more than {limit_gib:g} GiB"
    return {"error": why}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=[*SHAPES, "all"], default="all")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--algorithms", help="comma-separated subset (default: every registered method)")
    parser.add_argument("--memory-limit", type=float, default=8.0, help="GiB of address space per method")
    parser.add_argument("--no-memory", action="store_true", help="skip the per-method memory subprocesses")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda[:N]")
    args = parser.parse_args()
    names = args.algorithms.split(",") if args.algorithms else algorithms.names()
    where = f"{torch.get_num_threads()} threads, {cpu_description()}"
    if args.device.startswith("cuda"):
        gpu = torch.cuda.get_device_name(torch.device(args.device))
        where = f"{gpu} (CUDA {torch.version.cuda}); {where}"
    print(f"torch {torch.__version__}, {where}")
    for shape in SHAPES if args.shape == "all" else [args.shape]:
        notation, info, T, batch = SHAPES[shape]
        rows, skipped = [], {}
        for name in names:
            timed = in_subprocess("time", name, shape, args.rounds, args.memory_limit, args.device)
            if "error" in timed:
                skipped[name] = timed["error"]
                print(f"{shape}: {name}: n/a: {timed['error']}", file=sys.stderr, flush=True)
                continue
            if args.no_memory:
                memory = None
            elif args.device.startswith("cuda"):  # the allocator's peak, measured after the timing
                memory = {"value": timed["value"][name]["peak_mib"]}
            else:
                memory = in_subprocess("memory", name, shape, 0, args.memory_limit, args.device)
            value = timed["value"]
            row = table_row(name, value, memory, batch)
            rows.append((value[name]["step_s"] / value["bptt"]["step_s"], row))
            print(f"{shape}: {row}", file=sys.stderr, flush=True)  # kept if a time limit stops the run
        print(f"\n{shape}: {notation} on {info.input_shape}, T = {T}, batch {batch}, median of {args.rounds}")
        print(
            "| method | step (ms) | samples/s | × BPTT | peak MiB | operations | GFLOP | MB moved "
            "| operations' own time (ms) | own time × BPTT's | step ÷ own time |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for _, row in sorted(rows):
            print(row)
        for name, why in skipped.items():
            print(f"| {name} | n/a: {why[:110]} | | | | | | | | | |")


def table_row(name: str, value: dict, memory: dict | None, batch: int) -> str:
    """One method's row of the table from its and BPTT's measurements (:func:`measure`)."""
    ours, bptt = value[name], value["bptt"]
    mib = "–" if not memory or "error" in memory else f"{memory['value']:.0f}"
    return (
        f"| {name} | {1e3 * ours['step_s']:.1f} | {batch / ours['step_s']:.0f} "
        f"| {ours['step_s'] / bptt['step_s']:.2f} | {mib} | {ours['ops']:,} | {ours['gflop']:.3f} "
        f"| {ours['mbytes']:,.0f} | {1e3 * ours['own_s']:.2f} | {ours['own_s'] / bptt['own_s']:.2f} "
        f"| {ours['step_s'] / ours['own_s']:.2f} |"
    )


if __name__ == "__main__":
    main()
