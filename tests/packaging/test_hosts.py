"""Other hosts: owner labels without /proc never call a live process dead."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from executor.engine import labels


@pytest.fixture
def no_proc(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the ``/proc/<pid>/stat`` reader fail as it does on macOS or Windows."""
    monkeypatch.setattr(labels, "_process_start", lambda pid: None)
    monkeypatch.setattr(labels, "_owner", None)


def dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_owner_id_without_proc_uses_the_time(no_proc: None) -> None:
    """Without /proc the owner label's start field is t<unix time>, so the pid alone is judged."""
    host, pid, start = labels.owner_id().split("/")
    assert (host, int(pid)) == (socket.gethostname(), os.getpid())
    assert start.startswith("t") and start[1:].isdigit()


@pytest.mark.parametrize("start", ["t1700000000", "123456"])
def test_live_pid_without_proc_is_alive(no_proc: None, start: str) -> None:
    """A running process is alive without /proc, whether its label came from a host with it."""
    assert labels.owner_alive(f"{socket.gethostname()}/{os.getpid()}/{start}")


@pytest.mark.parametrize("start", ["t1700000000", "123456"])
def test_dead_pid_without_proc_is_dead(no_proc: None, start: str) -> None:
    """A pid that no longer exists is dead without /proc too (its containers may be reaped)."""
    assert not labels.owner_alive(f"{socket.gethostname()}/{dead_pid()}/{start}")


def test_with_proc_a_reused_pid_is_dead() -> None:
    """With /proc, a live pid whose start time differs from the label's was reused: dead."""
    me = labels.owner_id()
    host, pid, start = me.split("/")
    assert labels.owner_alive(me)
    assert not labels.owner_alive(f"{host}/{pid}/{int(start) + 1}")
