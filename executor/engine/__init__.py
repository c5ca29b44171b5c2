"""The engine seam, public: implement :class:`Engine` to run containers somewhere else.

``from executor.engine import Engine`` is the extension point. An engine is what a container
call needs (ping, info, create, attach, start, state, wait, remove, list by label, aclose)
plus its image side, :class:`Images` (``engine.images``), and a container's streams,
:class:`Attachment`; it reports :class:`ExitState` and :class:`EngineInfo`. A Kubernetes,
Firecracker or remote-service engine is one such class; the executor never branches on the
kind. Pass engine objects to the executor, never in the config (which is plain data)::

    ContainerExecutor(config, engine=MyEngine(...))        # one engine
    ContainerExecutor(config, engines=[MyEngine(...), "unix:///var/run/docker.sock"])

``DockerEngine`` (:mod:`executor.engine.docker`, the only aiodocker user; it also speaks to
Podman's Docker API) is loaded lazily so that importing the seam stays light; give it your
own client with ``DockerEngine(docker=client)``. :class:`executor.testing.FakeEngine` is the
in-memory engine for tests. How to write one: ``docs/ENGINES.md``. The helpers here
(:func:`map_exceptions`, :func:`protect`, :func:`cleanup`, :func:`shielded`, the labels) are
what the built-in engines use and what a new one may use.
"""

import typing as _typing

from .._public import show_as_public as _show_as_public
from .base import CLEANUP_TIMEOUT as CLEANUP_TIMEOUT
from .base import Attachment as Attachment
from .base import Engine as Engine
from .base import EngineInfo as EngineInfo
from .base import ExitState as ExitState
from .base import Images as Images
from .base import cleanup as cleanup
from .base import map_exceptions as map_exceptions
from .base import protect as protect
from .base import shielded as shielded
from .labels import INSTANCE_LABEL as INSTANCE_LABEL
from .labels import MANAGED_LABEL as MANAGED_LABEL
from .labels import OWNER_LABEL as OWNER_LABEL
from .labels import owner_alive as owner_alive
from .labels import owner_id as owner_id

if _typing.TYPE_CHECKING:
    from .docker import DockerEngine as DockerEngine

__all__ = (
    "CLEANUP_TIMEOUT",
    "INSTANCE_LABEL",
    "MANAGED_LABEL",
    "OWNER_LABEL",
    "Attachment",
    "DockerEngine",
    "Engine",
    "EngineInfo",
    "ExitState",
    "Images",
    "cleanup",
    "map_exceptions",
    "owner_alive",
    "owner_id",
    "protect",
    "shielded",
)


def __getattr__(name: str) -> _typing.Any:
    if name == "DockerEngine":
        from .docker import DockerEngine  # named executor.engine.DockerEngine there

        globals()[name] = DockerEngine
        return DockerEngine
    raise AttributeError(f"module 'executor.engine' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), "DockerEngine"})


for _name in __all__:
    if _name in globals():  # DockerEngine names itself (engine/docker.py)
        _show_as_public(globals()[_name], __name__)
del _name
