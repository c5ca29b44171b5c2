"""The engine stops in the middle of a call, then comes back: the executor survives it.

A private dockerd (tests/_dockerd.py) is stopped and started by the test; the system engine,
which other tests use, is never touched.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from executor import ContainerExecutor, ContainerFailed, EngineUnavailable

from .._dockerd import PrivateDockerd
from .conftest import PYTHON_IMAGE, RUN_ID, RUN_LABEL, config
from .tasks import FILES

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.docker


@pytest.fixture
def private_engine() -> Iterator[PrivateDockerd]:
    """A private dockerd with the Python runner image, destroyed after the test."""
    if not PrivateDockerd.available():
        reason = "a private dockerd cannot be started here (needs dockerd and root)"
        if os.environ.get("EXECUTOR_REQUIRE_DOCKER") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    engine = PrivateDockerd()
    try:
        start(engine)
        engine.load_image(PYTHON_IMAGE)
        yield engine
    finally:
        engine.destroy()


def start(engine: PrivateDockerd) -> None:
    """Start dockerd; on a loaded machine its containerd may miss dockerd's start-up deadline."""
    for attempt in range(3):
        try:
            engine.start()
            return
        except RuntimeError:
            if attempt == 2:
                raise


def ours(engine: PrivateDockerd) -> list[str]:
    """Containers of this test run on the private engine."""
    out = engine.docker("ps", "-aq", "--filter", f"label={RUN_LABEL}={RUN_ID}", check=False)
    return out.stdout.decode().split()


async def wait_for_container(engine: PrivateDockerd) -> None:
    """Poll until a container of this run runs on the private engine (fail after 30 s)."""
    with anyio.fail_after(30):
        while True:
            out = await anyio.to_thread.run_sync(
                lambda: engine.docker(
                    "ps", "-q", "--filter", f"label={RUN_LABEL}={RUN_ID}", check=False
                )
            )
            if out.stdout.strip():
                return
            await anyio.sleep(0.1)


@pytest.mark.parametrize("kill", [False, True], ids=["sigterm", "sigkill"])
async def test_engine_stopped_mid_call_then_back(
    private_engine: PrivateDockerd, kill: bool
) -> None:
    """A call in flight when dockerd stops raises EngineUnavailable within its timeout; the same
    executor serves calls again once dockerd is back."""
    timeout = 40.0
    ex: ContainerExecutor[Any, Any] = ContainerExecutor(
        config(PYTHON_IMAGE, files=FILES, docker_url=private_engine.url, timeout=timeout)
    )
    async with ex:
        assert await ex.execute({"sleep": 0}) == {"sleep": 0}  # image derived, client warm
        outcome: list[BaseException] = []

        async def call() -> None:
            try:
                await ex.execute({"sleep": 600})
            except Exception as exc:
                outcome.append(exc)

        t0 = time.monotonic()
        async with anyio.create_task_group() as tg:
            tg.start_soon(call)
            await wait_for_container(private_engine)
            await anyio.to_thread.run_sync(lambda: private_engine.stop(kill=kill))
            with anyio.fail_after(timeout + 10):
                while not outcome:
                    await anyio.sleep(0.05)
        elapsed = time.monotonic() - t0
        assert len(outcome) == 1, outcome
        if kill:
            assert isinstance(outcome[0], EngineUnavailable), outcome
        else:
            # A graceful stop kills the containers first and still answers the inspection:
            # the engine's own report is the container's SIGKILL.
            assert isinstance(outcome[0], EngineUnavailable | ContainerFailed), outcome
            if isinstance(outcome[0], ContainerFailed):
                assert outcome[0].exit_code == 137 and not outcome[0].oom_killed
        print(f"engine stop ({'SIGKILL' if kill else 'SIGTERM'}): {outcome[0]!r}")
        assert elapsed < timeout, f"EngineUnavailable only after {elapsed:.1f} s"

        # While it is down, calls fail fast with the same error.
        with anyio.fail_after(timeout), pytest.raises(EngineUnavailable):
            await ex.execute({"sleep": 0})

        await anyio.to_thread.run_sync(start, private_engine)
        with anyio.fail_after(60):
            assert await ex.execute({"after": "restart"}) == {"after": "restart"}
    # The call's container may have survived the outage (SIGKILL leaves containerd running):
    # closing the executor swept it.
    with anyio.fail_after(30):
        while ours(private_engine):
            await anyio.sleep(0.2)


async def test_executor_closed_during_an_outage_leaves_nothing_once_the_engine_is_back(
    private_engine: PrivateDockerd,
) -> None:
    """SIGTERM to dockerd mid-batch, the executor closed while it is down, dockerd started
    again: every container that executor made is removed, with this process still alive."""
    from executor.container import sweeper

    ex: ContainerExecutor[Any, Any] = ContainerExecutor(
        config(
            PYTHON_IMAGE,
            files=FILES,
            docker_url=private_engine.url,
            mode="pool",
            containers=3,
            timeout=30,
        )
    )
    instance = ex.labels["executor.instance"]
    async with ex:
        assert await ex.execute({"sleep": 0}) == {"sleep": 0}
        outcomes: list[Any] = []

        async def batch() -> None:
            outcomes.extend(
                await ex.execute_many([{"sleep": 0.3}] * 12, concurrency=4, return_exceptions=True)
            )

        async with anyio.create_task_group() as tg:
            tg.start_soon(batch)
            await wait_for_container(private_engine)
            await anyio.to_thread.run_sync(lambda: private_engine.stop(kill=False))
        # Every input is done or failed with a code: nothing lost.
        assert len(outcomes) == 12
        assert all(isinstance(o, dict) or getattr(o, "code", None) for o in outcomes), outcomes
    # Closed while the engine was down: what could not be removed went to the sweeper.
    await anyio.to_thread.run_sync(start, private_engine)
    with anyio.fail_after(60):
        while True:
            out = await anyio.to_thread.run_sync(
                lambda: private_engine.docker(
                    "ps", "-aq", "--filter", f"label=executor.instance={instance}", check=False
                )
            )
            if not out.stdout.strip():
                break
            await anyio.sleep(0.5)
    assert await anyio.to_thread.run_sync(sweeper.wait_idle, 30.0)
