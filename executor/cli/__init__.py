"""The ``executor`` command line (also ``python -m executor``).

Commands: ``run`` (one call), ``batch`` (a JSON-lines file of inputs), ``images build|list``,
``doctor``, ``reap`` and ``session`` (an interactive prompt on a session), one module each;
``options`` and ``targets`` hold what ``run`` and ``batch`` share, ``output`` the exit
statuses and error reports, ``engine`` the bounded engine access of the others. The package
root never imports this package, so ``import executor`` stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from .._errors import ExecutorError
from .batch import batch
from .doctor import doctor
from .images import images
from .output import EXIT_CODES, EXIT_INTERRUPTED, exit_code_for, report_error, say
from .reap import reap_command
from .run import run
from .session import session_command

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["EXIT_CODES", "cli", "exit_code_for", "main"]


class _Group(click.Group):
    """Turns library errors escaping a command into the JSON report and exit status."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ExecutorError as exc:
            ctx.exit(report_error(exc))
        except KeyboardInterrupt:
            say("interrupted; no container was left behind", style="yellow")
            ctx.exit(EXIT_INTERRUPTED)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="typed-executor", prog_name="executor")
def cli() -> None:
    """Run typed tasks in-process or in locked-down Docker containers."""


for _command in (run, batch, images, doctor, reap_command, session_command):
    cli.add_command(_command)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``executor`` script and ``python -m executor``."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="executor")
