"""``executor.reap()`` against a real engine: dead owners' containers go, live owners' stay."""

from __future__ import annotations

import socket
import subprocess

import pytest

import executor
from executor.engine import MANAGED_LABEL, OWNER_LABEL, owner_id

from ._support import case, containers
from .conftest import PYTHON_IMAGE, RUN_ID, RUN_LABEL

pytestmark = pytest.mark.docker


def create(labels: dict[str, str]) -> str:
    """Create (not start) a container with ``labels`` through the CLI; return its full id."""
    args = [f"--label={k}={v}" for k, v in {RUN_LABEL: RUN_ID, **labels}.items()]
    done = subprocess.run(
        ["docker", "create", *args, PYTHON_IMAGE], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


async def test_reap_removes_dead_owners_and_keeps_live_ones() -> None:
    """A container of a dead owner on this host is reaped; one of this process is kept."""
    labels = case()
    dead_owner = f"{socket.gethostname()}/999999/1"
    dead = create({**labels, MANAGED_LABEL: "true", OWNER_LABEL: dead_owner})
    live = create({**labels, MANAGED_LABEL: "true", OWNER_LABEL: owner_id()})
    try:
        removed = await executor.reap(labels={RUN_LABEL: RUN_ID, **labels})
        assert removed == [dead]
        assert containers(labels) == [live[:12]]
    finally:
        subprocess.run(["docker", "rm", "-f", dead, live], capture_output=True, check=False)
    assert containers(labels) == []


async def test_reap_leaves_unmanaged_and_other_hosts_alone() -> None:
    """Containers without the managed label, or owned on another host, are never reaped."""
    labels = case()
    other_host = create({**labels, MANAGED_LABEL: "true", OWNER_LABEL: "elsewhere/1/1"})
    unmanaged = create({**labels, OWNER_LABEL: f"{socket.gethostname()}/999999/1"})
    try:
        assert await executor.reap(labels={RUN_LABEL: RUN_ID, **labels}) == []
        assert sorted(containers(labels)) == sorted([other_host[:12], unmanaged[:12]])
    finally:
        subprocess.run(
            ["docker", "rm", "-f", other_host, unmanaged], capture_output=True, check=False
        )
