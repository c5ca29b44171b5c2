"""The labels every managed container carries, and who owns a container.

``executor.managed=true`` marks containers this library made; ``executor.owner`` is
``host/pid/start`` of the process that made it (the start time tells pid reuse apart);
``executor.instance`` is unique per executor object, so one executor can find its own.
"""

from __future__ import annotations

import os
import socket
import time

__all__ = ["INSTANCE_LABEL", "MANAGED_LABEL", "OWNER_LABEL", "owner_alive", "owner_id"]

MANAGED_LABEL = "executor.managed"
OWNER_LABEL = "executor.owner"
INSTANCE_LABEL = "executor.instance"

_owner: str | None = None


def _process_start(pid: int) -> str | None:
    """The kernel's start time of ``pid`` in clock ticks since boot; None when unreadable.

    Read from ``/proc/<pid>/stat``: unreadable on hosts without ``/proc`` (macOS, Windows)
    and for processes that are gone.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return None
    # Field 22; the command name (field 2) may hold spaces, so split after its ")".
    return stat.rsplit(b")", 1)[1].split()[19].decode()


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # it exists (or we cannot tell): alive
    return True


def owner_id() -> str:
    """This process's owner label: ``host/pid/start``, unique across pid reuse.

    Where the start time cannot be read (no ``/proc``), ``start`` is ``t<unix time>``: such a
    label is judged by whether the pid exists at all.
    """
    global _owner
    if _owner is None:
        start = _process_start(os.getpid()) or f"t{int(time.time())}"
        _owner = f"{socket.gethostname()}/{os.getpid()}/{start}"
    return _owner


def owner_alive(owner: str) -> bool:
    """Whether the process named by an owner label may still run.

    True for another host's processes and whenever this host cannot tell (never call a live
    process dead: its containers would be removed under it). False only for a malformed
    label, a pid that does not exist, or a pid whose start time proves it was reused.
    """
    try:
        host, pid_text, start = owner.split("/")
        pid = int(pid_text)
    except ValueError:
        return False
    if host != socket.gethostname():
        return True
    current = _process_start(pid)
    if current is not None and not start.startswith("t"):
        return current == start
    return _pid_exists(pid)
