"""RayExecutor on a real two-node Ray cluster on this machine: the head node on the system
engine, a worker node on a private dockerd. Real actors, real containers, no mocks."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import subprocess
import sys
from collections import Counter
from typing import TYPE_CHECKING, Any

import anyio
import msgspec
import pytest

from executor import (
    EngineUnavailable,
    ExecutionFailed,
    ExecutorError,
    InputValidationError,
    OutputValidationError,
)

from .conftest import PYTHON_IMAGE, RUN_ID, RUN_LABEL, MakeRay, TwoNodes, case

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.docker, pytest.mark.ray]

# One task module for every test: its derived image is built once per engine per session.
TASK = """
import time, uuid

def execute(input):
    if "x" in input:  # the typed test: Point in, Total out
        if input["x"] < 0:
            raise ValueError("negative x")
        return {"total": "not a number" if input["x"] == 99 else input["x"] + input["y"]}
    if input.get("record"):
        with open(f"/runs/{input['id']}.{uuid.uuid4().hex}", "x"):
            pass
    time.sleep(input.get("sleep", 0))
    return {"id": input.get("id"), "n": input.get("n", 0) * 2}
"""


class Point(msgspec.Struct):
    x: int
    y: int


class Total(msgspec.Struct):
    total: int


@pytest.fixture
async def both_nodes(cluster: TwoNodes) -> TwoNodes:
    """The cluster with its worker node running (a test before may have stopped it)."""
    if not cluster.ray.alive("worker"):
        await anyio.to_thread.run_sync(cluster.start_worker)
    return cluster


def runs_dir(tmp_path: Path) -> Path:
    """A directory the tasks (uid 1000, on either engine) record their runs in."""
    runs = tmp_path / "runs"
    runs.mkdir()
    runs.chmod(0o777)
    return runs


def run_counts(runs: Path) -> Counter[int]:
    return Counter(int(p.name.split(".")[0]) for p in runs.iterdir())


def logged(caplog: pytest.LogCaptureFixture, event: str) -> list[logging.LogRecord]:
    """The records of one lifecycle event of the executor.ray logger."""
    return [r for r in caplog.records if getattr(r, "event", None) == event]


async def wait_for(condition: Any, timeout: float, what: str) -> None:
    """Poll ``condition`` every 0.1 s; fail the test naming ``what`` after ``timeout``."""
    with anyio.move_on_after(timeout):
        while not condition():
            await anyio.sleep(0.1)
        return
    pytest.fail(f"timed out after {timeout:g} s waiting for {what}")


async def test_calls_spread_over_both_engines(
    both_nodes: TwoNodes, make_ray: MakeRay, caplog: pytest.LogCaptureFixture
) -> None:
    """One actor per node: concurrent calls run in containers on both nodes' engines; each
    actor's placement and start are logged with its node and engine."""
    caplog.set_level(logging.INFO, logger="executor.ray")
    ex = make_ray(case(), files={"/app/execute.py": TASK})
    async with ex:
        runs = await asyncio.gather(*(ex.run({"id": i, "sleep": 0.5}) for i in range(8)))
        nodes = ex.nodes
    assert {r.engine for r in runs} == {both_nodes.system, both_nodes.private.url}
    assert sorted(n["engine"] for n in nodes) == sorted([both_nodes.system, both_nodes.private.url])
    assert all(n["up"] for n in nodes) and sum(n["calls"] for n in nodes) == 8
    assert [r.output["id"] for r in runs] == list(range(8))
    assert sorted(r.node_id for r in logged(caplog, "ray.actor.placed")) == sorted(
        n["node_id"] for n in nodes
    )
    started = logged(caplog, "ray.actor.started")
    assert sorted((r.node_id, r.engine, r.levelname) for r in started) == sorted(
        (n["node_id"], n["engine"], "INFO") for n in nodes
    )


async def test_ray_client_address(both_nodes: TwoNodes) -> None:
    """address="ray://..." (Ray Client, which cannot stream results) runs calls on both nodes
    from a driver process of its own that never called ray.init."""
    address = both_nodes.ray.client_address
    if address is None:
        pytest.skip("ray[client] is not installed, so the head serves no ray:// address")
    labels = {RUN_LABEL: RUN_ID, **case()}
    script = f"""
import asyncio, json
from executor import ContainerConfig
from executor.ray import RayExecutor

async def main():
    config = ContainerConfig(
        {PYTHON_IMAGE!r}, labels={labels!r}, files={{"/app/execute.py": {TASK!r}}}
    )
    async with RayExecutor(config, address={address!r}) as ex:
        runs = await asyncio.gather(*(ex.run({{"id": i, "sleep": 0.3}}) for i in range(6)))
        print(json.dumps([sorted({{r.engine for r in runs}}), [r.output["id"] for r in runs]]))

asyncio.run(main())
"""
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    with anyio.fail_after(120):
        done = await anyio.run_process([sys.executable, "-c", script], env=env, check=False)
    assert done.returncode == 0, done.stderr.decode()[-3000:] + both_nodes.ray.client_logs()
    engines, ids = json.loads(done.stdout.decode().strip().splitlines()[-1])
    assert engines == sorted([both_nodes.system, both_nodes.private.url])
    assert ids == list(range(6))
    for engine in (both_nodes.system, both_nodes.private.url):
        assert not both_nodes.containers(engine, labels)


async def test_typed_round_trip(both_nodes: TwoNodes, make_ray: MakeRay) -> None:
    """RayExecutor[In, Out] converts and validates on the caller; errors keep their codes."""
    ex = make_ray(
        case(), files={"/app/execute.py": TASK}, types=(Point, Total), mode="reuse", containers=0
    )
    async with ex:
        assert await ex.execute({"x": 1, "y": 2}) == Total(total=3)  # a dict in, a Struct out
        assert await ex.execute(Point(2, 3)) == Total(total=5)
        with pytest.raises(InputValidationError) as bad_input:
            await ex.execute({"x": "one", "y": 2})
        assert bad_input.value.path == "$.x"
        with pytest.raises(OutputValidationError) as bad_output:
            await ex.execute(Point(99, 0))
        assert bad_output.value.path == "$.total"
        with pytest.raises(ExecutionFailed) as failed:
            await ex.execute(Point(-1, 0))
        assert failed.value.code == "USER_ERROR" and "negative x" in failed.value.message
        results = await ex.execute_many([Point(i, i) for i in range(20)])
        assert results == [Total(total=2 * i) for i in range(20)]
        # The invalid input never left this process: 4 single calls and 20 in the batch ran.
        assert sum(n["calls"] for n in ex.nodes) == 24


async def test_reuse_workers_in_actors_and_map_in_chunks(
    both_nodes: TwoNodes, make_ray: MakeRay
) -> None:
    """mode="reuse" serves calls from a few workers per actor; actors=3 spread 2 + 1 over the
    nodes; map sends its inputs in chunks (far fewer actor calls than inputs)."""
    ex = make_ray(
        case(),
        files={"/app/execute.py": TASK},
        mode="reuse",
        containers=2,
        on_empty="wait",
        actors=3,
        timeout=60,
    )
    async with ex:
        async with ex.map([{"id": i, "n": i} for i in range(300)]) as stream:
            done = {index: value async for index, value in stream}
        runs = await asyncio.gather(*(ex.run({"id": i}) for i in range(24)))
        nodes = ex.nodes
    assert done == {i: {"id": i, "n": 2 * i} for i in range(300)}
    assert len({r.container_id for r in runs}) <= 3 * 2, "reusable workers served the calls"
    assert sorted(Counter(n["engine"] for n in nodes).values()) == [1, 2]
    chunks = sum(n["chunks"] for n in nodes)
    assert chunks <= 300 // 4, f"{chunks} actor calls for 300 inputs"


async def test_cancelled_call_leaves_no_container(both_nodes: TwoNodes, make_ray: MakeRay) -> None:
    """Cancelling execute() while its container runs on an actor kills and removes it."""
    labels = case()
    ex = make_ray(labels, files={"/app/execute.py": TASK}, timeout=60)
    engines = (both_nodes.system, both_nodes.private.url)

    def running() -> list[str]:
        return [c for engine in engines for c in both_nodes.containers(engine, labels)]

    async with ex:
        await ex.execute({"id": 0})  # the derived image exists on that node's engine now
        await wait_for(lambda: not running(), 15, "the first call's container removed")
        async with anyio.create_task_group() as tg:
            tg.start_soon(ex.execute, {"id": 1, "sleep": 60})
            await wait_for(running, 30, "the call's container")
            tg.cancel_scope.cancel()
        await wait_for(lambda: not running(), 20, "the cancelled call's container removed")
        await wait_for(lambda: not any(n["in_flight"] for n in ex.nodes), 10, "its window freed")


async def test_engine_down_everywhere_fails_fast(
    both_nodes: TwoNodes, make_ray: MakeRay, caplog: pytest.LogCaptureFixture
) -> None:
    """With no actor's engine answering, a call raises EngineUnavailable instead of hanging;
    as the node's executor says it was not delivered, it is tried once on the other actor."""
    caplog.set_level(logging.INFO, logger="executor.ray")
    ex = make_ray(case(), docker_url="unix:///tmp/executor-no-such-engine.sock", timeout=30)
    async with ex:
        assert ex.nodes and not any(n["up"] for n in ex.nodes), ex.nodes
        with anyio.fail_after(20), pytest.raises(EngineUnavailable) as failed:
            await ex.execute({"id": 0})
        assert failed.value.delivered is False
        assert sorted(n["chunks"] for n in ex.nodes) == [1, 1], "one try on each actor"
    assert {r.levelname for r in logged(caplog, "ray.actor.started")} == {"WARNING"}
    [retry] = logged(caplog, "ray.call.retry")
    assert (retry.count, retry.code) == (1, "ENGINE_UNAVAILABLE")


async def test_all_actors_gone_fail_fast_then_are_replaced(
    both_nodes: TwoNodes, make_ray: MakeRay, caplog: pytest.LogCaptureFixture
) -> None:
    """With every actor process killed, calls fail with EngineUnavailable (not hang); the
    supervisor then places new actors on the nodes, which serve calls again. The losses, the
    retry and the replacements are logged."""
    caplog.set_level(logging.INFO, logger="executor.ray")
    ex = make_ray(case(), files={"/app/execute.py": TASK})
    async with ex:
        await ex.execute({"id": 0})
        old = {n["pid"] for n in ex.nodes}
        for pid in old:
            os.kill(pid, signal.SIGKILL)
        with anyio.fail_after(20), pytest.raises(EngineUnavailable):
            await ex.execute({"id": 1})
        await wait_for(
            lambda: sum(n["up"] and n["pid"] not in old for n in ex.nodes) == 2, 60, "new actors"
        )
        assert await ex.execute({"id": 2, "n": 4}) == {"id": 2, "n": 8}
        dead = {n["actor_id"] for n in ex.nodes if n["pid"] in old}
    assert {r.actor_id for r in logged(caplog, "ray.actor.lost")} == dead
    assert {r.actor_id for r in logged(caplog, "ray.actor.replaced")} == dead
    assert [r.count for r in logged(caplog, "ray.call.retry")] == [1]


class RecordedBatch:
    """16 calls of ``sleep`` seconds, 8 at a time, on an executor with a window of 4 per actor;
    every run of an input is recorded in a bind-mounted directory, to tell how often it ran."""

    def __init__(
        self, make_ray: MakeRay, tmp_path: Path, labels: dict[str, str], sleep: float
    ) -> None:
        self.runs = runs_dir(tmp_path)
        self.ex = make_ray(
            labels,
            files={"/app/execute.py": TASK},
            mounts=[f"{self.runs}:/runs:rw"],
            max_in_flight_per_actor=4,
            timeout=60,
        )
        self.inputs = [{"id": i, "sleep": sleep, "record": True} for i in range(16)]
        self.results: list[Any] = []

    async def run(self) -> None:
        self.results.extend(
            await self.ex.execute_many(self.inputs, concurrency=8, return_exceptions=True)
        )

    def lost(self) -> list[ExecutorError]:
        """The inputs that failed, once every input ended; each of the others ran once and
        gave its output, and none ran twice."""
        assert len(self.results) == len(self.inputs)
        counts = run_counts(self.runs)
        assert max(counts.values()) == 1, f"an input ran twice: {counts}"
        for index, result in enumerate(self.results):
            if not isinstance(result, ExecutorError):
                assert result == {"id": index, "n": 0} and counts[index] == 1
        return [r for r in self.results if isinstance(r, ExecutorError)]


async def test_worker_node_stopped_mid_batch(
    both_nodes: TwoNodes, make_ray: MakeRay, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Killing the worker node mid-batch: every input ends as an output or an error with a
    code, none ran twice, and no container is left on the surviving engine. The calls lost
    are logged per chunk, with their count."""
    caplog.set_level(logging.INFO, logger="executor.ray")
    labels = case()
    batch = RecordedBatch(make_ray, tmp_path, labels, sleep=1.0)
    ex = batch.ex
    async with ex:
        async with anyio.create_task_group() as tg:
            tg.start_soon(batch.run)
            # A call is running in a container on the worker node's engine: stop that node.
            await wait_for(
                lambda: both_nodes.containers(both_nodes.private.url, labels), 60, "a call there"
            )
            await anyio.sleep(0.3)
            await anyio.to_thread.run_sync(both_nodes.ray.stop_node, "worker")
        lost = batch.lost()
        assert all(r.code in ("WORKER_LOST", "ENGINE_UNAVAILABLE") for r in lost), lost
        assert 1 <= len(lost) <= 4, "only the calls delivered to the stopped node are lost"
        worker_lost = sum(r.code == "WORKER_LOST" for r in lost)
        assert sum(r.count for r in logged(caplog, "ray.call.lost")) == worker_lost
        worker = [n for n in ex.nodes if n["engine"] == both_nodes.private.url]
        assert worker and not any(n["up"] for n in worker)
        await wait_for(
            lambda: not both_nodes.containers(both_nodes.system, labels), 20, "head cleanup"
        )


async def test_node_restarted_is_used_again_and_its_leftovers_reaped(
    cluster: TwoNodes, make_ray: MakeRay, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A node that comes back gets a new actor (both logged), which first removes what a dead
    actor left on its engine; calls sent to a node that died before its actor got them run
    elsewhere."""
    caplog.set_level(logging.INFO, logger="executor.ray")
    if cluster.ray.alive("worker"):
        await anyio.to_thread.run_sync(cluster.ray.stop_node, "worker")
    labels = case()
    # What a killed actor leaves: a container with its labels whose owner process is gone.
    dead = subprocess.Popen(["true"])
    dead.wait()
    with open("/proc/self/stat", "rb") as fh:
        ticks = fh.read().rsplit(b")", 1)[1].split()[19].decode()
    owner = f"{socket.gethostname()}/{dead.pid}/{ticks}"
    left = {RUN_LABEL: RUN_ID, **labels, "executor.ray": "true", "executor.managed": "true"}
    flags = [f"--label={k}={v}" for k, v in {**left, "executor.owner": owner}.items()]
    cluster.private.docker("create", *flags, PYTHON_IMAGE)
    assert cluster.containers(cluster.private.url, left)

    runs = runs_dir(tmp_path)
    ex = make_ray(labels, files={"/app/execute.py": TASK}, mounts=[f"{runs}:/runs:rw"])
    async with ex:
        assert [n["engine"] for n in ex.nodes if n["up"]] == [cluster.system], [
            (n["state"], n["last_error"]) for n in ex.nodes
        ]
        await anyio.to_thread.run_sync(cluster.start_worker)
        await wait_for(
            lambda: any(n["up"] and n["engine"] == cluster.private.url for n in ex.nodes),
            60,
            "an actor on the restarted node",
        )
        assert not cluster.containers(cluster.private.url, left), "the leftover was reaped"
        used = await asyncio.gather(*(ex.run({"id": i, "sleep": 0.3}) for i in range(8)))
        assert cluster.private.url in {r.engine for r in used}
        [back] = [n["node_id"] for n in ex.nodes if n["engine"] == cluster.private.url]
        assert back in {r.node_id for r in logged(caplog, "ray.node.up")}
        assert back in {r.node_id for r in logged(caplog, "ray.actor.started")}

        # The node dies again while idle; calls routed to it before Ray notices are retried.
        await anyio.to_thread.run_sync(cluster.ray.stop_node, "worker")
        again = await asyncio.gather(*(ex.run({"id": i, "record": True}) for i in range(4)))
        assert {r.engine for r in again} == {cluster.system}
        assert run_counts(runs) == Counter(range(4))
