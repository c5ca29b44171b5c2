"""``ContainerConfig``, secure by default, and the Engine-API create body it stands for.

The config is plain data (strings, numbers, mappings, :class:`EngineEndpoint`): it can be
copied, compared, pickled and sent to another node. Live objects (engine clients) go to the
executor: ``ContainerExecutor(config, engine=...)`` or ``engines=[...]``. Each field carries
its rule (``setting(default, rule)``, :mod:`executor._settings`); rules that relate fields
are the small ``_check_*`` functions in ``_CHECKS``.
"""

from __future__ import annotations

import functools
import json
import posixpath
import reprlib
import ssl
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING, Any, Literal

from .._errors import ConfigError
from .._settings import (
    boolean,
    checked_keywords,
    number,
    one_of,
    optional,
    positive_int,
    ruled,
    seconds,
    setting,
    str_map,
    str_seq,
    text,
    validate,
)
from .requirements import DEFAULT_BUILD_TIMEOUT, check_requirements

if TYPE_CHECKING:
    from collections.abc import Mapping

    from .._schema import SchemaSource
    from ..engine import Engine

__all__ = [
    "DEFAULT_CONTAINERS",
    "FORK_WIPE",
    "MODES",
    "ContainerConfig",
    "EngineEndpoint",
    "MiB",
    "create_body",
]

MiB = 1024 * 1024
#: What a fork-mode runner empties between calls: every writable path of the container.
FORK_WIPE = "/tmp:/dev/shm"
#: The modes, in order of isolation given up for speed.
MODES = ("fresh", "pool", "reuse", "fork")
#: ``containers`` when not given, by mode.
DEFAULT_CONTAINERS = {"fresh": 0, "pool": 4, "reuse": 4, "fork": 4}
#: Calls per container before it is replaced, by mode (see ``max_uses``).
_DEFAULT_MAX_USES = {"reuse": 100, "fork": 1000}


@dataclass(frozen=True, kw_only=True)
class EngineEndpoint:
    """One Docker engine: its URL, a capacity weight and optional TLS material (plain data).

    ``url`` is ``unix:///path/docker.sock``, ``tcp://host:2376`` or ``ssh://...`` as Docker
    understands it. ``capacity`` weighs routing: an engine with capacity 2 gets twice the
    calls in flight of one with capacity 1. ``tls_ca``/``tls_cert``/``tls_key`` are file paths
    for a TLS-protected TCP engine.
    """

    url: str
    capacity: float = 1.0
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        if not self.url or not isinstance(self.url, str):
            raise ConfigError("EngineEndpoint.url must be a Docker host URL")
        if not (isinstance(self.capacity, int | float) and self.capacity > 0):
            raise ConfigError(f"EngineEndpoint.capacity must be positive, got {self.capacity!r}")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError("EngineEndpoint.tls_cert and tls_key go together")

    def ssl_context(self) -> ssl.SSLContext | None:
        """The client TLS context for this endpoint, or ``None`` without TLS material."""
        if not (self.tls_ca or self.tls_cert):
            return None
        try:
            context = ssl.create_default_context(cafile=self.tls_ca)
            if self.tls_cert and self.tls_key:
                context.load_cert_chain(self.tls_cert, self.tls_key)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cannot load TLS material for engine {self.url}: {exc}") from exc
        return context

    def engine(self) -> Engine:
        """A Docker engine client for this endpoint."""
        from ..engine.docker import DockerEngine

        return DockerEngine(
            self.url, ssl_context=self.ssl_context(), name=self.name, capacity=self.capacity
        )


def _endpoints(value: Any) -> str | None:
    ok = (
        isinstance(value, Sequence)
        and not isinstance(value, str | bytes)
        and all(isinstance(v, str | EngineEndpoint) for v in value)
    )
    return (
        None
        if ok
        else "a list of engine URLs or EngineEndpoints (plain data: Engine objects go to the "
        "executor, ContainerExecutor(config, engines=[...]))"
    )


def _old_names(kwargs: dict[str, Any]) -> None:
    """``reuse=``/``pool_size=`` (before 0.3) become ``mode=``/``containers=``, with a warning;
    ``docker=`` (a live client) is refused with what to write instead."""
    if "docker" in kwargs:
        raise ConfigError(
            "ContainerConfig(docker=...) was removed in 0.3: a config is plain data (it is "
            "copied, compared and sent to other nodes). Pass the client to the executor: "
            "ContainerExecutor(config, engine=DockerEngine(docker=client)) with "
            "`from executor.engine import DockerEngine`, or give docker_url='unix:///...'"
        )
    given = {name: kwargs.pop(name) for name in ("reuse", "pool_size") if name in kwargs}
    if not given:
        return
    old = ", ".join(f"{name}={value!r}" for name, value in given.items())
    reuse = given.get("reuse", False)
    pool_size = given.get("pool_size")
    if reuse not in (False, True, "fork"):
        raise ConfigError(f"ContainerConfig.reuse must be False, True or 'fork', got {reuse!r}")
    if pool_size is not None and (
        isinstance(pool_size, bool) or not isinstance(pool_size, int) or pool_size < 0
    ):
        raise ConfigError(
            f"ContainerConfig.pool_size must be a non-negative integer, got {pool_size!r}"
        )
    if "reuse" in given:
        mode = "fork" if reuse == "fork" else "reuse" if reuse else "pool" if pool_size else "fresh"
    else:
        mode = kwargs.get("mode") or ("pool" if pool_size else "fresh")
    # What the old names meant: fork alone kept one container; reuse alone, no cap (0).
    legacy = {"fork": 1, "reuse": 0}.get(mode)
    if pool_size is not None:
        containers = pool_size or legacy if mode in ("fork", "reuse") else pool_size
    else:
        containers = None if kwargs.get("containers") is not None else legacy
    new = f"mode={mode!r}" + (f", containers={containers}" if containers is not None else "")
    if mode == "reuse" and containers == 0:
        new += " (0: no cap, a worker per concurrent call)"
    for name, value in (("mode", mode), ("containers", containers)):
        stated = kwargs.get(name)
        if stated is not None and value is not None and stated != value:
            raise ConfigError(
                f"ContainerConfig({old}, {name}={stated!r}) contradicts itself: {old} means "
                f"{new}. Give mode= and containers= only ({old} is deprecated)"
            )
    warnings.warn(
        f"ContainerConfig({old}) is deprecated since 0.3: use {new}",
        DeprecationWarning,
        stacklevel=3,
    )
    kwargs["mode"] = mode
    if containers is not None:
        kwargs["containers"] = containers


def _image(value: Any) -> str | None:
    return None if isinstance(value, str) and value else "a non-empty image name"


@checked_keywords(_old_names)
@dataclass(frozen=True, kw_only=True)
class ContainerConfig:
    """Settings of a :class:`ContainerExecutor`: secure by default, every relaxation opt-in.

    Plain data: copy it, compare it, pickle it, send it to a Ray node. Engine clients go to
    the executor (``ContainerExecutor(config, engine=...)`` or ``engines=[...]``).
    A misspelled or unknown keyword raises :class:`ConfigError` ("did you mean"), and so does
    a value of the wrong type or range, naming the field.

    Sizes are bytes, times seconds. ``files`` maps absolute container paths to contents placed
    in the image before any call (a derived image is built once and cached by content hash;
    the root filesystem stays read-only). ``mounts`` are bind mounts ``"host:container"``
    (read-only unless ``":rw"`` is appended).

    Modes (``mode``), and ``containers``, how many containers the mode keeps per engine:

    * ``"fresh"`` (default): a new container per call, removed after it. It keeps none
      (``containers`` is 0; a positive value is a ``ConfigError``: that is ``"pool"``).
    * ``"pool"``: ``containers`` (default 4) are kept created, started and waiting; each
      still serves **one** call and a replacement starts after it. Not a cap: a call finding
      none idle starts one (``on_empty="start"``) or waits (``"wait"``).
    * ``"fork"``: ``containers`` (default 4) workers; each call runs in a brand-new process
      of one of them, forked (Python) or pre-started (Node, Go) with the module loaded; the
      container is wiped between calls (processes, ``/tmp``, ``/dev/shm``, IPC). The workers
      are a cap: calls beyond them wait for one.
    * ``"reuse"``: ``containers`` (default 4) workers running every call in the same
      long-lived process (state leaks between calls: trusted code only); a cap like fork's,
      except ``containers=0``: no cap, a worker per concurrent call, kept for the next.

    Reused and fork containers serve up to ``max_uses`` calls each (default 100 for reuse,
    1000 for fork) before they are replaced. ``prewarm=True`` starts the kept containers on
    ``async with``; ``max_idle`` retires one idle that long.
    Before 0.3 the mode was ``reuse=True | "fork"`` and ``pool_size=N``: both still work in
    0.3 with a ``DeprecationWarning`` (``reuse="fork"`` alone meant one container).

    Time: ``timeout`` bounds the task itself, from the moment its request reaches a container
    to its answer (``ExecutionTimeout``); ``start_timeout`` bounds getting a container for it
    (admission, create, attach, start, or waiting for a pooled one; ``StartTimeout``).
    ``max_starting`` caps container starts in flight per engine (default: the engine's CPU
    count); calls beyond it queue in order. ``reap_on_start=True`` makes ``async with``
    first remove the containers of dead processes that carry ``labels`` (see
    :func:`executor.reap`).

    Engines: ``docker_url`` (one engine) or ``engines`` (URLs or :class:`EngineEndpoint`,
    calls spread over them); neither: ``DOCKER_HOST``, the Docker context, the usual sockets.

    Files back: with ``collect="/tmp/out"`` (a directory inside a writable mount: ``/tmp``,
    ``/dev/shm``, a ``":rw"`` mount, or anywhere with ``read_only=False``) the runner empties
    that directory before each call and returns the regular files the task left there as
    ``Execution.files`` (relative path to bytes). More than ``max_collect_files`` files or
    ``max_collect_bytes`` bytes (sizes plus relative path lengths) fails the call with
    ``CollectTooLarge``.

    ``init=True`` runs the engine's init (tini, catatonit on Podman) as PID 1; not with
    ``mode="fork"``. Podman never flags an OOM kill and under an init a task's own SIGKILL
    also ends the container with 137, so there an OOM kill is ``EXIT_NONZERO`` (exit 137),
    not ``OOM_KILLED`` as on Docker.

    System calls: ``seccomp="default"`` applies the library's own profile on every engine (moby's
    default less io_uring, namespaces, ptrace, bpf, keyrings and the rest: docs/SECURITY.md);
    ``"engine"`` leaves the engine's default; a path loads that JSON profile now and checks what
    the engine would refuse at create (unreadable, not JSON, an action runc does not take, rules
    that are not objects with a ``names`` list of strings: ``ConfigError``).

    Dependencies: ``requirements`` are pip requirement strings for a Python image
    (``"numpy==2.1.*"``) or npm package specs for a Node one (``"lodash@4"``);
    ``requirements_file`` is a ``requirements.txt`` or a ``package.json`` (with its
    ``package-lock.json``) instead. They are fetched on the host with its own installer settings,
    installed there for the image's platform and placed in a derived image
    ``executor-deps/<runner>-<hash>:latest``, made once per engine (within ``build_timeout``
    seconds, before a call's ``start_timeout`` starts counting) and reused by every executor
    and process; the task's container never has the network. npm install scripts run (on the
    host) only with ``allow_install_scripts=True``.
    A malformed requirement is a ``ConfigError`` here; a Go image refuses requirements.
    """

    image: str = field(kw_only=False, metadata=ruled(_image))
    command: Sequence[str] | None = setting(None, optional(str_seq))
    entrypoint: Sequence[str] | None = setting(None, optional(str_seq))
    env: Mapping[str, str] = setting(rule=str_map(), default_factory=dict)
    workdir: str | None = setting(None, optional(text))
    files: Mapping[str, str | bytes] = setting(
        rule=str_map((str, bytes), "str or bytes"), default_factory=dict
    )
    mounts: Sequence[str] = setting((), str_seq)
    # -- mode --------------------------------------------------------------------------------
    mode: Literal["fresh", "pool", "reuse", "fork"] = setting("fresh", one_of(*MODES))
    containers: int | None = setting(None, optional(positive_int(0, "a non-negative integer")))
    prewarm: bool = setting(False, boolean)
    max_idle: float | None = setting(300.0, optional(seconds))
    on_empty: Literal["start", "wait"] = setting("start", one_of("start", "wait"))
    max_uses: int | None = setting(None, optional(positive_int()))
    # -- isolation --------------------------------------------------------------------------
    network: bool = setting(False, boolean)
    read_only: bool = setting(True, boolean)
    tmpfs_bytes: int = setting(64 * MiB, positive_int())
    tmpfs_exec: bool = setting(False, boolean)
    user: str = setting("1000:1000", text)
    memory_bytes: int = setting(256 * MiB, positive_int(6 * MiB, "an integer of at least 6 MiB"))
    cpus: float = setting(1.0, number(0, 1024))
    pids_limit: int = setting(128, positive_int())
    runtime: str | None = setting(None, optional(text))
    init: bool = setting(False, boolean)
    # -- seccomp (the profile is read once, in __post_init__: see _seccomp_json) -------------
    seccomp: str = setting("default", text)
    # -- limits ------------------------------------------------------------------------------
    timeout: float | None = setting(30.0, optional(seconds))
    start_timeout: float = setting(60.0, seconds)
    max_output_bytes: int = setting(16 * MiB, positive_int())
    max_log_bytes: int = setting(1 * MiB, positive_int())
    # -- files back --------------------------------------------------------------------------
    collect: str | None = setting(None, optional(text))
    max_collect_bytes: int = setting(16 * MiB, positive_int())
    max_collect_files: int = setting(1000, positive_int())
    # -- schemas -----------------------------------------------------------------------------
    schema_in: SchemaSource = None
    schema_out: SchemaSource = None
    validate: bool = setting(True, boolean)
    # -- engine ------------------------------------------------------------------------------
    docker_url: str | None = setting(None, optional(text))
    engines: Sequence[str | EngineEndpoint] = setting((), _endpoints)
    missing_image: Literal["error", "copy", "build"] = setting(
        "error", one_of("error", "copy", "build")
    )
    health_interval: float = setting(2.0, seconds)
    max_starting: int | None = setting(None, optional(positive_int()))
    labels: Mapping[str, str] = setting(rule=str_map(), default_factory=dict)
    reap_on_start: bool = setting(False, boolean)
    # -- dependencies (executor.container.requirements) -------------------------------------
    requirements: Sequence[str] = setting((), str_seq)
    requirements_file: str | None = setting(None, optional(text))
    allow_install_scripts: bool = setting(False, boolean)
    build_timeout: float = setting(DEFAULT_BUILD_TIMEOUT, seconds)

    def __post_init__(self) -> None:
        validate(self, _CHECKS)
        check_requirements(self)
        if self.containers is None:
            object.__setattr__(self, "containers", DEFAULT_CONTAINERS[self.mode])
        object.__setattr__(self, "_seccomp", _seccomp_json(self.seccomp, self.runtime))

    # -- derived settings --------------------------------------------------------------------

    @property
    def seccomp_json(self) -> str | None:
        """The seccomp profile passed to the engine (compact JSON), or None for the engine's own."""
        profile: str | None = self.__dict__["_seccomp"]
        return profile

    @property
    def fork(self) -> bool:
        """Fork mode: a fresh process per call in a recycled, wiped container."""
        return self.mode == "fork"

    @property
    def workers(self) -> bool:
        """Reuse or fork mode: containers serve many calls each and come back."""
        return self.mode in ("reuse", "fork")

    @property
    def uses_per_container(self) -> int:
        """How many calls one container serves before it is replaced."""
        if not self.workers:
            return 1
        return self.max_uses if self.max_uses is not None else _DEFAULT_MAX_USES[self.mode]

    @property
    def reuse(self) -> bool | str:
        """Deprecated (0.3): ``mode``. ``True`` in reuse mode, ``"fork"`` in fork mode."""
        warnings.warn(
            "ContainerConfig.reuse is deprecated since 0.3: read config.mode",
            DeprecationWarning,
            stacklevel=2,
        )
        return "fork" if self.fork else self.mode == "reuse"

    @property
    def pool_size(self) -> int:
        """Deprecated (0.3): ``containers``."""
        warnings.warn(
            "ContainerConfig.pool_size is deprecated since 0.3: read config.containers",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.containers or 0


# -- cross-field checks: each returns None or the message after "ContainerConfig." -------------


def _check_containers(c: ContainerConfig) -> str | None:
    """``containers`` must make sense for the mode."""
    n = c.containers
    if n is None:
        return None
    if c.mode == "fresh" and n:
        return (
            f"containers={n} does not apply to mode='fresh' (a new container per call, none "
            f"kept): use mode='pool', containers={n} to keep {n} started ahead of calls"
        )
    if c.mode in ("pool", "fork") and n == 0:
        return (
            f"containers must be at least 1 in mode={c.mode!r}, got 0 (mode='fresh' keeps "
            "no containers)"
        )
    return None


def _check_files(c: ContainerConfig) -> str | None:
    for path in c.files:
        if not path.startswith("/") or path.endswith("/"):
            return f"files keys must be absolute file paths, got {path!r}"
    return None


def _check_mounts(c: ContainerConfig) -> str | None:
    for mount in c.mounts:
        parts = mount.split(":")
        if len(parts) not in (2, 3) or not parts[0] or not parts[1].startswith("/"):
            return f"mounts entries must be 'host:/container[:ro|rw]', got {mount!r}"
        if len(parts) == 3 and parts[2] not in ("ro", "rw"):
            return f"mount mode must be 'ro' or 'rw', got {mount!r}"
    return None


def _check_engines(c: ContainerConfig) -> str | None:
    if c.engines and c.docker_url is not None:
        return "engines and docker_url: give one (docker_url is engines=[docker_url])"
    return None


def _check_collect(c: ContainerConfig) -> str | None:
    """``collect`` must be a directory the task can write and the runner may empty."""
    path = c.collect
    if path is None:
        return None
    if not path.startswith("/"):
        return f"collect must be an absolute directory path, got {path!r}"
    clean = posixpath.normpath(path)
    if clean != path.rstrip("/") or "//" in path:
        return f"collect must be a normalised path (no '..', '.' or '//'), got {path!r}"
    writable = ["/tmp", "/dev/shm"]
    writable += [m.split(":")[1] for m in c.mounts if m.endswith(":rw")]
    inside = [w for w in writable if clean.startswith(w.rstrip("/") + "/")]
    if not inside and not (not c.read_only and clean != "/"):
        return (
            f"collect={path!r} is not inside a writable mount: use a directory under /tmp "
            "(or /dev/shm, or a ':rw' mount); the runner empties it before every call, so "
            "it must not be the mount itself"
        )
    return None


def _check_fork(c: ContainerConfig) -> str | None:
    """Fork mode wipes every writable path between calls: refuse what it could not wipe."""
    if not c.fork:
        return None
    if not c.read_only:
        return (
            "read_only=False cannot be used with mode='fork': a call's writes to the root "
            "filesystem could not be wiped before the next call"
        )
    writable = [m for m in c.mounts if m.endswith(":rw")]
    if writable:
        return (
            f"read-write mounts ({', '.join(writable)}) cannot be used with mode='fork': "
            "they would carry state from one call to the next (fork mode never deletes "
            "your files); write under /tmp instead"
        )
    if c.init:
        return (
            "init=True cannot be used with mode='fork': the fork-mode runner must be the "
            "container's init (PID 1) to reap and clean up, and so that no task can kill it"
        )
    return None


_CHECKS = (
    _check_containers,
    _check_files,
    _check_mounts,
    _check_engines,
    _check_collect,
    _check_fork,
)


#: The library's profile: moby's default less what a locked-down task never needs (SECURITY.md).
_DEFAULT_PROFILE = "seccomp.json"


@functools.cache
def _default_profile() -> str:
    text = resources.files(__package__).joinpath(_DEFAULT_PROFILE).read_text(encoding="utf-8")
    return json.dumps(json.loads(text), separators=(",", ":"))


def _gvisor(runtime: str | None) -> bool:
    """Whether ``runtime`` names gVisor (``runsc``, or a runtime registered under such a name)."""
    return runtime is not None and ("runsc" in runtime or "gvisor" in runtime.lower())


@functools.cache
def _gvisor_profile() -> str:
    """The library's profile for gVisor: the same, but ``clone3`` left to gVisor's kernel.

    runsc applies an OCI profile's ``SCMP_ACT_ERRNO`` rule as EPERM whatever its ``errnoRet``
    (measured: runsc 20221219 with ``--oci-seccomp``), and glibc falls back from ``clone3`` to
    ``clone`` only on ENOSYS, so with the rule no thread could start. gVisor's own kernel
    answers ``clone3`` with ENOSYS, which is what the rule is for; and a ``clone3`` that
    reached it would meet gVisor's kernel, never the host's.
    """
    profile = json.loads(_default_profile())
    rules = [rule for rule in profile["syscalls"] if rule.get("names") != ["clone3"]]
    profile["syscalls"] = [*rules, {"names": ["clone3"], "action": "SCMP_ACT_ALLOW"}]
    return json.dumps(profile, separators=(",", ":"))


def _seccomp_json(seccomp: object, runtime: str | None = None) -> str | None:
    """``ContainerConfig.seccomp`` read into the profile it stands for: loaded and checked now.

    ``"default"``: the library's profile (under gVisor, :func:`_gvisor_profile`); ``"engine"``:
    None (the engine's own default); any other string: the path of a JSON profile in the
    Docker/OCI format, sent as it is. Anything unreadable or not a profile is a
    :class:`ConfigError` before a container exists.
    """
    if seccomp == "default":
        return _gvisor_profile() if _gvisor(runtime) else _default_profile()
    if seccomp == "engine":
        return None
    if not isinstance(seccomp, str) or not seccomp:
        raise ConfigError(
            f"ContainerConfig.seccomp must be 'default', 'engine' or the path of a JSON seccomp "
            f"profile, got {seccomp!r}"
        )
    try:
        with open(seccomp, encoding="utf-8") as fh:
            profile = json.load(fh)
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"ContainerConfig.seccomp: cannot read the seccomp profile {seccomp!r}: {exc}; "
            "give the path of a JSON profile (Docker's format), or 'default' or 'engine'"
        ) from exc
    if not isinstance(profile, dict) or "defaultAction" not in profile:
        raise ConfigError(
            f"ContainerConfig.seccomp: {seccomp!r} is not a seccomp profile (a JSON object with "
            "a 'defaultAction', as in Docker's default profile)"
        )
    problem = _profile_problem(profile)
    if problem is not None:
        raise ConfigError(f"ContainerConfig.seccomp: in {seccomp!r}, {problem}")
    return json.dumps(profile, separators=(",", ":"))


#: The actions runc (libseccomp) takes, less ``SCMP_ACT_NOTIFY``: that one needs a listener
#: socket the Engine API cannot name, so runc refuses the container ("listenerPath is not
#: set"; measured: Docker 20.10, runc 1.1.5).
_SECCOMP_ACTIONS = (
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_TRAP",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_LOG",
)


def _profile_problem(profile: Mapping[str, Any]) -> str | None:
    """What in a parsed profile the engine would refuse at create, naming the field; or None.

    Checked: ``defaultAction`` and each rule's ``action`` (one of :data:`_SECCOMP_ACTIONS`),
    ``syscalls`` (a list of objects), each rule's ``names`` (a list of strings, or moby's older
    single ``name``). Not checked: syscall names (runc skips the ones it does not know),
    ``args``, ``errnoRet``, ``architectures``.
    """
    accepted = ", ".join(_SECCOMP_ACTIONS)
    rule_shape = "an object with 'names' (a list of system call names) and 'action'"

    def bad_action(where: str, action: object) -> str | None:
        if action in _SECCOMP_ACTIONS:
            return None
        if action == "SCMP_ACT_NOTIFY":
            return (
                f"{where} is SCMP_ACT_NOTIFY, which needs a listener the engine cannot be "
                f"given (runc refuses the container); use one of {accepted}"
            )
        return f"{where} must be one of {accepted}, got {reprlib.repr(action)}"

    problem = bad_action("defaultAction", profile["defaultAction"])
    rules = profile.get("syscalls")
    if problem is not None or rules is None:
        return problem
    if not isinstance(rules, list):
        return f"syscalls must be a list of rules, each {rule_shape}, got {reprlib.repr(rules)}"
    for i, rule in enumerate(rules):
        where = f"syscalls[{i}]"
        if not isinstance(rule, dict):
            return f"{where} must be {rule_shape}, got {reprlib.repr(rule)}"
        names: object = rule.get("names")
        if "name" in rule:  # moby's older form: one name
            if "names" in rule or not isinstance(rule["name"], str):
                return f"{where}.name must be one system call name (a string), without 'names'"
            names = [rule["name"]]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            return (
                f"{where}.names must be a list of system call names (strings), "
                f"got {reprlib.repr(names)}"
            )
        problem = bad_action(f"{where}.action", rule.get("action"))
        if problem is not None:
            return problem
    return None


def create_body(config: ContainerConfig, image: str, labels: Mapping[str, str]) -> dict[str, Any]:
    """The Engine-API create body for ``config``: built once per engine, reused per call."""
    env = [f"{k}={v}" for k, v in config.env.items()]
    if config.fork:
        env += ["EXECUTOR_SERVE=fork", f"EXECUTOR_FORK_WIPE={FORK_WIPE}"]
    elif config.mode == "reuse":
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
        "SecurityOpt": ["no-new-privileges", *_seccomp_option(config)],
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


def _seccomp_option(config: ContainerConfig) -> list[str]:
    profile = config.seccomp_json
    return [] if profile is None else [f"seccomp={profile}"]
