"""Test-wide configuration: gate tests marked ``docker`` on a Docker engine that answers.

Without an engine such tests skip with the reason, except when ``EXECUTOR_REQUIRE_DOCKER=1``
(CI), where they fail. The check runs once per session, before any fixture of the test.
``pytester`` is on for tests/plugin (it can only be enabled in this top-level conftest).
"""

from __future__ import annotations

import functools
import os
import subprocess

import pytest

pytest_plugins = ("pytester",)


@functools.cache
def docker_available() -> tuple[bool, str]:
    """Return ``(True, "")`` when ``docker info`` answers, else ``(False, why)``."""
    try:
        done = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except FileNotFoundError:
        return False, "the docker CLI is not installed"
    except subprocess.TimeoutExpired:
        return False, "`docker info` did not answer within 30 s"
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        return False, f"no Docker engine answers ({lines[-1] if lines else 'docker info failed'})"
    return True, ""


def docker_required() -> bool:
    """Is a missing engine a failure (``EXECUTOR_REQUIRE_DOCKER=1``) rather than a skip?"""
    return os.environ.get("EXECUTOR_REQUIRE_DOCKER") == "1"


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("docker") is None:
        return
    available, reason = docker_available()
    if available:
        return
    if docker_required():
        pytest.fail(f"EXECUTOR_REQUIRE_DOCKER=1 but {reason}; run `make engine`", pytrace=False)
    pytest.skip(f"{reason}; run `make engine` (EXECUTOR_REQUIRE_DOCKER=1 makes this a failure)")
