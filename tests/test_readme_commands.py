"""The README's compare-your-method commands, run as a user would: copied from README.md, in a fresh folder.

The slow test runs the block verbatim (tune and run at every T, compare); the default test runs the same
block with ``--timesteps 1`` added to ``tune``, ``run`` and ``compare``, so that a broken command, path or
flag in the README fails the default run. The README's example verdict table is
the output of ``compare`` on the committed records (``tools/readme_leaderboard.py`` writes it).
"""

import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SECTION = "### Is it better than the baselines, or noise?"


def readme_commands() -> list[str]:
    """The shell commands of the README's compare-your-method block, continuation lines joined."""
    text = (ROOT / "README.md").read_text()
    block = text.split(SECTION, 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    return [line.strip() for line in block.replace("\\\n", " ").splitlines() if line.strip()]


def verdict_rows(markdown: str) -> dict[int, str]:
    """T → verdict of each row of ``compare --format md``'s table."""
    rows = {}
    for line in markdown.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0].isdigit():
            rows[int(cells[0])] = cells[-1]
    return rows


def run_block(commands: list[str], folder: Path) -> subprocess.CompletedProcess:
    for name in ("results", "examples"):
        (folder / name).symlink_to(ROOT / name)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    script = "set -e\n" + "\n".join(commands) + "\n"
    return subprocess.run(["bash", "-c", script], cwd=folder, env=env, capture_output=True, text=True)


def check_verdicts(done: subprocess.CompletedProcess, timesteps: set[int]) -> None:
    assert done.returncode == 0, done.stderr[-2000:]
    verdicts = verdict_rows(done.stdout)
    assert set(verdicts) == timesteps, done.stdout[-2000:]
    for verdict in verdicts.values():
        assert verdict.split(":")[0] in {"better", "worse", "not separated"}, verdict


def test_the_readme_block_is_what_the_test_runs():
    commands = readme_commands()
    assert commands[0].startswith("mkdir -p out && cp -r results/digits-lowT out/")
    assert [c.split()[1] for c in commands[1:]] == ["tune", "run", "compare"]
    assert all("--out out" in c for c in commands[1:])


def test_readme_compare_your_method_commands_give_a_verdict(tmp_path):
    """The README's block at T = 1 only (digits-lowT tunes per T: one study, 8 trials)."""
    commands = [
        c + " --timesteps 1" if c.startswith(("snnbench tune", "snnbench run", "snnbench compare")) else c
        for c in readme_commands()
    ]
    check_verdicts(run_block(commands, tmp_path), {1})
    assert (tmp_path / "out" / "digits-lowT" / "tuning" / "bptt-arctan_T1.json").is_file()


@pytest.mark.slow
def test_readme_compare_your_method_commands_verbatim(tmp_path):
    check_verdicts(run_block(readme_commands(), tmp_path), {1, 2, 4, 8})


def test_readme_compare_example_is_what_compare_prints_on_the_committed_records():
    tool = runpy.run_path(str(ROOT / "tools" / "readme_leaderboard.py"))
    readme = (ROOT / "README.md").read_text()
    blocks = tool["COMPARE"].findall(readme)
    assert blocks, "README.md has no <!-- compare:... --> example"
    cwd = os.getcwd()
    os.chdir(ROOT)  # the committed records: results/
    try:
        for suite, args, shown in blocks:
            assert shown == tool["compare_block"](suite, args), f"README compare example {args!r} is stale"
    finally:
        os.chdir(cwd)
