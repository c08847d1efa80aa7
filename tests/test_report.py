"""The HTML report, ``leaderboard --format json``, ``show`` and ``status``, built from hand-made records."""

from __future__ import annotations

import json
import os
import re
import socket
from pathlib import Path

import pytest
from test_leaderboard import record as leaderboard_record
from typer.testing import CliRunner

from snnbench.cli import app
from snnbench.plots import BEST_LABEL, FRONT_LABEL
from snnbench.records import RecordStore, RunRecord
from snnbench.suite import load_suite

runner = CliRunner()


def record(
    entry: str, T: int, seed: int, top1: float, status: str = "ok", seconds: int = 10, track: str = "official"
) -> RunRecord:
    """test_leaderboard's record with a history, cost metrics, a configuration and a duration."""
    base = leaderboard_record(entry, T, seed, top1, status=status, track=track)
    history = [{"epoch": e, "loss": 1.0 / e, "val_top1": top1 - 3 + e, "train_top1": top1} for e in (1, 2, 3)]
    return base.model_copy(
        update={
            "spec": {**base.spec, "hparams": {"lr": 0.01}},
            "metrics": {**base.metrics, "energy_nj": 10.0 * T, "synops_per_sample": 9.0 * T},
            "history": history,
            "finished_at": f"2026-01-01T00:00:{seconds:02d}+00:00",
        }
    )


@pytest.fixture
def results(write_suite, tmp_path):
    suite = load_suite(
        write_suite(
            {
                "timesteps": [1, 4],
                "seeds": [0, 1],
                "algorithms": {
                    "bptt": {
                        "arch": "mlp",
                        "fidelity": {
                            "source": "someone/code@abc123",
                            "deviations": [
                                {"field": "dataset", "official": "MNIST", "reason": "runs offline"}
                            ],
                        },
                    },
                    "bptt-arctan": {"algorithm": "bptt", "arch": "mlp"},
                },
                "reference": [{"algorithm": "bptt", "T": 4, "top1": 97.5, "source": "Someone 2020, Table 1"}],
            }
        )
    )
    store = RecordStore(tmp_path / "results", "tiny")
    for entry, T, seed, top1 in [("bptt", 1, 0, 80.0), ("bptt", 1, 1, 84.0), ("bptt", 4, 0, 92.0)]:
        store.save(record(entry, T, seed, top1))
    store.save(record("bptt-arctan", 4, 0, 95.0))
    return suite, store


def test_site_pages_are_offline_sortable_and_link_every_run(results):
    from snnbench.report import write_site

    suite, store = results
    files = write_site(suite, store.root)
    site = store.root / "site"
    assert {p.name for p in files} >= {"index.html", "plotly-basic.min.js", "site.js", "site.css"}
    assert sorted(p.name for p in (site / "runs").iterdir()) == sorted(
        f"{p.stem}.html" for p in store.runs.iterdir()
    )
    index = (site / "index.html").read_text()
    for page in [index, *(p.read_text() for p in (site / "runs").iterdir())]:
        assert not re.search(r'(src|href)="(https?:)?//', page)  # nothing fetched from the network
    board = index.split('id="leaderboard-official"')[1].split("<tbody>")[1].split("</tbody>")[0]
    rows = re.findall(r"<tr(?: class=\"stale\")?>(.*?)</tr>", board)
    assert len(rows) == 3  # bptt T1, bptt T4, bptt-arctan T4
    bptt1 = next(r for r in rows if '<td>bptt</td><td class="num" data-v="1">' in r)
    assert 'data-v="82.0">82.00<' in bptt1 and 'href="runs/bptt_T1_s1_smoke_deadbeef.html"' in bptt1
    # 82 ± t(0.975, 1) · 2.83 / √2 = 82 ± 25.41; the one-seed rows have no interval and no rank
    assert bptt1.startswith('<td class="num" data-v="1">1</td>') and 'data-v="25.41' in bptt1
    assert [r.split("</td>")[0] for r in rows[1:]] == ['<td class="num" data-v="">n &lt; 2'] * 2
    per_T = index.split('id="leaderboard-official"')[0].split("<h3>Top-1 at each T</h3>")[1]
    assert "<h4>T = 1</h4>" in per_T and "<td>82.00 ± 25.41</td><td>[56.59, 100.00]</td>" in per_T
    assert (
        '<h4>T = 4</h4><p class="muted">Unranked, fewer than two ok seeds: bptt-arctan 95.00 (n = 1), '
        "bptt 92.00 (n = 1).</p>" in per_T
    )
    assert index.count('class="plot"') == 6  # three Pareto plots: a div and its figure each
    figure = json.loads(re.search(r'data-target="pareto-official-T">(.*?)</script>', index).group(1))
    names = [trace["name"] for trace in figure["data"]]
    assert names == ["bptt", "bptt-arctan", FRONT_LABEL, BEST_LABEL, "bptt (published, selection not stated)"]
    assert figure["data"][2]["x"] == [1] and figure["data"][2]["y"] == [82]  # the only ranked row
    assert figure["data"][4]["marker"]["color"] == figure["data"][0]["marker"]["color"]
    assert "Someone 2020, Table 1" in index
    run = (site / "runs" / "bptt_T4_s0_smoke_deadbeef.html").read_text()
    assert "snnbench run --suite tiny --budget smoke --algorithms bptt --timesteps 4 --seeds 0" in run
    assert '"name":"val_top1 (%)"' in run and "abcdef1234567" in run and "hparams.lr" in run
    assert "Fidelity card" in run and "ours None, official &#x27;MNIST&#x27;: runs offline" in run


def test_site_ranks_each_track_apart_with_published_points_beside_the_official_one(results):
    from snnbench.report import write_site

    suite, store = results
    store.save(record("bptt-arctan", 1, 0, 99.0, track="controlled").model_copy(update={"run_id": "ctl"}))
    write_site(suite, store.root)
    index = (store.root / "site" / "index.html").read_text()
    assert re.findall(r'id="leaderboard-([^"]+)"', index) == ["controlled", "official"]
    controlled, official = index.split('id="leaderboard-official"')
    assert "99.00" in controlled.split('id="leaderboard-controlled"')[1] and "99.00" not in official
    for track, published in (("controlled", []), ("official", ["bptt (published, selection not stated)"])):
        figure = json.loads(re.search(rf'data-target="pareto-{track}-T">(.*?)</script>', index).group(1))
        assert [t["name"] for t in figure["data"] if "published" in t["name"]] == published


def test_site_is_deterministic_and_checked(results):
    from snnbench.report import check_site, write_site

    suite, store = results
    write_site(suite, store.root)
    assert check_site(suite, store.root) == []
    site = store.root / "site"
    (site / "runs" / "stray.html").write_text("old")
    index = site / "index.html"
    index.write_text(index.read_text().replace("82.00", "83.00"))
    assert check_site(suite, store.root) == [
        f"{site / 'runs/stray.html'}: no record produces it",
        f"{index}: differs from what the records produce",
    ]
    store.record_path("bptt_T1_s1_smoke_deadbeef").unlink()
    write_site(suite, store.root)  # the page of a run that is gone goes too
    assert not (site / "runs" / "bptt_T1_s1_smoke_deadbeef.html").exists()
    assert check_site(suite, store.root) == []
    result = runner.invoke(
        app, ["report", "--suite", "tiny.yaml", "--out", str(store.root.parent), "--check"]
    )
    assert result.exit_code == 0 and "the report matches the records" in result.output


def test_report_out_is_the_records_folder_as_everywhere_and_site_dir_the_site(results, tmp_path):
    import shutil

    suite, store = results
    shutil.copytree(store.runs, tmp_path / "mine" / "tiny" / "runs")  # the user's own records folder
    store.record_path("bptt_T1_s1_smoke_deadbeef").unlink()  # the default results/ differs from it
    result = runner.invoke(app, ["report", "--suite", "tiny.yaml", "--out", "mine"])
    assert result.exit_code == 0, result.output
    index = Path("mine") / "tiny" / "site" / "index.html"  # OUT/<suite>/site, from OUT's records
    assert f"open {index}" in result.output and not (store.root / "site").exists()
    assert "bptt_T1_s1_smoke_deadbeef" in index.read_text()
    elsewhere = tmp_path / "elsewhere"
    result = runner.invoke(
        app, ["report", "--suite", "tiny.yaml", "--out", "mine", "--site-dir", str(elsewhere)]
    )
    assert result.exit_code == 0 and (elsewhere / "index.html").read_bytes() == index.read_bytes()


def test_leaderboard_json_has_units_and_provenance(results):
    suite, store = results
    result = runner.invoke(
        app, ["leaderboard", "--suite", "tiny.yaml", "--out", str(store.root.parent), "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["budget"] == "smoke" and document["n_records"] == 4
    assert document["columns"]["energy_nj_mean"]["unit"] == "nJ"
    assert document["columns"]["top1_mean"]["higher_is_better"] is True
    row = next(r for r in document["rows"] if r["algorithm"] == "bptt" and r["T"] == 1)
    assert row["top1_mean"] == 82.0 and row["n"] == 2
    assert row["provenance"]["run_ids"] == ["bptt_T1_s0_smoke_deadbeef", "bptt_T1_s1_smoke_deadbeef"]
    assert row["provenance"]["git_revisions"] == ["abcdef1234567"]
    assert document["published"][0]["source"] == "Someone 2020, Table 1"


def test_show_a_run_as_text_or_json_and_suggest_near_ids(results):
    _, store = results
    out = str(store.root.parent)
    text = runner.invoke(app, ["show", "bptt_T4_s0_smoke_deadbeef", "--out", out])
    assert text.exit_code == 0, text.output
    assert "--timesteps 4 --seeds 0" in text.output and "energy_nj (nJ)" in text.output
    as_json = runner.invoke(app, ["show", "bptt_T4_s0_smoke_deadbeef", "--out", out, "--format", "json"])
    assert json.loads(as_json.stdout)["metrics"]["top1"] == 92.0
    wrong = runner.invoke(app, ["show", "bptt_T4_s0_smoke_deadbeaf", "--out", out])
    assert wrong.exit_code == 2
    assert wrong.stderr.startswith("Error: no record 'bptt_T4_s0_smoke_deadbeaf' under ")
    assert "did you mean 'bptt_T4_s0_smoke_deadbeef'" in wrong.stderr


def test_status_counts_states_and_estimates_time_left(results):
    from snnbench.status import suite_status, summary_line
    from snnbench.suite import expand

    suite, store = results
    ids = {(s.entry, s.T, s.seed): s.run_id for s in expand(suite)}
    store.save(record("bptt-arctan", 1, 0, 50.0, status="failed", seconds=59).model_copy(
        update={"run_id": ids[("bptt-arctan", 1, 0)]}
    ))  # fmt: skip
    stale = record("bptt", 4, 1, 90.0, seconds=30).model_copy(
        update={"run_id": ids[("bptt", 4, 1)], "algorithm_source_sha256": "0" * 64}
    )
    store.save(stale)
    for key in [("bptt", 1, 0), ("bptt", 1, 1), ("bptt", 4, 0)]:  # the fixture's ids differ from the grid's
        store.save(record(*key, 80.0).model_copy(update={"run_id": ids[key]}))
    store.checkpoints.mkdir(parents=True, exist_ok=True)
    (store.checkpoints / f"{ids[('bptt-arctan', 1, 1)]}.lock").write_text(
        f"{socket.gethostname()}:{os.getpid()}"
    )
    store.checkpoint_path(ids[("bptt-arctan", 4, 0)]).write_bytes(b"")
    statuses = {s.entry: s for s in suite_status(suite, store.root.parent)}
    assert dict(statuses["bptt"].counts) == {"done": 3, "stale": 1}
    assert dict(statuses["bptt-arctan"].counts) == {"failed": 1, "running": 1, "resumable": 1, "pending": 1}
    assert statuses["bptt"].seconds_per_run == pytest.approx((10 + 10 + 10 + 30) / 4)
    assert statuses["bptt"].eta_s == 0.0 and statuses["bptt-arctan"].eta_s is None  # its only record failed
    assert statuses["bptt-arctan"].running == [
        f"{ids[('bptt-arctan', 1, 1)]} ({socket.gethostname()}:{os.getpid()})"
    ]
    assert summary_line(list(statuses.values())) == (
        "8 runs: 3 done, 1 stale, 1 failed, 1 running, 1 resumable, 1 pending; time left ≈ 0 s (one run at a "
        "time) plus the runs of bptt-arctan (no finished record to estimate from)"
    )
    cli = runner.invoke(app, ["status", "--suite", "tiny.yaml", "--out", str(store.root.parent)])
    assert cli.exit_code == 0 and "running: " in cli.output and "8 runs: 3 done" in cli.output
