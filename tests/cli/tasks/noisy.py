"""A task that writes to stdout every way a task can: print at import, print in the call
(in a worker thread, as a sync task runs), a C-level write to fd 1, and a child process."""

import os
import subprocess
import sys

print("noisy: imported")


def execute(input):
    print("noisy: print")
    sys.stdout.flush()
    os.write(1, b"noisy: fd 1\n")
    subprocess.run([sys.executable, "-c", "print('noisy: child')"], check=True)
    return {"n": input["n"] * 2}


async def async_execute(input):
    print("noisy: async print")
    return {"n": input["n"] * 2}
