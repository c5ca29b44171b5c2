"""User code for the fault tests: sleep for ``input["sleep"]`` seconds, echo the input."""

from __future__ import annotations

SLEEPY = """
import time


def execute(input):
    time.sleep(input.get("sleep", 0))
    return input
"""

FILES = {"/app/execute.py": SLEEPY}
