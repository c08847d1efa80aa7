"""Paste the committed digits-lowT leaderboard's track tables into README.md between its markers."""

from pathlib import Path

readme = Path("README.md")
board = Path("results/digits-lowT/leaderboard.md").read_text()
measured = board.split("## Published figures")[0]
tracks = measured[measured.index("## Track") :].strip().replace("## Track", "### Track")
text = readme.read_text()
start, end = "<!-- leaderboard:digits-lowT -->", "<!-- /leaderboard -->"
before, rest = text.split(start)
_, after = rest.split(end)
readme.write_text(before + start + "\n" + tracks + "\n" + end + after)
