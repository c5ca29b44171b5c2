"""Tasks for the CLI tests (runner convention: ``execute(input)``)."""

import asyncio
import time


def execute(input):
    return {"n": input["n"] * 2}


def boom(input):
    raise ValueError("boom on purpose")


async def sleepy(input):
    await asyncio.sleep(input.get("seconds", 60))
    return "woke"


def sleep_sync(input):
    time.sleep(input.get("seconds", 60))
    return "woke"


def not_json(input):
    return object()


def chatty(input):
    for i in range(input.get("lines", 3)):
        print(f"line {i}", flush=True)
        time.sleep(input.get("pause", 0))
    return {"lines": input.get("lines", 3)}


def io_uring(input):
    """io_uring_setup (syscall 425 on x86-64 and arm64): "ok", or the errno that refused it."""
    import ctypes
    import errno
    import os

    libc = ctypes.CDLL(None, use_errno=True)
    params = ctypes.create_string_buffer(120)
    fd = libc.syscall(425, 4, params)  # the buffer passes as a pointer (an int would not)
    if fd < 0:
        return errno.errorcode[ctypes.get_errno()]
    os.close(fd)
    return "ok"
