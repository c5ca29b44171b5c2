"""{"spawn": true} leaves a detached process behind (new session, SIGTERM ignored, writes to
stderr later); {"check": true} lists the pids in /proc other than 1 and its own."""

import os
import signal
import sys
import time


def execute(input):
    if input.get("spawn"):
        ready_read, ready_write = os.pipe()
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
                os.write(ready_write, b"x")
                time.sleep(1)
                sys.stderr.write("executor-left-behind daemon still alive\n")
                sys.stderr.flush()
                time.sleep(60)
            os._exit(0)
        os.close(ready_write)
        started = os.read(ready_read, 1) == b"x"
        return {"spawned": started}
    own = os.getpid()
    return sorted(int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) not in (1, own))
