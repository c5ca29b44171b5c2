"""The session pool's container books over the fake engine: prewarm, detach, refill, close."""

from __future__ import annotations

import anyio

from executor import ContainerConfig, SessionPool
from executor.container.session import SESSION_LABEL, SESSION_SERVER
from executor.engine import MANAGED_LABEL
from executor.testing import FakeEngine


async def test_detached_container_is_replaced_and_kept() -> None:
    """A container a session takes leaves the pool's books: a replacement starts at once,
    closing the pool removes the idle ones and leaves the session's to the session."""
    engine = FakeEngine()
    pool = SessionPool("bash", ContainerConfig("fake/runner:latest"), size=2, engine=engine)
    async with pool:
        assert pool.idle == 2
        body = await pool._create_body()
        assert body["Entrypoint"] == ["python3", SESSION_SERVER] and body["Cmd"] == ["bash"]
        assert body["Labels"][SESSION_LABEL] == "bash" and body["Labels"][MANAGED_LABEL] == "true"
        assert "MPLBACKEND=Agg" in body["Env"]
        leased = await pool._pool.lease(body)
        pool._pool.detach(leased)
        with anyio.fail_after(5):
            while pool.idle < 2:
                await anyio.sleep(0.005)
        assert engine.created == 3
    assert engine.live() == [leased.id]
    await engine.remove(leased.id)
