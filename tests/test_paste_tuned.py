"""tools/paste_tuned.py: the tuned blocks it writes say how each value was chosen, its trial budget too."""

import importlib.util
import json
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("paste_tuned", ROOT / "tools" / "paste_tuned.py")
paste_tuned = importlib.util.module_from_spec(spec)
spec.loader.exec_module(paste_tuned)


def _record(tmp_path: Path, name: str, budget: str) -> str:
    path = tmp_path / name
    chosen = {"values": {"lr": 0.002}, "val_top1": 81.25, "trial": 3}
    path.write_text(
        json.dumps({"chosen": chosen, "budget": {"trials": 8, "T": 4, "budget": budget}, "trials": [{}] * 8})
    )
    return str(path)


def _block(record: str) -> SimpleNamespace:
    return SimpleNamespace(values={"lr": 0.002}, trials=8, record=record)


def test_a_value_chosen_on_a_reduced_budget_says_so_and_one_on_the_default_budget_does_not(tmp_path):
    reduced, full = _record(tmp_path, "a_T1.json", "tune"), _record(tmp_path, "a_T2.json", "full")
    tuned = SimpleNamespace(by_T={1: _block(reduced), 2: _block(full)})
    lines = paste_tuned.block_lines(tuned, "full")
    assert lines[:2] == ["    tuned:", "      by_T:"]
    assert lines[2].endswith("# val top-1 81.25 % (trial 3, tune budget)")
    assert lines[3].endswith("# val top-1 81.25 % (trial 3)")
    assert "record: " + reduced in lines[2]


def test_paste_replaces_only_the_entry_s_tuned_block():
    lines = [
        "algorithms:",
        "  a:",
        "    track: controlled",
        "    tuned: {old}",
        "    arch: mlp",
        "  b:",
        "    tuned: x",
    ]
    new = paste_tuned.paste(lines, "a", ["    tuned: {new}"])
    assert new == [
        "algorithms:",
        "  a:",
        "    track: controlled",
        "    tuned: {new}",
        "    arch: mlp",
        "  b:",
        "    tuned: x",
    ]


def test_algorithms_pastes_only_those_entries_and_needs_no_record_of_the_others(tmp_path, monkeypatch):
    """``--algorithms bptt``: bptt's block takes its records' choice; bntt's stays as written although its
    record moved, and an entry without records (multispike-tbp's removed here) is no error."""
    import shutil
    import sys

    suite = tmp_path / "digits-lowT.yaml"
    suite.write_text((ROOT / "suites" / "digits-lowT.yaml").read_text())
    tuning = tmp_path / "results" / "digits-lowT" / "tuning"
    shutil.copytree(ROOT / "results" / "digits-lowT" / "tuning", tuning)
    for name in ("bptt_T1", "bntt_T1"):
        path = tuning / f"{name}.json"
        record = json.loads(path.read_text())
        record["chosen"]["values"]["lr"] = 0.0123
        path.write_text(json.dumps(record))
    for untuned in tuning.glob("multispike-tbp*"):  # an entry with no tuning record yet
        untuned.unlink()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["paste_tuned.py", str(suite), "--algorithms", "bptt"])
    paste_tuned.main()
    lines = suite.read_text().splitlines()
    assert any("lr: 0.0123" in line and "bptt_T1.json" in line for line in lines)
    assert not any("lr: 0.0123" in line and "bntt_T1.json" in line for line in lines)


def test_timesteps_pastes_a_per_T_block_of_only_those_T(tmp_path, monkeypatch):
    """``--algorithms bptt --timesteps 1,2``: bptt's block holds T = 1 and 2 only (the other T run untuned
    until their records exist)."""
    import shutil
    import sys

    suite = tmp_path / "digits-lowT.yaml"
    suite.write_text((ROOT / "suites" / "digits-lowT.yaml").read_text())
    shutil.copytree(
        ROOT / "results" / "digits-lowT" / "tuning", tmp_path / "results" / "digits-lowT" / "tuning"
    )
    monkeypatch.chdir(tmp_path)
    argv = ["paste_tuned.py", str(suite), "--algorithms", "bptt", "--timesteps", "1,2"]
    monkeypatch.setattr(sys, "argv", argv)
    paste_tuned.main()
    lines = suite.read_text().splitlines()
    assert any("bptt_T1.json" in line for line in lines) and any("bptt_T2.json" in line for line in lines)
    assert not any("bptt_T4.json" in line for line in lines)
