"""Connecting to a ``ray://`` head: its known transient failure is tried again, and said.

Ray Client's head forks a server per driver; the child can abort in gRPC's fork handlers
(ray-project/ray#63202), and the driver's ``ray.init`` then fails with "Starting Ray client
server failed". The head cannot be made to do that on demand, so ``ray.init`` here is a
stand-in that fails as it does; the real path is ``test_ray.py::test_ray_client_address``.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from executor import ConfigError, ContainerConfig, EngineUnavailable

pytest.importorskip("ray")
from executor.ray import RayExecutor

CRASH = (
    "Initialization failure from server:\nTraceback (most recent call last):\n"
    "RuntimeError: Starting Ray client server failed. See ray_client_server_23000.err for "
    "detailed logs."
)


class _Ray:
    """``ray.init`` failing with ``errors`` in turn, then connecting."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    def init(self, **kwargs: Any) -> None:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)


def _executor(ray: _Ray) -> RayExecutor[Any, Any]:
    ex: RayExecutor[Any, Any] = RayExecutor(
        ContainerConfig("executor/runner-python:latest"), address="ray://127.0.0.2:1"
    )
    ex._ray = ray
    return ex


async def test_a_client_server_that_failed_to_start_is_asked_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="executor.ray")
    ray = _Ray(ConnectionAbortedError(CRASH), ConnectionAbortedError(CRASH))
    await _executor(ray)._connect()
    assert ray.calls == 3
    retries = [r for r in caplog.records if getattr(r, "event", None) == "ray.connect.retry"]
    assert [r.count for r in retries] == [1, 2]  # type: ignore[attr-defined]
    assert all("ray://127.0.0.2:1" in r.getMessage() for r in retries)


async def test_a_client_server_that_never_starts_names_the_cause_and_the_fix() -> None:
    ray = _Ray(*(ConnectionAbortedError(CRASH) for _ in range(5)))
    with pytest.raises(EngineUnavailable) as caught:
        await _executor(ray)._connect()
    assert ray.calls == 3
    assert caught.value.code == "ENGINE_UNAVAILABLE"
    message = caught.value.message
    assert "ray://127.0.0.2:1" in message and "3 attempts" in message
    assert "GRPC_ENABLE_FORK_SUPPORT=false" in message and "ray_client_server_" in message


async def test_other_connection_failures_are_not_retried() -> None:
    ray = _Ray(ConnectionError("ray client connection timeout"))
    with pytest.raises(EngineUnavailable) as caught:
        await _executor(ray)._connect()
    assert ray.calls == 1
    assert "GRPC_ENABLE_FORK_SUPPORT" not in caught.value.message
    bad = _Ray(ValueError("bad address"))
    with pytest.raises(ConfigError):
        await _executor(bad)._connect()
    assert bad.calls == 1
