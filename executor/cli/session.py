"""``executor session python|bash``: an interactive prompt on a session, to poke at the sandbox.

Each entered cell goes to one :class:`~executor.Session`: Python cells end where the standard
REPL would end them (a complete statement; a block ends with an empty line), bash cells at the
end of a line (a trailing backslash continues it). The event loop runs in a thread of its own
(an anyio blocking portal) so that the prompt can read lines with ``input()``; Ctrl-C while a
cell runs interrupts the cell, at the prompt it drops the line, Ctrl-D leaves. ``:files``,
``:upload LOCAL [NAME]``, ``:download NAME [LOCAL]``, ``:restart`` and ``:quit`` act on the
session.
"""

from __future__ import annotations

import codeop
import contextlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .options import parse_duration, parse_pairs, parse_size

if TYPE_CHECKING:
    from anyio.from_thread import BlockingPortal

    from .._session import CellResult
    from ..container.session import Session

__all__ = ["session_command"]

_HELP = (
    "cells go to the session; :files, :upload LOCAL [NAME], :download NAME [LOCAL], "
    ":restart, :quit (Ctrl-D); Ctrl-C interrupts a running cell"
)


@click.command("session")
@click.argument("language", type=click.Choice(["python", "bash"]), default="python")
@click.option("--image", help="The image (default: the stock Python runner image).")
@click.option("--memory", default="256m", show_default=True, help="Memory limit (256m, 1g).")
@click.option("--timeout", "timeout", default="30s", show_default=True, help="Per-cell limit.")
@click.option("--network", is_flag=True, help="Give the session a network (off by default).")
@click.option("--runtime", help="OCI runtime, e.g. runsc (gVisor).")
@click.option("--label", "labels", multiple=True, metavar="KEY=VALUE", help="Container label.")
@click.option("--displays", type=click.Path(file_okay=False, path_type=Path),
              help="Save each cell's displays (PNG, SVG, HTML) in this directory.")  # fmt: skip
def session_command(
    language: str,
    image: str | None,
    memory: str,
    timeout: str,
    network: bool,
    runtime: str | None,
    labels: tuple[str, ...],
    displays: Path | None,
) -> None:
    """Open an interactive prompt on a Python or bash session in a locked-down container."""
    from anyio.from_thread import start_blocking_portal

    from .._code import default_image
    from ..container import ContainerConfig, SessionPool

    config = ContainerConfig(
        image or default_image("python"),
        memory_bytes=parse_size(memory),
        timeout=parse_duration(timeout, "--timeout"),
        network=network,
        runtime=runtime,
        labels=parse_pairs(labels, "--label"),
    )
    interactive = sys.stdin.isatty()
    # One session for the prompt: a pool of size 0 starts its container and keeps no spare
    # (a bare Session's implicit pool would start one for a next session that never comes).
    pool = SessionPool(language, config, size=0)
    with start_blocking_portal() as portal, portal.wrap_async_context_manager(pool):
        session = pool.session(idle_timeout=None)
        with portal.wrap_async_context_manager(session):
            if interactive:
                click.echo(f"{language} session {(session.container_id or '')[:12]}", err=True)
                click.echo(_HELP, err=True)
            _Prompt(portal, session, language, interactive, displays).loop()


class _Prompt:
    """The read-send-print loop (synchronous; the session lives in the portal's loop)."""

    def __init__(
        self,
        portal: BlockingPortal,
        session: Session,
        language: str,
        interactive: bool,
        displays: Path | None,
    ) -> None:
        self.portal = portal
        self.session = session
        self.language = language
        self.interactive = interactive
        self.displays = displays
        self.shown = 0

    def read_cell(self) -> str | None:
        """The next cell (None at end of input)."""
        lines: list[str] = []
        while True:
            prompt = ("... " if lines else ">>> ") if self.language == "python" else "$ "
            if self.language == "bash" and lines:
                prompt = "> "
            try:
                line = input(prompt if self.interactive else "")
            except EOFError:
                return "\n".join(lines) if lines else None
            lines.append(line)
            source = "\n".join(lines)
            if self.language == "bash":
                if line.endswith("\\"):
                    continue
                return source
            if line.startswith(":") and len(lines) == 1:
                return source
            try:
                complete = codeop.compile_command(source, "<cell>", "exec")
            except (SyntaxError, ValueError, OverflowError):
                return source  # the session reports the error
            if complete is not None and not (len(lines) > 1 and line.strip()):
                return source

    def loop(self) -> None:
        while True:
            try:
                cell = self.read_cell()
            except KeyboardInterrupt:
                click.echo("", err=True)
                continue
            if cell is None:
                return
            if not cell.strip():
                continue
            if cell.startswith(":"):
                if not self.command(cell[1:].split()):
                    return
                continue
            self.show(self.run(cell))

    def call(self, fn: Any, *args: Any) -> Any:
        """Run ``fn(*args)`` in the session's loop; Ctrl-C interrupts the running cell."""
        future = self.portal.start_task_soon(fn, *args)
        while True:
            try:
                return future.result()
            except KeyboardInterrupt:
                self.portal.call(self.session.interrupt)

    def run(self, cell: str) -> CellResult | None:
        from .._errors import ExecutorError, SessionLost

        try:
            result: CellResult = self.call(self.session.run, cell)
        except SessionLost as exc:
            click.secho(f"session lost: {exc.message}", fg="red", err=True)
            if exc.code == "SESSION_EXPIRED":
                raise
            return None
        except ExecutorError as exc:
            click.secho(f"{exc.code}: {exc.message}", fg="red", err=True)
            return None
        return result

    def show(self, result: CellResult | None) -> None:
        if result is None:
            return
        if result.stdout:
            click.echo(result.stdout, nl=not result.stdout.endswith("\n"))
        if result.stderr:
            click.echo(result.stderr, nl=not result.stderr.endswith("\n"), err=True)
        if result.error is not None:
            text = result.error.traceback or f"{result.error.name}: {result.error.value}"
            click.secho(text.rstrip("\n"), fg="red", err=True)
        if result.result is not None:
            click.echo(result.result)
        for display in result.displays:
            self.shown += 1
            note = f"[{display.mime}, {len(display.data)} bytes]"
            if self.displays is not None:
                self.displays.mkdir(parents=True, exist_ok=True)
                suffix = {"image/png": "png", "image/svg+xml": "svg"}.get(display.mime, "html")
                path = self.displays / f"display-{self.shown}.{suffix}"
                path.write_bytes(display.data)
                note = f"[{display.mime} saved to {path}]"
            click.echo(note, err=True)
        if self.language == "bash" and result.exit_code and self.interactive:
            click.secho(f"[exit {result.exit_code}]", fg="yellow", err=True)

    def command(self, words: list[str]) -> bool:
        """A ``:command``; False to leave."""
        from .._errors import ExecutorError

        name, args = (words[0], words[1:]) if words else ("help", [])
        try:
            if name in ("quit", "q", "exit"):
                return False
            if name == "files":
                for item in self.call(self.session.files):
                    click.echo(item)
            elif name == "restart":
                self.call(self.session.restart)
                click.echo("restarted (files kept)", err=True)
            elif name == "upload" and args:
                local = Path(args[0])
                self.call(self.session.upload, args[1] if len(args) > 1 else local.name,
                          local.read_bytes())  # fmt: skip
            elif name == "download" and args:
                data: bytes = self.call(self.session.download, args[0])
                target = Path(args[1] if len(args) > 1 else Path(args[0]).name)
                target.write_bytes(data)
                click.echo(f"{len(data)} bytes to {target}", err=True)
            else:
                click.echo(_HELP, err=True)
        except (ExecutorError, OSError) as exc:
            with contextlib.suppress(Exception):
                click.secho(str(exc), fg="red", err=True)
        return True
