"""Training methods, one file each; the registry name is the file stem with ``_`` → ``-``."""

from snnbench.algorithms._base import (
    Algorithm,
    AlgorithmConfig,
    EpochTally,
    Evaluation,
    Paper,
    RunContext,
    TrainState,
    rate_mse_loss,
    supervised_epoch,
)
from snnbench.registry import Registry

algorithms: Registry[type[Algorithm]] = Registry(
    "algorithm", base=Algorithm, package="snnbench.algorithms", entry_point_group="snnbench.algorithms"
)

__all__ = [
    "Algorithm",
    "AlgorithmConfig",
    "EpochTally",
    "Evaluation",
    "Paper",
    "RunContext",
    "TrainState",
    "algorithms",
    "rate_mse_loss",
    "supervised_epoch",
]
