"""The process-wide sweeper: removes what closed executors could not, once engines answer.

An executor closed while its engine is down cannot remove its containers. It hands them here:
one daemon thread (started on first use, with its own event loop, so it outlives the caller's
loop) retries with backoff until the engine answers, then removes every container carrying
that executor's instance label. A single container can be handed over too (a session's, whose
removal failed while its pool serves on): the sweep then removes that container by id and the
instance stays open. :func:`closed_instances` and :func:`abandoned_containers` also let
``reap()`` treat these containers of this process as orphans.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import TYPE_CHECKING

from .._errors import ExecutorError
from .._observe import handed_over, swept
from ..engine import INSTANCE_LABEL, cleanup

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..engine import Engine

__all__ = ["abandoned_containers", "closed_instances", "hand_over", "pending", "remove_instance"]

#: First retry after this many seconds, doubling up to :data:`_MAX_DELAY`.
_FIRST_DELAY = 1.0
_MAX_DELAY = 30.0

_lock = threading.Lock()
#: (engine name, instance, container id or "" for the whole instance) -> connect.
_pending: dict[tuple[str, str, str], Callable[[], Engine]] = {}
_closed: set[str] = set()
_abandoned: set[str] = set()
_wake = threading.Event()
_thread: threading.Thread | None = None


def closed_instances() -> frozenset[str]:
    """Instance labels of this process's executors that have been closed."""
    with _lock:
        return frozenset(_closed)


def abandoned_containers() -> frozenset[str]:
    """Ids of single containers handed over (their removal failed; their instance lives on)."""
    with _lock:
        return frozenset(_abandoned)


def mark_closed(instance: str) -> None:
    """Record that the executor with this instance label is closed."""
    with _lock:
        _closed.add(instance)


def pending() -> list[tuple[str, str]]:
    """``(engine name, instance)`` pairs still waiting for their engine (a pair appears once,
    whether its whole instance or single containers of it wait)."""
    with _lock:
        return list(dict.fromkeys((name, instance) for name, instance, _ in _pending))


def hand_over(
    engine_name: str,
    instance: str,
    connect: Callable[[], Engine],
    *,
    container: str | None = None,
) -> None:
    """Remove ``instance``'s containers on that engine as soon as it answers.

    With ``container`` (an id) only that container is removed and the instance is not marked
    closed: its other containers serve on. ``connect`` makes a new engine object for the same
    endpoint; it is called in the sweeper's own thread and event loop.
    """
    global _thread
    with _lock:
        if container is None:
            _closed.add(instance)
        else:
            _abandoned.add(container)
        _pending[(engine_name, instance, container or "")] = connect
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=_main, name="executor-sweeper", daemon=True)
            _thread.start()
    handed_over(engine_name, instance, container)
    _wake.set()


def _main() -> None:
    delay = _FIRST_DELAY
    while True:
        with _lock:
            work = dict(_pending)
        if not work:
            _wake.wait()
            _wake.clear()
            delay = _FIRST_DELAY
            continue
        done = asyncio.run(_sweep_all(work))
        with _lock:
            for key in done:
                _pending.pop(key, None)
                _abandoned.discard(key[2])
            left = bool(_pending)
        if left:
            _wake.wait(delay)
            _wake.clear()
            delay = min(delay * 2, _MAX_DELAY)


async def _sweep_all(
    work: dict[tuple[str, str, str], Callable[[], Engine]],
) -> list[tuple[str, str, str]]:
    done: list[tuple[str, str, str]] = []
    for key, connect in work.items():
        name, instance, container = key
        try:
            engine = connect()
        except ExecutorError:
            continue
        try:
            await engine.ping()
            if container:
                if await cleanup(engine.remove, container):
                    swept(name, instance, 1, container)
                    done.append(key)
                continue
            removed = await remove_instance(engine, instance)
            if all(removed):
                swept(name, instance, len(removed))
                done.append(key)
        except ExecutorError:
            pass
        finally:
            await engine.aclose()
    return done


async def remove_instance(engine: Engine, instance: str) -> list[bool]:
    """Remove every container carrying ``instance``'s label on ``engine``: one flag each,
    whether it is gone (raises when the engine cannot list them)."""
    found = await engine.list_managed({INSTANCE_LABEL: instance})
    return [await cleanup(engine.remove, str(c["Id"])) for c in found]


def wait_idle(timeout: float) -> bool:
    """Wait until nothing is pending (for tests); True when the sweeper is idle."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pending():
            return True
        _wake.set()
        time.sleep(0.1)
    return not pending()
