"""Several engines behind one executor: load spreading, failover, recovery, missing images.

The second engine is a private dockerd started by the fixture (tests/_dockerd.py); the
system engine is never stopped.
"""

from __future__ import annotations

import os
import subprocess
from collections import Counter
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from executor import ContainerExecutor, EngineEndpoint, EngineUnavailable, ImageNotFound

from .._dockerd import PrivateDockerd
from .conftest import ECHO_MOUNT, PYTHON_IMAGE, RUN_ID, RUN_LABEL, config

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.docker

SYSTEM = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
SLEEPY = """
import time

def execute(input):
    time.sleep(input.get("sleep", 0))
    return input
"""


@pytest.fixture(scope="module")
def second_engine() -> Iterator[PrivateDockerd]:
    """A second dockerd with the Python runner image loaded."""
    if not PrivateDockerd.available():
        if os.environ.get("EXECUTOR_REQUIRE_DOCKER") == "1":
            pytest.fail("a second dockerd cannot be started here (needs dockerd and root)")
        pytest.skip("a second dockerd cannot be started here (needs dockerd and root)")
    engine = PrivateDockerd()
    try:
        engine.start()
        engine.load_image(PYTHON_IMAGE)
        yield engine
    finally:
        engine.destroy()


def private_leftovers(engine: PrivateDockerd) -> list[str]:
    """Containers of this test run on the private engine."""
    out = engine.docker("ps", "-aq", "--filter", f"label={RUN_LABEL}={RUN_ID}", check=False)
    return out.stdout.decode().split()


def two_engines(second: PrivateDockerd, **kwargs: Any) -> ContainerExecutor[Any, Any]:
    return ContainerExecutor(
        config(
            PYTHON_IMAGE,
            files={"/app/execute.py": SLEEPY},
            engines=[SYSTEM, EngineEndpoint(url=second.url, capacity=1.0)],
            health_interval=0.5,
            **kwargs,
        )
    )


async def test_load_spreads_over_both_engines(second_engine: PrivateDockerd) -> None:
    """Under concurrency both engines run calls, about evenly for equal capacity."""
    async with two_engines(second_engine) as ex:
        runs = await ex.execute_many([{"sleep": 0.3}] * 12, concurrency=6)
        assert len(runs) == 12
        calls = Counter({s["engine"]: s["calls"] for s in ex.engines})
    assert calls[SYSTEM] >= 3 and calls[second_engine.url] >= 3, calls
    assert private_leftovers(second_engine) == []


async def test_capacity_weights_routing(second_engine: PrivateDockerd) -> None:
    """An engine with three times the capacity gets most of the calls in flight."""
    ex = ContainerExecutor(
        config(
            PYTHON_IMAGE,
            files={"/app/execute.py": SLEEPY},
            engines=[EngineEndpoint(url=SYSTEM, capacity=3.0), second_engine.url],
        )
    )
    async with ex:
        await ex.execute_many([{"sleep": 0.5}] * 8, concurrency=8)
        calls = {s["engine"]: s["calls"] for s in ex.engines}
    assert calls[SYSTEM] == 6 and calls[second_engine.url] == 2, calls


async def test_failover_when_an_engine_stops_mid_batch_and_recovery(
    second_engine: PrivateDockerd,
) -> None:
    """Stopping one engine mid-batch fails only its in-flight calls; it is taken back later."""
    async with two_engines(second_engine, timeout=30) as ex:
        results: list[Any] = []

        async def batch() -> None:
            results.extend(
                await ex.execute_many([{"sleep": 1.0}] * 16, concurrency=4, return_exceptions=True)
            )

        async with anyio.create_task_group() as tg:
            tg.start_soon(batch)
            with anyio.fail_after(20):
                while not any(s["in_flight"] for s in ex.engines if s["engine"] != SYSTEM):
                    await anyio.sleep(0.05)
            await anyio.to_thread.run_sync(second_engine.stop)
        failures = [r for r in results if isinstance(r, Exception)]
        assert all(isinstance(f, EngineUnavailable) for f in failures), failures
        assert len(results) - len(failures) >= 12, "calls after the stop went to the live engine"
        second = next(s for s in ex.engines if s["engine"] == second_engine.url)
        assert not second["up"]

        await anyio.to_thread.run_sync(second_engine.start)
        with anyio.fail_after(20):
            while not all(s["up"] for s in ex.engines):
                await anyio.sleep(0.1)
        before = next(s["calls"] for s in ex.engines if s["engine"] == second_engine.url)
        await ex.execute_many([{"sleep": 0.3}] * 6, concurrency=6)
        after = next(s["calls"] for s in ex.engines if s["engine"] == second_engine.url)
        assert after > before, "the recovered engine serves calls again"
    assert private_leftovers(second_engine) == []


async def test_undelivered_call_is_retried_on_the_other_engine(
    second_engine: PrivateDockerd,
) -> None:
    """A call whose container could not even be created on a dead engine runs on the other."""
    dead = "unix:///tmp/executor-no-such-engine.sock"
    ex = ContainerExecutor(
        config(PYTHON_IMAGE, files={"/app/execute.py": SLEEPY}, engines=[dead, SYSTEM])
    )
    async with ex:
        results = [await ex.run({"n": i}) for i in range(4)]
        assert all(r.engine == SYSTEM for r in results)
        status = {s["engine"]: s for s in ex.engines}
    assert not status[dead]["up"] and status[SYSTEM]["calls"] == 4


async def test_all_engines_down_fails_fast_with_engine_unavailable() -> None:
    """With no engine answering, a call raises EngineUnavailable instead of hanging."""
    ex = ContainerExecutor(
        config(PYTHON_IMAGE, engines=["unix:///tmp/nope-1.sock", "tcp://127.0.0.1:1"], timeout=30)
    )
    async with ex:
        with anyio.fail_after(25), pytest.raises(EngineUnavailable):
            await ex.execute(1)


async def test_missing_image_is_reported_per_engine(second_engine: PrivateDockerd) -> None:
    """An image present on one engine only is reported missing naming the other engine."""
    tag = f"executor-test/only-system:{RUN_ID}"
    subprocess.run(["docker", "tag", PYTHON_IMAGE, tag], check=True)
    try:
        ex = ContainerExecutor(config(tag, engines=[second_engine.url]))
        async with ex:
            with pytest.raises(ImageNotFound) as info:
                await ex.execute(1)
        assert info.value.engine == second_engine.url
        assert second_engine.url in str(info.value)
    finally:
        subprocess.run(["docker", "rmi", tag], check=False, capture_output=True)


async def test_missing_image_can_be_copied_from_another_engine(
    second_engine: PrivateDockerd,
) -> None:
    """missing_image='copy' loads the image from an engine that has it, then runs there."""
    tag = f"executor-test/copy-me:{RUN_ID}"
    subprocess.run(["docker", "tag", PYTHON_IMAGE, tag], check=True)
    try:
        ex = ContainerExecutor(
            config(
                tag, engines=[SYSTEM, second_engine.url], missing_image="copy", mounts=[ECHO_MOUNT]
            )
        )
        async with ex:
            # Concurrency 2 sends one call to each engine; the second engine lacks the image.
            results = await ex.execute_many([{"a": 1}, {"b": 2}], concurrency=2)
        assert results == [{"a": 1}, {"b": 2}]
        assert second_engine.docker("image", "inspect", tag, check=False).returncode == 0
    finally:
        subprocess.run(["docker", "rmi", tag], check=False, capture_output=True)
        second_engine.docker("rmi", tag, check=False)
