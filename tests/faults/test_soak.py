"""Soak: thousands of calls through a pooled executor, watching for leaks.

CI runs a reduced size (``EXECUTOR_SOAK_CALLS``, default 200). The full size of the issue::

    EXECUTOR_SOAK_CALLS=2000 .venv/bin/pytest tests/faults/test_soak.py -s

Reports (print, see ``-s``) and bounds: containers, open file descriptors, sockets (the
engine's HTTP connections and attach streams), and RSS of this process.
"""

from __future__ import annotations

import contextlib
import gc
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from tests.container._support import case, containers

from .tasks import FILES

if TYPE_CHECKING:
    from tests.container.conftest import MakeExecutor

pytestmark = [pytest.mark.docker, pytest.mark.slow]

CALLS = int(os.environ.get("EXECUTOR_SOAK_CALLS", "200"))
CONCURRENCY = 8
MiB = 1024 * 1024


def process_figures() -> dict[str, int]:
    """Open fds, of which sockets, and resident memory (bytes) of this process."""
    gc.collect()
    fds = os.listdir("/proc/self/fd")
    sockets = 0
    for fd in fds:
        with contextlib.suppress(OSError):
            sockets += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
    rss = 0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) * 1024
    return {"fds": len(fds), "sockets": sockets, "rss": rss}


async def settled(ex: Any) -> None:
    """Wait until the pool is full again and every background removal has run."""
    pool = ex._pool
    with anyio.fail_after(60):
        while pool.idle < pool.size or pool.starting or pool._busy:
            await anyio.sleep(0.1)
    await anyio.sleep(0.5)


@pytest.mark.timeout(max(300, CALLS))  # a loaded 2-CPU machine manages ~7 calls/s
async def test_soak_pooled_calls_leak_nothing(make_executor: MakeExecutor) -> None:
    """CALLS calls at concurrency 8 through a pool of 8: no container, fd, socket or RSS growth."""
    labels = case()
    ex = make_executor(
        files=FILES, labels=labels, mode="pool", containers=CONCURRENCY, prewarm=True
    )
    async with ex:
        # Warm-up: imports, caches, the connection pool reach their working size.
        warm = [{"n": i} for i in range(4 * CONCURRENCY)]
        assert await ex.execute_many(warm, concurrency=CONCURRENCY) == warm
        await settled(ex)
        before = process_figures()
        inputs = [{"n": i} for i in range(CALLS)]
        t0 = time.monotonic()
        assert await ex.execute_many(inputs, concurrency=CONCURRENCY) == inputs
        elapsed = time.monotonic() - t0
        await settled(ex)
        after = process_figures()
        running = len(containers(labels))
        print(
            f"\nsoak: {CALLS} calls, concurrency {CONCURRENCY}, {elapsed:.1f} s "
            f"({CALLS / elapsed:.1f} calls/s); "
            f"fds {before['fds']} -> {after['fds']}, sockets {before['sockets']} -> "
            f"{after['sockets']}, RSS {before['rss'] / MiB:.1f} -> {after['rss'] / MiB:.1f} MiB, "
            f"containers (the idle pool) {running}"
        )
        assert running == CONCURRENCY, "only the idle pool remains"
        assert after["fds"] - before["fds"] <= 4
        assert after["sockets"] - before["sockets"] <= 4
        assert after["rss"] - before["rss"] < 50 * MiB
    with anyio.fail_after(30):
        while left := containers(labels):
            await anyio.sleep(0.2)
    assert not left
