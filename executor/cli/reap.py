"""``executor reap``: remove containers left behind by processes that died."""

from __future__ import annotations

import anyio
import click

from .engine import bounded
from .options import parse_pairs

__all__ = ["reap_command"]


@click.command("reap")
@click.option(
    "--all",
    "include_live",
    is_flag=True,
    help="Also remove containers of live processes (only when no executor is running).",
)
@click.option(
    "--label",
    "labels",
    multiple=True,
    metavar="KEY=VALUE",
    help="Only containers carrying this label (repeatable; all must match).",
)
@click.option("--verbose", "-v", is_flag=True, help="Print the removed container ids.")
def reap_command(include_live: bool, labels: tuple[str, ...], verbose: bool) -> None:
    """Remove containers left behind by processes that died (SIGKILL, crash)."""
    from ..container import reap

    wanted = parse_pairs(labels, "--label")

    async def go() -> list[str]:
        removed: list[str] = await bounded(
            reap(include_live=include_live, labels=wanted), "the reap requests"
        )
        return removed

    removed = anyio.run(go)
    if verbose:
        for container_id in removed:
            click.echo(container_id)
    click.echo(f"reaped {len(removed)} orphaned container(s)")
