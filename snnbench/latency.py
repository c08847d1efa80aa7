"""Metrics of latency (first-spike) read-outs, declared in :data:`snnbench.metrics.METRICS` from outside.

STDBP's ``top1`` is the **first-spike decision within the T steps**: the class of the earliest output spike;
outputs spiking in the same step tie, and a sample where no output spiked within T is a tie of every
class, i.e. a uniform guess (1/C), the same tie rule (:mod:`snnbench.ties`) as every spike-count read-out.
The figures around it are labelled secondary metrics, listed in :data:`SHOWN_WHEN_PRESENT`: the tables and
the site show each as a column whenever any record of the table carries it.

metrics.py is hashed: like :mod:`snnbench.ties`, this module extends its table; ``no_decision_fraction`` is
declared there with the old read-out's wording and is re-declared here with the current one.
"""

from __future__ import annotations

from snnbench.metrics import METRICS, Metric

UNDECIDED_RULE = "undecided = a uniform guess, the same tie rule as every spike-count read-out"

LATENCY_METRICS: dict[str, Metric] = {
    m.name: m
    for m in [
        Metric(
            "top1_potential",
            "%",
            True,
            "STDBP, secondary: top-1 of the T-step network where a sample with no output spike within T is "
            "decided by the highest output potential at the end of step T (the first spike otherwise)",
        ),
        Metric(
            "no_decision_fraction",
            "",
            False,
            f"STDBP: share (0-1) of test samples with no output spike within the T steps ({UNDECIDED_RULE})",
        ),
        Metric(
            "decision_steps_clocked",
            "steps",
            False,
            "STDBP: mean step (1..T) of the deciding output spike, among samples decided within T",
        ),
    ]
}
METRICS.update(LATENCY_METRICS)

# labelled columns of the leaderboard and the site, shown where any record of the table carries them
SHOWN_WHEN_PRESENT: dict[str, str] = {
    "top1_potential": "top-1, potential read-out",
    "no_decision_fraction": "undecided",
    "decision_time_steps": "decision time",
}
