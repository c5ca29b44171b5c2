"""Helpers shared by the container tests: per-test labels and the engine's view of them."""

from __future__ import annotations

import subprocess
import uuid

from .conftest import RUN_ID, RUN_LABEL

CASE_LABEL = "executor.test-case"


def case() -> dict[str, str]:
    """A label unique to one test, to find exactly its containers."""
    return {CASE_LABEL: uuid.uuid4().hex[:12]}


def containers(labels: dict[str, str]) -> list[str]:
    """Ids of the containers (running or not) of this run carrying ``labels``."""
    filters = [f"--filter=label={k}={v}" for k, v in {RUN_LABEL: RUN_ID, **labels}.items()]
    done = subprocess.run(
        ["docker", "ps", "-aq", *filters], capture_output=True, text=True, check=True
    )
    return done.stdout.split()
