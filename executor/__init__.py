"""executor: run typed tasks in-process or in locked-down Docker containers.

One async interface, :class:`Executor` ``[A, B]``: ``await ex.execute(input) -> output``.
:class:`LocalExecutor` runs a trusted function in-process; :class:`ContainerExecutor` runs
code in a fresh, locked-down container speaking the JSON protocol of :mod:`executor.protocol`.
"""

import typing as _typing

from ._base import Execution as Execution
from ._base import Executor as Executor
from ._base import ResultStream as ResultStream
from ._code import Checker as Checker
from ._code import CodeResult as CodeResult
from ._code import CodeRun as CodeRun
from ._code import Compile as Compile
from ._code import TestCase as TestCase
from ._code import TestResult as TestResult
from ._code import Usage as Usage
from ._errors import CollectTooLarge as CollectTooLarge
from ._errors import ConfigError as ConfigError
from ._errors import ContainerFailed as ContainerFailed
from ._errors import EngineError as EngineError
from ._errors import EngineUnavailable as EngineUnavailable
from ._errors import ExecutionFailed as ExecutionFailed
from ._errors import ExecutionTimeout as ExecutionTimeout
from ._errors import ExecutorClosed as ExecutorClosed
from ._errors import ExecutorError as ExecutorError
from ._errors import ImageBuildFailed as ImageBuildFailed
from ._errors import ImageNotFound as ImageNotFound
from ._errors import InfrastructureError as InfrastructureError
from ._errors import InputValidationError as InputValidationError
from ._errors import OutputTooLarge as OutputTooLarge
from ._errors import OutputValidationError as OutputValidationError
from ._errors import ProtocolError as ProtocolError
from ._errors import SchemaError as SchemaError
from ._errors import SessionFileError as SessionFileError
from ._errors import SessionLost as SessionLost
from ._errors import StartTimeout as StartTimeout
from ._errors import TaskError as TaskError
from ._errors import ValidationError as ValidationError
from ._errors import WorkerLost as WorkerLost
from ._local import LocalConfig as LocalConfig
from ._local import LocalExecutor as LocalExecutor
from ._public import show_as_public as _show_as_public
from ._session import CellError as CellError
from ._session import CellResult as CellResult
from ._session import Display as Display
from ._stream import ExecutionStream as ExecutionStream
from ._stream import LogLine as LogLine

if _typing.TYPE_CHECKING:
    from .container import CodeExecutor as CodeExecutor
    from .container import ContainerConfig as ContainerConfig
    from .container import ContainerExecutor as ContainerExecutor
    from .container import EngineEndpoint as EngineEndpoint
    from .container import Session as Session
    from .container import SessionPool as SessionPool
    from .container import reap as reap

# The container side pulls in aiodocker/aiohttp (~0.2 s): loaded on first use, so that
# `import executor` stays light for in-process use and the command line.
_LAZY = {
    "CodeExecutor": ".container",
    "ContainerConfig": ".container",
    "ContainerExecutor": ".container",
    "EngineEndpoint": ".container",
    "Session": ".container",
    "SessionPool": ".container",
    "reap": ".container",
}


def __getattr__(name: str) -> _typing.Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'executor' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module, __name__), name)
    _show_as_public(value, __name__)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("typed-executor")
    except PackageNotFoundError:  # a source tree on sys.path, not installed
        return "0+unknown"


#: The installed distribution's version (``typed-executor``): the one source of it.
__version__ = _version()

__all__ = (
    "CellError",
    "CellResult",
    "Checker",
    "CodeExecutor",
    "CodeResult",
    "CodeRun",
    "CollectTooLarge",
    "Compile",
    "ConfigError",
    "ContainerConfig",
    "ContainerExecutor",
    "ContainerFailed",
    "Display",
    "EngineEndpoint",
    "EngineError",
    "EngineUnavailable",
    "Execution",
    "ExecutionFailed",
    "ExecutionStream",
    "ExecutionTimeout",
    "Executor",
    "ExecutorClosed",
    "ExecutorError",
    "ImageBuildFailed",
    "ImageNotFound",
    "InfrastructureError",
    "InputValidationError",
    "LocalConfig",
    "LocalExecutor",
    "LogLine",
    "OutputTooLarge",
    "OutputValidationError",
    "ProtocolError",
    "ResultStream",
    "SchemaError",
    "Session",
    "SessionFileError",
    "SessionLost",
    "SessionPool",
    "StartTimeout",
    "TaskError",
    "TestCase",
    "TestResult",
    "Usage",
    "ValidationError",
    "WorkerLost",
    "reap",
)

for _name in __all__:
    if _name in globals():  # the lazy names: when first loaded (__getattr__)
        _show_as_public(globals()[_name], __name__)
del _name
