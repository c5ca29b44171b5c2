"""``TARGET``: a Python file, ``file.py:function`` or ``module:function``; runner modules."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .._code import default_image
from .._errors import ConfigError, ExecutorError

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "GO_NOTE",
    "RUNNER_FUNCTIONS",
    "RUNNER_IMAGES",
    "RUNNER_MODULES",
    "Target",
    "container_files",
    "load_function",
    "parse_target",
]

#: Each runner's image: the stock one, or what ``EXECUTOR_<RUNNER>_IMAGE`` names (read when the
#: command starts; the one definition is :func:`executor._code.default_image`).
RUNNER_IMAGES = {runner: default_image(runner) for runner in ("python", "node", "go")}
#: Where each runner loads the user's module from, and the function it calls.
RUNNER_MODULES = {"python": "/app/execute.py", "node": "/app/execute.mjs"}
RUNNER_FUNCTIONS = {"python": "execute", "node": "executeFunction"}
GO_NOTE = (
    "Go code is compiled into the runner image, it cannot be injected at run time: build an "
    "image with your package (see examples/stats/ and the GO_FUNCTION_DIR build arg of "
    "docker-bake.hcl), then run it with `executor run --image YOUR_IMAGE --input ...` "
    "(no TARGET)."
)


@dataclass(frozen=True)
class Target:
    """What ``TARGET`` names: a file (with an optional function) or ``module:function``."""

    text: str
    path: Path | None = None
    module: str | None = None
    function: str | None = None

    @property
    def language(self) -> str | None:
        if self.path is None:
            return "python"
        suffix = self.path.suffix
        if suffix == ".py":
            return "python"
        if suffix in (".mjs", ".js"):
            return "node"
        if suffix == ".go":
            return "go"
        return None


def parse_target(text: str) -> Target:
    """Parse ``file.py``, ``file.py:function`` or ``module:function``.

    Raises :class:`click.BadParameter` when the file does not exist or the text fits no form.
    """
    head, sep, tail = text.rpartition(":")
    function: str | None = None
    spec = text
    if sep and tail.isidentifier() and head:
        spec, function = head, tail
    looks_like_file = spec.endswith((".py", ".mjs", ".js", ".go")) or "/" in spec
    if looks_like_file or Path(spec).is_file():
        path = Path(spec)
        if not path.is_file():
            raise click.BadParameter(f"file {spec!r} not found", param_hint="TARGET")
        return Target(text, path=path, function=function)
    if function is None:
        raise click.BadParameter(
            f"{text!r} is neither a file nor MODULE:FUNCTION "
            "(forms: file.py, file.py:function, module:function)",
            param_hint="TARGET",
        )
    return Target(text, module=spec, function=function)


def load_function(target: Target) -> Callable[[Any], Any]:
    """Import the target's Python function (its ``execute`` when none is named).

    A file's directory (or, for a module, the current directory) goes first on ``sys.path``
    so the code can import its siblings. Raises :class:`ConfigError` when the import fails or
    the function is missing.
    """
    name = target.function or "execute"
    try:
        if target.path is not None:
            if target.language != "python":
                raise ConfigError(
                    f"{target.path} is not a Python file; only Python runs locally. "
                    "Run it in a container with --runner node"
                    if target.language == "node"
                    else f"{target.path} is not a Python file; only Python runs locally"
                )
            path = target.path.resolve()
            sys.path.insert(0, str(path.parent))
            module_name = path.stem if path.stem not in sys.modules else f"_target_{path.stem}"
            spec = importlib.util.spec_from_file_location(module_name, path)
            if spec is None or spec.loader is None:
                raise ConfigError(f"cannot load {target.path} as a Python module")
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            spec.loader.exec_module(module)
            where = str(target.path)
        else:
            assert target.module is not None
            sys.path.insert(0, os.getcwd())
            module = importlib.import_module(target.module)
            where = target.module
    except ExecutorError:
        raise
    except Exception as exc:
        raise ConfigError(
            f"importing the target {target.text!r} failed: {type(exc).__name__}: {exc}"
        ) from exc
    function = getattr(module, name, None)
    if not callable(function):
        raise ConfigError(f"{where} does not define a callable {name}(input)")
    return function  # type: ignore[no-any-return]


def container_files(target: Target, runner: str | None) -> dict[str, str]:
    """The files injecting ``target`` into a runner image as its execute module."""
    assert target.path is not None
    language = runner or target.language
    if language == "go":
        raise click.UsageError(GO_NOTE)
    if language not in RUNNER_MODULES:
        raise click.UsageError(
            f"cannot tell which runner {target.path} is for; pass --runner python|node"
        )
    source = target.path.read_text()
    module_path = RUNNER_MODULES[language]
    expected = RUNNER_FUNCTIONS[language]
    if target.function in (None, expected):
        return {module_path: source}
    # Another function name: ship the file beside a one-line shim re-exporting it.
    fn = target.function
    if language == "python":
        return {
            "/app/user_task.py": source,
            module_path: f"from user_task import {fn} as execute\n",
        }
    return {
        "/app/user_task.mjs": source,
        module_path: f'export {{ {fn} as executeFunction }} from "./user_task.mjs";\n',
    }
