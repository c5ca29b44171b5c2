"""The error tree: two families, stable codes, ``retryable``, and public names as ``executor.X``."""

from __future__ import annotations

import inspect
import pickle
import pickletools
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec

import executor
from executor import (
    ConfigError,
    ContainerConfig,
    EngineError,
    EngineUnavailable,
    ExecutionFailed,
    ExecutionTimeout,
    ExecutorClosed,
    ExecutorError,
    ImageNotFound,
    InfrastructureError,
    SchemaError,
    StartTimeout,
    TaskError,
    WorkerLost,
    _errors,
)

ROOT = Path(__file__).resolve().parents[1]
#: Errors of the call site: neither family, never retryable.
USAGE = {ConfigError, SchemaError}
FAMILIES = (TaskError, InfrastructureError)


def public() -> dict[str, Any]:
    """Every name of ``executor.__all__``, the lazy ones loaded."""
    return {name: getattr(executor, name) for name in executor.__all__}


def error_classes() -> list[type[ExecutorError]]:
    return [
        value
        for value in public().values()
        if isinstance(value, type) and issubclass(value, ExecutorError)
    ]


def test_every_public_name_shows_as_executor_x() -> None:
    """Every class and function of ``__all__`` is named ``executor.X`` in reprs and tracebacks."""
    named = {name: value.__module__ for name, value in public().items()}
    assert named == dict.fromkeys(executor.__all__, "executor")
    assert repr(ExecutionFailed) == "<class 'executor.ExecutionFailed'>"


def test_every_error_is_in_exactly_one_family_or_a_usage_error() -> None:
    """Each error class is a TaskError or an InfrastructureError (never both), or one of the
    usage errors, which are direct children of ExecutorError."""
    for cls in error_classes():
        if cls in (ExecutorError, *FAMILIES):
            continue
        families = [family for family in FAMILIES if issubclass(cls, family)]
        if cls in USAGE:
            assert families == [] and cls.__bases__[0] is ExecutorError, cls
        else:
            assert len(families) == 1, cls


def test_engine_errors_share_the_engine_base_and_keep_their_builtin_bases() -> None:
    """EngineUnavailable and ImageNotFound are EngineErrors; the builtin bases stay."""
    assert issubclass(EngineUnavailable, EngineError)
    assert issubclass(ImageNotFound, EngineError)
    assert issubclass(EngineError, InfrastructureError)
    assert issubclass(EngineUnavailable, ConnectionError)
    assert issubclass(ImageNotFound, LookupError)
    assert issubclass(WorkerLost, ConnectionError)
    assert issubclass(ExecutionTimeout, TimeoutError)
    assert issubclass(StartTimeout, TimeoutError)
    assert issubclass(ExecutorClosed, RuntimeError)
    assert issubclass(executor.ValidationError, ValueError)


def test_codes_are_stable_unique_and_documented() -> None:
    """Each error class has its own upper-case code, in the module's tree and the README's
    error table, and the tree and the table say whether it is retryable."""
    tree = _errors.__doc__ or ""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Error codes") :]
    section = section[: section.index("\n## ", 1)]
    codes = [cls.default_code for cls in error_classes()]
    assert len(codes) == len(set(codes))
    for cls in error_classes():
        code = cls.default_code
        assert code.isupper() and code.replace("_", "").isalpha(), cls
        (line,) = [line for line in tree.splitlines() if f" {cls.__name__}" in line]
        assert code in line, cls
        assert re.search(r" (no|yes)( |$)|delivered", line), cls
        rows = [row.split(" | ") for row in section.splitlines() if row.startswith("| `")]
        retryable = [row[3] for row in rows if f"`{cls.__name__}" in row[1]]
        assert retryable, cls
        assert all(value in ("no", "yes", "when `delivered` is `False`") for value in retryable)


def test_retryable_means_the_request_never_reached_the_task() -> None:
    """Only an error whose request never reached the task says retryable."""
    assert StartTimeout(1.0).retryable is True
    assert EngineUnavailable("down", delivered=False).retryable is True
    assert EngineUnavailable("down", delivered=None).retryable is False
    assert EngineUnavailable("down", delivered=True).retryable is False
    assert WorkerLost("gone").retryable is False
    assert ExecutionTimeout(1.0).retryable is False
    assert ExecutorClosed().retryable is False
    assert ExecutorError("root").retryable is False
    for cls in error_classes():
        assert isinstance(cls.retryable, bool), cls
        if issubclass(cls, TaskError) or cls in USAGE:
            assert cls.retryable is False, cls


def test_retryable_is_in_to_dict_and_survives_pickling() -> None:
    """to_dict() carries retryable, and an instance's own value survives a pickle round trip."""
    error = EngineUnavailable("down")
    assert error.to_dict()["retryable"] is False
    error.delivered, error.retryable = False, True
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is EngineUnavailable
    assert copy.retryable is True and copy.to_dict() == error.to_dict()
    assert pickle.loads(pickle.dumps(StartTimeout(2.0))).to_dict()["retryable"] is True


# Runs in a child process: a container call (over the fake engine) whose task raises; the
# error and the config go back pickled on stdout.
CHILD = """
import pickle, sys, anyio
from executor import ContainerConfig, ContainerExecutor, ExecutorError
from executor.testing import FakeEngine

def task(value):
    raise ValueError("no")

async def main():
    config = ContainerConfig("fake/runner:latest", timeout=10)
    async with ContainerExecutor(config, engine=FakeEngine(task)) as ex:
        try:
            await ex.execute(1)
        except ExecutorError as exc:
            return exc, config

sys.stdout.buffer.write(pickle.dumps(anyio.run(main)))
"""


def test_errors_of_a_container_call_cross_processes_as_executor_names() -> None:
    """An error raised by a container call, and the config, pickle by their ``executor.X``
    names and load in another process with their class, code, data and retryable."""
    done = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, check=True, cwd=ROOT, timeout=60
    )
    # The classes by their public names: only the private unpickling helper names a module.
    modules = {arg for _, arg, _ in pickletools.genops(done.stdout) if isinstance(arg, str)}
    assert {"executor", "ExecutionFailed", "ContainerConfig"} <= modules
    assert not {"executor.container.config", "executor.container"} & modules
    error, config = pickle.loads(done.stdout)
    assert type(error) is ExecutionFailed and isinstance(error, TaskError)
    assert error.code == "USER_ERROR" and error.retryable is False
    assert "ValueError: no" in error.message
    assert type(config) is ContainerConfig and config.image == "fake/runner:latest"


def test_public_classes_still_resolve_their_annotations() -> None:
    """Renaming a class's module keeps its postponed annotations usable by msgspec (a Struct
    and a dataclass decode as before)."""
    execution = msgspec.json.decode(b'{"output": 1, "duration": 0.5}', type=executor.Execution[int])
    assert execution.output == 1 and execution.timings == {}
    endpoint = msgspec.convert({"url": "unix:///x"}, executor.EngineEndpoint)
    assert endpoint.capacity == 1.0
    hints = inspect.get_annotations(executor.Execution)
    assert not any(isinstance(hint, str) for hint in hints.values())
