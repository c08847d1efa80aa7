"""The machine in every comparison (issue 44 item 4): each record's machine kind (device, CPU name, family and
model); ``leaderboard`` and the site mark rows run on another machine kind than most records (‡) or on
several (†) and name the kinds; ``compare`` says on the line when a baseline ran on another machine and
reminds of the cross-CPU tolerance (the dirty-tree check of ``leaderboard --check``: tests/test_check.py).
Built on copies of the committed digits records at T = 4, relabelled as two machines: bptt and ottt as an
AMD EPYC family 23, tssl-bp as an Intel Xeon (the committed ones ran on an EPYC family 25 model 17)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from test_rows import committed, rehashed, write
from typer.testing import CliRunner

from snnbench.cli import app
from snnbench.compare import cells, compare, notes
from snnbench.leaderboard import by_track, select_records, to_markdown
from snnbench.records import load_records
from snnbench.rows import machine_counts, machine_kind
from snnbench.suite import load_suite

runner = CliRunner()
EPYC, XEON = "cpu: AMD EPYC family 23 model 1", "cpu: Intel Xeon family 6 model 207"


def committed_environment(entry: str = "bptt") -> dict:
    return json.loads(committed(entry, 4)[0].read_text())["environment"]


def environment(entry: str) -> dict:
    """The machine a fixture record of ``entry`` is relabelled as: tssl-bp the Xeon, the others the EPYC."""
    if entry == "tssl-bp":
        return {
            **committed_environment(),
            "cpu": "Intel(R) Xeon(R) Processor",
            "cpu_identity": "family 6 model 207 stepping 2",
        }
    return {**committed_environment(), "cpu": "AMD EPYC", "cpu_identity": "family 23 model 1 stepping 2"}


def test_machine_kind_of_committed_records_and_other_environments():
    here = committed_environment()
    assert (here["cpu"], here["cpu_identity"]) == ("AMD EPYC", "family 25 model 17 stepping 1")
    assert machine_kind(here) == "cpu: AMD EPYC family 25 model 17"
    epyc, xeon = environment("bptt"), environment("tssl-bp")
    assert machine_kind(epyc) == EPYC
    assert machine_kind(xeon) == XEON
    # the stepping does not make another kind; the model does
    assert machine_kind({**epyc, "cpu_identity": "family 23 model 1 stepping 5"}) == EPYC
    assert machine_kind({**epyc, "cpu_identity": "family 23 model 49 stepping 0"}) == (
        "cpu: AMD EPYC family 23 model 49"
    )
    brand = "Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz"
    full = {**xeon, "cpu": brand, "cpu_identity": "family 6 model 106"}
    assert machine_kind(full) == "cpu: Intel Xeon Platinum 8375C family 6 model 106"
    assert machine_kind({**epyc, "cpu_identity": ""}) == "cpu: AMD EPYC (family unknown)"
    gpu = {**epyc, "device": "cuda:0", "gpu": "NVIDIA H100 80GB HBM3"}
    assert machine_kind(gpu) == "cuda: NVIDIA H100 80GB HBM3"
    assert machine_kind({}) == machine_kind(None) == "unknown"


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    """bptt, ottt (AMD EPYC) and tssl-bp (Intel Xeon) at T = 4, three seeds each."""
    target = tmp_path / "results" / "digits-lowT" / "runs"
    target.mkdir(parents=True)
    for entry in ("bptt", "ottt", "tssl-bp"):
        for path in committed(entry, 4):
            shutil.copy(path, target)
            on(target / path.name, environment(entry))
    return target


def on(path: Path, environment: dict) -> None:
    """Rewrite the record at ``path`` as if it had run on ``environment`` (content hash recomputed)."""
    data = json.loads(path.read_text())
    path.unlink()
    write(path.parent, rehashed(data, environment=environment), path.name)


def records(runs: Path):
    return select_records(load_records(runs.parent), load_suite("digits-lowT"))


def markdown(runs: Path) -> str:
    df = records(runs)
    return to_markdown(by_track(df), load_suite("digits-lowT"), len(df), [], "full", machine_counts(df))


def test_leaderboard_marks_rows_of_another_machine_and_of_several_and_names_the_kinds(runs):
    on(sorted(runs.glob("ottt_T4_s0_*.json"))[0], environment("tssl-bp"))  # one ottt seed on the Xeon
    df = records(runs)
    assert machine_counts(df) == {EPYC: 5, XEON: 4}
    text = markdown(runs)
    assert f"M1 = {EPYC} (5 records), M2 = {XEON} (4 records)" in text
    assert "‡ after a name: the row ran on another machine kind than most records (M1)" in text
    assert "up to 1.94 points" in text
    per_T = text.split("#### T = 4")[1].split("### Latency front")[0]
    assert "| tssl-bp ‡ |" in per_T and "| ottt † |" in per_T and "| bptt |" in per_T
    every = text.split("### All rows")[1]
    header = next(line for line in every.splitlines() if line.startswith("| # |"))
    assert header.endswith("| stale | machine |")
    rows = [line for line in every.splitlines() if " | 4 | " in line]
    ends = {line.split(" | ")[1]: line.rsplit(" | ", 1)[1] for line in rows}
    assert ends == {"bptt": "M1 |", "ottt †": "M1+M2 |", "tssl-bp ‡": "M2 |"}
    table = by_track(df)["controlled"].set_index("algorithm")["machine"]
    assert table.to_dict() == {"bptt": EPYC, "ottt": f"{EPYC} + {XEON}", "tssl-bp": XEON}


def test_one_machine_kind_marks_no_row_and_the_legend_names_it(runs):
    for path in runs.glob("tssl-bp_*.json"):
        on(path, environment("bptt"))
    text = markdown(runs)
    line = f"- **machine** (device, CPU name, family and model): every record ran on M1 = {EPYC} (9 records)."
    assert line in text
    assert "‡" not in text and "†" not in text


def test_the_majority_is_the_kind_of_most_records_whatever_its_name(runs):
    for path in runs.glob("bptt_*.json"):
        on(path, environment("tssl-bp"))
    assert list(machine_counts(records(runs)).items()) == [(XEON, 6), (EPYC, 3)]
    text = markdown(runs)
    assert f"M1 = {XEON} (6 records), M2 = {EPYC} (3 records)" in text
    per_T = text.split("#### T = 4")[1].split("### Latency front")[0]
    assert "| ottt ‡ |" in per_T and "| bptt |" in per_T and "| tssl-bp |" in per_T


def test_the_site_marks_rows_and_shows_each_rows_machine(runs):
    from snnbench.report import write_site

    on(sorted(runs.glob("ottt_T4_s0_*.json"))[0], environment("tssl-bp"))
    site = write_site(load_suite("digits-lowT"), runs.parent)
    index = next(p for p in site if p.name == "index.html").read_text()
    assert f"M1 = {EPYC} (5 records), M2 = {XEON} (4 records)" in index
    assert "<td>tssl-bp ‡</td>" in index and "<td>ottt †</td>" in index and "<td>bptt</td>" in index
    assert f'<td title="{XEON}">M2</td>' in index and f'<td title="{EPYC} + {XEON}">M1+M2</td>' in index


def test_compare_says_on_the_line_when_a_baseline_ran_on_another_machine(runs):
    suite = load_suite("digits-lowT")
    rows = {r.baseline: r for r in compare(records(runs), suite, "bptt", ["ottt", "tssl-bp"])}
    assert (rows["ottt"].new_machine, rows["ottt"].base_machine) == (EPYC, EPYC)
    assert rows["tssl-bp"].base_machine == XEON and rows["tssl-bp"].other_machine
    assert not rows["ottt"].other_machine
    assert cells(rows["ottt"])["baseline"] == "ottt" and "machine" not in cells(rows["ottt"])["verdict"]
    assert cells(rows["tssl-bp"])["baseline"] == "tssl-bp (other machine)"
    # Δ within the tolerance (tssl-bp 97.83 against bptt 96.48 at T = 4): the verdict says both
    assert abs(rows["tssl-bp"].difference) <= rows["tssl-bp"].tolerance
    verdict = cells(rows["tssl-bp"])["verdict"]
    assert "Δ within ±1.94 points, what another CPU family moves a mean" in verdict
    assert verdict.endswith("; other machine")
    assert rows["tssl-bp"].verdict.startswith("not separated")  # the verdict itself is unchanged
    assert notes(list(rows.values()))[0] == (
        f"Machine: the method ran on {EPYC}; baselines marked (other machine): tssl-bp on {XEON}. A CPU "
        "change alone moved a row's mean by up to 1.94 points."
    )
    same = compare(records(runs), suite, "bptt", ["ottt"])
    assert notes(same)[0] == f"Machine: the method and every measured baseline ran on {EPYC}."


def test_compare_beyond_the_tolerance_on_another_machine_reminds_of_it(runs):
    for path in runs.glob("ottt_*.json"):
        on(path, environment("tssl-bp"))
    (row,) = compare(records(runs), load_suite("digits-lowT"), "bptt", ["ottt"])  # Δ 2.04 at T = 4
    assert row.other_machine and abs(row.difference) > row.tolerance
    assert cells(row)["verdict"].endswith("; other machine: up to ±1.94 points may be the CPU")


def test_compare_command_shows_the_machine_at_80_columns(runs, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    out = str(runs.parent.parent)
    args = ["compare", "--suite", "digits-lowT", "--method", "bptt", "--baselines", "ottt,tssl-bp"]
    args += ["--out", out]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert max(len(line) for line in result.output.splitlines()) <= 80
    assert "(other" in result.output and "machine)" in result.output
    flat = " ".join(result.output.split())
    assert f"Machine: the method ran on {EPYC}; baselines marked (other machine): tssl-bp on {XEON}." in flat
