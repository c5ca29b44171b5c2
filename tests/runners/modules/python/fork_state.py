"""Leaves state behind on purpose; each call reports what it found from earlier calls.

Shared contract (every language): a module global counter, /tmp/left-behind,
/dev/shm/left-behind and the environment variable EXECUTOR_LEFT_BEHIND, reported as
{"calls", "file_existed", "shm_existed", "env_seen"} as seen before this call's own changes.
Python also checks a monkeypatched builtin, an imported module, a signal handler, an open file
and System V IPC objects, and raises when any of them leaked in from an earlier call.
"""

import builtins
import ctypes
import os
import signal
import sys

calls = 0
kept_open = []
IPC_KEY = 0x45584543  # "EXEC"
libc = ctypes.CDLL(None, use_errno=True)


def _leaks():
    leaks = []
    if hasattr(builtins, "executor_left_behind") or builtins.len is not len_at_import:
        leaks.append("a monkeypatched builtin")
    if "executor_left_behind_module" in sys.modules:
        leaks.append("a module in sys.modules")
    if signal.getsignal(signal.SIGUSR1) is not signal.SIG_DFL:
        leaks.append("a SIGUSR1 handler")
    if kept_open:
        leaks.append("an open file")
    if libc.shmget(IPC_KEY, 0, 0) >= 0:
        leaks.append("a System V shared memory segment")
    if libc.semget(IPC_KEY, 0, 0) >= 0:
        leaks.append("a System V semaphore set")
    if libc.msgget(IPC_KEY, 0) >= 0:
        leaks.append("a System V message queue")
    return leaks


len_at_import = builtins.len


def execute(input):
    global calls
    calls += 1
    seen = {
        "calls": calls,
        "file_existed": os.path.exists("/tmp/left-behind"),
        "shm_existed": os.path.exists("/dev/shm/left-behind"),
        "env_seen": "EXECUTOR_LEFT_BEHIND" in os.environ,
    }
    leaks = _leaks()
    if leaks:
        raise RuntimeError(f"state leaked from an earlier call: {', '.join(leaks)}")
    # Now leave all of it behind.
    for path in ("/tmp/left-behind", "/dev/shm/left-behind"):
        with open(path, "w") as f:
            f.write("left behind")
    os.makedirs("/tmp/left-dir/deeper", exist_ok=True)
    os.chmod("/tmp/left-dir", 0)  # an unreadable directory must still be wiped
    os.environ["EXECUTOR_LEFT_BEHIND"] = "1"
    builtins.executor_left_behind = True
    builtins.len = lambda obj: 0
    sys.modules["executor_left_behind_module"] = sys
    signal.signal(signal.SIGUSR1, lambda signum, frame: None)
    kept_open.append(open("/tmp/kept-open", "w"))  # noqa: SIM115
    libc.shmget(IPC_KEY, 4096, 0o1600)
    libc.semget(IPC_KEY, 1, 0o1600)
    libc.msgget(IPC_KEY, 0o1600)
    return seen
