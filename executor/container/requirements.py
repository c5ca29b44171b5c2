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

from .._code import image_named
from .._errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .config import ContainerConfig

__all__ = [
    "DEFAULT_BUILD_TIMEOUT",
    "check_requirements",
    "deps_key",
    "normalized",
    "requirement_files",
    "runner_of",
    "wanted",
]

#: Seconds a derived dependencies image may take to fetch and build.
DEFAULT_BUILD_TIMEOUT = 600.0

# An npm spec: a package name (scoped or not), then optionally '@' and what npm takes there: a
# version or range (comparators joined by '||'; no spaces), a dist-tag, an alias
# ('npm:name@range'), a git or tarball URL, or a hosted git shorthand ('github:user/repo#ref').
_NPM_NAME = r"(?:@[a-z0-9~][a-z0-9._~-]*/)?[a-z0-9~][a-z0-9._~-]*"
_NPM_PART = r"(?:\d+|[xX*])"
_NPM_RANGE = (
    rf"(?:(?:[<>]=?|[=^~])?v?{_NPM_PART}(?:\.{_NPM_PART}){{0,2}}"
    r"(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?)"
)
_NPM_VERSION = rf"(?:{_NPM_RANGE}(?:\|\|{_NPM_RANGE})*|[A-Za-z0-9][\w.-]*)"  # or a tag
_NPM_SPEC = re.compile(
    rf"{_NPM_NAME}(?:@(?:{_NPM_VERSION}|npm:{_NPM_NAME}(?:@{_NPM_VERSION})?"
    r"|(?:git\+)?(?:https?|ssh|git)://\S+|(?:github|gitlab|bitbucket|gist):[\w./-]+(?:#\S+)?))?"
)


def runner_of(image: str) -> str | None:
    """``python``, ``node`` or ``go`` when the image's name says so, else None."""
    for runner in ("python", "node", "go"):
        if image_named(image, runner):
            return runner
    return None


def wanted(config: ContainerConfig) -> bool:
    """Whether ``config`` asks for dependencies."""
    return bool(config.requirements) or config.requirements_file is not None


def _python_requirement(text: str) -> str:
    """The requirement in canonical form, or ConfigError."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    try:
        requirement = Requirement(text)
    except InvalidRequirement as exc:
        raise ConfigError(
            f"ContainerConfig.requirements: {text!r} is not a pip requirement ({exc}); "
            "write it as in requirements.txt, e.g. 'numpy', 'attrs>=23', 'numpy==2.1.*'"
        ) from None
    # The name as pip compares names (PEP 503), so 'Attrs_X' and 'attrs-x' are one image;
    # extras, specifiers, markers and URLs are kept as packaging prints them.
    requirement.name = canonicalize_name(requirement.name)
    return str(requirement)


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


_INCLUDE = re.compile(r"(-r|-c|--requirement|--constraint)(?:\s*=\s*|\s+)?(\S+)$")


def _lines(path: Path) -> list[str]:
    """A requirements file's logical lines, comments and continuations removed."""
    text = path.read_text().replace("\\\n", " ")
    return [re.sub(r"(^|\s)#.*", "", raw).strip() for raw in text.splitlines()]


def requirement_files(path: Path) -> list[Path]:
    """A requirements.txt and every file it includes (``-r``/``-c``, recursively, relative to
    the including file as pip reads them), each once: what the cache key hashes.

    An include that is a URL or no file is a :class:`ConfigError`: its content could change
    without the key seeing it.
    """
    found: list[Path] = []
    pending = [path.resolve()]
    while pending:
        current = pending.pop(0)
        if current in found:
            continue
        found.append(current)
        for line in _lines(current):
            if not (match := _INCLUDE.match(line)):
                continue
            target = match.group(2)
            if "://" in target:
                raise ConfigError(
                    f"ContainerConfig.requirements_file: {str(current)!r} includes the URL "
                    f"{target!r} ({match.group(1)}), whose content the image's cache key "
                    "cannot see; download it next to the file or inline its lines"
                )
            included = (current.parent / target).resolve()
            if not included.is_file():
                raise ConfigError(
                    f"ContainerConfig.requirements_file: {str(current)!r} includes "
                    f"{target!r} ({match.group(1)}), but {str(included)!r} is no file"
                )
            pending.append(included)
    return found


def _python_file_lines(path: Path) -> list[str]:
    """The requirement lines of a requirements.txt and its includes (options and comments
    skipped), checked."""
    found = []
    for line in [line for file in requirement_files(path) for line in _lines(file)]:
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

    Local inputs (a requirements file and the files it includes, a lock file, a tarball) count
    by content.
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
        else:  # the file and what it includes with -r/-c
            local.extend(requirement_files(requirements_file)[1:])
    inputs["files"] = [[str(p), _file_digest(p) if p.is_file() else None] for p in local]
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:20]
