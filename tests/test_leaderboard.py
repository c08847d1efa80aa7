"""Leaderboard tables and Pareto plots built from records."""

from __future__ import annotations

import pandas as pd
import pytest

from snnbench.errors import SnnbenchError
from snnbench.leaderboard import build, to_markdown, write_reports
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
) -> RunRecord:
    from snnbench.algorithms import algorithms
    from snnbench.provenance import source_sha256

    cls = algorithms.get("bptt")
    metrics = {} if top1 is None else {"top1": top1, "top1_val_selected": top1 + 1.0, "train_time_s": 2.0}
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
    assert (
        "| 1 | bptt | 4 | 92.00 ± 2.00 | 3 | 93.00 | 256 | – | 3 | 32 | direct | dataset | defaults |"
        in markdown
    )
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


def test_pareto_front():
    points = [(1, 80.0), (2, 85.0), (4, 84.0), (4, 92.0), (8, 91.0), (8, 92.0)]
    assert pareto_front(points) == [(1, 80.0), (2, 85.0), (4, 92.0)]


def test_a_single_seed_has_zero_std_and_no_records_is_an_empty_table():
    assert build(pd.DataFrame()).empty
    one = pd.DataFrame([{**record("bptt", 2, 0, 70.0).model_dump(), **{"top1": 70.0, "track": "official"}}])
    table = build(one)
    assert table.loc[0, "top1_std"] == 0.0 and table.loc[0, "n"] == 1
    text = to_markdown({"official": table}, load_suite("digits-lowT"), 1, [], "full")
    assert "| 1 | bptt | 2 | 70.00 ± 0.00 | 1 |" in text


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
    table = pd.DataFrame(
        {
            "algorithm": ["a", "a", "b", "b", "bptt"],
            "T": [1, 4, 1, 4, 4],
            "top1_mean": [20.0, 96.0, 90.0, 95.0, 94.0],
            "top1_std": [1.0, 0.5, 2.0, 0.0, float("nan")],
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
    assert published.colour == bptt.colour and published.label == "bptt (published, unknown)"
    energy = plot_data(table, suite, "energy")
    assert energy.published == [] and "0.9 pJ" in energy.subtitle and "4.6 pJ" in energy.subtitle
