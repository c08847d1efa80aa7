"""Paste committed leaderboards into README.md between their markers (``<!-- leaderboard:SUITE -->`` …
``<!-- /leaderboard -->``): the legend and, per track, the per-T tables and the latency front (the full table
ranked across T stays in leaderboard.md). ``python tools/readme_leaderboard.py [SUITE ...]`` (default: every
suite with a marker in README.md).

It also regenerates every ``<!-- compare:SUITE ARGS -->`` … ``<!-- /compare -->`` block: the output of
``snnbench compare --suite SUITE ARGS --format md`` on the committed records (``results/``), so that the
README's example verdicts are what the command prints today.

And every ``<!-- controlled:SUITE -->`` … ``<!-- /controlled -->`` block: what differs between the suite's
controlled entries (optimiser, input normalisation, outputs per class, extra weights), from
:func:`snnbench.setups.controlled_text`, which builds each entry's network and optimiser as a run does."""

import re
import subprocess
import sys
from pathlib import Path

END = "<!-- /leaderboard -->"
COMPARE_END = "<!-- /compare -->"
CONTROLLED_END = "<!-- /controlled -->"
CONTROLLED = re.compile(r"<!-- controlled:(\S+) -->\n(.*?)" + re.escape(CONTROLLED_END), re.S)
COMPARE = re.compile(r"<!-- compare:(\S+) ([^>]*?) -->\n(.*?)" + re.escape(COMPARE_END), re.S)


def compare_block(suite: str, args: str) -> str:
    """What ``snnbench compare --suite SUITE ARGS --format md`` prints on the committed records."""
    command = [sys.executable, "-m", "snnbench", "compare", "--suite", suite, *args.split(), "--format", "md"]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[2:])} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def with_compare_blocks(text: str) -> str:
    """``text`` with every compare block replaced by the command's output today."""
    return COMPARE.sub(
        lambda m: f"<!-- compare:{m[1]} {m[2]} -->\n{compare_block(m[1], m[2])}{COMPARE_END}", text
    )


def controlled_block(suite: str) -> str:
    """The README's paragraph on what differs in ``suite``'s controlled track, generated from the facts."""
    from snnbench.setups import controlled_text
    from snnbench.suite import load_suite

    return controlled_text(load_suite(suite)) + "\n"


def with_controlled_blocks(text: str) -> str:
    """``text`` with every controlled-track block replaced by what the code builds today."""
    return CONTROLLED.sub(
        lambda m: f"<!-- controlled:{m[1]} -->\n{controlled_block(m[1])}{CONTROLLED_END}", text
    )


def start(suite: str) -> str:
    return f"<!-- leaderboard:{suite} -->"


def full(suite: str) -> str:
    return f"results/{suite}/leaderboard.md"


def readme_block(board: str, suite: str = "digits-lowT") -> str:
    """What README.md shows of ``board`` (a leaderboard.md): from the legend to the published figures, less
    each track's "All rows" section, every heading one level down."""
    measured = board.split("## Published figures")[0]
    measured = measured[measured.index("## How to read") :]
    # an "All rows" section runs to the next track (or the end)
    measured = re.sub(r"### All rows\n.*?(?=^## |\Z)", "", measured, flags=re.S | re.M)
    shifted = re.sub(r"^(#+) ", r"#\1 ", measured, flags=re.M).strip()
    return shifted + f"\n\nEvery row of each track, ranked across T by the same rule: `{full(suite)}`."


def marked_suites(text: str) -> list[str]:
    return re.findall(r"<!-- leaderboard:(\S+) -->", text)


if __name__ == "__main__":
    readme = Path("README.md")
    text = readme.read_text()
    for suite in sys.argv[1:] or marked_suites(text):
        before, rest = text.split(start(suite))
        _, after = rest.split(END, 1)
        block = readme_block(Path(full(suite)).read_text(), suite)
        text = before + start(suite) + "\n" + block + "\n" + END + after
    readme.write_text(with_controlled_blocks(with_compare_blocks(text)))
