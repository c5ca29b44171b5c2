"""The Python runner answers with its own references: a task that replaces what the runner
would otherwise look up at answer time (``json.dumps``, ``json.JSONEncoder``, ``builtins.len``,
``sys.stdout``) still gets its own answer encoded, in every mode, against a real engine."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .conftest import MakeExecutor

pytestmark = pytest.mark.docker

TASK = """
import builtins
import json
import sys


def execute(input):
    json.dumps = lambda *args, **kwargs: "not json"
    json.JSONEncoder = None
    builtins.len = lambda value: 0
    sys.stdout = object()  # no write(), no flush()
    return {"values": [1, 2.5, "\\u00e9", None, True], "nested": {"n": input}}
"""

MODES: dict[str, dict[str, Any]] = {
    "fresh": {},
    "reuse": {"mode": "reuse", "containers": 1},
    "fork": {"mode": "fork", "containers": 1},
}


@pytest.mark.parametrize("mode", MODES)
async def test_a_task_replacing_json_len_and_stdout_gets_its_answer(
    make_executor: MakeExecutor, mode: str
) -> None:
    """Two calls of a task that replaces json.dumps, json.JSONEncoder, builtins.len and
    sys.stdout each return the task's own output, decoded as sent (reuse: in the same,
    patched process)."""
    ex = make_executor(files={"/app/execute.py": TASK}, timeout=30, **MODES[mode])
    async with ex:
        for n in (1, 2):
            output = await ex.execute(n)
            assert output == {"values": [1, 2.5, "é", None, True], "nested": {"n": n}}
