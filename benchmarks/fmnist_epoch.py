"""One BPTT training epoch on real Fashion-MNIST: snnbench against idiomatic snnTorch and SpikingJelly loops.

The network, data and settings are the ``fmnist-cpu`` suite's controlled ``bptt`` entry: the MLP
784-256-10 with decay-input LIF neurons (τ, ϑ, hard reset to 0, sigmoid surrogate α: the entry's
hyperparameters), a leaky non-firing readout averaged over T, direct encoding, cross-entropy, Adam, batch 64,
over the 54,000-image training split (the runner's stratified carve of 10 % for validation, and its shuffle
from a generator seeded with the run's seed). Three implementations train it:

- **snnbench**: the method built as the runner builds a run (the suite's expanded spec, the algorithm
  registry, ``configure``) and trained through its public contract, ``Algorithm.train_epoch``;
- **snnTorch**: ``snn.Leaky`` neurons (β = 1 − 1/τ on inputs scaled by 1/τ: the decay-input LIF; reset to
  zero) stepped in a Python loop over T, the readout a ``snn.Leaky`` without reset whose membranes are
  averaged, as in snnTorch's tutorials;
- **SpikingJelly**: ``activation_based`` layers in multi-step mode (``LIFNode``, ``NonSpikingLIFNode`` with
  ``decode="mean-mem"`` as the readout), the input repeated T times, ``functional.reset_net`` after each
  batch, as in SpikingJelly's examples.

Every implementation starts from the same weights (snnbench's initialisation, copied), sees the same
batches in the same order, uses ``torch.optim.Adam`` with the entry's learning rate and tallies its loss
and training accuracy per batch, as snnbench's epoch does. Before timing, the script checks on a few
training batches that they compute the same thing: each batch's logits and weight gradients compared, then
each takes its own optimiser step, so the check follows a short training trajectory. snnTorch's reset
carries no gradient, so it is compared with snnbench built with ``detach_reset: true``; SpikingJelly with
the suite's entry as it is.

Then whole epochs are timed in interleaved rounds (each round trains every implementation for one epoch
from the same initial weights, in a rotated order, so a drift of the machine's speed hits all alike), and
each trained network's top-1 on the 10,000 test images is reported (a sanity check that all learn; it is
no leaderboard figure). Threads, allocator and subnormal flushing are the runner's worker settings
(one thread per run, as a pool worker runs it), for everyone.

    python benchmarks/fmnist_epoch.py                    # T = 4 and 8, 3 rounds (4 minutes on the Xeon)
    python benchmarks/fmnist_epoch.py --T 4 --rounds 5
    python benchmarks/fmnist_epoch.py --check-only       # the agreement check alone
"""

from __future__ import annotations

import argparse
import copy
import itertools
import statistics
import time
from collections.abc import Iterable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from snnbench.algorithms import RunContext, algorithms
from snnbench.architectures import resolve_architecture
from snnbench.data import DatasetInfo, data_root, datasets
from snnbench.data._base import Split
from snnbench.data.encoding import encodings
from snnbench.environment import cpu_description, reuse_freed_cpu_memory
from snnbench.runner import EVAL_SEED_OFFSET, data_info, load_data, seed_everything, training_batches
from snnbench.suite import Overrides, RunSpec, Validation, expand, load_suite

SUITE, ENTRY = "fmnist-cpu", "bptt"
Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]


def suite_spec(T: int, seed: int = 0, hparams: dict | None = None) -> RunSpec:
    """The suite entry's run spec at ``T`` (as ``snnbench run`` expands it), with ``hparams`` changed."""
    spec = expand(load_suite(SUITE), Overrides(algorithms=[ENTRY], timesteps=[T], seeds=[seed]))[0]
    return spec.model_copy(update={"hparams": {**spec.hparams, **(hparams or {})}}) if hparams else spec


def static_info(spec: RunSpec) -> DatasetInfo:
    """The dataset's facts without loading it (for synthetic batches of the same shape)."""
    dataset = datasets.get(spec.dataset)()
    return dataset.info(dataset.Options.model_validate(spec.dataset_options))


def peer_settings(spec: RunSpec) -> dict[str, float]:
    """The neuron and optimiser settings the peers mirror; refuses a configuration they do not express."""
    h = spec.hparams
    expressible = {
        "surrogate": "sigmoid",
        "readout": "membrane",
        "batch_norm": False,
        "optimizer": "adam",
        "weight_decay": 0.0,
    }
    for key, value in expressible.items():
        if h[key] != value:
            raise SystemExit(
                f"{SUITE}.yaml: algorithms.{ENTRY}.{key} = {h[key]!r}: the peers mirror {value!r} only"
            )
    alpha = h["alpha"] if h["alpha"] is not None else 4.0  # the sigmoid surrogate's default α
    return {"tau": h["tau"], "threshold": h["v_threshold"], "alpha": alpha, "lr": h["lr"]}


class Tally:
    """Loss and training accuracy summed per batch, as snnbench's epoch tallies them."""

    def __init__(self) -> None:
        self.loss, self.correct, self.n = 0.0, 0, 0

    def add(self, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        self.loss += loss.item() * len(y)
        self.correct += int((logits.argmax(1) == y).sum())
        self.n += len(y)

    def summary(self) -> dict[str, float]:
        return {"loss": self.loss / self.n, "train_top1": 100.0 * self.correct / self.n}


# ---- the three implementations: build from snnbench's initial weights, train one epoch, evaluate --------
class Snnbench:
    """snnbench's method as the runner builds a run, trained through ``Algorithm.train_epoch``."""

    name = "snnbench"

    def __init__(self, spec: RunSpec, info: DatasetInfo, init: dict[str, torch.Tensor] | None = None) -> None:
        cls = algorithms.get(spec.algorithm)
        self.spec = spec
        self.algorithm = cls(cls.Config.model_validate(spec.hparams), resolve_architecture(spec.arch), info)
        self.net = self.algorithm.build(spec.T)
        if init is not None:
            with torch.no_grad():
                for key, tensor in self.weights().items():
                    tensor.copy_(init[key])
        self.ctx = RunContext(
            T=spec.T,
            device=torch.device("cpu"),
            epochs=spec.epochs,
            batch_size=spec.batch_size,
            eval_batch_size=spec.eval_batch_size,
            encoding=spec.encoding,
            generator=torch.Generator().manual_seed(spec.seed),
            encode_fn=encodings.get(spec.encoding),
        )
        self.state = self.algorithm.configure(self.net, self.ctx)
        self.optimizer = self.state.optimizer

    def weights(self) -> dict[str, torch.Tensor]:
        """``{w1, b1, w2, b2}``: the hidden and the output layer."""
        body = self.net.body[1].module
        head = self.net.head.module
        return {"w1": body.weight, "b1": body.bias, "w2": head.weight, "b2": head.bias}

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        self.net.train()
        return self.algorithm.predict(self.net, x, self.ctx)

    def train_epoch(self, batches: Batches) -> dict[str, float]:
        return self.algorithm.train_epoch(self.net, self.state, batches, self.ctx)

    def top1(self, split: Split) -> float:
        ctx = copy.copy(self.ctx)  # the runner's evaluation context: its own generator
        ctx.generator = torch.Generator().manual_seed(self.spec.seed + EVAL_SEED_OFFSET)
        return self.algorithm.evaluate(self.net, split, ctx).top1


class Peer:
    """What the two peer loops share: Adam over the net's parameters, an idiomatic epoch, evaluation."""

    name = ""
    net: nn.Module

    def __init__(self, settings: dict[str, float], T: int, init: dict[str, torch.Tensor]) -> None:
        self.T, self.settings = T, settings
        self.net = self.build(settings)
        with torch.no_grad():
            for key, tensor in self.weights().items():
                tensor.copy_(init[key])
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=settings["lr"])

    def build(self, settings: dict[str, float]) -> nn.Module:
        raise NotImplementedError

    def weights(self) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def train_epoch(self, batches: Batches) -> dict[str, float]:
        self.net.train()
        tally = Tally()
        for x, y in batches:
            logits = self.logits(x)
            loss = F.cross_entropy(logits, y)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            tally.add(loss, logits, y)
        return tally.summary()

    def top1(self, split: Split) -> float:
        self.net.eval()
        correct = 0
        with torch.no_grad():
            for x, y in split.batches(256, shuffle=False):
                correct += int((self.logits(x).argmax(1) == y).sum())
        return 100.0 * correct / len(split)


class SnnTorchMLP(nn.Module):
    """snnTorch's tutorial form: layers and ``snn.Leaky`` neurons, a Python loop over the time steps."""

    def __init__(self, tau: float, threshold: float, alpha: float, T: int) -> None:
        super().__init__()
        import snntorch as snn
        from snntorch import surrogate

        self.T, self.tau = T, tau
        self.fc1 = nn.Linear(784, 256)
        self.lif1 = snn.Leaky(
            beta=1 - 1 / tau,
            threshold=threshold,
            spike_grad=surrogate.sigmoid(slope=alpha),
            reset_mechanism="zero",
        )
        self.fc2 = nn.Linear(256, 10)
        self.lif2 = snn.Leaky(beta=1 - 1 / tau, reset_mechanism="none")  # the readout: its membrane

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mem1, mem2 = self.lif1.reset_mem(), self.lif2.reset_mem()
        x = x.flatten(1)
        mem2_rec = []
        for _ in range(self.T):
            cur1 = self.fc1(x)
            spk1, mem1 = self.lif1(cur1 / self.tau, mem1)  # decay-input: u = βu + x/τ
            cur2 = self.fc2(spk1)
            _, mem2 = self.lif2(cur2 / self.tau, mem2)
            mem2_rec.append(mem2)
        return torch.stack(mem2_rec).mean(0)


class SnnTorch(Peer):
    name = "snntorch"

    def build(self, settings: dict[str, float]) -> nn.Module:
        return SnnTorchMLP(settings["tau"], settings["threshold"], settings["alpha"], self.T)

    def weights(self) -> dict[str, torch.Tensor]:
        n = self.net
        return {"w1": n.fc1.weight, "b1": n.fc1.bias, "w2": n.fc2.weight, "b2": n.fc2.bias}

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class SpikingJelly(Peer):
    name = "spikingjelly"

    def build(self, settings: dict[str, float]) -> nn.Module:
        from spikingjelly.activation_based import functional, layer, neuron, surrogate

        net = nn.Sequential(
            layer.Flatten(),
            layer.Linear(784, 256),
            neuron.LIFNode(
                tau=settings["tau"], v_threshold=settings["threshold"], v_reset=0.0,
                surrogate_function=surrogate.Sigmoid(alpha=settings["alpha"]),
            ),
            layer.Linear(256, 10),
            neuron.NonSpikingLIFNode(tau=settings["tau"], decode="mean-mem"),
        )  # fmt: skip
        functional.set_step_mode(net, "m")  # the readout node is multi-step only (it has no step_mode)
        self.reset = lambda: functional.reset_net(net)
        return net

    def weights(self) -> dict[str, torch.Tensor]:
        n = self.net
        return {"w1": n[1].weight, "b1": n[1].bias, "w2": n[3].weight, "b2": n[3].bias}

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x.unsqueeze(0).repeat(self.T, 1, 1, 1, 1))
        self.reset()
        return out


def initial_weights(spec: RunSpec, info: DatasetInfo) -> dict[str, torch.Tensor]:
    """snnbench's initial weights for the run's seed (the runner seeds torch before building the net)."""
    torch.manual_seed(spec.seed)
    return {key: w.detach().clone() for key, w in Snnbench(spec, info).weights().items()}


# ---- agreement -------------------------------------------------------------------------------------
def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item() / max(b.abs().max().item(), 1e-30)


def compare(peer: Peer, ours: Snnbench, batches: Batches) -> dict[str, float]:
    """Largest relative differences of logits and weight gradients over ``batches``, each batch followed by
    every side's own optimiser step (so later batches compare the trajectories), and the weights' after
    the last step."""
    worst = {"logits": 0.0, "grad": 0.0, "weights": 0.0}
    rates: list[float] = []  # snnbench's hidden spike rate: the check means little where nothing fires
    hook = ours.net.body[2].register_forward_hook(lambda m, i, out: rates.append(out.float().mean().item()))
    for x, y in batches:
        pair = []
        for side in (peer, ours):
            side.optimizer.zero_grad(set_to_none=True)
            logits = side.logits(x)
            F.cross_entropy(logits, y).backward()
            pair.append((logits.detach(), {k: w.grad.clone() for k, w in side.weights().items()}))
        (theirs_out, theirs_grad), (our_out, our_grad) = pair
        worst["logits"] = max(worst["logits"], relative(theirs_out, our_out))
        worst["grad"] = max(worst["grad"], *(relative(theirs_grad[k], our_grad[k]) for k in our_grad))
        peer.optimizer.step()
        ours.optimizer.step()
    hook.remove()
    worst["spike_rate"] = statistics.mean(rates)
    w_peer, w_ours = peer.weights(), ours.weights()
    worst["weights"] = max(relative(w_peer[k].detach(), w_ours[k].detach()) for k in w_ours)
    return worst


def check_agreement(
    T: int,
    batches: list[tuple[torch.Tensor, torch.Tensor]],
    peer_changes: dict[str, float] | None = None,
    lr: float | None = 1e-3,
) -> dict[str, dict[str, float]]:
    """snnTorch against snnbench with a detached reset (snnTorch's), SpikingJelly against the suite's
    entry as it is, from snnbench's initial weights over the same ``batches`` (``peer_changes``: settings
    given to the peers only, to show that the check notices a difference). ``lr``: Adam's step for the check
    (default 1e-3, Adam's own default: the suite's tuned lr, 9.2e-3 since 2026-12-07, amplifies float
    rounding over a few steps past the tolerance; None takes the entry's)."""
    step = {"lr": lr} if lr is not None else {}
    spec = suite_spec(T, hparams=step)
    info, settings = static_info(spec), {**peer_settings(spec), **(peer_changes or {})}
    init = initial_weights(spec, info)
    detached = suite_spec(T, hparams={"detach_reset": True, **step})
    ours = {name: Snnbench(s, info, init) for name, s in (("snntorch", detached), ("spikingjelly", spec))}
    peers = {"snntorch": SnnTorch(settings, T, init), "spikingjelly": SpikingJelly(settings, T, init)}
    return {name: compare(peers[name], ours[name], batches) for name in peers}


def synthetic_batches(
    n: int, batch: int = 16, scale: float = 4.0, seed: int = 3
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``n`` random Fashion-MNIST-shaped batches with intensities in [0, ``scale``]: a stronger drive than
    real images give at the initial weights (the hidden layer hardly fires), so that spikes and resets
    are exercised."""
    g = torch.Generator().manual_seed(seed)
    return [
        (torch.rand(batch, 1, 28, 28, generator=g) * scale, torch.randint(0, 10, (batch,), generator=g))
        for _ in range(n)
    ]


def agreement_line(result: dict[str, dict[str, float]]) -> str:
    against = {"snntorch": "snnbench (detached reset)", "spikingjelly": "snnbench"}
    return "; ".join(
        f"{name} vs {against[name]}: logits rel. diff {r['logits']:.1e}, weight-gradient {r['grad']:.1e}, "
        f"weights after the steps {r['weights']:.1e} (hidden spike rate {r['spike_rate']:.3f})"
        for name, r in result.items()
    )


# ---- timing ----------------------------------------------------------------------------------------
def real_splits(spec: RunSpec, data_dir: str | None) -> tuple[Split, Split, DatasetInfo]:
    """The run's training split (the runner's carve) and test set, and the data's facts."""
    data = load_data(spec, data_root(data_dir))
    validation = Validation.model_validate(spec.validation)
    train, _, _ = data.train.take(spec.train_subset).carve_validation(validation.fraction, validation.seed)
    return train, data.test.take(spec.test_subset), data_info(spec, data)


def agreement_lines(T: int, spec: RunSpec, train: Split) -> str:
    """The agreement check on the epoch's first 4 batches and on 4 strongly driven synthetic ones."""
    real = check_agreement(T, list(itertools.islice(epoch_batches(spec, train), 4)))
    strong = check_agreement(T, synthetic_batches(4))
    return (
        f"T = {T}: agreement on the epoch's first 4 batches: {agreement_line(real)}\n"
        f"T = {T}: agreement on 4 synthetic batches of intensities in [0, 4]: {agreement_line(strong)}"
    )


def epoch_batches(spec: RunSpec, train: Split) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The first epoch's shuffled batches as the runner hands them out (generator seeded with the seed)."""
    generator = torch.Generator().manual_seed(spec.seed)
    return iter(training_batches(train, spec.batch_size, generator, torch.device("cpu"), None))


def time_epochs(T: int, rounds: int, data_dir: str | None) -> tuple[str, list[dict]]:
    spec = suite_spec(T)
    train, test, info = real_splits(spec, data_dir)
    settings = peer_settings(spec)
    init = initial_weights(spec, info)
    check = agreement_lines(T, spec, train)

    makers = {
        "snnbench": lambda: Snnbench(spec, info, init),
        "snntorch": lambda: SnnTorch(settings, T, init),
        "spikingjelly": lambda: SpikingJelly(settings, T, init),
    }
    names = list(makers)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    results: dict[str, dict[str, float]] = {}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:  # rotated: no fixed position
            impl = makers[name]()
            batches = epoch_batches(spec, train)
            tick = time.perf_counter()
            stats = impl.train_epoch(batches)
            seconds[name].append(time.perf_counter() - tick)
            results[name] = {**stats, "top1": impl.top1(test)}
            del impl
    rows = []
    for name in names:
        ratios = [s / b for s, b in zip(seconds[name], seconds["snnbench"], strict=True)]
        rows.append(
            {
                "impl": name,
                "T": T,
                "min_s": min(seconds[name]),
                "median_s": statistics.median(seconds[name]),
                "max_s": max(seconds[name]),
                "ratio_median": statistics.median(ratios),
                "ratio_min": min(ratios),
                "ratio_max": max(ratios),
                "samples_per_s": len(train) / statistics.median(seconds[name]),
                **results[name],
            }
        )
    return check, rows


def table(rows: list[dict]) -> str:
    lines = [
        "| T | implementation | epoch s (min / median / max) | × snnbench (median of rounds; range) "
        "| samples/s | train loss | train top-1 | test top-1 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['T']} | {r['impl']} | {r['min_s']:.1f} / {r['median_s']:.1f} / {r['max_s']:.1f} "
            f"| {r['ratio_median']:.2f} ({r['ratio_min']:.2f}–{r['ratio_max']:.2f}) "
            f"| {r['samples_per_s']:,.0f} "
            f"| {r['loss']:.4f} | {r['train_top1']:.2f} | {r['top1']:.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--T", type=int, action="append", help="time steps (repeatable; default 4 and 8)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of one epoch each")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the runner's workers: 1)")
    parser.add_argument("--data-dir", help="where snnbench looks for data (default: its usual places)")
    parser.add_argument("--check-only", action="store_true", help="the agreement check on real batches alone")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    reuse_freed_cpu_memory()
    torch.set_flush_denormal(True)  # before torch's threads start, as in the runner's workers
    torch.set_num_threads(args.threads)
    seed_everything(0)  # the runner's deterministic kernels, for everyone
    print(f"{cpu_description()}; torch {torch.__version__}, threads {torch.get_num_threads()}")
    all_rows = []
    for T in args.T or [4, 8]:
        if args.check_only:
            spec = suite_spec(T)
            print(agreement_lines(T, spec, real_splits(spec, args.data_dir)[0]))
            continue
        tick = time.perf_counter()
        line, rows = time_epochs(T, args.rounds, args.data_dir)
        print(f"\n{line}\n({time.perf_counter() - tick:.0f} s)")
        all_rows += rows
        print(table(rows), flush=True)
    if all_rows:
        print("\n" + table(all_rows))


if __name__ == "__main__":
    main()
