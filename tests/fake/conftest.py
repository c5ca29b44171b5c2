"""Fixtures for the fake-engine tests: executors over :class:`executor.testing.FakeEngine`.

No Docker: these run in ``make test-fast``. Every executor made through ``make`` is closed at
teardown, and then no fake container may be left.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import pytest

from executor import ContainerConfig, ContainerExecutor

if TYPE_CHECKING:
    from executor.testing import FakeEngine

Make = Callable[..., ContainerExecutor[Any, Any]]


@pytest.fixture
async def make() -> AsyncIterator[Make]:
    """``make(engine or [engines], **config)`` → an executor closed after the test."""
    made: list[tuple[ContainerExecutor[Any, Any], list[FakeEngine]]] = []

    def build(
        engine: FakeEngine | list[FakeEngine], **settings: Any
    ) -> ContainerExecutor[Any, Any]:
        engines = engine if isinstance(engine, list) else [engine]
        settings.setdefault("timeout", 10)
        if len(engines) == 1:
            ex: ContainerExecutor[Any, Any] = ContainerExecutor(
                ContainerConfig("fake/runner:latest", **settings), engine=engines[0]
            )
        else:
            ex = ContainerExecutor(
                ContainerConfig("fake/runner:latest", **settings), engines=engines
            )
        made.append((ex, engines))
        return ex

    yield build
    for ex, _ in made:
        await ex.aclose()
    for _, engines in made:  # after all are closed: executors may share an engine
        for engine in engines:
            if not engine.down:
                assert engine.live() == [], f"{engine.name} kept {engine.live()}"
