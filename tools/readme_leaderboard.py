"""Paste the committed digits-lowT leaderboard table into README.md between its markers."""

from pathlib import Path

readme = Path("README.md")
board = Path("results/digits-lowT/leaderboard.md").read_text()
table = "\n".join(line for line in board.splitlines() if line.startswith("|") and "Published" not in line)
measured = board.split("## Published figures")[0]
rows = [line for line in measured.splitlines() if line.startswith("|")]
text = readme.read_text()
start, end = "<!-- leaderboard:digits-lowT -->", "<!-- /leaderboard -->"
before, rest = text.split(start)
_, after = rest.split(end)
readme.write_text(before + start + "\n" + "\n".join(rows) + "\n" + end + after)
