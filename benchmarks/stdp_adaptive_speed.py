"""stdp-adaptive: the training steps of the current code against those of main's revision, in one process.

The old implementation is main's ``snnbench/algorithms/stdp_adaptive.py`` (``git show REV:...``, loaded as a
module of its own, its registration removed); the new one is this checkout's. Both run the same network
(official ``12C3-MP2-6400`` from one seed), the same images (the first ``--batch`` Fashion-MNIST training
images from the system's dataset-fashion-mnist package, else random images) and the same seeded generator,
with the runner's CPU settings (freed buffers reused, subnormals flushed, one thread). Reported per step:

- conv step: one batch of the conv phase (T = ``--conv-T``): conv spike counts, eq.-(6)-(8) update;
- fc step: one batch of the fc phase (T = ``--fc-T``): conv spike counts, fc forward and spike counts,
  eqs. (9)-(11);

and each layer's simulation alone; printed as CPU seconds per time step of each layer, the rest of a batch
(updates, matmuls, conv forward) and a batch projected at the official T (100 conv, 200 fc), old / new
ratio, best of ``--repeats`` rounds, old and new interleaved. The outputs are compared: spike counts
equal, weights and thresholds equal (max abs difference printed). An epoch costs per-batch × batches.

    python benchmarks/stdp_adaptive_speed.py                       # batch 1024, T 10/10 for both
    python benchmarks/stdp_adaptive_speed.py --conv-T 100 --fc-T 200 --repeats 1   # the official T (slow)
"""

from __future__ import annotations

import argparse
import copy
import gzip
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from snnbench.algorithms import RunContext
from snnbench.algorithms import stdp_adaptive as new
from snnbench.architectures import resolve_architecture
from snnbench.data import DatasetInfo
from snnbench.data.encoding import direct
from snnbench.environment import flushed_denormals, reuse_freed_cpu_memory

ROOT = Path(__file__).resolve().parent.parent
FMNIST = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")


def old_module(revision: str):
    """main's stdp_adaptive.py as a module ``stdp_adaptive_old`` (its registry decorator removed)."""
    source = subprocess.run(
        ["git", "show", f"{revision}:snnbench/algorithms/stdp_adaptive.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    source = source.replace('@algorithms.register("stdp-adaptive")\n', "")
    folder = Path(tempfile.mkdtemp(prefix="stdp-adaptive-old-"))
    path = folder / "stdp_adaptive_old.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("stdp_adaptive_old", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["stdp_adaptive_old"] = module
    spec.loader.exec_module(module)
    return module


def images(batch: int) -> tuple[torch.Tensor, str]:
    if FMNIST.exists():
        with gzip.open(FMNIST, "rb") as f:
            raw = np.frombuffer(f.read(), dtype=np.uint8, offset=16).reshape(-1, 1, 28, 28)
        return torch.from_numpy(raw[:batch].astype(np.float32) / 255.0), "Fashion-MNIST training images"
    torch.manual_seed(1)
    return torch.rand(batch, 1, 28, 28) ** 3, "random images (no Fashion-MNIST found)"


def setup(module, seed: int = 0):
    cfg = module.StdpAdaptiveConfig()
    algorithm = module.StdpAdaptive(
        cfg, resolve_architecture("stdp-adaptive-mnist"), DatasetInfo("fmnist", (1, 28, 28), 10)
    )
    torch.manual_seed(seed)
    return algorithm, algorithm.build(200)


def context(T: int, seed: int) -> RunContext:
    return RunContext(T, torch.device("cpu"), 5, 8, 8, "direct", torch.Generator().manual_seed(seed), direct)


def conv_step(module, algorithm, net, x, T, seed):
    """One conv-phase batch as ``conv_epoch`` runs it; returns (counts, new weight)."""
    cfg = algorithm.config.model_copy(update={"conv_timesteps": T})
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        counts = net.conv_counts(x, T, g)
    step = module.conv_update(x, net.conv.weight, counts, net.conv.padding[0], cfg)
    with torch.no_grad():
        net.conv.weight.copy_(module.standardise(net.conv.weight + cfg.conv_lr * step))
    return counts, net.conv.weight.clone()


def fc_step(algorithm, net, x, T, seed):
    """One fc-phase batch (``fc_step``); returns (fc counts, fc weight, thresholds)."""
    with torch.no_grad():
        _, _, counts = algorithm.fc_step(net, x, context(T, seed))
    return counts, net.fc.weight.clone(), net.fc_neurons.theta.clone()


def timed(fn, *args) -> tuple[float, object]:
    start = time.process_time()
    out = fn(*args)
    return time.process_time() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--revision", default="main", help="git revision of the old implementation")
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--conv-T", type=int, default=10)
    parser.add_argument("--fc-T", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--official-conv-T", type=int, default=100, help="T of the projected conv batch")
    parser.add_argument("--official-fc-T", type=int, default=200, help="T of the projected fc batch")
    args = parser.parse_args()
    torch.set_num_threads(1)
    reuse_freed_cpu_memory()
    old = old_module(args.revision)
    x, what = images(args.batch)
    print(
        f"batch {args.batch} of {what}; conv T = {args.conv_T}, fc T = {args.fc_T}; torch {torch.__version__}"
    )
    with flushed_denormals():
        nets = {name: setup(module) for name, module in (("old", old), ("new", new))}
        assert torch.equal(nets["old"][1].conv.weight, nets["new"][1].conv.weight)
        # the fc phase starts from a conv layer trained one batch, and its first batch sets θ
        fc_nets = {}
        for name, module in (("old", old), ("new", new)):
            algorithm, net = nets[name]
            conv_step(module, algorithm, net, x, args.conv_T, 0)
            fc_nets[name] = (algorithm, copy.deepcopy(net))
            fc_step(algorithm, fc_nets[name][1], x, args.fc_T, 0)
        best: dict[tuple[str, str], float] = {}
        outputs: dict[tuple[str, str], object] = {}

        def keep(name: str, kind: str, seconds: float) -> None:
            best[name, kind] = min(best.get((name, kind), float("inf")), seconds)

        for _ in range(args.repeats):
            for name, module in (("old", old), ("new", new)):
                algorithm, net = nets[name]
                with torch.no_grad():  # the simulations alone: conv at conv T, fc at fc T
                    keep(name, "conv-sim", timed(net.conv_counts, x, args.conv_T, torch.Generator())[0])
                    fnet = fc_nets[name][1]
                    current = fnet.fc(fnet.features(fnet.conv_counts(x, args.fc_T, torch.Generator())))
                    keep(
                        name,
                        "fc-sim",
                        timed(fnet.fc_neurons, current, args.fc_T, torch.Generator())[0],
                    )
                trial = copy.deepcopy(net)
                seconds, outputs[name, "conv"] = timed(conv_step, module, algorithm, trial, x, args.conv_T, 1)
                keep(name, "conv", seconds)
                algorithm, net = fc_nets[name]
                trial = copy.deepcopy(net)
                seconds, outputs[name, "fc"] = timed(fc_step, algorithm, trial, x, args.fc_T, 1)
                keep(name, "fc", seconds)
    counts_o, w_o = outputs["old", "conv"]
    counts_n, w_n = outputs["new", "conv"]
    print(
        f"agreement conv: counts equal {torch.equal(counts_o, counts_n)} ({int(counts_n.sum())} spikes), "
        f"weights max |diff| {float((w_o - w_n).abs().max()):.1e}"
    )
    (fo, fwo, tho), (fn, fwn, thn) = outputs["old", "fc"], outputs["new", "fc"]
    print(
        f"agreement fc: counts equal {torch.equal(fo, fn)} ({int(fn.sum())} spikes), weights max |diff| "
        f"{float((fwo - fwn).abs().max()):.1e}, thresholds max |diff| {float((tho - thn).abs().max()):.1e}"
    )
    print(f"CPU seconds, best of {args.repeats} (old and new interleaved):")
    print("| what | old | new | old/new |")
    print("|---|---|---|---|")
    rows = {}
    for name in ("old", "new"):
        conv_step_s = best[name, "conv-sim"] / args.conv_T  # per time step of the conv layer
        fc_step_s = best[name, "fc-sim"] / args.fc_T  # per time step of the fc layer alone
        conv_fixed = best[name, "conv"] - best[name, "conv-sim"]  # update, standardisation, conv forward
        fc_fixed = best[name, "fc"] - best[name, "fc-sim"] - args.fc_T * conv_step_s  # matmuls, update
        rows[name] = {
            "conv layer, per time step": conv_step_s,
            "fc layer alone, per time step": fc_step_s,
            "conv batch, besides the steps": conv_fixed,
            "fc batch, besides the steps": fc_fixed,
            f"conv batch at T = {args.official_conv_T}": conv_fixed + args.official_conv_T * conv_step_s,
            f"fc batch at T = {args.official_fc_T}": fc_fixed
            + args.official_fc_T * (conv_step_s + fc_step_s),
        }
    for what in rows["new"]:
        o, n = rows["old"][what], rows["new"][what]
        print(f"| {what} | {o:.3f} | {n:.3f} | {o / n:.1f}× |")


if __name__ == "__main__":
    main()
