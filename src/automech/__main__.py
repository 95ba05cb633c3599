"""``python -m automech.cli``: the command line."""

from automech.cli import main

main()
