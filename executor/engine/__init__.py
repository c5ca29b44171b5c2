"""The engine seam: :class:`Engine` (what a call needs), :class:`Images`, the labels, cleanup.

``DockerEngine`` (:mod:`executor.engine.docker`, the only aiodocker user) is loaded lazily so
that importing the seam stays light; :class:`executor.testing.FakeEngine` is the in-memory
engine for tests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
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


def __getattr__(name: str) -> Any:
    if name == "DockerEngine":
        from .docker import DockerEngine

        return DockerEngine
    raise AttributeError(f"module 'executor.engine' has no attribute {name!r}")
