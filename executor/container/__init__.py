"""The container side: :class:`ContainerExecutor` and what it is made of.

``config`` (settings, create body), ``lifecycle`` (launch, kill, admission, background),
``exchange`` (one request and its answer), ``sources`` (fresh, pool, workers, fork),
``images`` (image readiness), ``core`` (one engine's calls), ``routing`` (several engines),
``executor`` (the public class), ``session`` (sessions and their pool), ``reap`` and
``sweeper`` (what dead owners or closed executors left behind).
"""

from .code import CodeExecutor as CodeExecutor
from .config import ContainerConfig as ContainerConfig
from .config import EngineEndpoint as EngineEndpoint
from .executor import ContainerExecutor as ContainerExecutor
from .reaping import reap as reap
from .session import Session as Session
from .session import SessionPool as SessionPool

__all__ = (
    "CodeExecutor",
    "ContainerConfig",
    "ContainerExecutor",
    "EngineEndpoint",
    "Session",
    "SessionPool",
    "reap",
)

from .._public import show_as_public as _show_as_public

for _name in __all__:
    _show_as_public(globals()[_name], "executor")
del _name
