"""tools/faults.py on a tiny tree of its own: a fault counts as caught only when a behavioural test fails;
one the source-hash tripwire alone catches counts as missed; ``--check`` finds tests that do not exist."""

from __future__ import annotations

import hashlib
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("faults_tool", ROOT / "tools" / "faults.py")
faults_tool = importlib.util.module_from_spec(spec)
sys.modules["faults_tool"] = faults_tool
spec.loader.exec_module(faults_tool)

CALC = "def add(a, b):\n    return a + b\n\n\ndef mul(a, b):\n    return a * b\n"
TRIPWIRE = "tests/test_trip.py::test_calc_is_the_committed_calc"
FAULTS = [
    {"id": "add-subtracts", "file": "calc.py", "old": "return a + b", "new": "return a - b",
     "tests": ["tests/test_calc.py"]},
    {"id": "mul-adds", "file": "calc.py", "old": "return a * b", "new": "return a + b",
     "tests": ["tests/test_calc.py::test_add"]},  # its listed test misses it; test_more.py catches it
    {"id": "comment-only", "file": "calc.py", "old": "return a + b\n", "new": "return a + b  # note\n",
     "tests": ["tests/test_calc.py", TRIPWIRE]},  # naming the tripwire does not make it count
    {"id": "unused-constant", "file": "other.py", "old": "X = 1", "new": "X = 2",
     "tests": ["tests/test_calc.py"]},
    {"id": "moved-on", "file": "calc.py", "old": "return a ** b", "new": "return 0",
     "tests": ["tests/test_calc.py"]},
]  # fmt: skip


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    (root / "tests").mkdir(parents=True)
    (root / "tools").mkdir()
    (root / "calc.py").write_text(CALC)
    (root / "other.py").write_text("X = 1\n")
    (root / "tests" / "test_calc.py").write_text(
        "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"
    )
    (root / "tests" / "test_more.py").write_text(
        "from calc import mul\n\n\ndef test_mul():\n    assert mul(2, 3) == 6\n"
    )
    digest = hashlib.sha256(CALC.encode()).hexdigest()
    (root / "tests" / "test_trip.py").write_text(
        "import hashlib\nfrom pathlib import Path\n\n\ndef test_calc_is_the_committed_calc():\n"
        f"    text = (Path(__file__).parents[1] / 'calc.py').read_bytes()\n"
        f"    assert hashlib.sha256(text).hexdigest() == {digest!r}\n"
    )
    (root / "tools" / "faults.yaml").write_text(yaml.safe_dump(FAULTS, sort_keys=False))
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    return root


@pytest.mark.parametrize("jobs", [1, 2])
def test_only_behavioural_failures_count_and_the_tripwire_is_reported_apart(tree, capsys, jobs):
    """The same outcomes whether the faults run one after another or in two jobs on their own copies."""
    code = faults_tool.main(["--min-rate", "50", "--jobs", str(jobs)], root=tree, tripwires=[TRIPWIRE])
    out = capsys.readouterr().out
    lines = {}
    for line in out.splitlines():
        for fault in FAULTS:
            if f"  {fault['id']}  (" in line:
                lines[fault["id"]] = line.split(f"  {fault['id']}  (")[0].strip()
    assert lines == {
        "add-subtracts": "caught",
        "mul-adds": "caught elsewhere",
        "comment-only": "tripwire only",
        "unused-constant": "SURVIVED",
        "moved-on": "not applicable",
    }, out
    assert "behavioural catch rate: 2 of 4 applicable faults, 50 %" in out
    assert "caught only by the source-hash tripwires (counted as missed): 1" in out
    assert "caught elsewhere: mul-adds: its tests should name tests/test_more.py::test_mul" in out
    assert "SURVIVED: unused-constant" in out and "total time: " in out
    assert code == 0  # 50 % is the minimum asked for
    assert faults_tool.main(["--min-rate", "51", "--only", "add-subtracts"], root=tree, tripwires=[]) == 0
    assert (tree / "calc.py").read_text() == CALC  # the working tree is never touched


def test_check_reports_missing_tests_tripwires_and_modules_without_faults(tree, capsys):
    faults = [
        *FAULTS[:1],
        {**FAULTS[0], "id": "gone", "tests": ["tests/test_gone.py"]},
        {**FAULTS[0], "id": "no-such-test", "tests": ["tests/test_calc.py::test_sub"]},
        {**FAULTS[0], "id": "parametrized", "tests": ["tests/test_calc.py::test_add[1-2]"]},
        {**FAULTS[0], "id": "tripwire", "tests": [TRIPWIRE]},
        {**FAULTS[4], "id": "moved-on"},
    ]
    (tree / "tools" / "faults.yaml").write_text(yaml.safe_dump(faults, sort_keys=False))
    assert faults_tool.main(["--check"], root=tree, tripwires=[TRIPWIRE]) == 1
    problems = [line for line in capsys.readouterr().out.splitlines() if line.startswith("problem: ")]
    assert problems[:4] == [
        "problem: gone: tests/test_gone.py does not exist",
        "problem: no-such-test: tests/test_calc.py::test_sub: no test test_sub in tests/test_calc.py",
        f"problem: tripwire: {TRIPWIRE} is a source-hash tripwire, not a behavioural test",
        "problem: moved-on: not applicable (its old text occurs 0 times)",
    ]
    assert problems[4:] == [f"problem: module {m}: no fault" for m in faults_tool.REQUIRED_MODULES]
    only = ["--check", "--only", "add-subtracts", "parametrized"]
    assert faults_tool.main(only, root=tree, tripwires=[TRIPWIRE]) == 0


def test_the_project_list_names_existing_behavioural_tests_in_every_module():
    """Source-independent half of ``--check`` on tools/faults.yaml (whether a fault still applies depends on
    the code, which a planted fault changes: that part stays in ``--check``)."""
    faults = yaml.safe_load((ROOT / "tools" / "faults.yaml").read_text())
    problems = [
        f"{fault['id']}: {problem}"
        for fault in faults
        for node in fault["tests"]
        for problem in faults_tool.test_problems(ROOT, node, faults_tool.TRIPWIRES)
    ]
    assert problems == []
    assert all(not faults_tool.test_problems(ROOT, node, ()) for node in faults_tool.TRIPWIRES)
    modules = {faults_tool.module_of(fault["file"]) for fault in faults}
    assert set(faults_tool.REQUIRED_MODULES) <= modules
    assert len(faults) >= 80
