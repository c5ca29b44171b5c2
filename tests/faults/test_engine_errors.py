"""Engine error translation: an engine going away, a server that is no Docker API (no engine
needed)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import aiodocker
import pytest

from executor import (
    ContainerConfig,
    ContainerExecutor,
    EngineError,
    EngineUnavailable,
    ExecutorError,
)
from executor.engine import map_exceptions
from executor.engine.docker import DockerEngine, translate

from .._notdocker import NOT_DOCKER, not_docker, serving
from .conftest import PYTHON_IMAGE

if TYPE_CHECKING:
    import contextlib

    from .._notdocker import NotDocker


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


def test_an_error_raised_by_our_own_code_is_not_translated() -> None:
    """A TypeError/KeyError/ValueError that did not come from aiodocker reading an answer is a
    bug of ours and passes the table unchanged."""
    for error in (TypeError("ours"), KeyError("ours"), ValueError("ours")):
        with pytest.raises(type(error)), engine_errors("unix:///x.sock"):
            raise error


@pytest.mark.parametrize("handler", NOT_DOCKER.values(), ids=NOT_DOCKER.keys())
async def test_a_container_call_to_a_server_that_is_not_docker_is_an_engine_error(
    handler: type[NotDocker],
) -> None:
    """``execute()`` against an address that answers HTTP but is no Docker API raises
    EngineError (not retryable) naming the address, what it answered and the fix; never the
    TypeError or KeyError aiodocker would raise on its answer."""
    with serving(handler) as url:
        config = ContainerConfig(PYTHON_IMAGE, docker_url=url, timeout=10, start_timeout=10)
        async with ContainerExecutor(config) as ex:
            with pytest.raises(EngineError) as info:
                await ex.execute({"a": 1})
    error = info.value
    assert not isinstance(error, EngineUnavailable) and not error.retryable
    assert error.code == "ENGINE_ERROR" and error.status == handler.status
    assert f"the server at {url} is not a Docker Engine API" in error.message
    assert f"HTTP {handler.status}" in error.message and "GET /_ping" in error.message
    assert "DOCKER_HOST" in error.message


#: Says it is Docker (the Api-Version header) but answers everything with a web page.
_HTML_WITH_API_VERSION = not_docker(200, "text/html", b"<p>hi</p>", {"Api-Version": "1.43"})
#: Says it is Docker but answers everything with plain text.
_TEXT_WITH_API_VERSION = not_docker(200, "text/plain", b"OK", {"Api-Version": "1.43"})


@pytest.mark.parametrize(
    "handler", [_HTML_WITH_API_VERSION, _TEXT_WITH_API_VERSION], ids=["html", "text"]
)
async def test_an_odd_answer_after_a_good_ping_is_an_engine_error(
    handler: type[NotDocker],
) -> None:
    """A server whose ping looks like Docker's but whose other answers are not the API's
    (a page aiodocker cannot parse, text where an object belongs) makes ``info()`` and an
    image inspection raise EngineError naming the address, not a TypeError or ValueError."""
    with serving(handler) as url:
        engine = DockerEngine(url)
        try:
            await engine.ping()
            for request in (engine.info(), engine.images.inspect("some/image")):
                with pytest.raises(EngineError) as info:
                    await request
                assert f"the server at {url} is not a Docker Engine API" in info.value.message
        finally:
            await engine.aclose()
