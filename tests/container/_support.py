"""Helpers shared by the container tests: per-test labels and the engine's view of them."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest

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


def reachable(command: list[str]) -> str | None:
    """None when ``command`` succeeds, else why it did not (the tail of its output)."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    return None if done.returncode == 0 else (done.stderr or done.stdout).strip()[-300:]


@pytest.fixture(scope="module")
def pypi(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Skip unless this host's pip can download a package."""
    dest = tmp_path_factory.mktemp("pip")
    pip = [sys.executable, "-m", "pip", "download", "--no-deps", "--dest", str(dest), "attrs"]
    if (why := reachable(pip)) is not None:
        pytest.skip(f"the Python package registry cannot be reached from this host: {why}")
