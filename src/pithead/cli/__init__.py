"""pithead.cli.main: every command of `pithead`, one Typer app per area, mounted by `main`."""
