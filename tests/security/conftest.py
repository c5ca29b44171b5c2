"""Fixtures for the hostile-code suite: the container fixtures, a runtime parameter, a sandbox.

Every test runs once per runtime: the engine's default (runc) and gVisor (``runsc``) when it
is registered (never on Podman, whose Docker API cannot choose a runtime per container). The
whole suite also runs on Podman: ``make test-podman``. ``sandbox`` builds executors running
:data:`hostile.FILES` with the default settings plus the overrides a test passes, labels them
with a per-test label, closes them in ``finally`` and then fails the test if any of its
containers remain.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from executor import ContainerExecutor
from tests.container._support import case, containers
from tests.container.conftest import (
    PYTHON_IMAGE,
    RUN_ID,
    RUN_LABEL,
    config,
    make_executor,
    no_leftover_containers,
)
from tests.container.test_runtime import require_runsc

from .hostile import FILES

__all__ = ["RUN_ID", "RUN_LABEL", "make_executor", "no_leftover_containers"]

Sandbox = Callable[..., ContainerExecutor[Any, Any]]


@pytest.fixture(params=[None, "runsc"], ids=["runc", "runsc"])
def runtime(request: pytest.FixtureRequest) -> str | None:
    """The OCI runtime: the engine's default, then gVisor (skipped when not registered)."""
    if request.param == "runsc":
        require_runsc()
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
async def sandbox(runtime: str | None) -> AsyncIterator[Sandbox]:
    """Factory of executors running the hostile module; none of their containers may remain."""
    labels = case()
    made: list[ContainerExecutor[Any, Any]] = []

    def make(**kwargs: Any) -> ContainerExecutor[Any, Any]:
        kwargs.setdefault("files", FILES)
        executor: ContainerExecutor[Any, Any] = ContainerExecutor(
            config(PYTHON_IMAGE, runtime=runtime, labels=labels, **kwargs)
        )
        made.append(executor)
        return executor

    try:
        yield make
    finally:
        for executor in made:
            await executor.aclose()
    left = containers(labels)
    assert not left, f"containers left behind: {left}"
