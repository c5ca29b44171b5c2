"""``reap()``: remove containers whose owning process is gone.

Every container the library creates carries ``executor.managed=true`` and
``executor.owner=<host>/<pid>/<start-ticks>``. A process killed with SIGKILL cannot clean up,
so its containers stay; ``reap()`` (or ``executor reap``) finds them and removes them.
Containers owned by live processes, or by processes on other hosts, are left alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio

from ._engine import MANAGED_LABEL, OWNER_LABEL, DockerEngine, owner_alive

if TYPE_CHECKING:
    from collections.abc import Mapping

    import aiodocker

    from ._engine import Engine


async def reap(
    *,
    docker_url: str | None = None,
    docker: aiodocker.Docker | None = None,
    engine: Engine | None = None,
    labels: Mapping[str, str] | None = None,
    include_live: bool = False,
) -> list[str]:
    """Remove managed containers whose owner process has died; return their ids.

    ``labels`` narrows the search (all must match). With ``include_live=True`` containers of
    live owners are removed too (use it only when no executor of this host is running).
    Raises :class:`EngineUnavailable` when the engine cannot be reached.
    """
    own = engine is None
    engine = engine or DockerEngine(docker_url, docker=docker)
    try:
        found = await engine.list_managed({MANAGED_LABEL: "true", **(labels or {})})
        doomed = [
            str(c["Id"])
            for c in found
            if include_live or not owner_alive(str((c.get("Labels") or {}).get(OWNER_LABEL, "")))
        ]
        async with anyio.create_task_group() as tg:
            for container_id in doomed:
                tg.start_soon(engine.remove, container_id)
        return doomed
    finally:
        if own:
            await engine.aclose()
