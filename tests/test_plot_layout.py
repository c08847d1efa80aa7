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
    if name == "digits-lowT":  # soft-lif (T ≤ 16): the check bites; fmnist has no row at chance since its
        # per-T tuning (soft-lif left chance; st-rsbp's runs are all diverged at chance, so no row)
        assert any(t["at_chance"].any() for t in tracks.values())
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


def test_the_matrix_greys_chance_cells_marks_rank_one_and_lists_chance_only_methods_last():
    from snnbench.report import _matrix

    suite = load_suite("digits-lowT")
    table = tables("digits-lowT")["controlled"]
    data = matrix_data(table, suite, "controlled")
    assert data.methods[-1] == "st-rsbp" and data.methods[0] == "ottt"  # never ranked: last; best: first
    assert data.cells[("soft-lif", 1)].state == "chance" and data.cells[("soft-lif", 64)].state == "ranked"
    assert data.cells[("ottt", 1)].state == "best" and data.cells[("ide", 1)].state == "ranked"
    assert {T for (name, T), c in data.cells.items() if c.state == "best" and name == "bptt"} == {2, 8}
    page = _matrix(data)
    row = page.split("<th>soft-lif</th>")[1].split("</tr>")[0]  # at chance at T = 1 to 16, ranked at 32, 64
    assert row.count('class="num chance"') == 5 and row.count("hsl(") == 2 and "10.1<br>chance" in row
    row = page.split("<th>ottt</th>")[1].split("</tr>")[0]
    ottt = table[table["algorithm"] == "ottt"]  # the committed figures, as the cell writes them
    assert row.count('class="num best"') == 4 and len(ottt) == 4
    figures = zip(ottt["top1_mean"], ottt["top1_ci95"], strict=True)
    assert all(f">{m:.1f}<br>± {ci:.1f}</td>" in row for m, ci in figures)


def test_points_below_the_range_are_told_in_the_legend_not_labelled_on_the_plot():
    suite = load_suite("digits-lowT")
    fig = figure(plot_data(tables("digits-lowT")["controlled"], suite, "T", "controlled"))
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "soft-lif (▼ 5 below: 10.1–10.4 %)" in labels and "tssl-bp (▼ 2 below: 40.6–42.4 %)" in labels
    assert "bptt" in labels


def test_tick_labels_of_near_costs_are_thinned_not_drawn_over_each_other():
    suite = load_suite("digits-lowT")
    Ts = [1, 16, 17, 18, 19, 20, 64]  # 16 … 20 are a few pixels apart on the log axis
    mean = pd.Series([90.0 + i for i in range(len(Ts))])
    table = pd.DataFrame(
        {"algorithm": "a", "T": Ts, "top1_mean": mean, "top1_ci95": 1.0, "top1_ci_low": mean - 1,
         "top1_ci_high": mean + 1, "rank": pd.array([1] * len(Ts), dtype="Int64"), "n": 3}
    )  # fmt: skip
    fig = figure(plot_data(table, suite, "T"), "T")
    shown = [t.get_text() for t in fig.axes[0].get_xticklabels() if t.get_visible()]
    assert overlapping_texts(fig) == [] and "1" in shown and "64" in shown and len(shown) < len(Ts)
