"""Helpers for the command-line tests: run ``python -m executor`` as a subprocess.

Container runs made here carry ``--label executor.test-run=<RUN_ID>``; after the session no
container with that label may remain.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
TASKS = Path(__file__).resolve().parent / "tasks"
RUN_ID = os.environ.get("EXECUTOR_TEST_RUN", uuid.uuid4().hex[:12])
RUN_LABEL = f"executor.test-run={RUN_ID}"


@dataclass
class Result:
    """A finished CLI run."""

    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    def error(self) -> dict[str, Any]:
        """The JSON error object: the first stderr line."""
        return json.loads(self.stderr.splitlines()[0])  # type: ignore[no-any-return]


def executor_cli(
    *args: str,
    input: str | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 120,
) -> Result:
    """Run ``python -m executor ARGS`` and return its exit status and output."""
    done = subprocess.run(
        [sys.executable, "-m", "executor", *args],
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd=cwd or REPO,
        check=False,
    )
    return Result(done.returncode, done.stdout, done.stderr)


def leftover_containers() -> list[str]:
    """Containers (any state) labelled by this run."""
    try:
        out = subprocess.run(
            ["docker", "ps", "-aq", "--filter", f"label={RUN_LABEL}"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return []  # no docker CLI or engine: nothing can be left
    return out.stdout.split()


@pytest.fixture(scope="session", autouse=True)
def no_cli_leftovers() -> Any:
    """After the session no container labelled by a CLI test may remain."""
    yield
    left = leftover_containers()
    if left:
        subprocess.run(["docker", "rm", "-f", *left], capture_output=True, check=False)
    assert not left, f"CLI tests left containers behind: {left}"
