"""One tie rule for every class-score read-out, applied by the runner, not by each method.

A spike-count read-out ties often at low T (desire-bp on digits at T = 2: 68-70 % of the test images have
two or more classes with the top count), and ``argmax`` gives every tie to the lowest class index, so a
method's top-1 then depends on the order of the class labels. The runner scores every evaluation by
:func:`tie_aware_top1`: each sample earns ``1 / |S|`` when its label is in ``S``, the set of classes whose
score equals the sample's maximum exactly, which is the **expected top-1 under uniform random
tie-breaking**; a sample without a tie is scored as argmax scores it. The method's own read-out (argmax, a
tie going to the lowest class index: :attr:`snnbench.algorithms.Evaluation.top1`) is kept beside it as a
labelled secondary figure, with the share of tied samples.

A record says which rule made its ``top1`` in ``metrics_protocol`` (:data:`PROTOCOL`). Records written before
the rule have none: their ``top1`` is the method's own read-out (lowest index wins a tie), they never share
a leaderboard row with records of the rule (:func:`snnbench.records.row_identity`), and the tables show
their tie column as :data:`OLD_RULE`. Importing this module declares its metrics in
:data:`snnbench.metrics.METRICS` (that file is hashed: its table is extended here, as it extends itself).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch

from snnbench.metrics import METRICS, Metric

RULE = "expected-uniform"  # metrics_protocol["ties"] of records scored by tie_aware_top1
PROTOCOL: dict[str, str] = {"ties": RULE}
OLD_RULE = "n/a (lowest index)"  # the tie cell of a row whose records predate the rule
OWN_RULE = "argmax, a tie to the lowest class index"  # the methods' own read-out, in words

TIE_METRICS: dict[str, Metric] = {
    m.name: m
    for m in [
        Metric(
            "top1_official_ties",
            "%",
            True,
            f"test top-1 by the method's own read-out ({OWN_RULE}; secondary, where it differs from top1)",
        ),
        # shares are unitless in METRICS (activation_sparsity): desire-bp's records made before the rule carry
        # a tie_fraction of their own (same definition), and their pages name no unit for it
        Metric("tie_fraction", "", False, "share (0-1) of test samples whose top class score is tied"),
        Metric("val_top1_official_ties", "%", True, f"val_top1 by the method's own read-out ({OWN_RULE})"),
        Metric("val_tie_fraction", "", False, "share (0-1) of validation samples whose top score is tied"),
        Metric(
            "top1_val_selected_official_ties",
            "%",
            True,
            f"top1_val_selected by the method's own read-out ({OWN_RULE})",
        ),
        Metric(
            "val_selected_tie_fraction",
            "",
            False,
            "share (0-1) of test samples with a tied top score, network of the validation-selected epoch",
        ),
    ]
}
METRICS.update(TIE_METRICS)


class TieTop1(NamedTuple):
    """Top-1 of one evaluation by the common rule, its tie share and the method's own read-out."""

    expected_top1: float  # %: expected accuracy under uniform random tie-breaking
    tie_fraction: float  # share (0-1) of samples whose maximal score is shared by more than one class
    official_top1: float  # %: argmax, a tie to the lowest class index (Evaluation.top1)


def tie_aware_top1(logits: torch.Tensor, labels: torch.Tensor) -> TieTop1:
    """Score class scores ``logits`` ``[N, C]`` against ``labels`` ``[N]``: per sample the set ``S`` of
    classes whose score equals the row's maximum exactly; credit ``1/|S|`` if the label is in ``S``.
    A row with a NaN score has no maximum: no credit and no tie (argmax, which takes NaN for the maximum,
    still scores the official figure). Empty input: all three are NaN."""
    if logits.ndim != 2 or labels.ndim != 1 or len(logits) != len(labels):
        raise ValueError(
            f"expected logits [N, C] and labels [N], got {tuple(logits.shape)} and {tuple(labels.shape)}"
        )
    if len(labels) == 0:
        nan = float("nan")
        return TieTop1(nan, nan, nan)
    labels = labels.to(logits.device).long()
    top = logits.max(dim=1, keepdim=True).values
    winners = logits == top  # NaN rows: no winner
    size = winners.sum(dim=1)
    hit = winners.gather(1, labels[:, None]).squeeze(1)
    credit = torch.where(hit, 1.0 / size.clamp(min=1).double(), torch.zeros((), dtype=torch.float64))
    return TieTop1(
        100.0 * credit.mean().item(),
        (size > 1).double().mean().item(),
        100.0 * (logits.argmax(dim=1) == labels).double().mean().item(),
    )


def scored(record_metrics: dict[str, Any], protocol: dict[str, Any] | None, key: str = "top1") -> Any:
    """``key`` (``top1``, ``val_top1``, ``top1_val_selected``) of a record by the method's own read-out:
    the ``_official_ties`` figure of a record of the rule, the figure itself of one made before it. What a
    retrain of an old record must reproduce, and what it is compared with."""
    if protocol and protocol.get("ties") == RULE:
        return record_metrics.get(f"{key}_official_ties")
    return record_metrics.get(key)


def rule_of(protocol: dict[str, Any] | None) -> str:
    """The tie rule that made a record's ``top1``: :data:`RULE`, or ``"lowest-index"`` (made before it)."""
    return str(protocol.get("ties")) if protocol and protocol.get("ties") else "lowest-index"


def as_scored_by(
    protocol: dict[str, Any] | None, metrics: dict[str, Any], own_protocol: dict[str, Any] | None, key: str
) -> Any:
    """``key`` of a record (``metrics``, scored under ``own_protocol``) as a record scored under ``protocol``
    would hold it: the figure itself under the same rule, the method's own read-out (:func:`scored`) for a
    record made before the rule. A retrain of a committed record is compared with it like for like."""
    if rule_of(protocol) == rule_of(own_protocol):
        return metrics.get(key)
    if rule_of(protocol) == "lowest-index":
        return scored(metrics, own_protocol, key)
    return None  # a record of the rule cannot be read from one made before it
