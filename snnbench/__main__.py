"""``python -m snnbench`` → the CLI."""

from snnbench.cli import app

app()
