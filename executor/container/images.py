"""Getting a call's image ready on one engine, once: present, copied, built or derived.

:class:`Readiness` answers "what create body does a call on this engine use?". The first
call checks that the image exists (else copies it from another engine, builds it from the
bake file, or raises :class:`ImageNotFound`, as ``missing_image`` says), derives the image
that carries ``requirements`` (:mod:`executor.container.deps`) and then the one that carries
``files`` (built once by commit, cached by the base image's id and the files' hash; the root
filesystem stays read-only), and builds the create body. Every later call gets the cached
body.
"""

from __future__ import annotations

import hashlib
import time
from typing import TYPE_CHECKING, Any, NamedTuple

import anyio

from .._errors import ExecutorClosed, ImageNotFound
from ..engine import MANAGED_LABEL
from .config import create_body
from .deps import DEPS_OF_LABEL, DEPS_REPOSITORY, deps_image
from .requirements import wanted

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Mapping, Sequence

    from ..engine import Engine
    from .config import ContainerConfig

__all__ = [
    "FILES_OF_LABEL",
    "FILES_REPOSITORY",
    "PrunedImage",
    "Readiness",
    "build_hint",
    "prune_files_images",
]

#: The repository of derived ``files`` images, and the label naming their base image.
FILES_REPOSITORY = "executor-files"
FILES_OF_LABEL = "executor.files-of"


def build_hint(image: str) -> str:
    """How to get a missing image: the command that builds it, when it is one of ours."""
    if image.startswith(("executor/runner-", "executor/generator-")):
        target = image.split("/", 1)[1].split(":", 1)[0]
        return (
            f"Build it with `executor images build {target}` (`executor doctor` checks the "
            "setup; from a checkout, `make images` builds them all)."
        )
    return "Build or pull it first (nothing is pulled implicitly)."


def files_digest(image_id: str, files: Mapping[str, bytes]) -> str:
    """The cache key of a derived image: the base image's id and every file's content."""
    h = hashlib.sha256(image_id.encode())
    for path in sorted(files):
        h.update(b"\0" + path.encode() + b"\0")
        h.update(hashlib.sha256(files[path]).digest())
    return h.hexdigest()[:20]


class Readiness:
    """The create body for calls on one engine, prepared on first use."""

    def __init__(
        self,
        engine: Engine,
        config: ContainerConfig,
        labels: Mapping[str, str],
        files: Mapping[str, bytes],
        peers: Callable[[], Sequence[Engine]],
    ) -> None:
        self._engine = engine
        self._config = config
        self._labels = labels
        self._files = files
        self._peers = peers
        self._lock = anyio.Lock()
        self._closed = False
        self._deps: str | None = None  # the requirements image, once made or found
        self.body: dict[str, Any] | None = None

    def close(self) -> None:
        """Refuse to prepare anything from now on."""
        self._closed = True

    @property
    def closed(self) -> bool:
        return self._closed

    def stale(self, body: dict[str, Any]) -> None:
        """The engine said ``body``'s image is missing (removed by hand, a derived image
        cleared): forget it, so the next :meth:`get` checks, copies, builds or derives it
        again (unless another call did already)."""
        if body is self.body:
            self.body = None
            self._deps = None

    async def get(self) -> dict[str, Any]:
        """The create body (checking and preparing the image the first time)."""
        body = self.body
        if body is not None:
            return body
        async with self._lock:
            if self.body is not None:
                return self.body
            if self._closed:
                raise ExecutorClosed()
            image = self._config.image
            if wanted(self._config):
                image = await self._dependencies()
            elif not await self._engine.images.exists(image):
                await self._provide(image)
            if self._files:
                image = await self._derived(image)
            self.body = create_body(self._config, image, self._labels)
            return self.body

    @property
    def building(self) -> bool:
        """Whether the first call must make (or find) the ``requirements`` image first."""
        return self._deps is None and wanted(self._config)

    async def dependencies(self) -> None:
        """Make or find the ``requirements`` image (:mod:`executor.container.deps`).

        The caller runs this before the call's start clock: a first build is bounded by
        ``build_timeout``, not ``start_timeout``.
        """
        async with self._lock:
            await self._dependencies()

    async def _dependencies(self) -> str:
        """The ``requirements`` image (the base provided first); under the lock."""
        if self._deps is None:
            if self._closed:
                raise ExecutorClosed()
            image = self._config.image
            if not await self._engine.images.exists(image):
                await self._provide(image)
            self._deps = await deps_image(self._engine, self._config, image, self._labels)
        return self._deps

    async def _provide(self, image: str) -> None:
        """Copy or build a missing image as configured, else raise ImageNotFound."""
        policy = self._config.missing_image
        engine = self._engine
        if policy == "copy":
            for other in self._peers():
                if other is not engine and await other.images.exists(image):
                    await engine.images.load(other.images.export(image))
                    return
        elif policy == "build":
            from ..build import build_for_image

            if await build_for_image(image, engine):
                return
        raise ImageNotFound(image, engine=engine.name, hint=build_hint(image))

    async def _derived(self, image: str) -> str:
        # Keyed by the base image's id, not its name: a rebuilt base (a runner fix, a security
        # update) under the same tag must not keep serving the derived image of the old one.
        images = self._engine.images
        digest = files_digest(await images.id(image) or image, self._files)
        tag = f"{FILES_REPOSITORY}/{digest}:latest"
        if not await images.exists(tag):
            await images.derive(image, self._files, tag, {FILES_OF_LABEL: image})
        return tag


class PrunedImage(NamedTuple):
    """A derived image :func:`prune_files_images` removed, or kept because a container uses it.

    ``size`` is the engine's ``Size``: the shared base layers included, not what removal frees.
    """

    ref: str
    id: str
    size: int
    created: int
    base: str
    removed: bool


async def prune_files_images(
    engine: Engine, *, older_than: float = 0.0, base: str | None = None, dry_run: bool = False
) -> AsyncIterator[PrunedImage]:
    """Remove the derived ``files`` and ``requirements`` images made more than ``older_than``
    seconds ago, yielding each as it is removed or kept (one engine request per step, so a
    caller can bound each); with ``base``, only those derived from that image (as the
    executors named it).

    Each distinct ``files`` content makes one image (per base image id) that nothing else
    removes. An image a container uses (any state) is kept: the engine refuses, never forced
    (with ``dry_run``, the executor's own containers are asked instead). An executor whose
    image is removed between its calls derives it again on its next call.
    """
    cutoff = time.time() - older_than
    in_use: set[str] = set()
    if dry_run:
        managed = await engine.list_managed({MANAGED_LABEL: ""})
        in_use = {str(c.get("ImageID") or c.get("Image")) for c in managed}
    for image in await engine.images.list():
        labels = image.get("Labels") or {}
        created = int(image.get("Created") or 0)
        # A files image, or a dependencies image (executor.container.deps).
        of_label, repository = (
            (FILES_OF_LABEL, FILES_REPOSITORY)
            if FILES_OF_LABEL in labels
            else (DEPS_OF_LABEL, DEPS_REPOSITORY)
        )
        if of_label not in labels or created > cutoff:
            continue
        if base is not None and labels[of_label] != base:
            continue
        image_id = str(image.get("Id") or "")
        refs = [r for r in image.get("RepoTags") or [] if repository in r] or [image_id]
        if dry_run:
            removed = image_id not in in_use
        else:  # the image goes with its last tag; the engine refuses that one while in use
            removed = all([await engine.images.remove(ref) for ref in refs])
        yield PrunedImage(
            ref=refs[0],
            id=image_id.removeprefix("sha256:")[:12],
            size=int(image.get("Size") or 0),
            created=created,
            base=str(labels[of_label]),
            removed=removed,
        )
