"""The engine as the commands see it: through the seam, every request bounded."""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING, Any

import anyio

from .._errors import EngineUnavailable

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable

    from ..engine import Engine

__all__ = ["ENGINE_TIMEOUT", "bounded", "connect"]

#: Engine calls made by doctor/images/reap give up after this many seconds.
ENGINE_TIMEOUT = 10.0


@contextlib.asynccontextmanager
async def connect() -> AsyncIterator[Engine]:
    """The default engine (``DOCKER_HOST``, the Docker context, the usual sockets), closed after."""
    from ..engine.docker import DockerEngine

    engine = DockerEngine()
    try:
        yield engine
    finally:
        await engine.aclose()


async def bounded(awaitable: Awaitable[Any], what: str, engine: str | None = None) -> Any:
    """Await with :data:`ENGINE_TIMEOUT`; a hang becomes :class:`EngineUnavailable`."""
    name = engine or os.environ.get("DOCKER_HOST") or "the default Docker engine"
    try:
        with anyio.fail_after(ENGINE_TIMEOUT):
            return await awaitable
    except TimeoutError as exc:
        raise EngineUnavailable(
            f"the Docker engine at {name} did not answer {what} within {ENGINE_TIMEOUT:g} s.",
            engine=name,
        ) from exc
