"""The algorithm contract, on one screen.

The runner owns everything common (seeding, device, data order, the epoch loop, checkpoints, resume,
timing, memory, NaN detection, records); an algorithm owns only what makes it itself:

=====================================  ==============================================================
``build(T) -> nn.Module``              the network, from ``self.arch`` (paper notation) and ``self.data``
``configure(net, ctx) -> TrainState``  optimiser and schedule (checkpointed by the runner)
``train_epoch(net, state, batches,     one pass over the training batches (raw ``[B, ...]`` inputs;
ctx) -> dict``                         encode with ``ctx.encode``); returns at least ``{"loss": ...}``.
                                       Owns the loss and the update rule: BPTT, online OTTT updates,
                                       spike-train-level ST-RSBP gradients, an ANN for conversion ...
``finalize(net, train, ctx)``          optional post-training phase (conversion: normalise + convert)
``predict(net, x, ctx) -> logits``     class scores ``[B, C]`` (argmax decides; STDBP: −spike time)
``evaluate(net, test, ctx)``           default: ``predict`` over the whole test set, no batch dropped;
                                       override to add ``Evaluation.extra`` (ANN accuracy, steps used)
=====================================  ==============================================================

Class metadata: ``paper`` (citation and equations), ``version`` (bump on any behaviour change, with a
line in ``changelog``), ``Config`` (pydantic; every hyperparameter with the paper's default and its
source), ``default_encoding``, and ``training_depends_on_T``: ``False`` for methods whose training does
not see T (conversion, continuous-time STDBP); the runner then trains once per seed and evaluates the
same trained network at every T of the grid; ``residual_blocks``: ``True`` for methods whose ``build``
handles the residual-block token (``B64``), the others refuse such architectures by name.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict
from torch import nn

from snnbench.architectures import Architecture, has_blocks
from snnbench.data import DatasetInfo, Split
from snnbench.errors import SnnbenchError


@dataclass(frozen=True)
class Paper:
    """Citation of the method's paper and the equations the implementation follows."""

    authors: str
    title: str
    venue: str
    year: int
    url: str
    equations: str = ""

    def cite(self) -> str:
        """``Authors (Venue Year)``."""
        return f"{self.authors} ({self.venue} {self.year})"


class AlgorithmConfig(BaseModel):
    """Base of every ``Algorithm.Config``: unknown keys are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass
class RunContext:
    """What a run hands the algorithm besides the network and data."""

    T: int
    device: torch.device
    epochs: int
    batch_size: int
    eval_batch_size: int
    encoding: str
    generator: torch.Generator  # CPU generator for data order and encoding noise; checkpointed
    encode_fn: Callable[[torch.Tensor, int, torch.Generator | None], torch.Tensor]
    epoch: int = 0  # the epoch being trained (0-based), set by the runner

    def encode(self, x: torch.Tensor, T: int | None = None) -> torch.Tensor:
        """Encode a raw batch ``[B, ...]`` to ``[T, B, ...]`` with the run's encoding and generator."""
        return self.encode_fn(x, self.T if T is None else T, self.generator)


@dataclass
class TrainState:
    """Optimiser, schedule and any other state that must survive a checkpoint."""

    optimizer: torch.optim.Optimizer | None = None
    scheduler: Any | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume."""
        return {
            "optimizer": None if self.optimizer is None else self.optimizer.state_dict(),
            "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
            "extra": self.extra,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict`."""
        if self.optimizer is not None and state["optimizer"] is not None:
            self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.extra = state["extra"]


@dataclass
class EpochTally:
    """Mean loss and training top-1 of one epoch, accumulated batch by batch (every method's epoch result)."""

    loss_total: float = 0.0
    correct: int = 0
    seen: int = 0

    def add(self, loss_total: float, scores: torch.Tensor, y: torch.Tensor) -> None:
        """``loss_total``: the batch's loss summed over its samples; ``scores`` ``[B, classes]``: the
        prediction is their argmax."""
        self.loss_total += loss_total
        self.correct += int((scores.argmax(1) == y).sum())
        self.seen += len(y)

    def summary(self) -> dict[str, float]:
        return {"loss": self.loss_total / self.seen, "train_top1": 100.0 * self.correct / self.seen}


def rate_mse_loss(rates: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean squared error between output firing rates ``[B, classes]`` and the one-hot label (STBP's loss)."""
    return F.mse_loss(rates, F.one_hot(y, rates.shape[1]).to(rates.dtype))


def supervised_epoch(
    state: TrainState,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    scores: Callable[[torch.Tensor], torch.Tensor],
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy,
) -> dict[str, float]:
    """One pass of minibatch descent on ``loss(scores(x), y)`` (a batch mean; cross-entropy on the class
    scores unless given) with ``state``'s optimiser, then one scheduler step (if any): the epoch of every
    method whose update is a loss on its class scores and a plain optimiser step."""
    assert state.optimizer is not None
    tally = EpochTally()
    for x, y in batches:
        outputs = scores(x)
        value = loss(outputs, y)
        state.optimizer.zero_grad(set_to_none=True)
        value.backward()
        state.optimizer.step()
        tally.add(value.item() * len(y), outputs, y)
    if state.scheduler is not None:
        state.scheduler.step()
    return tally.summary()


@dataclass
class Evaluation:
    """Test-set outputs: class scores, labels and method-specific extras (floats)."""

    logits: torch.Tensor
    labels: torch.Tensor
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def top1(self) -> float:
        """Top-1 accuracy in percent; a tie goes to the lowest class index (never counted correct
        unless that index is the label)."""
        return 100.0 * (self.logits.argmax(dim=1) == self.labels).double().mean().item()


class Algorithm(ABC):
    """Base class of every training method. See the module docstring for the contract."""

    registry_name: ClassVar[str]
    paper: ClassVar[Paper | None] = None
    version: ClassVar[int] = 1
    changelog: ClassVar[tuple[str, ...]] = ("1: first version",)
    # plugins: suite name → {entry key: entry fields}, added to that suite when the plugin is loaded
    suite_entries: ClassVar[dict[str, dict[str, dict[str, Any]]]] = {}
    description: ClassVar[str] = ""
    Config: ClassVar[type[AlgorithmConfig]] = AlgorithmConfig
    default_encoding: ClassVar[str] = "direct"
    training_depends_on_T: ClassVar[bool] = True
    residual_blocks: ClassVar[bool] = False  # whether build() handles the residual-block token (B64)

    def __init__(self, config: AlgorithmConfig, arch: Architecture, data: DatasetInfo) -> None:
        if has_blocks(arch) and not self.residual_blocks:
            method = getattr(self, "registry_name", type(self).__name__)
            raise SnnbenchError(
                f"architecture {arch.name!r} has residual blocks, which {method} cannot build "
                "(methods that can: sew-resnet, ms-resnet)"
            )
        self.config = config
        self.arch = arch
        self.data = data

    @abstractmethod
    def build(self, T: int) -> nn.Module:
        """The network for ``T`` time steps (parameters on CPU; the runner moves it)."""

    @abstractmethod
    def configure(self, net: nn.Module, ctx: RunContext) -> TrainState:
        """Optimiser and schedule for ``ctx.epochs`` epochs."""

    @abstractmethod
    def train_epoch(
        self,
        net: nn.Module,
        state: TrainState,
        batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
        ctx: RunContext,
    ) -> dict[str, float]:
        """Train one epoch; return the mean loss as ``"loss"`` (and optionally ``"train_top1"``)."""

    @abstractmethod
    def predict(self, net: nn.Module, x: torch.Tensor, ctx: RunContext) -> torch.Tensor:
        """Class scores ``[B, C]`` for a raw input batch ``[B, ...]`` (called under ``no_grad``)."""

    def finalize(self, net: nn.Module, train: Split, ctx: RunContext) -> None:  # noqa: B027
        """Optional phase after the last epoch (e.g. conversion's calibration). Default: nothing."""

    def evaluate(self, net: nn.Module, test: Split, ctx: RunContext) -> Evaluation:
        """Scores on the whole test set (no batch dropped)."""
        net.eval()
        logits, labels = [], []
        with torch.no_grad():
            for x, y in test.batches(ctx.eval_batch_size, shuffle=False, device=ctx.device):
                logits.append(self.predict(net, x, ctx).float().cpu())
                labels.append(y.cpu())
        return Evaluation(torch.cat(logits), torch.cat(labels))
