"""``reap()``: remove containers whose owning process, or executor, is gone.

Every container the library creates carries ``executor.managed=true``,
``executor.owner=<host>/<pid>/<start>`` and ``executor.instance=<executor id>``. A process
killed with SIGKILL cannot clean up, so its containers stay; ``reap()`` (or ``executor
reap``) finds and removes them, and also those of executors of this very process that were
closed while their engine was down, and single containers whose removal failed (a session's,
handed to the sweeper). Containers owned by live processes, or by processes on
other hosts, are left alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio

from .._observe import reaped
from ..engine import INSTANCE_LABEL, MANAGED_LABEL, OWNER_LABEL, owner_alive, owner_id
from .sweeper import abandoned_containers, closed_instances

if TYPE_CHECKING:
    from collections.abc import Mapping

    import aiodocker

    from ..engine import Engine

__all__ = ["reap"]


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
    if engine is None:
        from ..engine.docker import DockerEngine

        engine = DockerEngine(docker_url, docker=docker)
    me = owner_id()
    closed = closed_instances()
    abandoned = abandoned_containers()
    try:
        found = await engine.list_managed({MANAGED_LABEL: "true", **(labels or {})})
        doomed = []
        for container in found:
            tags = container.get("Labels") or {}
            owner = str(tags.get(OWNER_LABEL, ""))
            orphan = not owner_alive(owner) or (
                owner == me
                and (tags.get(INSTANCE_LABEL) in closed or str(container["Id"]) in abandoned)
            )
            if include_live or orphan:
                doomed.append(str(container["Id"]))
        async with anyio.create_task_group() as tg:
            for container_id in doomed:
                tg.start_soon(engine.remove, container_id)
        reaped(engine.name, doomed)
        return doomed
    finally:
        if own:
            await engine.aclose()
