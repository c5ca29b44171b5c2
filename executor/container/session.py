"""Sessions: a stateful interpreter (Python or bash) per agent, each in its own container.

A :class:`Session` holds one container running the image's session server
(``/opt/executor/session.py``, see ``runners/python/session.py``): a supervisor (PID 1) and
the interpreter it keeps in a process group of its own. Cells go over the container's stdin
as JSON lines and come back as one line each; the supervisor enforces a cell's timeout with
SIGINT (the state survives) and replaces an interpreter that ignores it or dies
(:class:`SessionLost`, the session usable again). A :class:`SessionPool` keeps session
containers started ahead, their interpreters ready, so that a session enters in milliseconds;
a session made without one takes its container from an implicit pool of one (per language,
config, engine and event loop) that ends with its loop. Each session still gets a container of
its own, removed when it ends.

The parts are those of :class:`ContainerExecutor`: the create body from
:class:`~executor.container.images.Readiness` (with the session server as the program), a
single-use :class:`~executor.container.sources.Pool` under :class:`Admission`, a
:class:`Background` for the refill and each session's idle/lifetime watch, and the managed
labels (``executor.session=<language>`` added) so that ``reap()`` finds what a dead process
left.
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import binascii
import contextlib
import json
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any

import anyio

from .._code import check_language_argument, default_image
from .._errors import (
    ConfigError,
    EngineError,
    ExecutorClosed,
    ExecutorError,
    ProtocolError,
    SessionFileError,
    SessionLost,
    StartTimeout,
)
from .._session import LANGUAGES, CellError, CellResult, Display
from ..engine import INSTANCE_LABEL, MANAGED_LABEL, OWNER_LABEL, owner_id, shielded
from .config import ContainerConfig, MiB
from .exchange import ended_state
from .images import Readiness
from .lifecycle import Admission, Background, Container, kill
from .routing import make_engines
from .sources import Pool
from .sweeper import hand_over, mark_closed, remove_instance, wait_idle

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine, Iterator
    from types import TracebackType

    from ..engine import Engine

__all__ = ["SESSION_LABEL", "SESSION_SERVER", "Session", "SessionPool"]

#: The label every session container carries (its language), besides the managed labels.
SESSION_LABEL = "executor.session"
#: The session server inside the runner image.
SESSION_SERVER = "/opt/executor/session.py"
#: Beyond a cell's timeout and grace, how long the host waits for the supervisor's answer
#: before it calls the container broken.
_ANSWER_SLACK = 10.0
#: Bound on the answer a cancelled cell still owes, read before the next request.
_OWED_SLACK = 5.0
_STDERR_TAIL = 4096
#: How the session server's first line starts, and the most stdout read looking for it.
_READY = b'{"ready":true'
_READY_MAX = 65536
#: Bound on asking the engine why a session container's output ended (its exit, a late OOM
#: flag): the answer only words an error.
_END_BOUND = 10.0
#: How long the implicit pool of bare sessions keeps its idle container without a new session,
#: when the config has no ``max_idle``.
_IMPLICIT_IDLE = 60.0
#: At interpreter exit, how long to wait for the sweeper to remove what implicit pools kept.
_EXIT_WAIT = 10.0
#: Bound on the implicit pool's last look for its containers when its loop ends.
_SWEEP_TIMEOUT = 10.0


def _config_of(language: str, config: ContainerConfig | None) -> ContainerConfig:
    if language not in LANGUAGES:
        raise ConfigError(
            f"a session's language must be one of {', '.join(LANGUAGES)}, got {language!r}"
        )
    if config is None:
        return ContainerConfig(default_image("python"))
    if not isinstance(config, ContainerConfig):
        raise ConfigError(f"config must be a ContainerConfig, got {type(config).__name__}")
    return config


class _ReadySessions(Pool):
    """A single-use :class:`Pool` whose containers count as started only once their session
    server has written its ready line (kept in ``Container.rest`` for the session to read):
    a leased container takes a cell at once."""

    def __init__(self, *args: Any, config: ContainerConfig, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._config = config

    async def _start(self, body: dict[str, Any]) -> Container:
        try:
            container = await super()._start(body)
        except EngineError as exc:
            # Docker: 'exec: "python3": executable file not found in $PATH'; Podman:
            # 'executable file `python3` not found in $PATH'.
            if "executable file" not in exc.message or "not found" not in exc.message:
                raise
            raise ProtocolError(
                f"the image {self._config.image} cannot start the session server: it has no "
                f"python3 ({exc.message}). Sessions need python3 and {SESSION_SERVER}: use "
                "executor/runner-python (or the judge image), or an image built FROM it"
            ) from exc
        try:
            with anyio.fail_after(self._config.start_timeout):
                await _await_ready(container, self._config)
        except TimeoutError:
            await kill(container)
            timeout = self._config.start_timeout
            raise StartTimeout(timeout, phase="the session server's ready line") from None
        except BaseException:
            await kill(container)
            raise
        return container


async def _await_ready(container: Container, config: ContainerConfig) -> None:
    """Read a new session container's stdout up to its ready line, left in ``rest``.

    Raises :class:`ProtocolError` when the container ends first (an image without the session
    server) or writes something else; the caller bounds the wait.
    """
    stderr = bytearray()
    while container.rest.find(b"\n") < 0 and len(container.rest) <= _READY_MAX:
        frame = await container.attachment.read()
        if frame is None:
            reason = await _end_reason(container, config)
            raise ProtocolError(
                f"the session container ended before its interpreter started ({reason}): "
                f"the image {config.image} needs the session server at {SESSION_SERVER} "
                "(runner images built from this version have it)",
                logs=stderr[-_STDERR_TAIL:].decode("utf-8", "replace"),
            )
        stream, data = frame
        if stream == 1:
            container.rest += data
        else:
            stderr += data
            del stderr[:-_STDERR_TAIL]
    line, newline, _ = container.rest.partition(b"\n")
    if not newline or not line.startswith(_READY):
        raise ProtocolError(
            f"the session container said {line[:200]!r} instead of its ready line",
            received=line[:_READY_MAX],
        )


async def _end_reason(container: Container, config: ContainerConfig) -> str:
    """Why a session container's output ended, as the engine tells it (bounded)."""
    try:
        with anyio.fail_after(_END_BOUND):
            state = await ended_state(container.engine, container.id)
    except (ExecutorError, TimeoutError):
        return "the container ended"
    if state.removed:
        return "the container was removed from outside"
    if state.oom_killed:
        return (
            f"the container ran out of memory (memory_bytes={config.memory_bytes}) and was killed"
        )
    if state.exit_code is not None:
        return f"the container exited with status {state.exit_code}"
    return "the container's output ended"


class SessionPool:
    """Session containers of one language and config, started ahead so sessions enter fast.

    ``size`` containers are kept started (``async with`` starts them and waits: the prewarm);
    :meth:`session` hands one to a new :class:`Session`, and a replacement starts at once.
    When none is idle a session starts its own. Closing the pool closes its live sessions and
    removes the idle containers. ``engine`` (an :class:`~executor.engine.Engine`) replaces the
    config's engine (``docker_url``, or the one entry of ``engines``).
    """

    def __init__(
        self,
        language: str = "python",
        config: ContainerConfig | None = None,
        *,
        size: int = 2,
        engine: Engine | None = None,
    ) -> None:
        check_language_argument(language, "SessionPool")
        self.language = language
        self.config = config = _config_of(language, config)
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ConfigError(f"size must be a non-negative integer, got {size!r}")
        self.size = size
        if len(config.engines) > 1:
            raise ConfigError(
                f"a session runs on one engine, and the config names {len(config.engines)}: "
                "give one pool per engine (engines=[url])"
            )
        ((engine, self._owns_engine),) = make_engines(
            config.engines, docker_url=config.docker_url, engine=engine
        )
        self.engine = engine
        self.instance = uuid.uuid4().hex
        labels = {
            MANAGED_LABEL: "true",
            OWNER_LABEL: owner_id(),
            INSTANCE_LABEL: self.instance,
            SESSION_LABEL: language,
        }
        files = {
            path: content.encode() if isinstance(content, str) else bytes(content)
            for path, content in config.files.items()
        }
        self._readiness = Readiness(engine, config, labels, files, lambda: (engine,))
        self._base: dict[str, Any] | None = None
        self._body: dict[str, Any] | None = None
        self._background = Background()
        self._pool = _ReadySessions(
            Admission(engine, config.max_starting),
            self._background,
            size=size,
            max_idle=config.max_idle,
            on_empty="start",
            body=self._create_body,
            config=config,
        )
        self._sessions: set[Session] = set()
        self._entered = False
        self.closed = False

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"idle={self._pool.idle}"
        return f"<SessionPool {self.language} {self.config.image} size={self.size} {state}>"

    @property
    def idle(self) -> int:
        """Session containers started and waiting."""
        return self._pool.idle

    async def _create_body(self) -> dict[str, Any]:
        """The config's create body with the session server as the container's program."""
        base = await self._readiness.get()
        if base is not self._base or self._body is None:
            env = list(base.get("Env", []))
            names = {item.split("=", 1)[0] for item in env}
            if "MPLBACKEND" not in names:
                env.append("MPLBACKEND=Agg")  # figures render off-screen, gathered per cell
            env.append(f"EXECUTOR_SESSION_MEMORY={self.config.memory_bytes // MiB} MiB")
            body = {**base, "Env": env, "Entrypoint": ["python3", SESSION_SERVER]}
            body["Cmd"] = [self.language]
            self._base, self._body = base, body
        return self._body

    async def __aenter__(self) -> SessionPool:
        try:
            await self.start()
        except BaseException:
            await self.aclose()  # no __aexit__ follows: the engine and what started go now
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def start(self) -> None:
        """Start the refill task and the ``size`` containers, and wait for them."""
        if self.closed:
            raise ExecutorClosed("the session pool is closed; create a new one")
        if self._entered:
            return
        self._entered = True
        await self._background.start(*self._keepers())
        with anyio.fail_after(self.config.start_timeout):
            await self._pool.fill(await self._create_body())

    def _keepers(self) -> tuple[Callable[[], Coroutine[Any, Any, None]], ...]:
        """Long-running tasks of the pool's background besides the refill (none here)."""
        return ()

    async def _swept(self) -> None:
        """At close, once the pool's own removals are done: nothing more here."""

    def session(
        self,
        *,
        idle_timeout: float | None = 600.0,
        max_lifetime: float | None = None,
        grace: float = 2.0,
    ) -> Session:
        """A new :class:`Session` that takes its container from this pool."""
        return Session(
            self.language,
            self.config,
            pool=self,
            idle_timeout=idle_timeout,
            max_lifetime=max_lifetime,
            grace=grace,
        )

    async def _lease(self, session: Session) -> Container:
        if self.closed:
            raise ExecutorClosed("the session pool is closed; create a new one")
        if not self._entered:
            await self.start()
        try:
            with anyio.fail_after(self.config.start_timeout):
                container = await self._pool.lease(await self._create_body())
        except TimeoutError:
            raise StartTimeout(self.config.start_timeout) from None
        self._pool.detach(container)
        self._sessions.add(session)
        return container

    def _forget(self, session: Session) -> None:
        self._sessions.discard(session)

    async def aclose(self) -> None:
        """Close the live sessions, remove the idle containers, stop (idempotent)."""
        if self.closed:
            return
        self.closed = True
        try:
            for session in list(self._sessions):
                await session.aclose()
            await self._pool.aclose()
            await self._background.aclose()
            await self._swept()
            mark_closed(self.instance)
        finally:
            self._readiness.close()
            if self._owns_engine:
                with shielded():
                    await self.engine.aclose()


class _ImplicitPool(SessionPool):
    """The warm pool behind sessions made without ``pool=``: one per language, config, engine
    and running event loop, keeping one container started (see :func:`_implicit_pool`).

    It never outlives what owns it: when its event loop ends with its tasks cancelled (as
    ``asyncio.run`` and ``anyio.run`` end), its keeper closes it there; at interpreter exit,
    or when a lookup finds its loop closed, it is handed to the sweeper (:func:`_abandon`), and
    ``reap()`` then counts its containers as a closed pool's. Without a new session for
    ``config.max_idle`` seconds (else :data:`_IMPLICIT_IDLE`) it goes dormant: its idle
    container is removed and none is started until the next session comes.
    """

    def __init__(self, language: str, config: ContainerConfig, engine: Engine | None) -> None:
        super().__init__(language, config, size=1, engine=engine)
        self.given_engine = engine
        self.loop = asyncio.get_running_loop()
        self.expire_after = config.max_idle or _IMPLICIT_IDLE
        self._last_lease = time.monotonic()
        self._guard: asyncio.Task[None] | None = None

    def _keepers(self) -> tuple[Callable[[], Coroutine[Any, Any, None]], ...]:
        return (self._keep,)

    async def start(self) -> None:
        if not self._entered and not self.closed:
            self._guard = asyncio.get_running_loop().create_task(self._close_at_loop_end())
        await super().start()

    async def _close_at_loop_end(self) -> None:
        """Close the pool when its event loop cancels this task (the loop ends); a task of its
        own, outside the background, so that it can wait for the background's cleanups."""
        try:
            await self._background.closing.wait()
        except asyncio.CancelledError:
            with anyio.CancelScope(shield=True):
                await self.aclose()
            raise

    async def _swept(self) -> None:
        """The loop's end cancels every task at once, so an engine request in flight (the
        spare's create) may be cut off after the engine acted: remove what carries the pool's
        instance label; what the engine does not remove now goes to the sweeper."""
        engine = self.engine
        done = False
        with anyio.move_on_after(_SWEEP_TIMEOUT), contextlib.suppress(ExecutorError):
            done = all(await remove_instance(engine, self.instance))
        if not done and engine.reconnect() is not None:
            hand_over(engine.name, self.instance, lambda: engine.reconnect() or engine)

    async def _keep(self) -> None:
        """Go dormant after ``expire_after`` seconds without a session."""
        closing = self._background.closing
        while not closing.is_set():
            with anyio.move_on_after(min(self.expire_after / 2, 5.0)):
                await closing.wait()
            idle_for = time.monotonic() - self._last_lease
            if self._pool.size and idle_for > self.expire_after:
                self._pool.resize(0)

    async def _lease(self, session: Session) -> Container:
        self._last_lease = time.monotonic()
        if self._pool.size == 0:
            self._pool.resize(1)  # awake: a spare starts for the next session
        return await super()._lease(session)

    async def aclose(self) -> None:
        with _implicit_lock:
            pools = _implicit.get(self.loop, [])
            if self in pools:
                pools.remove(self)
            if not pools:
                _implicit.pop(self.loop, None)
        await super().aclose()

    def _abandon(self) -> bool:
        """Hand the pool's containers to the sweeper (its loop is gone); True if handed."""
        if self.closed:
            return False
        self.closed = True
        engine = self.engine
        if engine.reconnect() is None:
            mark_closed(self.instance)  # reap() knows them; nothing here can reach the engine
            return False
        hand_over(engine.name, self.instance, lambda: engine.reconnect() or engine)
        return True


#: The implicit pools by event loop (configs compare, they do not hash: a short list each).
_implicit: dict[asyncio.AbstractEventLoop, list[_ImplicitPool]] = {}
_implicit_lock = threading.Lock()
_exit_hook = False


def _implicit_pool(language: str, config: ContainerConfig, engine: Engine | None) -> SessionPool:
    """The running loop's implicit pool for sessions of ``language``, ``config`` and
    ``engine`` (the same object), made on first use."""
    global _exit_hook
    loop = asyncio.get_running_loop()
    with _implicit_lock:
        for other in [other for other in _implicit if other.is_closed()]:
            for pool in _implicit.pop(other):  # ended without cancelling its tasks
                pool._abandon()
        pools = _implicit.setdefault(loop, [])
        for pool in pools:
            if pool.language == language and pool.given_engine is engine and pool.config == config:
                return pool
        made = _ImplicitPool(language, config, engine)
        pools.append(made)
        if not _exit_hook:
            atexit.register(_at_exit)
            _exit_hook = True
        return made


def _at_exit() -> None:
    """At interpreter exit: the implicit pools still open go to the sweeper, awaited a while."""
    with _implicit_lock:
        pools = [pool for pools in _implicit.values() for pool in pools]
        _implicit.clear()
    handed = [pool._abandon() for pool in pools]
    if any(handed):
        wait_idle(_EXIT_WAIT)


class _Lost(Exception):
    """The container stopped answering (ended, or broke the protocol): ``reason`` says how."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Session:
    """A stateful Python or bash interpreter in a locked-down container of its own.

    ``async with Session("python", config) as s: r = await s.run("x = 1")``. Variables,
    imports, the working directory and files stay from one cell to the next; nothing of one
    session is visible to another (each is its own container with ``config``'s limits: no
    network, read-only root, user 1000, memory, CPU and pids caps, ``runtime``). ``pool``
    (a :class:`SessionPool`) gives a container started ahead; without it the container comes
    from the implicit pool of this language, config, ``engine`` and event loop, which keeps
    one started for the next such session (the first one waits for a container start; see
    :class:`_ImplicitPool` for when that spare goes).

    Cells: :meth:`run` returns a :class:`CellResult`; a cell's exception is a result. At the
    cell's ``timeout`` (default ``config.timeout``) the interpreter gets SIGINT and the state
    is kept; one that does not stop within ``grace`` seconds, or dies (out of memory,
    ``exit()``, ``os._exit``), raises :class:`SessionLost` and is replaced by a fresh one in
    the same container (files kept); if the container itself ends, the next cell gets a new
    container. ``idle_timeout`` (no cell for that long) and ``max_lifetime`` (seconds from
    entering) end the session and remove its container (:class:`SessionLost`, code
    ``SESSION_EXPIRED``); leaving ``async with`` always removes it.
    """

    def __init__(
        self,
        language: str = "python",
        config: ContainerConfig | None = None,
        *,
        pool: SessionPool | None = None,
        idle_timeout: float | None = 600.0,
        max_lifetime: float | None = None,
        grace: float = 2.0,
        engine: Engine | None = None,
    ) -> None:
        check_language_argument(language, "Session")
        if pool is not None:
            if (config is not None and config is not pool.config) or engine is not None:
                raise ConfigError(
                    "a session from a pool takes the pool's config and engine: give either "
                    "pool= or config/engine, not both"
                )
            if language != pool.language:
                raise ConfigError(f"the pool runs {pool.language} sessions, not {language}")
            config = pool.config
        self.language = language
        self.config = _config_of(language, config)
        for name, value in (("idle_timeout", idle_timeout), ("max_lifetime", max_lifetime)):
            if value is not None and not _seconds(value):
                raise ConfigError(f"{name} must be positive seconds or None, got {value!r}")
        if not _seconds(grace):
            raise ConfigError(f"grace must be positive seconds, got {grace!r}")
        self.idle_timeout = idle_timeout
        self.max_lifetime = max_lifetime
        self.grace = float(grace)
        self._pool = pool
        self._engine = engine
        self._own_pool: SessionPool | None = None
        self._container: Container | None = None
        self._buffer = bytearray()
        self._stderr = bytearray()
        self._lock = anyio.Lock()
        self._owed = 0
        self._expired: SessionLost | None = None
        self._background = Background()
        self._entered_at = 0.0
        self._last_used = 0.0
        self._running = False
        self.closed = False
        cfg = self.config
        # The largest honest answer: both streams JSON-escaped (6 bytes a control byte), a
        # file or the displays in base64, and room for the rest.
        self._max_line = (
            6 * (cfg.max_output_bytes + cfg.max_log_bytes)
            + 2 * max(cfg.max_collect_bytes, cfg.max_output_bytes)
            + MiB
        )

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open" if self._container else "new"
        cid = self._container.id[:12] if self._container else "-"
        return f"<Session {self.language} {self.config.image} {cid} {state}>"

    @property
    def container_id(self) -> str | None:
        """The id of the session's container (None before entering, after the end)."""
        return None if self._container is None else self._container.id

    # -- lifecycle -----------------------------------------------------------------------------

    async def __aenter__(self) -> Session:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def start(self) -> None:
        """Take a container and wait for its interpreter (``config.start_timeout``)."""
        if self.closed:
            raise ExecutorClosed("the session is closed; open a new one")
        if self._container is not None:
            return
        try:
            await self._take()
        except BaseException:
            await self.aclose()
            raise
        self._entered_at = self._last_used = time.monotonic()
        if self.idle_timeout is not None or self.max_lifetime is not None:
            await self._background.start(self._watch)

    async def _take(self) -> None:
        pool = self._pool
        if pool is None:
            if self._own_pool is None or self._own_pool.closed:
                self._own_pool = _implicit_pool(self.language, self.config, self._engine)
            pool = self._own_pool
        container = await pool._lease(self)
        self._container = container
        # The pool read up to the session server's ready line (_ReadySessions): it is the
        # first line of what the container wrote.
        self._buffer = bytearray(container.rest)
        container.rest = b""
        line = await self._line(container)
        if not line.startswith(_READY):  # pragma: no cover - the pool checked it
            await self._drop()
            raise ProtocolError(
                f"the session container said {line[:200]!r} instead of its ready line",
                received=line,
            )

    async def _watch(self) -> None:
        """End the session after ``idle_timeout`` without a cell, or at ``max_lifetime``."""
        closing = self._background.closing
        while not closing.is_set():
            now = time.monotonic()
            ends: list[tuple[float, str]] = []
            if self.idle_timeout is not None and not self._running:
                ends.append((self._last_used + self.idle_timeout, "idle_timeout"))
            if self.max_lifetime is not None:
                ends.append((self._entered_at + self.max_lifetime, "max_lifetime"))
            when, why = min(ends) if ends else (now + 1.0, "")
            if why and now >= when:
                value = self.idle_timeout if why == "idle_timeout" else self.max_lifetime
                self._expired = SessionLost(
                    f"the session ended: {why}={value:g} s passed; its container was removed, "
                    "open a new session",
                    reason=why,
                    files_kept=False,
                    code="SESSION_EXPIRED",
                )
                await self._drop()
                return
            with anyio.move_on_after(max(0.01, min(when - now, 1.0))):
                await closing.wait()

    async def aclose(self) -> None:
        """Remove the container (shielded, bounded) and stop; idempotent."""
        if self.closed:
            return
        self.closed = True
        self._background.closing.set()
        try:
            await self._background.aclose()
        finally:
            await self._drop()
            pool = self._pool or self._own_pool
            if pool is not None:
                pool._forget(self)

    async def _drop(self) -> None:
        """Remove the current container now (it is broken, expired, or the session ends)."""
        container, self._container = self._container, None
        self._buffer = bytearray()
        self._owed = 0
        if container is None:
            return
        if not await kill(container) and container.engine.reconnect() is not None:
            # This container only: the pool's instance serves other sessions on.
            pool = self._pool or self._own_pool
            if pool is not None:
                engine = container.engine
                hand_over(
                    engine.name,
                    pool.instance,
                    lambda: engine.reconnect() or engine,
                    container=container.id,
                )

    # -- the wire ------------------------------------------------------------------------------

    async def _line(self, container: Container) -> bytes:
        """The next line the session server wrote (raises _Lost at the container's end)."""
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0:
                line = bytes(self._buffer[:end])
                del self._buffer[: end + 1]
                return line
            if len(self._buffer) > self._max_line:
                raise _Lost(
                    f"the session server's answer passed {self._max_line} bytes (the cells' "
                    "output caps allow less): something in the session wrote to its protocol"
                )
            frame = await container.attachment.read()
            if frame is None:
                raise _Lost(await self._ended(container))
            stream, data = frame
            if stream == 1:
                self._buffer += data
            else:
                self._stderr += data
                del self._stderr[:-_STDERR_TAIL]

    async def _ended(self, container: Container) -> str:
        return await _end_reason(container, self.config)

    async def _request(self, request: dict[str, Any], bound: float | None) -> dict[str, Any]:
        """Send one request and read its answer; a container that ends or does not answer
        within ``bound`` is dropped (raises _Lost). A cancelled caller leaves the answer
        owed (read before the next request) and interrupts a running cell."""
        container = self._container
        if container is None:
            raise _Lost("the session has no container")
        try:
            await container.attachment.write(json.dumps(request).encode() + b"\n")
        except ExecutorError as exc:
            await self._drop()
            raise _Lost(f"the container cannot be written to ({exc.message})") from None
        self._owed += 1
        try:
            with anyio.fail_after(bound):
                line = await self._line(container)
        except TimeoutError:
            await self._drop()
            raise _Lost(f"the session server did not answer within {bound:g} s") from None
        except _Lost:
            await self._drop()
            raise
        except BaseException:
            if request.get("op") == "run":
                with shielded(1.0):
                    await container.attachment.write(b'{"op":"interrupt"}\n')
            raise
        self._owed -= 1
        try:
            answer = json.loads(line)
        except ValueError:
            await self._drop()
            raise _Lost(f"the session server wrote {line[:200]!r}, not an answer") from None
        if not isinstance(answer, dict):
            await self._drop()
            raise _Lost("the session server's answer is not an object")
        return answer

    async def _ready(self) -> None:
        """A container, with no answer owed; SessionLost when the state went since last time."""
        if self.closed:
            raise ExecutorClosed("the session is closed; open a new one")
        if self._expired is not None:
            raise self._expired
        container = self._container
        if container is not None and self._owed:
            bound = (self.config.timeout or 0.0) + self.grace + _OWED_SLACK
            lost = None
            try:
                with anyio.fail_after(bound):
                    while self._owed:
                        line = await self._line(container)
                        self._owed -= 1
                        if b'"lost":' in line:
                            with contextlib.suppress(ValueError, TypeError):
                                lost = lost or str(json.loads(line)["lost"])
            except (TimeoutError, _Lost):
                await self._drop()
                raise SessionLost(
                    "the session's cancelled cell did not end, so its container was replaced: "
                    "variables and files are gone; this cell did not run",
                    reason="a cancelled cell did not stop",
                    files_kept=False,
                ) from None
            if lost:
                raise SessionLost(
                    f"the session's interpreter was lost after a cancelled cell ({lost}): its "
                    "variables are gone, the files are kept; this cell did not run",
                    reason=lost,
                )
        if self._container is None:
            await self._take()

    async def _call(self, request: dict[str, Any], bound: float | None) -> dict[str, Any]:
        async with self._lock:
            self._running = True  # from here the idle clock stops
            try:
                await self._ready()
                return await self._request(request, bound)
            except _Lost as lost:
                if self._expired is not None:  # max_lifetime ended it mid-cell
                    raise self._expired from None
                raise SessionLost(
                    f"the session's container was lost ({lost.reason}): variables and files "
                    "are gone; the next cell runs in a new container",
                    reason=lost.reason,
                    files_kept=False,
                ) from None
            finally:
                self._running = False
                self._last_used = time.monotonic()

    # -- cells -------------------------------------------------------------------------------

    async def run(
        self,
        code: str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - the cell's own limit, kept in the container
        stdin: str | None = None,
    ) -> CellResult:
        """Run one cell; its :class:`CellResult` (a raised exception is in ``error``).

        ``timeout`` (default ``config.timeout``; None: no limit) interrupts the cell with
        SIGINT. Raises :class:`SessionLost` when the interpreter, or the container, did not
        survive the cell (the next cell runs in a fresh one), :class:`ExecutorClosed` after
        the end.
        """
        if not isinstance(code, str):
            raise ConfigError(f"code must be a string, got {type(code).__name__}")
        if stdin is not None and not isinstance(stdin, str):
            raise ConfigError(f"stdin must be a string or None, got {type(stdin).__name__}")
        if timeout is None:
            timeout = self.config.timeout
        elif not _seconds(timeout):
            raise ConfigError(f"timeout must be positive seconds or None, got {timeout!r}")
        request = {
            "op": "run",
            "code": code,
            "stdin": stdin,
            "timeout": timeout,
            "grace": self.grace,
            "max_stdout": self.config.max_output_bytes,
            "max_stderr": self.config.max_log_bytes,
        }
        bound = None if timeout is None else timeout + self.grace + _ANSWER_SLACK
        answer = await self._call(request, bound)
        with _malformed(answer):
            return self._cell(answer, timeout)

    def _cell(self, answer: dict[str, Any], timeout: float | None) -> CellResult:
        if not answer.get("ok"):
            raise ProtocolError(f"the session server refused the cell: {answer.get('message')}")
        if answer.get("lost"):
            reason = str(answer["lost"])
            raise SessionLost(
                f"the session's interpreter was lost: {reason}; its variables are gone, the "
                "files in its working directory are kept, and the next cell runs in a fresh "
                "interpreter",
                reason=reason,
            )
        error = answer.get("error")
        cell_error = None if not error else CellError(**error)
        interrupted = bool(answer.get("interrupted"))
        if interrupted and cell_error is None and self.language == "bash":
            cell_error = CellError(
                name="KeyboardInterrupt",
                value=f"the cell was interrupted (timeout={timeout})",
                traceback="",
            )
        displays = [
            Display(mime=str(d["mime"]), data=base64.b64decode(d["data"]))
            for d in answer.get("displays") or ()
        ]
        exit_code = answer.get("exit_code")
        return CellResult(
            stdout=str(answer.get("stdout", "")),
            stderr=str(answer.get("stderr", "")),
            result=answer.get("result"),
            error=cell_error,
            displays=displays,
            duration=float(answer.get("duration") or 0.0),
            exit_code=None if exit_code is None else int(exit_code),
            interrupted=interrupted,
            stdout_truncated=bool(answer.get("stdout_truncated")),
            stderr_truncated=bool(answer.get("stderr_truncated")),
        )

    async def interrupt(self) -> None:
        """Interrupt the running cell (as its timeout would); nothing when none runs."""
        container = self._container
        if container is not None and self._running:
            with shielded(1.0):
                await container.attachment.write(b'{"op":"interrupt"}\n')

    async def restart(self) -> None:
        """A fresh interpreter in the same container; the files are kept."""
        answer = await self._call({"op": "restart"}, self.config.start_timeout)
        if not answer.get("ok"):
            raise ProtocolError(f"the session server refused to restart: {answer.get('message')}")

    # -- files -------------------------------------------------------------------------------

    async def upload(self, path: str, data: bytes | str) -> None:
        """Write ``data`` (text as UTF-8) to ``path``, relative to the working directory
        (``/tmp/work``; parent directories are made). :class:`SessionFileError` past
        ``config.max_collect_bytes`` or for a path leading outside."""
        raw = data.encode() if isinstance(data, str) else bytes(data)
        limit = self.config.max_collect_bytes
        if len(raw) > limit:
            raise SessionFileError(
                f"cannot upload {path!r}: {len(raw)} bytes, more than max_collect_bytes={limit}",
                path=path,
                code="FILE_TOO_LARGE",
            )
        request = {"op": "upload", "path": path, "data": base64.b64encode(raw).decode()}
        self._checked(await self._call(request, self.config.start_timeout), path)

    async def download(self, path: str) -> bytes:
        """The content of ``path`` (relative to the working directory); at most
        ``config.max_collect_bytes`` (:class:`SessionFileError` FILE_TOO_LARGE past it)."""
        request = {"op": "download", "path": path, "max_bytes": self.config.max_collect_bytes}
        answer = self._checked(await self._call(request, self.config.start_timeout), path)
        with _malformed(answer):
            return base64.b64decode(answer["data"], validate=True)

    async def files(self) -> list[str]:
        """The regular files under the working directory, relative paths, sorted."""
        answer = self._checked(await self._call({"op": "files"}, self.config.start_timeout), ".")
        with _malformed(answer):
            return sorted(str(name) for name, _ in answer["files"])

    def _checked(self, answer: dict[str, Any], path: str) -> dict[str, Any]:
        if answer.get("ok"):
            return answer
        code = str(answer.get("code") or "FILE_ERROR")
        hint = {
            "FILE_TOO_LARGE": f" (the cap is max_collect_bytes={self.config.max_collect_bytes})",
            "BAD_PATH": " (use a path relative to the working directory, without '..')",
        }.get(code, "")
        raise SessionFileError(f"{path!r}: {answer.get('message')}{hint}", path=path, code=code)


@contextlib.contextmanager
def _malformed(answer: dict[str, Any]) -> Iterator[None]:
    """An answer of the wrong shape (something in the session wrote to its protocol stream)
    is a ProtocolError, never a KeyError or TypeError."""
    try:
        yield
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise ProtocolError(
            f"the session server's answer has the wrong shape ({type(exc).__name__}: {exc})",
            received=json.dumps(answer)[:200].encode(),
        ) from None


def _seconds(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and value > 0
        and value != float("inf")
    )
