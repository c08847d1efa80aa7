"""``python -m snnbench.cli`` → the CLI."""

from snnbench.cli import app

app()
