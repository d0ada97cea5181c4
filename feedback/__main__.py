"""`python -m feedback …`: the same command line as the `feedback` console script."""

from feedback.cli import main

main()
