"""What ``ContainerConfig.requirements`` means: checked, normalised and hashed, no I/O.

The checks run when the config is made (a malformed requirement is a :class:`ConfigError`
before anything runs); :mod:`executor.container.deps` fetches and builds. The runner of an
image (``python``, ``node``, ``go``) is told from its name here, and from its entrypoint by
the builder when the name does not say.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .config import ContainerConfig

__all__ = [
    "DEFAULT_BUILD_TIMEOUT",
    "check_requirements",
    "deps_key",
    "normalized",
    "runner_of",
    "wanted",
]

#: Seconds a derived dependencies image may take to fetch and build.
DEFAULT_BUILD_TIMEOUT = 600.0

# PEP 508 names; the rest of a requirement is checked by ``packaging`` when it is installed.
_PY_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?")
_PY_REST = re.compile(
    r"(\[[A-Za-z0-9._,\s-]*\])?\s*"  # extras
    r"(\(?\s*(~=|==|!=|<=|>=|<|>|===)\s*[A-Za-z0-9.*+!_-]+"
    r"(\s*,\s*(~=|==|!=|<=|>=|<|>|===)\s*[A-Za-z0-9.*+!_-]+)*\s*\)?)?\s*"  # versions
    r"(;.*)?"  # environment markers
)
# npm package names (scoped or not) and an optional version, range, tag or alias after '@'.
_NPM_SPEC = re.compile(r"(@[a-z0-9~][a-z0-9._~-]*/)?[a-z0-9~][a-z0-9._~-]*(@\S+)?")


def runner_of(image: str) -> str | None:
    """``python``, ``node`` or ``go`` when the image's name says so, else None."""
    name = image.rsplit("/", 1)[-1].split(":", 1)[0].split("@", 1)[0].lower()
    for runner in ("python", "node", "go"):
        if re.search(rf"(^|[-_.]){runner}($|[-_.0-9])", name):
            return runner
    return None


def wanted(config: ContainerConfig) -> bool:
    """Whether ``config`` asks for dependencies."""
    return bool(config.requirements) or config.requirements_file is not None


def _python_requirement(text: str) -> str:
    """The requirement in canonical form, or ConfigError."""
    try:
        from packaging.requirements import InvalidRequirement, Requirement
    except ImportError:  # pragma: no cover - packaging is nearly always there
        stripped = text.strip()
        match = _PY_NAME.match(stripped)
        if not match or not _PY_REST.fullmatch(stripped[match.end() :].strip()):
            raise ConfigError(
                f"ContainerConfig.requirements: {text!r} is not a pip requirement "
                "(e.g. 'numpy', 'attrs>=23', 'numpy==2.1.*')"
            ) from None
        return " ".join(stripped.split())
    try:
        return str(Requirement(text))
    except InvalidRequirement as exc:
        raise ConfigError(
            f"ContainerConfig.requirements: {text!r} is not a pip requirement ({exc}); "
            "write it as in requirements.txt, e.g. 'numpy', 'attrs>=23', 'numpy==2.1.*'"
        ) from None


def _npm_spec(text: str) -> str:
    """The npm spec stripped, or ConfigError (a local tarball is given by absolute path)."""
    spec = text.strip()
    if spec.startswith("/") or spec.startswith("file:/"):
        path = Path(spec.removeprefix("file:"))
        if not path.is_file():
            raise ConfigError(
                f"ContainerConfig.requirements: {text!r} names no file (a local package is "
                "the absolute path of a tarball made by `npm pack`)"
            )
        return spec
    if not _NPM_SPEC.fullmatch(spec):
        raise ConfigError(
            f"ContainerConfig.requirements: {text!r} is not an npm package spec "
            "(e.g. 'lodash', 'lodash@4', '@scope/name@^1.2')"
        )
    return spec


def _python_file_lines(path: Path) -> list[str]:
    """The requirement lines of a requirements.txt (options and comments skipped), checked."""
    found = []
    for raw in path.read_text().replace("\\\n", " ").splitlines():
        line = re.sub(r"(^|\s)#.*", "", raw).strip()
        if not line or line.startswith("-"):
            continue  # pip options (-r, --index-url, -c): pip reads them itself
        line = re.split(r"\s--?[a-z]", line, maxsplit=1)[0]  # per-line options (--hash)
        if "://" in line or line.startswith((".", "/")):
            found.append(line)  # a URL or a path: pip checks it
            continue
        found.append(_python_requirement(line))
    return found


def check_requirements(config: ContainerConfig) -> None:
    """Refuse a malformed ``requirements``/``requirements_file``/``build_timeout`` now."""
    requirements = config.requirements
    if isinstance(requirements, str) or not all(isinstance(r, str) for r in requirements):
        raise ConfigError(
            f"ContainerConfig.requirements must be a list of strings, got {requirements!r}"
        )
    if not isinstance(config.allow_install_scripts, bool):
        raise ConfigError("ContainerConfig.allow_install_scripts must be True or False")
    timeout = config.build_timeout
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
        raise ConfigError(
            f"ContainerConfig.build_timeout must be positive seconds, got {timeout!r}"
        )
    if not math.isfinite(timeout):
        raise ConfigError("ContainerConfig.build_timeout must be finite")
    if not wanted(config):
        return
    if requirements and config.requirements_file is not None:
        raise ConfigError(
            "ContainerConfig: give requirements or requirements_file, not both (list every "
            "requirement in the file)"
        )
    runner = runner_of(config.image)
    if runner == "go":
        raise ConfigError(
            "ContainerConfig.requirements cannot be used with a Go image: a Go task is a "
            "static binary, so vendor its modules and build them into it (`go mod vendor`)"
        )
    source = config.requirements_file
    if source is not None:
        path = Path(source)
        if not path.is_file():
            raise ConfigError(f"ContainerConfig.requirements_file: {str(source)!r} is no file")
        is_json = path.name == "package.json"
        if runner == "python" and is_json:
            raise ConfigError(
                "ContainerConfig.requirements_file: a Python image takes a requirements.txt, "
                f"not {path.name}"
            )
        if runner == "node" and not is_json:
            raise ConfigError(
                "ContainerConfig.requirements_file: a Node image takes a package.json (with "
                f"its package-lock.json next to it), not {path.name}"
            )
        if not is_json:
            _python_file_lines(path)
        return
    if runner == "python":
        for requirement in requirements:
            _python_requirement(requirement)
    elif runner == "node":
        for requirement in requirements:
            _npm_spec(requirement)


def normalized(runner: str, requirements: Sequence[str]) -> list[str]:
    """The requirements in a canonical form and order (the cache key's part)."""
    check = _python_requirement if runner == "python" else _npm_spec
    return sorted({check(r) for r in requirements})


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def deps_key(
    runner: str,
    base_id: str,
    platform: str,
    installer: str,
    requirements: Sequence[str],
    requirements_file: Path | None,
    allow_install_scripts: bool,
) -> str:
    """The content hash naming a derived image: base image, requirements, installer, platform.

    Local inputs (a requirements file, its lock file, a tarball) count by content.
    """
    inputs: dict[str, Any] = {
        "runner": runner,
        "base": base_id,
        "platform": platform,
        "installer": installer,
        "requirements": list(requirements),
        "scripts": allow_install_scripts,
    }
    local = [Path(r.removeprefix("file:")) for r in requirements if r.startswith(("/", "file:/"))]
    if requirements_file is not None:
        local.append(requirements_file)
        if requirements_file.name == "package.json":
            local.append(requirements_file.with_name("package-lock.json"))
    inputs["files"] = [[str(p), _file_digest(p) if p.is_file() else None] for p in local]
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:20]
