"""Paste the committed digits-lowT leaderboard into README.md between its markers: the legend and, per track,
the per-T tables and the latency front (the full table ranked across T stays in leaderboard.md)."""

import re
from pathlib import Path

START, END = "<!-- leaderboard:digits-lowT -->", "<!-- /leaderboard -->"
FULL = "results/digits-lowT/leaderboard.md"


def readme_block(board: str) -> str:
    """What README.md shows of ``board`` (a leaderboard.md): from the legend to the published figures, less
    each track's "All rows" section, every heading one level down."""
    measured = board.split("## Published figures")[0]
    measured = measured[measured.index("## How to read") :]
    # an "All rows" section runs to the next track (or the end)
    measured = re.sub(r"### All rows\n.*?(?=^## |\Z)", "", measured, flags=re.S | re.M)
    shifted = re.sub(r"^(#+) ", r"#\1 ", measured, flags=re.M).strip()
    return shifted + f"\n\nEvery row of each track, ranked across T by the same rule: `{FULL}`."


if __name__ == "__main__":
    readme = Path("README.md")
    text = readme.read_text()
    before, rest = text.split(START)
    _, after = rest.split(END)
    readme.write_text(before + START + "\n" + readme_block(Path(FULL).read_text()) + "\n" + END + after)
