"""Build the executor images from ``docker-bake.hcl`` through the Engine API (no buildx needed).

The bake file stays the one source of truth for tags, contexts, Dockerfiles and build args:
:func:`load_bake` reads it with a real HCL parser (python-hcl2) and resolves groups, variable
defaults (overridden by the environment, then by ``variables``), ``${VAR}`` interpolation and
``inherits``. :func:`build_images` sends each target's context to the engine's ``/build``
endpoint (the classic builder), tags every tag, and skips a target whose tags already point at
an image labelled with the same context hash.

Base images: when ``make bases`` has recorded local Debian-based bases in
``.state/bake-vars.json`` and an official base named by a variable is neither present nor
pullable, the recorded value is used instead (unless the caller set that variable).

Command line (what ``make images`` runs)::

    python -m executor._images build [TARGET ...] [--set VAR=VALUE ...] [--optional-engine]

Errors: :class:`~executor._errors.EngineUnavailable` when the engine cannot be reached,
:class:`ImageBuildFailed` (code ``BUILD_FAILED``, with the build log tail) when a build fails,
:class:`~executor._errors.ConfigError` for a bad bake file or unknown target.
"""

from __future__ import annotations

import argparse
import asyncio
import fnmatch
import hashlib
import io
import json
import os
import re
import sys
import tarfile
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiodocker
import aiohttp
import anyio

from ._errors import ConfigError, EngineUnavailable, ExecutorError, ImageBuildFailed

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence

__all__ = [
    "CONTEXT_HASH_LABEL",
    "ImageBuildFailed",
    "TargetSpec",
    "build_images",
    "load_bake",
    "main",
]

#: Image label holding the hash of everything a build depends on (used to skip rebuilds).
CONTEXT_HASH_LABEL = "dev.executor.context-hash"

_REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_BAKE_FILE = _REPO_ROOT / "docker-bake.hcl"
#: Written by ``make bases`` (scripts/bases.sh): the local replacements for official bases.
DEFAULT_LOCAL_BASES = _REPO_ROOT / ".state" / "bake-vars.json"

_LOG_TAIL_LINES = 40
_PULL_TIMEOUT = 300.0
_VAR_RE = re.compile(r"\$\$\{|\$\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}")
_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class TargetSpec:
    """One resolved bake target: what to send to the engine and what to tag."""

    name: str
    context: Path
    dockerfile: str = "Dockerfile"
    args: Mapping[str, str] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    #: Network mode for RUN steps (bake's ``network``), e.g. ``"none"``; None: the default.
    network: str | None = None


# --- the bake file ---------------------------------------------------------------------------


def _unquote_key(key: str) -> str:
    return _literal(key) if key.startswith('"') else key


def _literal(text: str) -> str:
    """The content of an HCL quoted string as python-hcl2 returns it (quotes included)."""
    try:
        value = json.loads(text)
    except ValueError:
        value = text[1:-1]
    if not isinstance(value, str):
        raise ConfigError(f"bake file: cannot read string {text!r}")
    return value


def _blocks(tree: Mapping[str, Any], kind: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for entry in tree.get(kind, []):
        for label, body in entry.items():
            yield (
                _unquote_key(label),
                {_unquote_key(k): v for k, v in body.items() if not k.startswith("__")},
            )


def _interpolate(value: Any, variables: Mapping[str, str], where: str) -> Any:
    """Resolve a python-hcl2 value: quoted strings interpolate ``${VAR}``; bare names are refs."""
    if isinstance(value, list):
        return [_interpolate(item, variables, where) for item in value]
    if isinstance(value, dict):
        return {
            _unquote_key(k): _interpolate(v, variables, where)
            for k, v in value.items()
            if not k.startswith("__")
        }
    if isinstance(value, bool | int | float) or value is None:
        return value
    if not isinstance(value, str):
        raise ConfigError(f"bake file: unsupported value {value!r} in {where}")
    if value.startswith('"') and value.endswith('"') and len(value) >= 2:
        text = _literal(value)

        def substitute(match: re.Match[str]) -> str:
            if match.group(0) == "$${":
                return "${"
            name = match.group(1)
            if name not in variables:
                raise ConfigError(f"bake file: unknown variable {name!r} in {where}")
            return variables[name]

        return _VAR_RE.sub(substitute, text)
    expression = value.strip()
    if expression.startswith("${") and expression.endswith("}"):
        expression = expression[2:-1].strip()
    if _IDENT_RE.fullmatch(expression):
        if expression not in variables:
            raise ConfigError(f"bake file: unknown variable {expression!r} in {where}")
        return variables[expression]
    raise ConfigError(
        f"bake file: expression {value!r} in {where} is not supported "
        "(only strings, ${VAR} interpolation and variable references)"
    )


def _as_str(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _parse(path: Path) -> dict[str, Any]:
    import hcl2  # the [cli] extra; imported here so `import executor` stays light

    try:
        with path.open() as f:
            tree: dict[str, Any] = hcl2.load(f)
    except FileNotFoundError as exc:
        raise ConfigError(f"bake file {path} not found") from exc
    except Exception as exc:  # lark's parse errors have no common public base
        raise ConfigError(f"bake file {path} is not valid HCL: {exc}") from exc
    return tree


def bake_variables(path: Path | str, overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """Resolve the bake file's variables: defaults, then the environment, then ``overrides``."""
    tree = _parse(Path(path))
    raw: dict[str, Any] = {}
    for name, body in _blocks(tree, "variable"):
        raw[name] = body.get("default", '""')
    resolved: dict[str, str] = {}
    for name in raw:
        if overrides and name in overrides:
            resolved[name] = overrides[name]
        elif name in os.environ:
            resolved[name] = os.environ[name]
    # Defaults may refer to other variables: resolve until nothing changes.
    pending = {n: v for n, v in raw.items() if n not in resolved}
    for _ in range(len(pending) + 1):
        progressed = False
        for name, value in list(pending.items()):
            try:
                resolved[name] = _as_str(_interpolate(value, resolved, f"variable {name!r}"))
            except ConfigError:
                continue
            del pending[name]
            progressed = True
        if not pending or not progressed:
            break
    if pending:
        name, value = next(iter(pending.items()))
        _interpolate(value, resolved, f"variable {name!r}")  # raises the precise error
    for name, value in (overrides or {}).items():
        resolved.setdefault(name, value)
    return resolved


def load_bake(
    path: Path | str = DEFAULT_BAKE_FILE, variables: Mapping[str, str] | None = None
) -> dict[str, TargetSpec]:
    """Read a bake file and return every target, resolved, by name.

    ``variables`` override the defaults (after the environment, as ``docker buildx bake``
    does). Contexts are relative to the bake file's directory, Dockerfiles to the context.
    Raises :class:`ConfigError` for invalid HCL, unknown variables or unsupported expressions.
    """
    path = Path(path).resolve()
    tree = _parse(path)
    values = bake_variables(path, variables)
    bodies = dict(_blocks(tree, "target"))

    def merged(name: str, seen: tuple[str, ...] = ()) -> dict[str, Any]:
        if name in seen:
            raise ConfigError(f"bake file: target {name!r} inherits from itself")
        if name not in bodies:
            raise ConfigError(f"bake file: unknown target {name!r}")
        body = bodies[name]
        out: dict[str, Any] = {}
        parents = _interpolate(body.get("inherits", []), values, f"target {name!r}")
        for parent in parents:
            for key, value in merged(parent, (*seen, name)).items():
                if isinstance(value, dict) and isinstance(out.get(key), dict):
                    out[key] = {**out[key], **value}
                else:
                    out[key] = value
        for key, value in body.items():
            if key == "inherits":
                continue
            resolved = _interpolate(value, values, f"target {name!r}")
            if isinstance(resolved, dict) and isinstance(out.get(key), dict):
                out[key] = {**out[key], **resolved}
            else:
                out[key] = resolved
        return out

    specs: dict[str, TargetSpec] = {}
    for name in bodies:
        body = merged(name)
        if body.get("contexts"):
            raise ConfigError(
                f"bake file: target {name!r} uses named contexts, which the Engine API "
                "builder does not support; use docker buildx bake"
            )
        specs[name] = TargetSpec(
            name=name,
            context=(path.parent / _as_str(body.get("context", "."))).resolve(),
            dockerfile=_as_str(body.get("dockerfile", "Dockerfile")),
            args={k: _as_str(v) for k, v in dict(body.get("args", {})).items()},
            tags=tuple(_as_str(t) for t in body.get("tags", [])),
            labels={k: _as_str(v) for k, v in dict(body.get("labels", {})).items()},
            network=_as_str(body["network"]) if body.get("network") else None,
        )
    return specs


def resolve_targets(path: Path | str, names: Sequence[str]) -> list[str]:
    """Expand group names into target names (in order, without duplicates)."""
    tree = _parse(Path(path))
    groups = {
        name: [_literal(t) if t.startswith('"') else t for t in body.get("targets", [])]
        for name, body in _blocks(tree, "group")
    }
    targets = {name for name, _ in _blocks(tree, "target")}
    out: list[str] = []

    def add(name: str, seen: tuple[str, ...]) -> None:
        if name in seen:
            raise ConfigError(f"bake file: group {name!r} contains itself")
        if name in targets:
            if name not in out:
                out.append(name)
        elif name in groups:
            for member in groups[name]:
                add(member, (*seen, name))
        else:
            known = ", ".join(sorted(targets | set(groups)))
            raise ConfigError(f"bake file: no target or group {name!r} (known: {known})")

    for name in names:
        add(name, ())
    return out


# --- build contexts --------------------------------------------------------------------------


def _ignore_patterns(context: Path) -> list[tuple[bool, str]]:
    path = context / ".dockerignore"
    if not path.is_file():
        return []
    patterns: list[tuple[bool, str]] = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line[1:] if negate else line
        patterns.append((negate, pattern.strip().strip("/").removeprefix("./")))
    return patterns


def _ignored(relative: str, patterns: Sequence[tuple[bool, str]]) -> bool:
    ignored = False
    parts = relative.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for negate, pattern in patterns:
        if any(fnmatch.fnmatchcase(prefix, pattern) for prefix in prefixes):
            ignored = not negate
    return ignored


def _context_files(context: Path) -> list[Path]:
    if not context.is_dir():
        raise ConfigError(f"build context {context} is not a directory")
    patterns = _ignore_patterns(context)
    files: list[Path] = []
    for root, dirs, names in os.walk(context):
        base = Path(root)
        dirs[:] = sorted(
            d for d in dirs if not _ignored((base / d).relative_to(context).as_posix(), patterns)
        )
        for name in sorted(names):
            path = base / name
            if not _ignored(path.relative_to(context).as_posix(), patterns):
                files.append(path)
    return files


def _context_tar(context: Path, files: Sequence[Path]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in files:
            info = tar.gettarinfo(str(path), arcname=path.relative_to(context).as_posix())
            # Reproducible: the engine's cache keys on content and mode, not on who or when.
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = 0
            if info.isfile():
                with path.open("rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
    return buffer.getvalue()


def _context_hash(spec: TargetSpec, files: Sequence[Path], base_ids: Mapping[str, str]) -> str:
    digest = hashlib.sha256()
    digest.update(
        json.dumps(
            [spec.dockerfile, sorted(spec.args.items()), sorted(spec.labels.items())]
        ).encode()
    )
    digest.update(json.dumps(sorted(base_ids.items())).encode())
    for path in files:
        relative = path.relative_to(spec.context).as_posix()
        mode = path.lstat().st_mode
        digest.update(f"\0{relative}\0{mode:o}\0".encode())
        if path.is_symlink():
            digest.update(os.readlink(path).encode())
        elif path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


# --- the engine ------------------------------------------------------------------------------


#: aiodocker reports "cannot connect" as a DockerError with this pseudo status.
_CONNECT_FAILED = 900


def _is_engine_error(exc: BaseException) -> bool:
    if isinstance(exc, aiodocker.DockerError):
        return exc.status == _CONNECT_FAILED or _is_engine_error(exc.__cause__ or ValueError())
    return isinstance(exc, aiohttp.ClientConnectionError | ConnectionError | FileNotFoundError)


async def _image_id(docker: aiodocker.Docker, ref: str) -> str | None:
    try:
        info = await docker.images.inspect(ref)
    except aiodocker.DockerError as exc:
        if exc.status == 404:
            return None
        raise
    image_id = info.get("Id")
    return image_id if isinstance(image_id, str) else None


async def _image_label(docker: aiodocker.Docker, ref: str, label: str) -> str | None:
    try:
        info = await docker.images.inspect(ref)
    except aiodocker.DockerError as exc:
        if exc.status == 404:
            return None
        raise
    labels = (info.get("Config") or {}).get("Labels") or {}
    value = labels.get(label)
    return value if isinstance(value, str) else None


async def _available(
    docker: aiodocker.Docker, ref: str, progress: Callable[[str], None] | None
) -> bool:
    """Is ``ref`` present, or can it be pulled now?"""
    if ref == "scratch" or await _image_id(docker, ref) is not None:
        return True
    if progress:
        progress(f"pulling {ref}")
    try:
        await asyncio.wait_for(docker.images.pull(ref), timeout=_PULL_TIMEOUT)
    except (aiodocker.DockerError, TimeoutError) as exc:
        if progress:
            progress(f"cannot pull {ref}: {exc}")
        return False
    return await _image_id(docker, ref) is not None


def _split_ref(ref: str) -> tuple[str, str]:
    name, _, tag = ref.rpartition(":")
    if not name or "/" in tag:
        return ref, "latest"
    return name, tag


def _read_local_bases(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except ValueError as exc:
        raise ConfigError(f"{path} is not valid JSON; rerun `make bases`") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a JSON object; rerun `make bases`")
    return {str(k): str(v) for k, v in data.items()}


async def _resolve_variables(
    docker: aiodocker.Docker,
    bake_file: Path,
    variables: Mapping[str, str] | None,
    local_bases: Path,
    progress: Callable[[str], None] | None,
) -> dict[str, str]:
    """Caller's variables, plus recorded local bases for official bases we cannot get."""
    chosen = dict(variables or {})
    recorded = _read_local_bases(local_bases)
    defaults = bake_variables(bake_file, chosen)
    for name, local in recorded.items():
        if name in chosen or name in os.environ or name not in defaults:
            continue
        official = defaults[name]
        if official == local or await _available(docker, official, progress):
            continue
        if progress:
            progress(f"{name}: {official} is unavailable; using the local base {local}")
        chosen[name] = str(local)
    return chosen


def _order(specs: Mapping[str, TargetSpec], wanted: Sequence[str]) -> list[TargetSpec]:
    """Targets in build order: one whose arg names another target's tag comes after it."""
    producers = {tag: name for name, spec in specs.items() for tag in spec.tags}
    ordered: list[str] = []

    def visit(name: str, seen: tuple[str, ...]) -> None:
        if name in ordered:
            return
        if name in seen:
            raise ConfigError(f"bake file: targets depend on each other: {' -> '.join(seen)}")
        for value in specs[name].args.values():
            producer = producers.get(value)
            if producer is not None and producer != name:
                visit(producer, (*seen, name))
        ordered.append(name)

    for name in wanted:
        visit(name, ())
    return [specs[name] for name in ordered]


async def _build_with_network(
    docker: aiodocker.Docker,
    context_tar: bytes,
    spec: TargetSpec,
    tag: str,
    labels: Mapping[str, str],
    network: str,
) -> AsyncIterator[dict[str, Any]]:
    """POST /build with ``networkmode``, which aiodocker's ``images.build`` does not expose.

    Yields the engine's JSON progress objects, like ``images.build(stream=True)``.
    """
    params = {
        "t": tag,
        "dockerfile": spec.dockerfile,
        "rm": "1",
        "forcerm": "1",
        "buildargs": json.dumps(dict(spec.args)),
        "labels": json.dumps(dict(labels)),
        "networkmode": network,
    }
    headers = {"content-type": "application/x-tar", "Content-Encoding": "identity"}
    timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
    async with docker._query(
        "build", "POST", params=params, data=context_tar, headers=headers, timeout=timeout
    ) as response:
        pending = b""
        async for data in response.content.iter_any():
            pending += data
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if line.strip():
                    decoded = json.loads(line)
                    if isinstance(decoded, dict):
                        yield decoded
        if pending.strip():
            decoded = json.loads(pending)
            if isinstance(decoded, dict):
                yield decoded


def _missing_base_hint(spec: TargetSpec, base_ids: Mapping[str, str]) -> str:
    missing = [
        value
        for key, value in spec.args.items()
        if (key == "BASE_IMAGE" or key.endswith("_BASE"))
        and value != "scratch"
        and key not in base_ids
    ]
    if not missing:
        return ""
    return (
        f" (base image {', '.join(missing)} is not on the engine and the build pulls it; "
        "without a registry, `make bases` builds local bases the builder then uses)"
    )


async def _build_one(
    docker: aiodocker.Docker,
    spec: TargetSpec,
    *,
    force: bool,
    progress: Callable[[str], None] | None,
) -> bool:
    """Build and tag one target; return False when it was up to date."""
    if not spec.tags:
        raise ConfigError(f"bake file: target {spec.name!r} has no tags")
    files = _context_files(spec.context)
    base_ids: dict[str, str] = {}
    for key, value in spec.args.items():
        try:
            image_id = None if value == "scratch" else await _image_id(docker, value)
        except aiodocker.DockerError as exc:
            if _is_engine_error(exc):
                raise
            image_id = None  # not an image reference (e.g. FUNCTION_DIR)
        if image_id is not None:
            base_ids[key] = image_id
    context_hash = _context_hash(spec, files, base_ids)

    first = spec.tags[0]
    if not force and await _image_label(docker, first, CONTEXT_HASH_LABEL) == context_hash:
        first_id = await _image_id(docker, first)
        for tag in spec.tags[1:]:
            if await _image_id(docker, tag) != first_id:
                repo, name = _split_ref(tag)
                await docker.images.tag(first, repo, tag=name)
        if progress:
            progress(f"{spec.name}: up to date ({', '.join(spec.tags)})")
        return False

    if progress:
        progress(f"{spec.name}: building {first} from {spec.context}")
    tail: deque[str] = deque(maxlen=_LOG_TAIL_LINES)
    fileobj = io.BytesIO(_context_tar(spec.context, files))
    labels = {**spec.labels, CONTEXT_HASH_LABEL: context_hash}
    try:
        if spec.network is None:
            stream = docker.images.build(
                fileobj=fileobj,
                encoding="identity",
                path_dockerfile=spec.dockerfile,
                tag=first,
                buildargs=dict(spec.args),
                labels=labels,
                rm=True,
                forcerm=True,
                stream=True,
            )
        else:
            stream = _build_with_network(
                docker, fileobj.getvalue(), spec, first, labels, spec.network
            )
        async for chunk in stream:
            if not isinstance(chunk, dict):
                continue
            if "error" in chunk:
                message = str(chunk.get("error", "")).strip()
                tail.append(message)
                raise ImageBuildFailed(
                    f"building {spec.name} failed: {message}{_missing_base_hint(spec, base_ids)}",
                    target=spec.name,
                    logs="\n".join(tail),
                )
            text = chunk.get("stream") or chunk.get("status")
            if isinstance(text, str):
                for line in text.splitlines():
                    if line.strip():
                        tail.append(line)
                        if progress:
                            progress(f"{spec.name}: {line}")
    except aiodocker.DockerError as exc:
        raise ImageBuildFailed(
            f"building {spec.name} failed: {exc.message}{_missing_base_hint(spec, base_ids)}",
            target=spec.name,
            logs="\n".join(tail),
        ) from exc
    if await _image_id(docker, first) is None:
        raise ImageBuildFailed(
            f"building {spec.name} finished without an image {first}",
            target=spec.name,
            logs="\n".join(tail),
        )
    for tag in spec.tags[1:]:
        repo, name = _split_ref(tag)
        await docker.images.tag(first, repo, tag=name)
    if progress:
        progress(f"{spec.name}: built {', '.join(spec.tags)}")
    return True


def _prepare(bake_file: Path | str, targets: Sequence[str]) -> tuple[Path, list[str]]:
    bake_path = Path(bake_file).resolve()
    return bake_path, resolve_targets(bake_path, targets)


async def build_images(
    targets: Sequence[str] = ("runners",),
    *,
    bake_file: Path | str = DEFAULT_BAKE_FILE,
    variables: Mapping[str, str] | None = None,
    docker: aiodocker.Docker | None = None,
    progress: Callable[[str], None] | None = None,
    force: bool = False,
    local_bases: Path | str | None = DEFAULT_LOCAL_BASES,
) -> list[str]:
    """Build bake targets (or groups) through the Engine API; return the tags now in place.

    A target whose first tag already carries the same context hash is not rebuilt (``force``
    rebuilds). A target whose build arg names another target's tag is built after it.
    ``local_bases`` (default ``.state/bake-vars.json``, written by ``make bases``) supplies
    replacements for official base images that are neither present nor pullable.

    Raises :class:`EngineUnavailable`, :class:`ImageBuildFailed` or :class:`ConfigError`.
    """
    bake_path, names = _prepare(bake_file, targets)
    own_client = docker is None
    client = docker
    try:
        if client is None:
            client = aiodocker.Docker()
        chosen = await _resolve_variables(
            client,
            bake_path,
            variables,
            Path(local_bases) if local_bases is not None else Path("/nonexistent"),
            progress,
        )
        specs = load_bake(bake_path, chosen)
        built: list[str] = []
        for spec in _order(specs, names):
            await _build_one(client, spec, force=force, progress=progress)
            built.extend(spec.tags)
        return built
    except (aiodocker.DockerError, aiohttp.ClientError, OSError, ValueError) as exc:
        if _is_engine_error(exc) or (isinstance(exc, ValueError) and client is None):
            raise EngineUnavailable(f"cannot reach the Docker engine: {exc}") from exc
        if isinstance(exc, ValueError):
            raise
        message = exc.message if isinstance(exc, aiodocker.DockerError) else str(exc)
        raise ExecutorError(
            f"the engine refused a request: {message}", code="ENGINE_ERROR"
        ) from exc
    finally:
        if own_client and client is not None:
            await client.close()


async def engine_answers(docker: aiodocker.Docker | None = None) -> bool:
    """Does a Docker engine answer a ping?"""
    client = docker or aiodocker.Docker()
    try:
        await asyncio.wait_for(client.system.info(), timeout=10)
    except Exception:
        return False
    finally:
        if docker is None:
            await client.close()
    return True


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m executor._images build [TARGET ...]``: build images as ``make`` does."""
    parser = argparse.ArgumentParser(prog="python -m executor._images", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="build bake targets or groups")
    build.add_argument("targets", nargs="*", default=["default"])
    build.add_argument("--bake-file", "-f", default=str(DEFAULT_BAKE_FILE))
    build.add_argument("--set", action="append", default=[], metavar="VAR=VALUE")
    build.add_argument("--force", action="store_true", help="rebuild even when up to date")
    build.add_argument(
        "--local-bases",
        default=str(DEFAULT_LOCAL_BASES),
        help="JSON of fallback base variables (default: .state/bake-vars.json, from make bases)",
    )
    build.add_argument("--quiet", "-q", action="store_true", help="print only the summary")
    build.add_argument(
        "--optional-engine",
        action="store_true",
        help="without an engine, print a note and succeed (unless EXECUTOR_REQUIRE_DOCKER=1)",
    )
    args = parser.parse_args(argv)

    variables: dict[str, str] = {}
    for item in args.set:
        name, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--set expects VAR=VALUE, got {item!r}")
        variables[name] = value

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    def show(line: str) -> None:
        if not args.quiet or ": built" in line or "up to date" in line or "local base" in line:
            say(line)

    if args.optional_engine and not asyncio.run(engine_answers()):
        if os.environ.get("EXECUTOR_REQUIRE_DOCKER") == "1":
            say("images: no Docker engine answers and EXECUTOR_REQUIRE_DOCKER=1; run `make engine`")
            return 1
        say(
            "images: no Docker engine answers; skipping image builds "
            "(docker tests will skip). Run `make engine` to start one."
        )
        return 0
    try:
        tags = asyncio.run(
            build_images(
                args.targets,
                bake_file=args.bake_file,
                variables=variables,
                progress=show,
                force=args.force,
                local_bases=args.local_bases,
            )
        )
    except ImageBuildFailed as exc:
        say(f"images: {exc}\n--- build log tail ---\n{exc.logs}")
        return 1
    except ExecutorError as exc:
        say(f"images: {exc}")
        return 1
    say(f"images: ready: {' '.join(tags)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())


async def build_for_image(
    image: str, engine: object, *, bake_file: Path | str = DEFAULT_BAKE_FILE
) -> bool:
    """Build, on ``engine``, the bake target that produces ``image``; False if none does.

    Used by ``ContainerConfig(missing_image="build")`` to provide a runner image on an engine
    that lacks it. Only Docker engines (the Engine API's /build) are supported.
    """
    from ._engine import DockerEngine

    if not isinstance(engine, DockerEngine):
        return False
    try:
        specs = await anyio.to_thread.run_sync(load_bake, bake_file)
    except (OSError, ExecutorError):
        return False  # no bake file here (an installed package): nothing to build from
    wanted = image if ":" in image.rsplit("/", 1)[-1] else f"{image}:latest"
    for name, spec in specs.items():
        if wanted in spec.tags:
            await build_images([name], bake_file=bake_file, docker=engine.client())
            return True
    return False
