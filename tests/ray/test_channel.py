"""The data connection between a RayExecutor and its actors, on the real two-node cluster:
what it refuses, what happens when it breaks mid-batch, and the Ray calls' path without it."""

from __future__ import annotations

import asyncio
import logging
import struct
from collections import Counter
from typing import TYPE_CHECKING

import anyio
import pytest

from .conftest import MakeRay, TwoNodes, case
from .test_ray import TASK, RecordedBatch, both_nodes, logged, wait_for

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.docker, pytest.mark.ray]
__all__ = ["both_nodes"]  # the fixture, imported to be used here


async def test_each_actor_has_a_data_connection_and_ray_calls_without_it(
    both_nodes: TwoNodes, make_ray: MakeRay
) -> None:
    """By default every actor reports the address of its data connection; with
    data_channel=False none does, and map and single calls work the same over Ray calls."""
    inputs = [{"id": i, "n": i} for i in range(120)]
    expected = {i: {"id": i, "n": 2 * i} for i in range(120)}
    for data_channel in (True, False):
        ex = make_ray(
            case(),
            files={"/app/execute.py": TASK},
            mode="reuse",
            containers=0,
            data_channel=data_channel,
        )
        async with ex:
            async with ex.map(inputs) as stream:
                done = {index: value async for index, value in stream}
            runs = await asyncio.gather(*(ex.run({"id": i, "sleep": 0.2}) for i in range(6)))
            nodes = ex.nodes
        assert done == expected
        assert [r.output["id"] for r in runs] == list(range(6))
        assert {r.engine for r in runs} == {both_nodes.system, both_nodes.private.url}
        channels = [n["channel"] for n in nodes]
        if data_channel:
            assert all(c and c.startswith("127.0.0.2:") for c in channels), channels
        else:
            assert channels == [None, None]
        assert sum(n["chunks"] for n in nodes) <= 120 // 4 + 6


async def test_a_connection_without_the_secret_gets_nothing(
    both_nodes: TwoNodes, make_ray: MakeRay
) -> None:
    """Anyone else who connects to an actor's port is closed on unanswered, whatever they
    send: a wrong secret, a huge length, a request frame without the secret first. The
    executor's own connection is untouched."""
    ex = make_ray(case(), files={"/app/execute.py": TASK})
    async with ex:
        assert await ex.execute({"id": 1, "n": 1}) == {"id": 1, "n": 2}
        host, port = ex.nodes[0]["channel"].split(":")
        request = b"\x93\x01\x00\x91\xc4\x02{}"  # msgpack [ACCEPT, 0, [b"{}"]]
        for attempt in (
            struct.pack(">I", 32) + b"x" * 32,
            struct.pack(">I", 2**31) + b"x" * 64,
            struct.pack(">I", len(request)) + request,
        ):
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(attempt)
            with anyio.fail_after(15):
                assert await reader.read() == b"", "the actor answered a stranger"
            writer.close()
        assert await ex.execute({"id": 2, "n": 2}) == {"id": 2, "n": 4}
        assert all(n["up"] and n["channel"] for n in ex.nodes)


async def test_connection_broken_mid_batch(
    both_nodes: TwoNodes,
    make_ray: MakeRay,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A data connection reset while its calls run: those calls fail with WorkerLost (they
    may have run) and their containers are killed; nothing runs twice; the actor answers a
    ping, gets a new connection and serves calls again."""
    caplog.set_level(logging.INFO, logger="executor.ray")
    labels = case()
    batch = RecordedBatch(make_ray, tmp_path, labels, sleep=1.0)
    ex = batch.ex
    async with ex:
        [head] = [a for a in ex._fleet.actors if a.engine == both_nodes.system]
        async with anyio.create_task_group() as tg:
            tg.start_soon(batch.run)
            await wait_for(
                lambda: both_nodes.containers(both_nodes.system, labels), 60, "a call there"
            )
            await anyio.sleep(0.3)
            head.channel._writer.transport.abort()  # a reset, as a broken network gives
        lost = batch.lost()
        assert lost and all(r.code == "WORKER_LOST" for r in lost), lost
        assert len(lost) <= 4, "only the calls on the broken connection are lost"
        assert sum(r.count for r in logged(caplog, "ray.call.lost")) == len(lost)
        await wait_for(lambda: head.routable and head.channel is not None, 20, "reconnected")
        assert {r.actor_id for r in logged(caplog, "ray.actor.back")} == {head.actor_id}
        await wait_for(
            lambda: not both_nodes.containers(both_nodes.system, labels), 20, "cancelled calls gone"
        )
        again = await asyncio.gather(*(ex.run({"id": 100 + i}) for i in range(8)))
        assert Counter(r.engine for r in again)[both_nodes.system] >= 1
