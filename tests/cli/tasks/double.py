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
