"""pytest fixtures for code that runs on executors; loaded through the ``pytest11`` entry point.

Installed with the package (``-p no:executor`` turns it off). The fixtures need
pytest-asyncio and work in its ``auto`` and ``strict`` modes:

* ``executor_engine``: the default Docker engine (``DOCKER_HOST``, else the usual socket),
  pinged; closed after the test. Without an engine the test is skipped with the reason, or
  fails under ``--executor-require-engine`` or ``EXECUTOR_REQUIRE_DOCKER=1``.
* ``container_executor``: an async factory, ``ex = await container_executor(config,
  input_type=..., output_type=..., engine=..., engines=[...])``, returning an entered
  :class:`~executor.ContainerExecutor`. Each one is closed after the test, and the test then
  errors if a container of it is still on its engine (the leftovers are removed). Without
  ``engine=``, ``engines=`` or ``config.engines`` it needs the default engine, and skips or
  fails as above.
* ``local_executor``: the same for :class:`~executor.LocalExecutor`,
  ``await local_executor(fn, config, input_type=..., output_type=...)``.

The engine's answer (or silence) is asked once per session; every test gets its own client,
in its own event loop.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Protocol

import anyio
import pytest

from ._errors import ExecutorError
from ._local import LocalConfig, LocalExecutor

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

    from .container import ContainerConfig, ContainerExecutor, EngineEndpoint
    from .engine import Engine

__all__ = ["ContainerExecutorFactory", "LocalExecutorFactory"]

#: How long the default engine may take to answer the first ping.
PING_TIMEOUT = 10.0
_REQUIRE_ENV = "EXECUTOR_REQUIRE_DOCKER"
#: Per session: None once the default engine answered, else why it did not.
_engine_state = pytest.StashKey["str | None"]()


class ContainerExecutorFactory(Protocol):
    """The ``container_executor`` fixture: makes entered executors closed after the test."""

    async def __call__(
        self,
        config: ContainerConfig,
        *,
        input_type: Any = None,
        output_type: Any = None,
        engine: Engine | None = None,
        engines: Sequence[str | EngineEndpoint | Engine] | None = None,
    ) -> ContainerExecutor[Any, Any]: ...


class LocalExecutorFactory(Protocol):
    """The ``local_executor`` fixture: makes entered executors closed after the test."""

    async def __call__(
        self,
        fn: Callable[[Any], Any],
        config: LocalConfig | None = None,
        *,
        input_type: Any = None,
        output_type: Any = None,
    ) -> LocalExecutor[Any, Any]: ...


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("executor", "typed-executor fixtures")
    group.addoption(
        "--executor-require-engine",
        action="store_true",
        default=False,
        help="fail, instead of skip, tests whose executor fixtures find no Docker engine "
        f"(as does {_REQUIRE_ENV}=1)",
    )


def pytest_report_header(config: pytest.Config) -> str | None:
    if _engine_required(config):
        return "executor: a missing Docker engine fails the tests that need one"
    return None


def _engine_required(config: pytest.Config) -> bool:
    return bool(config.getoption("executor_require_engine")) or (
        os.environ.get(_REQUIRE_ENV) == "1"
    )


async def _ping(engine: Engine) -> str | None:
    """None when ``engine`` answers a ping in time, else why not."""
    with anyio.move_on_after(PING_TIMEOUT):
        try:
            await engine.ping()
        except ExecutorError as exc:
            return exc.message
        return None
    return f"the Docker engine at {engine.name} did not answer within {PING_TIMEOUT:g} s"


async def _default_engine(config: pytest.Config) -> Engine:
    """A client of the default engine, once it answered; else skip (or fail) the test."""
    from .engine.docker import DockerEngine

    engine = DockerEngine()
    if _engine_state not in config.stash:
        config.stash[_engine_state] = await _ping(engine)
    reason = config.stash[_engine_state]
    if reason is None:
        return engine
    await engine.aclose()
    if _engine_required(config):
        pytest.fail(
            f"no Docker engine: {reason} (--executor-require-engine or {_REQUIRE_ENV}=1 "
            "make this a failure)",
            pytrace=False,
        )
    pytest.skip(f"no Docker engine: {reason}")


async def _leftovers(
    executor: ContainerExecutor[Any, Any],
    given: Engine | None,
    given_list: Sequence[str | EngineEndpoint | Engine] | None,
) -> list[str]:
    """Containers of a closed executor still on its engines; removed now, ids returned."""
    from .container.routing import make_engines
    from .engine import INSTANCE_LABEL, cleanup

    config = executor.config
    instance = executor.labels[INSTANCE_LABEL]
    # The executor closed the clients it made: look again through clients of our own.
    engines = make_engines(
        config.engines, docker_url=config.docker_url, engine=given, engines=given_list
    )
    left: list[str] = []
    for engine, owned in engines:
        try:
            found = await engine.list_managed({INSTANCE_LABEL: instance})
            for info in found:
                container_id = str(info["Id"])
                left.append(f"{container_id} on {engine.name}")
                await cleanup(engine.remove, container_id)
        except ExecutorError:
            pass  # the engine is away: the executor handed its containers to the sweeper
        finally:
            if owned:
                await engine.aclose()
    return left


def _async_fixture(fn: Callable[..., Any]) -> Any:
    """``pytest_asyncio.fixture``, or a fixture that says pytest-asyncio is missing."""
    try:
        import pytest_asyncio
    except ImportError:  # pragma: no cover - pytest-asyncio is in the dev extra

        def missing() -> None:
            pytest.fail(f"the {fn.__name__} fixture needs pytest-asyncio", pytrace=False)

        missing.__name__ = fn.__name__
        missing.__doc__ = fn.__doc__
        return pytest.fixture(missing)
    return pytest_asyncio.fixture(fn)


@_async_fixture
async def executor_engine(request: pytest.FixtureRequest) -> AsyncIterator[Engine]:
    """The default Docker engine (skips, or fails when required, if none answers)."""
    engine = await _default_engine(request.config)
    try:
        yield engine
    finally:
        await engine.aclose()


@_async_fixture
async def container_executor(
    request: pytest.FixtureRequest,
) -> AsyncIterator[ContainerExecutorFactory]:
    """``await container_executor(config, ...)``: an entered ContainerExecutor, closed and
    checked for leftover containers after the test."""
    from .container import ContainerExecutor

    made: list[
        tuple[
            ContainerExecutor[Any, Any],
            Engine | None,
            Sequence[str | EngineEndpoint | Engine] | None,
        ]
    ] = []

    async def make(
        config: ContainerConfig,
        *,
        input_type: Any = None,
        output_type: Any = None,
        engine: Engine | None = None,
        engines: Sequence[str | EngineEndpoint | Engine] | None = None,
    ) -> ContainerExecutor[Any, Any]:
        if engine is None and engines is None and not config.engines:
            await (await _default_engine(request.config)).aclose()
        executor: ContainerExecutor[Any, Any] = ContainerExecutor(
            config, input_type=input_type, output_type=output_type, engine=engine, engines=engines
        )
        made.append((executor, engine, engines))
        return await executor.__aenter__()

    try:
        yield make
    finally:
        left: list[str] = []
        try:
            for executor, _, _ in made:
                await executor.aclose()
        finally:
            for executor, engine, engines in made:
                left += await _leftovers(executor, engine, engines)
        if left:
            pytest.fail(
                f"the test left {len(left)} container(s) behind after aclose(): "
                f"{', '.join(left)} (removing them now)",
                pytrace=False,
            )


@_async_fixture
async def local_executor() -> AsyncIterator[LocalExecutorFactory]:
    """``await local_executor(fn, config, ...)``: an entered LocalExecutor, closed after."""
    made: list[LocalExecutor[Any, Any]] = []

    async def make(
        fn: Callable[[Any], Any] | Callable[[Any], Awaitable[Any]],
        config: LocalConfig | None = None,
        *,
        input_type: Any = None,
        output_type: Any = None,
    ) -> LocalExecutor[Any, Any]:
        executor: LocalExecutor[Any, Any] = LocalExecutor(
            fn, config, input_type=input_type, output_type=output_type
        )
        made.append(executor)
        return await executor.__aenter__()

    try:
        yield make
    finally:
        for executor in made:
            await executor.aclose()
