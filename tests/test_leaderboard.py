"""Leaderboard tables and Pareto plots built from records."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from snnbench.errors import SnnbenchError
from snnbench.leaderboard import build, chance_bound, ci_half_width, tied_ranks, to_markdown, write_reports
from snnbench.plots import pareto_front
from snnbench.records import RecordStore, RunRecord
from snnbench.suite import load_suite


def record(
    entry: str,
    T: int,
    seed: int,
    top1: float | None,
    status: str = "ok",
    budget: str = "smoke",
    track: str = "official",
    test_size: int | None = None,
) -> RunRecord:
    from snnbench.algorithms import algorithms
    from snnbench.provenance import source_sha256

    cls = algorithms.get("bptt")
    metrics = {} if top1 is None else {"top1": top1, "top1_val_selected": top1 + 1.0, "train_time_s": 2.0}
    if test_size is not None:
        metrics["test_size"] = test_size
    return RunRecord(
        run_id=f"{entry}_T{T}_s{seed}_{budget}_deadbeef",
        suite="tiny",
        suite_version=1,
        entry=entry,
        algorithm="bptt",
        algorithm_version=cls.version,
        algorithm_source_sha256=source_sha256(cls),
        dataset="digits",
        T=T,
        seed=seed,
        budget=budget,
        spec={"track": track, "arch": "256", "epochs": 3, "batch_size": 32, "encoding": "direct"},
        spec_hash="deadbeef",
        status=status,  # type: ignore[arg-type]
        metrics=metrics,
        environment={"git": {"revision": "abcdef1234567"}, "device": "cpu"},
        started_at="2026-01-01T00:00:00+00:00",
        finished_at="2026-01-01T00:00:01+00:00",
    )


@pytest.fixture
def suite_with_records(write_suite, tmp_path):
    suite = load_suite(
        write_suite(
            {
                "timesteps": [1, 4],
                "seeds": [0, 1, 2],
                "algorithms": {"bptt": {"arch": "mlp"}, "bptt-arctan": {"algorithm": "bptt", "arch": "mlp"}},
                "reference": [{"algorithm": "bptt", "T": 4, "top1": 97.5, "source": "Someone 2020, Table 1"}],
            }
        )
    )
    store = RecordStore(tmp_path / "results", "tiny")
    values = {
        ("bptt", 1): [80.0, 82.0, 84.0],
        ("bptt", 4): [90.0, 92.0, 94.0],
        ("bptt-arctan", 4): [91.0, 91.0],
    }
    for (entry, T), tops in values.items():
        for seed, top in enumerate(tops):
            store.save(record(entry, T, seed, top))
    store.save(record("bptt-arctan", 4, 2, None, status="diverged"))
    store.save(record("bptt", 4, 0, 10.0, budget="full").model_copy(update={"run_id": "other-budget"}))
    return suite, store


def test_mean_std_n_best_first_and_divergence_counted(suite_with_records):
    suite, store = suite_with_records
    from snnbench.leaderboard import select_records
    from snnbench.records import load_records

    table = build(select_records(load_records(store.root), suite))
    rows = {(r.algorithm, r.T): r for r in table.itertuples()}
    assert list(zip(table["algorithm"], table["T"], strict=True)) == [
        ("bptt", 4),
        ("bptt-arctan", 4),
        ("bptt", 1),
    ]
    assert rows[("bptt", 4)].top1_mean == pytest.approx(92.0) and rows[("bptt", 4)].top1_std == pytest.approx(
        2.0
    )
    assert rows[("bptt", 4)].n == 3  # the full-budget record is not mixed in
    assert rows[("bptt-arctan", 4)].n == 2 and rows[("bptt-arctan", 4)].n_diverged == 1
    assert rows[("bptt", 1)].top1_val_selected_mean == pytest.approx(83.0)
    assert rows[("bptt", 1)].arch == "256" and rows[("bptt", 1)].tuning == "defaults"
    assert rows[("bptt", 4)].stale == 0


def test_files_written_with_reference_rows_apart(suite_with_records):
    suite, store = suite_with_records
    files = write_reports(suite, store.root)
    names = sorted(p.name for p in files)
    assert {"leaderboard.md", "leaderboard.csv", "pareto-official.png", "pareto-official.svg"} <= set(names)
    csv = pd.read_csv(store.root / "leaderboard.csv")
    assert {"algorithm", "T", "top1_mean", "top1_std", "n"} <= set(csv.columns)
    assert csv.loc[0, "top1_mean"] == pytest.approx(92.0)
    markdown = (store.root / "leaderboard.md").read_text()
    # 92 ± t(0.975, 2) · 2 / √3 = 92 ± 4.97; bptt-arctan (91, 91: s = 0, no test-set size) overlaps it
    assert (
        "| 1 | bptt | 4 | 92.00 ± 4.97 | [87.03, 96.97] | 3 | 93.00 | 256 | – | 3 | 32 | direct | defaults | "
        "– | – | – | – |" in markdown
    )
    assert "| 1 | bptt-arctan | 4 | 91.00 ± 0.00 | [91.00, 91.00] | 2 | 92.00 |" in markdown
    # bptt at T = 1 ([77.03, 86.97]) lies below both T = 4 intervals: rank 3 across T, rank 1 at its own T
    assert "| 3 | bptt | 1 | 82.00 ± 4.97 | [77.03, 86.97] |" in markdown
    per_T = markdown.split("### Top-1 at each T")[1].split("### Latency front")[0]
    assert "#### T = 1\n\n| # | algorithm | top-1 (%) | 95 % CI | n | latency front |" in per_T
    assert "| 1 | bptt | 82.00 ± 4.97 | [77.03, 86.97] | 3 | ✓ |" in per_T
    assert "| 1 | bptt-arctan | 91.00 ± 0.00 | [91.00, 91.00] | 2 | ✓ |" in per_T
    assert "## How to read the tables" in markdown and "**#** (tied rank)" in markdown
    measured, published = markdown.split("## Published figures")
    assert "97.5" not in measured
    assert "| bptt | 4 | 97.50 | unknown | – | – | Someone 2020, Table 1 |" in published
    assert "from 9 records" in markdown and "abcdef1234" in markdown
    png = (store.root / "pareto-official.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert "Pareto front" in (store.root / "pareto-official.svg").read_text()


def test_stale_rows_are_flagged(suite_with_records):
    suite, store = suite_with_records
    old = record("bptt", 1, 9, 50.0).model_copy(update={"run_id": "old", "algorithm_source_sha256": "0" * 64})
    store.save(old)
    from snnbench.leaderboard import select_records
    from snnbench.records import load_records

    table = build(select_records(load_records(store.root), suite))
    assert table.set_index(["algorithm", "T"]).loc[("bptt", 1), "stale"] == 1


def test_pareto_front_keeps_rows_beaten_only_within_noise():
    # (cost, CI low, CI high): index 2 has a lower mean than index 1 at a higher cost, but overlaps it
    points = [(1, 78.0, 82.0), (2, 84.0, 86.0), (4, 83.0, 84.5), (8, 90.0, 92.5), (8, 60.0, 70.0)]
    assert pareto_front(points) == [0, 1, 2, 3]  # [60, 70] lies below [90, 92.5] at the same cost
    assert pareto_front([(2, 90.0, 92.0), (1, 92.5, 94.0)]) == [1]  # separably beaten at a lower cost
    assert pareto_front([(1, 90.0, 92.0), (1, 90.0, 92.0)]) == [0, 1]  # equal rows at equal cost: both


def test_tied_ranks_separate_only_disjoint_intervals():
    assert tied_ranks([(90.0, 92.0), (80.0, 82.0), (70.0, 72.0)]) == [1, 2, 3]  # planted separated rows
    assert tied_ranks([(80.0, 82.0), (80.0, 82.0), (90.0, 92.0)]) == [2, 2, 1]  # planted identical rows
    assert tied_ranks([(90.0, 92.0), (91.0, 95.0), (85.0, 90.5)]) == [
        1,
        1,
        2,
    ]  # overlap with one is not enough
    assert tied_ranks([(90.0, 92.0), (92.0, 93.0)]) == [1, 1]  # touching intervals do not separate
    assert tied_ranks([(90.0, 92.0), None, (50.0, 60.0)]) == [1, None, 2]  # the unranked push no one down


def test_ci_half_width_is_student_t_with_a_half_image_floor():
    assert ci_half_width([90.0, 92.0, 94.0]) == pytest.approx(4.302653 * 2 / 3**0.5)
    assert ci_half_width([90.0, 92.0, 94.0], test_size=360) == pytest.approx(4.302653 * 2 / 3**0.5)
    assert ci_half_width([97.5, 97.5, 97.5], test_size=360) == pytest.approx(50 / 360)  # s = 0: half an image
    assert ci_half_width([97.5, 97.5, 97.5]) == 0.0 and math.isnan(ci_half_width([97.5]))


def test_chance_bound_is_the_guessers_95th_percentile():
    from scipy import stats

    assert chance_bound(10, 360) == pytest.approx(100 * 46 / 360)  # 12.78 %: P(X ≤ 46) ≥ 0.95 > P(X ≤ 45)
    assert stats.binom.cdf(46, 360, 0.1) >= 0.95 > stats.binom.cdf(45, 360, 0.1)
    for classes, images in ((2, 100), (100, 10_000), (11, 264)):
        k = round(chance_bound(classes, images) * images / 100)
        assert stats.binom.cdf(k, images, 1 / classes) >= 0.95 > stats.binom.cdf(k - 1, images, 1 / classes)
    with pytest.raises(SnnbenchError, match="positive class and test-set counts"):
        chance_bound(10, 0)


def frame(values: dict[tuple[str, int], list[float]], test_size: int | None = 360) -> pd.DataFrame:
    """Records of entries × T (seeds 0, 1, ... with these top-1s) as load_records would read them."""
    rows = []
    for (entry, T), tops in values.items():
        for seed, top in enumerate(tops):
            data = record(entry, T, seed, top, test_size=test_size).model_dump()
            rows.append({**data, **data["metrics"], "track": "official", "arch": "256", "tuning": "defaults"})
    return pd.DataFrame(rows)


def test_exact_ties_share_a_rank_whatever_their_T_and_separated_rows_do_not():
    table = build(
        frame(
            {
                ("bptt", 4): [90.0, 91.0, 92.0],
                ("bptt", 1): [90.0, 91.0, 92.0],  # an exact tie at another T
                ("bptt-arctan", 4): [50.0, 51.0, 52.0],  # planted far below both
                ("bptt-arctan", 1): [91.0, 91.0, 91.0],  # s = 0: ± half an image, inside bptt's interval
            }
        )
    )
    ranks = {(r.algorithm, r.T): (r.rank, r.rank_at_T) for r in table.itertuples()}
    assert ranks == {
        ("bptt", 1): (1, 1),
        ("bptt", 4): (1, 1),
        ("bptt-arctan", 1): (1, 1),
        ("bptt-arctan", 4): (4, 2),
    }
    text = to_markdown({"official": table}, load_suite("digits-lowT"), 12, [], "full")
    assert "| 1 | bptt | 1 | 91.00 ± 2.48 | [88.52, 93.48] | 3 |" in text
    assert "| 1 | bptt | 4 | 91.00 ± 2.48 | [88.52, 93.48] | 3 |" in text


def test_rows_at_chance_are_listed_apart_unranked_and_off_the_front():
    from snnbench.plots import plot_data

    table = build(
        frame(
            {
                ("bptt", 1): [10.0, 10.28, 9.72],  # 10 % on 10 classes: chance, and alone at T = 1
                ("bptt", 4): [12.5, 12.78, 12.22],  # under the 12.78 % bound: chance too
                ("bptt-arctan", 4): [13.0, 13.06, 12.94],  # 13.0 > 12.78 %: ranked
            }
        )
    )
    rows = {(r.algorithm, r.T): r for r in table.itertuples()}
    assert (
        rows[("bptt", 1)].at_chance and rows[("bptt", 4)].at_chance and not rows[("bptt-arctan", 4)].at_chance
    )
    assert rows[("bptt", 1)].chance_top1 == pytest.approx(100 * 46 / 360)
    assert pd.isna(rows[("bptt", 1)].rank) and pd.isna(rows[("bptt", 4)].rank_at_T)
    assert rows[("bptt-arctan", 4)].rank == 1 and rows[("bptt-arctan", 4)].latency_front
    assert not rows[("bptt", 1)].latency_front  # nothing beats it at T = 1, yet chance is never on a front
    assert list(table["algorithm"])[0] == "bptt-arctan"  # ranked rows first
    text = to_markdown({"official": table}, load_suite("digits-lowT"), 9, [], "full")
    assert "At chance (top-1 ≤ 12.78 %), unranked: bptt 10.00 ± 0.70 (n = 3)." in text
    assert "| – (chance) | bptt | 1 | 10.00 ± 0.70 | [9.30, 10.70] |" in text
    front = text.split("### Latency front")[1].split("### All rows")[0]
    assert "bptt-arctan" in front and "| 1 | bptt |" not in front
    suite = load_suite("digits-lowT")
    for axis in ("T", "energy"):
        data = plot_data(table.assign(energy_nj_mean=[3.0, 1.0, 2.0]), suite, axis)
        assert [y for _, y in data.front] == [pytest.approx(13.0)]


def test_a_row_beaten_only_within_noise_stays_on_the_latency_front():
    from snnbench.plots import plot_data

    table = build(
        frame(
            {
                ("bptt", 1): [95.0, 96.0, 97.0],  # [93.52, 98.48]
                ("bptt", 4): [94.5, 95.0, 95.5],  # lower mean at a higher T, but overlapping: on the front
                ("bptt-arctan", 4): [80.0, 81.0, 82.0],  # separably below bptt at T = 1: off
            }
        )
    )
    on = {(r.algorithm, r.T) for r in table.itertuples() if r.latency_front}
    assert on == {("bptt", 1), ("bptt", 4)}
    data = plot_data(table, load_suite("digits-lowT"), "T")
    assert sorted(y for _, y in data.front) == [pytest.approx(95.0), pytest.approx(96.0)]
    assert [y for _, y in data.best] == [pytest.approx(96.0)]  # the step line: best mean at ≤ T


def test_a_single_seed_has_no_interval_and_no_records_is_an_empty_table():
    assert build(pd.DataFrame()).empty
    one = pd.DataFrame([{**record("bptt", 2, 0, 70.0).model_dump(), **{"top1": 70.0, "track": "official"}}])
    table = build(one)
    assert table.loc[0, "top1_std"] == 0.0 and table.loc[0, "n"] == 1 and pd.isna(table.loc[0, "rank"])
    text = to_markdown({"official": table}, load_suite("digits-lowT"), 1, [], "full")
    assert "| – (n < 2) | bptt | 2 | 70.00 | – | 1 |" in text
    assert "Fewer than two ok seeds (no interval), unranked: bptt 70.00 (n = 1)." in text


def test_rows_of_different_tracks_are_never_ranked_together(suite_with_records):
    suite, store = suite_with_records
    from snnbench.leaderboard import by_track, select_records
    from snnbench.records import load_records

    store.save(record("bptt-arctan", 1, 0, 99.0, track="controlled").model_copy(update={"run_id": "ctl"}))
    df = select_records(load_records(store.root), suite)
    with pytest.raises(SnnbenchError, match="tracks controlled, official cannot be ranked in one table"):
        build(df)
    tables = by_track(df)
    assert list(tables) == ["controlled", "official"]
    assert list(tables["controlled"]["algorithm"]) == ["bptt-arctan"]  # 99 % ranks only in its own track
    assert tables["official"].loc[0, "top1_mean"] == pytest.approx(92.0)
    write_reports(suite, store.root)
    markdown = (store.root / "leaderboard.md").read_text()
    controlled, official = markdown.split("## Track `official`")
    assert "99.00" in controlled and "99.00" not in official.split("## Published")[0]
    assert (store.root / "pareto-controlled.png").is_file()


def test_plot_shows_the_front_clips_outliers_colours_published_points_and_separates_stacked_ones(
    suite_with_records,
):
    from snnbench.plots import plot_data

    suite, _ = suite_with_records
    mean, half = pd.Series([20.0, 96.0, 90.0, 95.0, 94.0]), pd.Series([1.0, 0.5, 2.0, 0.0, float("nan")])
    table = pd.DataFrame(
        {
            "algorithm": ["a", "a", "b", "b", "bptt"],
            "T": [1, 4, 1, 4, 4],
            "top1_mean": mean,
            "top1_ci95": half,
            "top1_ci_low": mean - half,
            "top1_ci_high": mean + half,
            "rank": pd.array([4, 1, 3, 2, None], dtype="Int64"),  # bptt: one seed, unranked
            "n": [3, 3, 3, 3, 1],
            "energy_nj_mean": [1.0, 2.0, 1.0, 3.0, 5.0],
        }
    )
    data = plot_data(table, suite, "T")
    # front: b at T=1 (90) and a at T=4 (96); a's 20 % at T=1 is > 25 points below it: clipped, not shown
    assert [y for _, y in data.front] == [90.0, 96.0]
    assert data.y_range is not None and 85.0 < data.y_range[0] < 88.0 and data.y_range[1] > 100.0
    assert [(name, y) for name, _, y in data.clipped] == [("a", 20.0)]
    # three methods at T=4 drawn apart, symmetric around 4 on the log axis
    at4 = sorted(dx for s in data.series for x, dx in zip(s.x, s.x_drawn, strict=True) if x == 4)
    assert len(set(at4)) == 3 and at4[1] == pytest.approx(4.0) and at4[0] * at4[2] == pytest.approx(16.0)
    # the suite's published bptt point (T=4, 97.5) in bptt's colour, inside the range
    (published,) = data.published
    bptt = next(s for s in data.series if s.name == "bptt")
    assert published.colour == bptt.colour and published.label == "bptt (published, selection not stated)"
    energy = plot_data(table, suite, "energy")
    assert energy.published == [] and "0.9 pJ" in energy.subtitle and "4.6 pJ" in energy.subtitle


def test_latency_read_out_columns_are_shown_where_any_record_carries_them():
    """A first-spike method's records carry top1_potential and no_decision_fraction: the table gets those
    columns, labelled (NaN in the rows of methods without them), and a table without such records none."""
    from snnbench.leaderboard import _markdown_table

    plain = frame({("bptt", 4): [90.0, 92.0]})
    assert not any(c.startswith(("top1_potential", "no_decision")) for c in build(plain).columns)
    latency = frame({("stdbp", 4): [60.0, 62.0]})
    latency["top1_potential"], latency["no_decision_fraction"] = [80.0, 84.0], [0.25, 0.35]
    table = build(pd.concat([plain, latency], ignore_index=True))
    rows = {r["algorithm"]: r for r in table.to_dict("records")}
    assert rows["stdbp"]["top1_potential_mean"] == pytest.approx(82.0)
    assert rows["stdbp"]["no_decision_fraction_mean"] == pytest.approx(0.30)
    assert math.isnan(rows["bptt"]["top1_potential_mean"])
    head = _markdown_table(table)[0]
    assert "top-1, potential read-out (%)" in head and "| undecided |" in head


def test_site_leaderboard_shows_the_latency_read_out_columns():
    from snnbench.report import _leaderboard

    latency = frame({("stdbp", 4): [60.0, 62.0]})
    latency["top1_potential"], latency["no_decision_fraction"] = [80.0, 84.0], [0.25, 0.35]
    table = build(latency).assign(machine_code="M1")
    page = _leaderboard(table, {("stdbp", 4): [(0, "a"), (1, "b")]}, "official")
    assert ">top-1, potential read-out (%)</th>" in page and ">undecided</th>" in page
    assert 'data-v="82.0"' in page


def test_an_interval_is_clipped_to_the_range_of_a_top1_and_ranks_do_not_move():
    """Three seeds with a wide spread give a t interval past 100 (or below 0): the table shows its ends
    clipped to [0, 100], the half-width unchanged, and the ranks are those of the unclipped ends."""
    wide = {
        ("bptt", 1): [99.0, 99.5, 80.0],
        ("bptt-arctan", 1): [3.0, 1.0, 40.0],
        ("bptt", 2): [98.0, 98.5, 99.0],
    }
    table = build(frame(wide))
    rows = {(r.algorithm, r.T): r for r in table.itertuples()}
    high, low = rows[("bptt", 1)], rows[("bptt-arctan", 1)]
    assert high.top1_ci_high == 100.0 and high.top1_mean + high.top1_ci95 > 100.0
    assert low.top1_ci_low == 0.0 and low.top1_mean - low.top1_ci95 < 0.0
    assert high.top1_ci_low == pytest.approx(high.top1_mean - high.top1_ci95)
    assert (high.rank, rows[("bptt", 2)].rank) == (1, 1)
    text = to_markdown({"official": table}, load_suite("digits-lowT"), 9, [], "full")
    assert f"[{high.top1_ci_low:.2f}, 100.00]" in text
