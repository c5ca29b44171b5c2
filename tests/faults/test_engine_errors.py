"""Engine error translation for an engine that is going away (no engine needed)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import aiodocker
import pytest

from executor import EngineUnavailable, ExecutorError
from executor.engine import map_exceptions
from executor.engine.docker import translate

if TYPE_CHECKING:
    import contextlib


def engine_errors(name: str) -> contextlib.AbstractContextManager[None]:
    """The Docker engine's error translation for one request."""
    return map_exceptions(translate(name))


@pytest.mark.parametrize(
    "message",
    [
        "transport is closing: unavailable",  # containerd's gRPC during a dockerd shutdown
        "connection error: desc = ...",
        "unexpected EOF",
    ],
)
def test_engine_going_away_is_engine_unavailable(message: str) -> None:
    """A 5xx saying the engine or its containerd is going away maps to EngineUnavailable."""
    with pytest.raises(EngineUnavailable), engine_errors("unix:///x.sock"):
        raise aiodocker.DockerError(500, {"message": message})


def test_other_server_errors_stay_engine_error() -> None:
    """A 5xx that refuses the request itself stays ENGINE_ERROR."""
    with pytest.raises(ExecutorError) as info, engine_errors("unix:///x.sock"):
        raise aiodocker.DockerError(500, {"message": "invalid CapAdd: unknown capability"})
    assert not isinstance(info.value, EngineUnavailable)
    assert info.value.code == "ENGINE_ERROR"
