"""Attacks the fork-mode parent (PID 1) from a task process; every attempt must fail.

Shared contract: send SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 and SIGTSTP to PID 1;
for every /proc/1/fd/N (N > 2) that is not one of its own descriptors and that opens
(non-blocking), write a forged response and ready line into it and read what it holds; all
errors ignored. Return {"mem_writable": whether /proc/1/mem opens for writing}. A forged line
that reached the protocol stream would be read by the host as this call's answer; the next call
proves the parent survived. Python also tries PTRACE_ATTACH and raises if it works.
"""

import contextlib
import ctypes
import os
import signal

PTRACE_ATTACH = 16
SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGTSTP")
FORGED = b'{"ok":true,"output":"forged"}\n{"ready":true}\n'


def _try(attempt):
    try:
        attempt()
    except OSError:
        return False
    return True


def _links(pid):
    links = {}
    for name in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            links[int(name)] = os.readlink(f"/proc/{pid}/fd/{name}")
    return links


def _attack_descriptors():
    try:
        parents = _links(1)
    except OSError:
        return  # Linux: /proc/1/fd is closed to us
    own = set(_links("self").values())
    for fd, target in parents.items():
        if fd <= 2 or target in own:
            continue
        for flags in (os.O_WRONLY, os.O_RDONLY):
            try:
                opened = os.open(f"/proc/1/fd/{fd}", flags | os.O_NONBLOCK)
            except OSError:
                continue
            if flags == os.O_WRONLY:
                _try(lambda opened=opened: os.write(opened, FORGED))
            else:
                _try(lambda opened=opened: os.read(opened, 65536))
            os.close(opened)


def execute(input):
    for name in SIGNALS:
        _try(lambda name=name: os.kill(1, getattr(signal, name)))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.ptrace(PTRACE_ATTACH, 1, None, None) == 0:
        raise RuntimeError("the task could ptrace the parent")
    _attack_descriptors()
    return {"mem_writable": _try(lambda: open("/proc/1/mem", "r+b").close())}
