"""Test-wide configuration: gate tests marked ``docker`` on a Docker engine that answers, and
hand tests marked ``anyio`` to anyio's plugin.

Without an engine such tests skip with the reason, except when ``EXECUTOR_REQUIRE_DOCKER=1``
(CI), where they fail. The check runs once per session, before any fixture of the test.
``pytester`` is on for tests/plugin (it can only be enabled in this top-level conftest).
"""

from __future__ import annotations

import functools
import os
import subprocess

import pytest
import pytest_asyncio

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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Give coroutine tests marked ``anyio`` back to anyio's plugin, which runs each on its
    ``anyio_backend`` (asyncio and trio).

    pytest-asyncio's auto mode claims every coroutine test at collection, so without this the
    trio case would silently run on asyncio. The rest of the suite stays on pytest-asyncio.
    """
    for index, item in enumerate(items):
        if (
            isinstance(item, pytest.Function)
            and pytest_asyncio.is_async_test(item)
            and item.get_closest_marker("anyio") is not None
        ):
            items[index] = pytest.Function.from_parent(
                item.parent,
                name=item.name,
                callspec=getattr(item, "callspec", None),
                callobj=item.obj,
                # Private, but the only record of direct parametrization (anyio's plugin and
                # pytest-asyncio build their items from it the same way).
                fixtureinfo=item._fixtureinfo,
                originalname=item.originalname,
            )
