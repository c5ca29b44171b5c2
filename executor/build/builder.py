"""Build bake targets through an engine's image interface (the Engine API ``/build``).

:func:`build_images` sends each target's context to the engine, tags every tag, and skips a
target whose tags already point at an image labelled with the same context hash. When
``make bases`` has recorded local Debian-based bases in ``.state/bake-vars.json`` and an
official base named by a variable is neither present nor pullable, the recorded value is
used instead (unless the caller set that variable).

Errors: :class:`EngineUnavailable` when the engine cannot be reached, :class:`ImageBuildFailed`
(``BUILD_FAILED``, with the build log tail) when a build fails, :class:`ConfigError` for a bad
bake file or an unknown target.
"""

from __future__ import annotations

import json
import os
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from .._errors import ConfigError, ExecutorError, ImageBuildFailed
from .bake import CHECKOUT, DEFAULT_BAKE_FILE, bake_variables, load_bake, resolve_targets
from .context import context_files, context_hash, context_tar

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Mapping, Sequence

    from ..engine import Engine, Images
    from .bake import TargetSpec

__all__ = [
    "CONTEXT_HASH_LABEL",
    "DEFAULT_LOCAL_BASES",
    "build_for_image",
    "build_images",
]

#: Image label holding the hash of everything a build depends on (used to skip rebuilds).
CONTEXT_HASH_LABEL = "dev.executor.context-hash"
#: Written by ``make bases`` (scripts/bases.sh) in a checkout: the local replacements for
#: official bases. None away from a checkout (pass replacements with ``--set NAME=IMAGE``).
DEFAULT_LOCAL_BASES = CHECKOUT / ".state" / "bake-vars.json" if CHECKOUT is not None else None
_LOG_TAIL_LINES = 40


async def _available(images: Images, ref: str, progress: Callable[[str], None] | None) -> bool:
    """Is ``ref`` present, or can it be pulled now?"""
    if ref == "scratch" or await images.exists(ref):
        return True
    if progress:
        progress(f"pulling {ref}")
    if await images.pull(ref):
        return True
    if progress:
        progress(f"cannot pull {ref}")
    return False


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
    images: Images,
    bake_file: Path,
    variables: Mapping[str, str] | None,
    local_bases: Path,
    progress: Callable[[str], None] | None,
) -> dict[str, str]:
    """Caller's variables, plus recorded local bases for official bases we cannot get."""
    chosen = dict(variables or {})
    if "VERSION" not in chosen and "VERSION" not in os.environ:
        from .. import __version__

        if __version__ != "0+unknown":
            chosen["VERSION"] = __version__  # one source: the package's version
    recorded = _read_local_bases(local_bases)
    defaults = bake_variables(bake_file, chosen)
    for name, local in recorded.items():
        if name in chosen or name in os.environ or name not in defaults:
            continue
        official = defaults[name]
        if official == local or await _available(images, official, progress):
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
    if CHECKOUT is not None:
        remedy = "without a registry, `make bases` builds local bases the builder then uses"
    else:
        remedy = "without a registry, name a local image instead: --set NAME=IMAGE"
    images = ", ".join(missing)
    return f" (base image {images} is not on the engine and the build pulls it; {remedy})"


async def _label(images: Images, ref: str, label: str) -> str | None:
    info = await images.inspect(ref)
    labels = ((info or {}).get("Config") or {}).get("Labels") or {}
    value = labels.get(label)
    return value if isinstance(value, str) else None


async def _build_one(
    images: Images, spec: TargetSpec, *, force: bool, progress: Callable[[str], None] | None
) -> bool:
    """Build and tag one target; return False when it was up to date."""
    if not spec.tags:
        raise ConfigError(f"bake file: target {spec.name!r} has no tags")
    files = context_files(spec.context, spec.context / spec.dockerfile)
    base_ids: dict[str, str] = {}
    for key, value in spec.args.items():
        if value == "scratch":
            continue
        try:
            image_id = await images.id(value)
        except ExecutorError as exc:
            if exc.code == "ENGINE_UNAVAILABLE":
                raise
            image_id = None  # not an image reference (e.g. FUNCTION_DIR)
        if image_id is not None:
            base_ids[key] = image_id
    digest = context_hash(spec, files, base_ids)

    first = spec.tags[0]
    if not force and await _label(images, first, CONTEXT_HASH_LABEL) == digest:
        first_id = await images.id(first)
        for tag in spec.tags[1:]:
            if await images.id(tag) != first_id:
                await images.tag(first, *_split_ref(tag))
        if progress:
            progress(f"{spec.name}: up to date ({', '.join(spec.tags)})")
        return False

    if progress:
        progress(f"{spec.name}: building {first} from {spec.context}")
    tail: deque[str] = deque(maxlen=_LOG_TAIL_LINES)
    labels = {**spec.labels, CONTEXT_HASH_LABEL: digest}
    try:
        stream = images.build(
            context_tar(spec.context, files),
            tag=first,
            dockerfile=spec.dockerfile,
            buildargs=spec.args,
            labels=labels,
            network=spec.network,
        )
        await _follow(stream, spec.name, tail, progress, _missing_base_hint(spec, base_ids))
    except ExecutorError as exc:
        if isinstance(exc, ImageBuildFailed) or exc.code == "ENGINE_UNAVAILABLE":
            raise
        raise ImageBuildFailed(
            f"building {spec.name} failed: {exc.message}{_missing_base_hint(spec, base_ids)}",
            target=spec.name,
            logs="\n".join(tail),
        ) from exc
    if await images.id(first) is None:
        raise ImageBuildFailed(
            f"building {spec.name} finished without an image {first}",
            target=spec.name,
            logs="\n".join(tail),
        )
    for tag in spec.tags[1:]:
        await images.tag(first, *_split_ref(tag))
    if progress:
        progress(f"{spec.name}: built {', '.join(spec.tags)}")
    return True


async def _follow(
    stream: AsyncIterator[dict[str, Any]],
    name: str,
    tail: deque[str],
    progress: Callable[[str], None] | None,
    hint: str,
) -> None:
    """Read a build's progress objects into ``tail``; an error line is ImageBuildFailed."""
    try:
        async for chunk in stream:
            if "error" in chunk:
                message = str(chunk.get("error", "")).strip()
                tail.append(message)
                raise ImageBuildFailed(
                    f"building {name} failed: {message}{hint}", target=name, logs="\n".join(tail)
                )
            text = chunk.get("stream") or chunk.get("status")
            if isinstance(text, str):
                for line in text.splitlines():
                    if line.strip():
                        tail.append(line)
                        if progress:
                            progress(f"{name}: {line}")
    finally:
        # Leaving on an error line closes the build request's connection now, not when the
        # generator is collected (perhaps after its event loop has closed: an unclosed socket).
        close = getattr(stream, "aclose", None)
        if close is not None:
            await close()


async def build_images(
    targets: Sequence[str] = ("runners",),
    *,
    engine: Engine | None = None,
    bake_file: Path | str = DEFAULT_BAKE_FILE,
    variables: Mapping[str, str] | None = None,
    progress: Callable[[str], None] | None = None,
    force: bool = False,
    local_bases: Path | str | None = DEFAULT_LOCAL_BASES,
) -> list[str]:
    """Build bake targets (or groups) on ``engine``; return the tags now in place.

    ``engine`` defaults to the default Docker engine (closed afterwards). A target whose first
    tag already carries the same context hash is not rebuilt (``force`` rebuilds). A target
    whose build arg names another target's tag is built after it. ``local_bases`` (default
    ``.state/bake-vars.json``, written by ``make bases``) supplies replacements for official
    base images that are neither present nor pullable.
    """
    bake_path = Path(await anyio.Path(bake_file).resolve())
    names = resolve_targets(bake_path, targets)
    own = engine is None
    if engine is None:
        from ..engine.docker import DockerEngine

        engine = DockerEngine()
    try:
        chosen = await _resolve_variables(
            engine.images,
            bake_path,
            variables,
            Path(local_bases) if local_bases is not None else Path("/nonexistent"),
            progress,
        )
        specs = await anyio.to_thread.run_sync(load_bake, bake_path, chosen)
        built: list[str] = []
        for spec in _order(specs, names):
            await _build_one(engine.images, spec, force=force, progress=progress)
            built.extend(spec.tags)
        return built
    finally:
        if own:
            await engine.aclose()


async def build_for_image(
    image: str, engine: Engine, *, bake_file: Path | str = DEFAULT_BAKE_FILE
) -> bool:
    """Build, on ``engine``, the bake target that produces ``image``; False if none does.

    Used by ``ContainerConfig(missing_image="build")`` to provide a runner image on an engine
    that lacks it.
    """
    try:
        specs = await anyio.to_thread.run_sync(load_bake, bake_file)
    except (OSError, ExecutorError):
        return False  # no bake file here: nothing to build from
    wanted = image if ":" in image.rsplit("/", 1)[-1] else f"{image}:latest"
    for name, spec in specs.items():
        if wanted in spec.tags:
            await build_images([name], engine=engine, bake_file=bake_file)
            return True
    return False
