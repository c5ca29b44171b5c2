"""The host process is SIGKILLed mid-batch: its containers stay, and reap() removes them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from typing import Any

import anyio
import pytest

from executor import ContainerExecutor, reap
from tests.container._support import case, containers

from .conftest import PYTHON_IMAGE, RUN_ID, RUN_LABEL, config
from .tasks import SLEEPY

pytestmark = pytest.mark.docker

BATCH = textwrap.dedent(
    """
    import json, sys

    import anyio

    from executor import ContainerConfig, ContainerExecutor

    labels, image, code = json.loads(sys.argv[1])


    async def main():
        config = ContainerConfig(image, files={"/app/execute.py": code}, labels=labels)
        async with ContainerExecutor(config) as ex:
            await ex.execute_many([{"sleep": 120}] * 12, concurrency=4)


    anyio.run(main)
    """
)


def running(labels: dict[str, str]) -> list[str]:
    """Running containers of this run carrying ``labels``."""
    filters = [f"--filter=label={k}={v}" for k, v in {RUN_LABEL: RUN_ID, **labels}.items()]
    done = subprocess.run(
        ["docker", "ps", "-q", *filters], capture_output=True, text=True, check=True
    )
    return done.stdout.split()


@pytest.mark.parametrize("how", ["api", "cli", "start-up"])
async def test_sigkilled_host_leaves_orphans_that_reap_removes(how: str) -> None:
    """A batch process killed with SIGKILL leaves its containers; reap(), `executor reap` or
    reap_on_start removes them."""
    labels = {RUN_LABEL: RUN_ID, **case()}
    argument = json.dumps([labels, PYTHON_IMAGE, SLEEPY])
    proc = subprocess.Popen([sys.executable, "-c", BATCH, argument])
    try:
        with anyio.fail_after(90):
            while len(running(labels)) < 4:
                assert proc.poll() is None, "the batch process ended early"
                await anyio.sleep(0.2)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    orphans = containers(labels)
    assert len(orphans) >= 4, "SIGKILL leaves the containers of the calls in flight"

    if how == "api":
        removed: list[Any] = await reap(labels=labels)
    elif how == "start-up":
        # The next executor with the same labels clears them as it starts.
        successor: ContainerExecutor[Any, Any] = ContainerExecutor(
            config(PYTHON_IMAGE, labels=labels, reap_on_start=True)
        )
        async with successor:
            removed = orphans
            assert containers(labels) == []
    else:
        options = [f"--label={k}={v}" for k, v in labels.items()]
        done = subprocess.run(
            [sys.executable, "-m", "executor", "reap", "-v", *options],
            capture_output=True,
            text=True,
            check=True,
        )
        removed = done.stdout.split()[:-4]  # ids, then "reaped N orphaned container(s)"
    assert {o[:12] for o in orphans} <= {str(r)[:12] for r in removed}
    assert containers(labels) == []
