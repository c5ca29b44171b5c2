"""``ContainerConfig``, secure by default, and the Engine-API create body it stands for."""

from __future__ import annotations

import math
import posixpath
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from .._errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    import aiodocker

    from .._schema import SchemaSource
    from ..engine import Engine
    from .routing import EngineEndpoint

__all__ = ["FORK_WIPE", "ContainerConfig", "MiB", "create_body"]

MiB = 1024 * 1024
#: What a fork-mode runner empties between calls: every writable path of the container.
FORK_WIPE = "/tmp:/dev/shm"
#: Calls per container before it is replaced, by mode (see ``max_uses``).
_DEFAULT_MAX_USES = {"reuse": 100, "fork": 1000}


@dataclass(frozen=True, kw_only=True)
class ContainerConfig:
    """Settings of a :class:`ContainerExecutor`: secure by default, every relaxation opt-in.

    Sizes are bytes, times seconds. ``files`` maps absolute container paths to contents placed
    in the image before any call (a derived image is built once and cached by content hash;
    the root filesystem stays read-only). ``mounts`` are bind mounts ``"host:container"``
    (read-only unless ``":rw"`` is appended).

    Modes: by default every call gets a fresh container. ``pool_size > 0`` keeps that many
    started and waiting (each still serves one call). ``reuse="fork"`` keeps ``pool_size``
    containers (1 when unset) and runs each call in a brand-new process of one of them, forked
    (Python) or pre-started (Node, Go) with the module loaded; between calls the container is
    wiped clean (processes, ``/tmp``, ``/dev/shm``, IPC). ``reuse=True`` runs every call in
    the same long-lived process (state leaks between calls: trusted code only). Reused and
    fork containers serve up to ``max_uses`` calls each (default 100 for ``reuse=True``, 1000
    for fork mode) before they are replaced.

    Time: ``timeout`` bounds the task itself, from the moment its request reaches a container
    to its answer (``ExecutionTimeout``); ``start_timeout`` bounds getting a container for it
    (admission, create, attach, start, or waiting for a pooled one; ``StartTimeout``).
    ``max_starting`` caps container starts in flight per engine (default: the engine's CPU
    count); calls beyond it queue in order. ``reap_on_start=True`` makes ``async with``
    first remove the containers of dead processes that carry ``labels`` (see
    :func:`executor.reap`).

    Files back: with ``collect="/tmp/out"`` (a directory inside a writable mount: ``/tmp``,
    ``/dev/shm``, a ``":rw"`` mount, or anywhere with ``read_only=False``) the runner empties
    that directory before each call and returns the regular files the task left there as
    ``Execution.files`` (relative path to bytes). More than ``max_collect_files`` files or
    ``max_collect_bytes`` bytes (sizes plus relative path lengths) fails the call with
    ``CollectTooLarge``.
    """

    image: str = field(kw_only=False)
    command: Sequence[str] | None = None
    entrypoint: Sequence[str] | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    workdir: str | None = None
    files: Mapping[str, str | bytes] = field(default_factory=dict)
    mounts: Sequence[str] = ()
    # -- isolation --------------------------------------------------------------------------
    network: bool = False
    read_only: bool = True
    tmpfs_bytes: int = 64 * MiB
    tmpfs_exec: bool = False
    user: str = "1000:1000"
    memory_bytes: int = 256 * MiB
    cpus: float = 1.0
    pids_limit: int = 128
    runtime: str | None = None
    init: bool = False
    # -- limits ------------------------------------------------------------------------------
    timeout: float | None = 30.0
    start_timeout: float = 60.0
    max_output_bytes: int = 16 * MiB
    max_log_bytes: int = 1 * MiB
    # -- files back --------------------------------------------------------------------------
    collect: str | None = None
    max_collect_bytes: int = 16 * MiB
    max_collect_files: int = 1000
    # -- schemas -----------------------------------------------------------------------------
    schema_in: SchemaSource = None
    schema_out: SchemaSource = None
    validate: bool = True
    # -- engine ------------------------------------------------------------------------------
    docker: aiodocker.Docker | None = field(default=None, compare=False, repr=False)
    docker_url: str | None = None
    engines: Sequence[str | EngineEndpoint | Engine] = field(default=(), compare=False)
    missing_image: Literal["error", "copy", "build"] = "error"
    health_interval: float = 2.0
    max_starting: int | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    reap_on_start: bool = False
    # -- pool and reuse ----------------------------------------------------------------------
    pool_size: int = 0
    prewarm: bool = False
    max_idle: float | None = 300.0
    on_empty: Literal["start", "wait"] = "start"
    reuse: bool | Literal["fork"] = False
    max_uses: int | None = None

    def __post_init__(self) -> None:
        def bad(what: str) -> ConfigError:
            return ConfigError(f"ContainerConfig.{what}")

        if not isinstance(self.image, str) or not self.image:
            raise bad(f"image must be a non-empty image name, got {self.image!r}")
        for name in (
            "memory_bytes",
            "pids_limit",
            "max_output_bytes",
            "max_log_bytes",
            "tmpfs_bytes",
            "max_collect_bytes",
            "max_collect_files",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise bad(f"{name} must be a positive integer, got {value!r}")
        if self.memory_bytes < 6 * MiB:
            raise bad(f"memory_bytes must be at least 6 MiB, got {self.memory_bytes}")
        if not (isinstance(self.cpus, int | float) and 0 < self.cpus <= 1024):
            raise bad(f"cpus must be a positive number, got {self.cpus!r}")
        if self.timeout is not None and not _seconds(self.timeout):
            raise bad(f"timeout must be a positive number of seconds or None, got {self.timeout!r}")
        if not _seconds(self.start_timeout):
            raise bad(
                f"start_timeout must be a positive number of seconds, got {self.start_timeout!r}"
            )
        if not isinstance(self.pool_size, int) or self.pool_size < 0:
            raise bad(f"pool_size must be a non-negative integer, got {self.pool_size!r}")
        if self.reuse not in (False, True, "fork"):
            raise bad(f"reuse must be False, True or 'fork', got {self.reuse!r}")
        if self.max_uses is not None and not _positive_int(self.max_uses):
            raise bad(f"max_uses must be a positive integer or None, got {self.max_uses!r}")
        if self.max_starting is not None and not _positive_int(self.max_starting):
            raise bad(f"max_starting must be a positive integer or None, got {self.max_starting!r}")
        if self.missing_image not in ("error", "copy", "build"):
            raise bad(
                f"missing_image must be 'error', 'copy' or 'build', got {self.missing_image!r}"
            )
        if not _seconds(self.health_interval):
            raise bad(f"health_interval must be positive seconds, got {self.health_interval!r}")
        if self.on_empty not in ("start", "wait"):
            raise bad(f"on_empty must be 'start' or 'wait', got {self.on_empty!r}")
        if self.max_idle is not None and not _seconds(self.max_idle):
            raise bad(f"max_idle must be positive seconds or None, got {self.max_idle!r}")
        for path in self.files:
            if not path.startswith("/") or path.endswith("/"):
                raise bad(f"files keys must be absolute file paths, got {path!r}")
        for mount in self.mounts:
            parts = mount.split(":")
            if len(parts) not in (2, 3) or not parts[0] or not parts[1].startswith("/"):
                raise bad(f"mounts entries must be 'host:/container[:ro|rw]', got {mount!r}")
            if len(parts) == 3 and parts[2] not in ("ro", "rw"):
                raise bad(f"mount mode must be 'ro' or 'rw', got {mount!r}")
        if self.collect is not None:
            self._check_collect(bad)
        if self.fork:
            self._check_fork(bad)

    def _check_collect(self, bad: Any) -> None:
        """``collect`` must be a directory the task can write and the runner may empty."""
        path = self.collect
        if not isinstance(path, str) or not path.startswith("/"):
            raise bad(f"collect must be an absolute directory path, got {path!r}")
        clean = posixpath.normpath(path)
        if clean != path.rstrip("/") or "//" in path:
            raise bad(f"collect must be a normalised path (no '..', '.' or '//'), got {path!r}")
        writable = ["/tmp", "/dev/shm"]
        writable += [m.split(":")[1] for m in self.mounts if m.endswith(":rw")]
        inside = [w for w in writable if clean.startswith(w.rstrip("/") + "/")]
        if not inside and not (not self.read_only and clean != "/"):
            raise bad(
                f"collect={path!r} is not inside a writable mount: use a directory under /tmp "
                "(or /dev/shm, or a ':rw' mount); the runner empties it before every call, so "
                "it must not be the mount itself"
            )

    def _check_fork(self, bad: Any) -> None:
        """Fork mode wipes every writable path between calls: refuse what it could not wipe."""
        if not self.read_only:
            raise bad(
                "read_only=False cannot be used with reuse='fork': a call's writes to the root "
                "filesystem could not be wiped before the next call"
            )
        writable = [m for m in self.mounts if m.endswith(":rw")]
        if writable:
            raise bad(
                f"read-write mounts ({', '.join(writable)}) cannot be used with reuse='fork': "
                "they would carry state from one call to the next (fork mode never deletes "
                "your files); write under /tmp instead"
            )
        if self.init:
            raise bad(
                "init=True cannot be used with reuse='fork': the fork-mode runner must be the "
                "container's init (PID 1) to reap and clean up, and so that no task can kill it"
            )

    # -- derived settings --------------------------------------------------------------------

    @property
    def fork(self) -> bool:
        """Fork mode: a fresh process per call in a recycled, wiped container."""
        return self.reuse == "fork"

    @property
    def mode(self) -> str:
        """``fresh``, ``pool``, ``reuse`` or ``fork``."""
        if self.fork:
            return "fork"
        if self.reuse:
            return "reuse"
        return "pool" if self.pool_size else "fresh"

    @property
    def uses_per_container(self) -> int:
        """How many calls one container serves before it is replaced."""
        if self.max_uses is not None and self.reuse:
            return self.max_uses
        return _DEFAULT_MAX_USES["fork" if self.fork else "reuse"] if self.reuse else 1

    @property
    def containers(self) -> int:
        """How many containers the pool keeps (0: a fresh container per call)."""
        if self.fork and not self.pool_size:
            return 1
        return self.pool_size


def _positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _seconds(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and value > 0
        and math.isfinite(value)
    )


def create_body(config: ContainerConfig, image: str, labels: Mapping[str, str]) -> dict[str, Any]:
    """The Engine-API create body for ``config``: built once per engine, reused per call."""
    env = [f"{k}={v}" for k, v in config.env.items()]
    if config.fork:
        env += ["EXECUTOR_SERVE=fork", f"EXECUTOR_FORK_WIPE={FORK_WIPE}"]
    elif config.reuse:
        env.append("EXECUTOR_SERVE=1")
    binds = []
    for mount in config.mounts:
        parts = mount.split(":")
        mode = parts[2] if len(parts) == 3 else "ro"
        binds.append(f"{parts[0]}:{parts[1]}:{mode}")
    host: dict[str, Any] = {
        "NetworkMode": "bridge" if config.network else "none",
        "ReadonlyRootfs": config.read_only,
        "Memory": config.memory_bytes,
        "MemorySwap": config.memory_bytes,  # swap equal to memory: no swap at all
        "NanoCpus": int(config.cpus * 1e9),
        "PidsLimit": config.pids_limit,
        "CapDrop": ["ALL"],
        "SecurityOpt": ["no-new-privileges"],
        # tmpfs_exec: compiled programs run from /tmp (CodeExecutor's compiled languages).
        "Tmpfs": {
            "/tmp": f"rw,nosuid,nodev,{'exec' if config.tmpfs_exec else 'noexec'},"
            f"size={config.tmpfs_bytes},mode=1777"
        },
        "ShmSize": min(config.tmpfs_bytes, 64 * MiB),
        "IpcMode": "private",
        "Ulimits": [{"Name": "core", "Soft": 0, "Hard": 0}],
        "Init": config.init,
        # stdout/stderr reach us through the attach; a log driver would also copy every byte
        # (a 1 GB flood included) to disk inside the daemon.
        "LogConfig": {"Type": "none", "Config": {}},
        "Binds": binds,
    }
    if config.runtime:
        host["Runtime"] = config.runtime
    body: dict[str, Any] = {
        "Image": image,
        "User": config.user,
        "Env": env,
        "Labels": {**config.labels, **labels},
        "OpenStdin": True,
        "StdinOnce": True,
        "AttachStdin": True,
        "AttachStdout": True,
        "AttachStderr": True,
        "Tty": False,
        "NetworkDisabled": not config.network,
        "HostConfig": host,
    }
    if config.command is not None:
        body["Cmd"] = list(config.command)
    if config.entrypoint is not None:
        body["Entrypoint"] = list(config.entrypoint)
    if config.workdir:
        body["WorkingDir"] = config.workdir
    return body
