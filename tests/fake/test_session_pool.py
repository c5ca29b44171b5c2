"""The session pool's container books over the fake engine: prewarm, detach, refill, close."""

from __future__ import annotations

import asyncio

import anyio
import pytest

from executor import ContainerConfig, ImageNotFound, Session, SessionPool, reap
from executor.container import sweeper
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


async def test_failed_removal_hands_over_that_container_only() -> None:
    """A session's container the engine fails to remove goes to the sweeper alone: the pool's
    instance is not closed, and a sibling session of the same pool keeps its container."""
    engine = FakeEngine(lambda code: f"ran {code}")
    config = ContainerConfig("fake/runner:latest")
    pool = SessionPool("python", config, size=1, engine=engine)
    async with pool, pool.session() as a, pool.session() as b:
        assert (await b.run("x")).result == repr("ran x")
        gone, kept = a.container_id, b.container_id
        engine.fail("remove")
        await a.aclose()
        assert pool.instance not in sweeper.closed_instances()
        assert await anyio.to_thread.run_sync(sweeper.wait_idle, 10.0)
        assert gone not in engine.live() and kept in engine.live()
        assert await reap(engine=engine) == []  # nothing of a live pool is an orphan
        assert (await b.run("y")).result == repr("ran y") and b.container_id == kept
    assert engine.live() == []


async def test_pool_counts_a_container_once_its_session_server_said_ready() -> None:
    """The prewarm waits for each container's ready line (kept for the session), so a session
    entered right after it takes a prewarmed container and no create is sent for it."""
    engine = FakeEngine()
    async with SessionPool(
        "python", ContainerConfig("fake/runner:latest"), size=1, engine=engine
    ) as pool:
        (container,) = [c for _, c in pool._pool._idle]
        assert container.rest.startswith(b'{"ready":true')
        async with pool.session() as s:  # the prewarmed container: none created for it
            assert s.container_id == container.id
            assert (await s.run("x")).result == repr("x")


async def _spare(pool: SessionPool) -> str:
    """The id of ``pool``'s idle container, once it has one."""
    with anyio.fail_after(5):
        while pool.idle < 1:
            await anyio.sleep(0.005)
    (spare,) = pool._pool.idle_ids()
    return spare


async def test_bare_sessions_come_from_an_implicit_warm_pool() -> None:
    """A Session without pool= leases from the loop's implicit pool for its language, config
    and engine, which keeps one container ready: the next such session enters on it."""
    engine = FakeEngine()
    async with Session("python", ContainerConfig("fake/runner:latest"), engine=engine) as first:
        assert (await first.run("x")).result == repr("x")
        pool = first._own_pool
        assert pool is not None
        spare = await _spare(pool)
    assert first.container_id is None and len(engine.live()) == 1  # its own container went
    async with Session("python", ContainerConfig("fake/runner:latest"), engine=engine) as second:
        assert second._own_pool is pool and second.container_id == spare
        other = Session("bash", ContainerConfig("fake/runner:latest"), engine=engine)
        async with other:
            assert other._own_pool is not pool


async def test_implicit_pool_goes_dormant_without_sessions() -> None:
    """Without a new session for max_idle seconds the implicit pool removes its spare and
    starts none; the next session wakes it."""
    engine = FakeEngine()
    config = ContainerConfig("fake/runner:latest", max_idle=0.2)
    async with Session("python", config, engine=engine) as s:
        pool = s._own_pool
        assert pool is not None
    with anyio.fail_after(10):
        while engine.live():
            await anyio.sleep(0.02)
    assert pool.idle == 0 and not pool.closed
    async with Session("python", config, engine=engine) as again:
        assert again._own_pool is pool and (await again.run("y")).result == repr("y")
        await _spare(pool)


def test_implicit_pool_ends_with_its_event_loop() -> None:
    """When the loop that owns an implicit pool ends (asyncio.run cancels its tasks), the
    pool closes there: its spare is removed and its instance counts as closed."""
    engine = FakeEngine()

    async def main() -> SessionPool:
        async with Session("python", ContainerConfig("fake/runner:latest"), engine=engine) as s:
            pool = s._own_pool
            assert pool is not None
        await _spare(pool)
        return pool

    pool = asyncio.run(main())
    assert engine.live() == [] and pool.closed
    assert pool.instance in sweeper.closed_instances()


async def test_a_pool_that_fails_to_enter_is_closed() -> None:
    """When the prewarm fails in ``async with`` (no __aexit__ follows), the pool closes what
    it holds itself."""
    engine = FakeEngine(images=set())
    pool = SessionPool("python", ContainerConfig("fake/missing:latest"), size=1, engine=engine)
    with pytest.raises(ImageNotFound):
        async with pool:
            pass
    assert pool.closed and engine.live() == []
