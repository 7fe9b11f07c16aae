"""`pithead notify`: the operator's notifications (`[notify]` in the config).

    pithead notify test --config FILE     a test notice to every URL of every route, and what each answered

What it is not: the notifier itself (`pithead.notify`, started by `pithead serve` and `pithead up` when
`[notify]` names routes). Status 0 when every destination took the test, 1 when one did not, 2 for a
config that cannot be used (an unknown kind, a URL apprise cannot use).
"""

from __future__ import annotations

import asyncio
import time

import typer

from pithead import config as config_mod
from pithead.events import NoticeSeverity
from pithead.notify.notifier import send_test

app = typer.Typer(help=r"Notifications to an operator's phone (\[notify] routes through apprise).",
                  add_completion=False, no_args_is_help=True)


@app.command()
def test(
    config: str = typer.Option(..., "--config", "-c", help="TOML config whose \\[notify] routes to test."),
    severity: str = typer.Option("info", "--severity", help="The test notice's severity: info, warning or "
                                 "critical (a route passes on only what is at or above its min_severity; the "
                                 "test goes to every route whatever it says)."),
) -> None:
    """Send a test notice to every URL of every \\[notify] route, and print what each destination answered."""
    if severity not in ("info", "warning", "critical"):
        typer.echo(f"pithead notify: --severity must be info, warning or critical, not {severity!r}", err=True)
        raise typer.Exit(2)
    sev: NoticeSeverity = severity  # type: ignore[assignment]
    try:
        cfg = config_mod.load(config)
        if not cfg.notify.routes:
            typer.echo(f"pithead notify: {config} names no [[notify.routes]]: nothing to test", err=True)
            raise typer.Exit(2)
        answers = asyncio.run(send_test(cfg.notify, time.time(), sev))
    except config_mod.ConfigError as exc:
        typer.echo(f"pithead notify: {exc}", err=True)
        raise typer.Exit(2) from exc
    for a in answers:
        typer.echo(f"route {a.route + 1}  {a.destination}  {'sent' if a.ok else 'FAILED'}: {a.answer}")
    failed = sum(not a.ok for a in answers)
    typer.echo(f"{len(answers) - failed} of {len(answers)} destinations took the test notice")
    if failed:
        raise typer.Exit(1)
