"""Build contexts: the files a target sends (``.dockerignore`` applied), as a tar, hashed."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from pathlib import Path
from typing import TYPE_CHECKING

from .._errors import ConfigError
from .dockerignore import DockerIgnore

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from .bake import TargetSpec

__all__ = ["context_files", "context_hash", "context_tar"]


def context_files(context: Path, dockerfile: Path | None = None) -> list[Path]:
    """The files of a build context, with Docker's ``.dockerignore`` rules applied.

    ``dockerfile``'s own ``<Dockerfile>.dockerignore`` wins over the context's, as BuildKit
    does. A directory is skipped whole only when no exception pattern could re-include
    anything under it.
    """
    if not context.is_dir():
        raise ConfigError(f"build context {context} is not a directory")
    ignore = DockerIgnore.from_context(context, dockerfile=dockerfile)
    files: list[Path] = []
    for root, dirs, names in os.walk(context):
        base = Path(root)
        kept = []
        for d in sorted(dirs):
            relative = (base / d).relative_to(context).as_posix()
            if not (ignore.excluded(relative) and not ignore.may_contain_included(relative)):
                kept.append(d)
        dirs[:] = kept
        for name in sorted(names):
            path = base / name
            if not ignore.excluded(path.relative_to(context).as_posix()):
                files.append(path)
    return files


def context_tar(context: Path, files: Sequence[Path]) -> bytes:
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


def context_hash(spec: TargetSpec, files: Sequence[Path], base_ids: Mapping[str, str]) -> str:
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
