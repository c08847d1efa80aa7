"""Pareto plots: accuracy against latency (T), one line per method, error bars over seeds, front marked."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from snnbench.suite import Suite


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points not dominated by another with lower-or-equal cost and higher-or-equal accuracy (one strictly)."""
    front = []
    for x, y in points:
        dominated = any((x2 <= x and y2 >= y) and (x2 < x or y2 > y) for x2, y2 in points)
        if not dominated:
            front.append((x, y))
    return sorted(set(front))


def pareto(table: pd.DataFrame, suite: Suite, stem: Path, x: str = "T", x_label: str = "time steps T (latency)") -> list[Path]:
    """Draw ``stem.png`` and ``stem.svg`` from a leaderboard table; returns the two paths."""
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["svg.hashsalt"] = "snnbench"  # deterministic SVG ids: committed plots can be checked
    import matplotlib.pyplot as plt

    ok = table.dropna(subset=["top1_mean"])
    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=150)
    markers = "osD^vP*Xh<>"
    for i, (name, group) in enumerate(ok.groupby("algorithm", sort=True)):
        group = group.sort_values(x)
        ax.errorbar(
            group[x],
            group["top1_mean"],
            yerr=group["top1_std"].fillna(0.0),
            marker=markers[i % len(markers)],
            markersize=6,
            capsize=3,
            linewidth=1.6,
            label=f"{name}",
        )
    front = pareto_front(list(zip(ok[x].astype(float), ok["top1_mean"].astype(float))))
    if front:
        xs, ys = zip(*front)
        ax.step(xs, ys, where="post", color="black", linestyle="--", linewidth=1, alpha=0.6, label="Pareto front")
        ax.scatter(xs, ys, s=150, facecolors="none", edgecolors="black", linewidths=1.4, zorder=5)
    refs = [r for r in suite.reference if r.T is not None] if x == "T" else []
    if refs:
        ax.scatter([r.T for r in refs], [r.top1 for r in refs], marker="x", color="grey", s=50, label="published (ref.)")
    values = sorted(ok[x].unique()) if not ok.empty else []
    if x == "T" and values:
        ax.set_xscale("log", base=2)
        ax.set_xticks(values)
        ax.set_xticklabels([str(int(v)) for v in values])
    ax.set_xlabel(x_label)
    ax.set_ylabel("top-1 accuracy (%), final epoch, mean ± std")
    ax.set_title(f"{suite.name}: accuracy vs latency")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    paths = [stem.with_suffix(".png"), stem.with_suffix(".svg")]
    stem.parent.mkdir(parents=True, exist_ok=True)
    for path in paths:
        fig.savefig(path, metadata={"Date": None} if path.suffix == ".svg" else None)
    plt.close(fig)
    return paths
