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
