"""The committed suites' plots, drawn from their leaderboard.csv: no text overlaps another or leaves the
figure, and no row at chance is on a front (the Pareto plots' or the site's)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from snnbench.leaderboard import PLOT_AXES
from snnbench.plots import AXES, figure, matrix_data, matrix_figure, overlapping_texts, plot_data
from snnbench.suite import load_suite

RESULTS = Path(__file__).resolve().parent.parent / "results"
SUITES = ["digits-lowT", "fmnist-cpu"]


def tables(name: str) -> dict[str, pd.DataFrame]:
    df = pd.read_csv(RESULTS / name / "leaderboard.csv")
    df["rank"] = df["rank"].astype("Int64")
    return {str(track): t.drop(columns="track") for track, t in df.groupby("track", sort=True)}


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


@pytest.mark.parametrize("name", SUITES)
def test_no_text_of_a_committed_plot_overlaps_another_or_leaves_the_figure(name):
    suite = load_suite(name)
    for track, table in tables(name).items():
        for axis in PLOT_AXES:  # the committed PNG/SVG plots (the site draws its own with Plotly)
            fig = figure(plot_data(table, suite, axis, track), axis)
            assert overlapping_texts(fig) == [], (track, axis)
        fig = matrix_figure(matrix_data(table, suite, track))
        assert overlapping_texts(fig) == [], (track, "matrix")


def test_the_overlap_check_sees_overlapping_and_escaping_texts():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3, 2))
    ax.text(0.5, 0.5, "first label")
    ax.text(0.52, 0.5, "second label")
    ax.text(0.99, 0.1, "runs past the right edge of the figure")
    fig.canvas.draw()
    pairs = overlapping_texts(fig)
    assert ("first label", "second label") in pairs
    assert ("runs past the right edge of the figure", "<figure edge>") in pairs


@pytest.mark.parametrize("name", SUITES)
def test_rows_at_chance_are_on_no_front_of_the_committed_plots_nor_of_the_site(name):
    suite = load_suite(name)
    tracks = tables(name)
    assert any(t["at_chance"].any() for t in tracks.values())  # soft-lif, st-rsbp: the check bites
    for track, table in tracks.items():
        chance = table[table["at_chance"]]
        for axis in AXES:
            data = plot_data(table, suite, axis, track)
            drawn = {
                (dx, y) for s in data.series for dx, y, x in zip(s.x_drawn, s.y, s.x, strict=True)
                if ((chance["algorithm"] == s.name) & (chance[AXES[axis][0]] == x)).any()
            }  # fmt: skip
            assert not drawn & set(data.front), (track, axis)
    page = (RESULTS / name / "site" / "index.html").read_text()
    bound = float(pd.read_csv(RESULTS / name / "leaderboard.csv")["chance_top1"].max())
    specs = re.findall(
        r'<script type="application/json" class="plot" data-target="pareto-[^"]+">(.*?)</script>', page
    )
    assert specs
    for spec in specs:
        for trace in json.loads(spec)["data"]:
            if trace["name"].startswith("Pareto front"):
                assert min(trace["y"]) > bound
