"""What a session cell gives back: :class:`CellResult`, :class:`CellError`, :class:`Display`.

No container code here (``from executor import CellResult`` stays light); the session itself is
:class:`executor.Session` (``executor/container/session.py``), its server inside the image
``runners/python/session.py``.
"""

from __future__ import annotations

import msgspec

__all__ = ["LANGUAGES", "CellError", "CellResult", "Display"]

#: The languages a session speaks (both in the Python runner image).
LANGUAGES = ("python", "bash")


class Display(msgspec.Struct, frozen=True):
    """A rich output of a cell: ``image/png`` (a matplotlib figure, ``_repr_png_``),
    ``image/svg+xml`` (``_repr_svg_``) or ``text/html`` (``_repr_html_``); text as UTF-8."""

    mime: str
    data: bytes


class CellError(msgspec.Struct, frozen=True):
    """The exception a Python cell raised (``KeyboardInterrupt`` when it was interrupted): its
    type name, ``str()`` and formatted traceback. For bash, only an interrupt sets it."""

    name: str
    value: str
    traceback: str


class CellResult(msgspec.Struct, frozen=True, kw_only=True):
    """What one cell did.

    ``stdout``/``stderr`` are decoded as UTF-8 (invalid bytes replaced) and kept up to the
    config's ``max_output_bytes``/``max_log_bytes`` (``*_truncated`` flags a cut). ``result``
    is the ``repr`` of a Python cell's last expression, as a REPL shows it (None for a
    statement, a ``None`` value, and bash). ``error``: the cell's exception, a result and not
    a raised error. ``exit_code``: bash's status of the cell's last command (130 when
    interrupted). ``interrupted``: the cell hit its timeout or :meth:`Session.interrupt`
    and stopped; the session's state is kept. ``duration`` in seconds, inside the container.
    """

    stdout: str = ""
    stderr: str = ""
    result: str | None = None
    error: CellError | None = None
    displays: list[Display] = []
    duration: float = 0.0
    exit_code: int | None = None
    interrupted: bool = False
    stdout_truncated: bool = False
    stderr_truncated: bool = False

    @property
    def ok(self) -> bool:
        """No exception (Python) and a zero exit status (bash)."""
        return self.error is None and not self.exit_code
