"""``python -m veil`` runs the CLI."""

from veil.cli import main

main()
