"""`python -m pithead.cli.main`: the `pithead` command."""

from pithead.cli.main import main

main()
