"""Cancellation storm: 200 calls in flight, each cancelled at a random moment.

Whatever the moment (waiting for a pooled container, creating, attaching, starting,
exchanging, removing), a cancelled call may leave no container behind and no pool slot lost,
and the executor must keep working.
"""

from __future__ import annotations

import os
import random
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from tests.container._support import case, containers

from .tasks import FILES

if TYPE_CHECKING:
    from tests.container.conftest import MakeExecutor

    from .conftest import make_executor as _make_executor  # noqa: F401

pytestmark = pytest.mark.docker

CALLS = int(os.environ.get("EXECUTOR_STORM_CALLS", "200"))
MODES = {
    "fresh": {},
    "pool-start": {"mode": "pool", "containers": 4, "prewarm": True},
    "pool-wait": {"mode": "pool", "containers": 4, "prewarm": True, "on_empty": "wait"},
    "reuse": {"mode": "reuse", "containers": 4, "prewarm": True},
}


@pytest.mark.parametrize("mode", list(MODES))
async def test_cancellation_storm_leaves_nothing_behind(
    make_executor: MakeExecutor, mode: str
) -> None:
    """200 calls cancelled at random moments: no container left, pool intact, executor works."""
    seed = random.randrange(2**32)
    print(f"storm seed={seed} mode={mode} calls={CALLS}")
    rng = random.Random(seed)
    labels = case()
    settings: dict[str, Any] = MODES[mode]
    ex = make_executor(files=FILES, labels=labels, timeout=60, **settings)
    finished = 0
    async with ex:
        assert await ex.execute({"sleep": 0}) == {"sleep": 0}

        async def call(delay: float, sleep: float) -> None:
            nonlocal finished
            with anyio.move_on_after(delay):
                await ex.execute({"sleep": sleep})
                finished += 1

        with anyio.fail_after(240):
            async with anyio.create_task_group() as tg:
                for _ in range(CALLS):
                    tg.start_soon(call, rng.uniform(0, 4.0), rng.uniform(0, 0.5))
        print(f"storm: {finished} of {CALLS} calls finished before their cancellation")

        pool = ex._pool
        if pool is not None:
            with anyio.fail_after(60):
                while pool.idle < pool.size or pool.starting or pool._busy:
                    await anyio.sleep(0.1)
            assert pool._busy == 0
            if mode == "reuse":
                # Reusable workers started on demand during the storm come back too: `containers`
                # is the floor there, max_idle trims the rest.
                assert pool.idle >= pool.size
            else:
                assert pool.idle == pool.size
        assert await ex.execute({"after": "storm"}) == {"after": "storm"}
    with anyio.fail_after(30):
        while left := containers(labels):
            await anyio.sleep(0.2)
    assert not left
