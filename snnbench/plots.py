"""Pareto plots: accuracy against latency (T), one line per method, error bars over seeds, front marked."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from snnbench.suite import Suite


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points not dominated by another with lower-or-equal cost and higher-or-equal accuracy
    (one of them strictly)."""
    front = []
    for x, y in points:
        dominated = any((x2 <= x and y2 >= y) and (x2 < x or y2 > y) for x2, y2 in points)
        if not dominated:
            front.append((x, y))
    return sorted(set(front))


AXES = {
    "T": ("T", "time steps T (latency)"),
    "sops": ("synops_per_sample_mean", "synaptic operations per sample (ACs + MACs)"),
    "energy": ("energy_nj_mean", "estimated energy per sample (nJ)"),
}


def pareto(
    table: pd.DataFrame, suite: Suite, stem: Path, x: str = "T", track: str | None = None
) -> list[Path]:
    """Draw ``stem.png`` and ``stem.svg`` of accuracy against ``x`` (``T``, ``sops`` or ``energy``) for the
    rows of one track (published points only on the official track's plot)."""
    column, x_label = AXES[x]
    if column not in table:
        table = table.assign(**{column: float("nan")})
    table = table.dropna(subset=[column])
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["svg.hashsalt"] = "snnbench"  # deterministic SVG ids: committed plots can be checked
    import matplotlib.pyplot as plt

    ok = table.dropna(subset=["top1_mean"])
    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=150)
    markers = "osD^vP*Xh<>"
    for i, (name, group) in enumerate(ok.groupby("algorithm", sort=True)):
        group = group.sort_values(column)
        ax.errorbar(
            group[column],
            group["top1_mean"],
            yerr=group["top1_std"].fillna(0.0),
            marker=markers[i % len(markers)],
            markersize=6,
            capsize=3,
            linewidth=1.6,
            label=f"{name}",
        )
    front = pareto_front(list(zip(ok[column].astype(float), ok["top1_mean"].astype(float), strict=True)))
    if front:
        xs, ys = zip(*front, strict=True)
        ax.step(
            xs, ys, where="post", color="black", linestyle="--", linewidth=1, alpha=0.6, label="Pareto front"
        )
        ax.scatter(xs, ys, s=150, facecolors="none", edgecolors="black", linewidths=1.4, zorder=5)
    refs = [r for r in suite.reference if r.T is not None] if x == "T" and track in (None, "official") else []
    if refs:
        ax.scatter(
            [r.T for r in refs],
            [r.top1 for r in refs],
            marker="x",
            color="grey",
            s=50,
            label="published (ref.)",
        )
    values = sorted(ok[column].unique()) if not ok.empty else []
    if x == "T" and values:
        ax.set_xscale("log", base=2)
        ax.set_xticks(values)
        ax.set_xticklabels([str(int(v)) for v in values])
    elif values:
        ax.set_xscale("log")
    ax.set_xlabel(x_label)
    ax.set_ylabel("top-1 accuracy (%), final epoch, mean ± std")
    what = "latency" if x == "T" else x_label.split(" per ")[0]
    ax.set_title(f"{suite.name}{f' ({track} track)' if track else ''}: accuracy vs {what}")
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="lower right")
    else:
        ax.text(0.5, 0.5, f"no records carry {column}", transform=ax.transAxes, ha="center", color="grey")
    fig.tight_layout()
    paths = [stem.with_suffix(".png"), stem.with_suffix(".svg")]
    stem.parent.mkdir(parents=True, exist_ok=True)
    for path in paths:
        fig.savefig(path, metadata={"Date": None} if path.suffix == ".svg" else None)
    plt.close(fig)
    return paths
