"""Test helpers: :class:`FakeEngine`, an in-memory engine whose containers run a function.

Use it to test code built on :class:`~executor.ContainerExecutor` without Docker, the way
httpcore ships its mock backend::

    from executor import ContainerConfig, ContainerExecutor
    from executor.testing import Crash, FakeEngine

    engine = FakeEngine(lambda data: {"doubled": data["n"] * 2})
    async with ContainerExecutor(ContainerConfig("any-image"), engine=engine) as ex:
        assert await ex.execute({"n": 2}) == {"doubled": 4}
    assert engine.live() == []   # every container was removed

A fake container speaks the runner protocol around ``handler(input)`` (sync or async): one
request (fresh and pooled containers), serve mode (``mode="reuse"``) or fork mode
(``mode="fork"``: ready lines, the request's ``timeout`` enforced, a crash answered and
survived). A session container (the session server as its program, as
:class:`~executor.Session` makes them) says ready and answers each cell with
``repr(handler(code))`` as its ``result`` (an exception: the cell's ``error``), keeps uploaded
files in memory and ignores interrupts. Inside a handler, :func:`log` writes to the
container's stderr and raising :class:`Crash` makes the container (fork mode: the task's
process) die without answering. Any other exception is the task failing (``USER_ERROR``).

Faults: :meth:`FakeEngine.fail` makes the next engine requests of a kind fail,
:meth:`FakeEngine.delay` makes them slow, :meth:`FakeEngine.go_down` and
:meth:`FakeEngine.come_back` take the whole engine away (every container dies, like a
stopped dockerd) and back. Counters and :meth:`FakeEngine.live` tell what happened.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import itertools
import json
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio

from ._errors import EngineUnavailable, ExecutorClosed, ExecutorError, ImageNotFound
from .engine import Attachment, Engine, EngineInfo, ExitState, Images

__all__ = ["Crash", "FakeEngine", "log"]

Handler = Callable[[Any], Any]
_OPERATIONS = (
    "ping",
    "info",
    "create",
    "attach",
    "start",
    "state",
    "wait",
    "remove",
    "list",
    "image",
)
_current: contextvars.ContextVar[_FakeContainer] = contextvars.ContextVar("fake_container")
_ids = itertools.count(1)


class Crash(Exception):
    """Raised by a handler: the container (fork mode: the task's process) dies unanswered."""

    def __init__(self, exit_code: int = 1, *, oom: bool = False) -> None:
        super().__init__(f"crash with exit code {exit_code}" + (" (OOM)" if oom else ""))
        self.exit_code = 137 if oom else exit_code
        self.oom = oom


def log(text: str) -> None:
    """Write ``text`` (a line) to the current fake container's stderr."""
    _current.get()._emit(2, (text if text.endswith("\n") else text + "\n").encode())


def _echo(value: Any) -> Any:
    return value


@dataclass
class _Fault:
    times: int
    error: ExecutorError | None


@dataclass
class _FakeContainer:
    id: str
    body: dict[str, Any]
    engine: FakeEngine
    state: str = "created"  # created, running, exited
    exit_code: int | None = None
    oom_killed: bool = False
    requests: int = 0
    stdin: bytearray = field(default_factory=bytearray)
    stdin_closed: bool = False
    stdin_changed: asyncio.Event = field(default_factory=asyncio.Event)
    frames: asyncio.Queue[tuple[int, bytes] | None] = field(default_factory=asyncio.Queue)
    exited: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    attached: bool = False

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.body.get("Labels") or {})

    @property
    def mode(self) -> str:
        if any(str(part).endswith("/session.py") for part in self.body.get("Entrypoint") or ()):
            return "session"
        env = dict(e.split("=", 1) for e in self.body.get("Env") or [] if "=" in e)
        serve = env.get("EXECUTOR_SERVE")
        return "fork" if serve == "fork" else "serve" if serve == "1" else "once"

    def _emit(self, stream: int, data: bytes) -> None:
        if self.state != "exited":
            self.frames.put_nowait((stream, data))

    def exit(self, code: int, *, oom: bool = False) -> None:
        if self.state == "exited":
            return
        self.state = "exited"
        self.exit_code = code
        self.oom_killed = self.oom_killed or oom
        self.frames.put_nowait(None)
        self.exited.set()

    async def _read_all(self) -> bytes:
        while not self.stdin_closed:
            self.stdin_changed.clear()
            await self.stdin_changed.wait()
        data = bytes(self.stdin)
        self.stdin.clear()
        return data

    async def _read_line(self) -> bytes | None:
        while (end := self.stdin.find(b"\n")) < 0:
            if self.stdin_closed:
                return None
            self.stdin_changed.clear()
            await self.stdin_changed.wait()
        line = bytes(self.stdin[:end])
        del self.stdin[: end + 1]
        return line

    async def run(self) -> None:
        """The runner: one-shot, serve or fork mode around the engine's handler."""
        _current.set(self)
        mode = self.mode
        try:
            if mode == "session":
                await self._session()
                return
            if mode == "once":
                answer = await self._answer(await self._read_all(), fork=False)
                if answer is not None:
                    self._emit(1, answer)
                    self.exit(0)
                return
            if mode == "fork":
                self._emit(1, b'{"ready":true,"runner":"fake"}\n')
            while (line := await self._read_line()) is not None:
                if not line.strip():
                    continue
                answer = await self._answer(line, fork=mode == "fork")
                if answer is None:
                    return  # crashed
                self._emit(1, answer)
                if mode == "fork":
                    self._emit(1, b'{"ready":true,"runner":"fake"}\n')
            self.exit(0)
        except asyncio.CancelledError:
            self.exit(137)
            raise

    async def _session(self) -> None:
        """The session server's wire: a ready line, then one answer per request line."""
        files: dict[str, str] = {}
        self._emit(1, _line({"ready": True, "language": (self.body.get("Cmd") or ["?"])[0]}))
        while (line := await self._read_line()) is not None:
            try:
                request = json.loads(line)
            except ValueError:
                self._emit(1, _line({"ok": False, "code": "BAD_REQUEST", "message": "not JSON"}))
                continue
            op = request.get("op")
            if op == "interrupt":
                continue
            self.requests += 1
            self.engine.requests += 1
            answer: dict[str, Any] = {"ok": True}
            if op == "run":
                answer.update(stdout="", stderr="", result=None, duration=0.0)
                try:
                    result = self.engine.handler(request.get("code"))
                    if inspect.isawaitable(result):
                        result = await result
                    answer["result"] = None if result is None else repr(result)
                except Crash as crash:
                    self.exit(crash.exit_code, oom=crash.oom)
                    return
                except Exception as exc:
                    answer["error"] = {
                        "name": type(exc).__name__,
                        "value": str(exc),
                        "traceback": "",
                    }
            elif op == "upload":
                files[str(request.get("path"))] = str(request.get("data", ""))
            elif op == "download":
                if str(request.get("path")) not in files:
                    answer = {"ok": False, "code": "FILE_NOT_FOUND", "message": "no such file"}
                else:
                    answer["data"] = files[str(request.get("path"))]
            elif op == "files":
                answer["files"] = [[name, 0] for name in sorted(files)]
            elif op != "restart":
                answer = {"ok": False, "code": "BAD_REQUEST", "message": f"unknown op {op!r}"}
            self._emit(1, _line(answer))
        self.exit(0)

    async def _answer(self, raw: bytes, *, fork: bool) -> bytes | None:
        """The response line for one request; None when the container died instead."""
        self.requests += 1
        self.engine.requests += 1
        try:
            request = json.loads(raw)
            if not isinstance(request, dict):
                raise ValueError("the request must be a JSON object")
        except ValueError as exc:
            return _line({"ok": False, "error": {"message": str(exc), "code": "BAD_REQUEST"}})
        marker = request.get("log_marker")
        timeout = request.get("timeout") if fork else None
        try:
            with anyio.fail_after(timeout) if timeout else _nothing():
                result = self.engine.handler(request.get("input"))
                if inspect.isawaitable(result):
                    result = await result
            response: dict[str, Any] = {"ok": True, "output": result}
            if request.get("collect") is not None:
                response["files"] = {}  # a fake container has no file system: nothing left
        except TimeoutError:
            response = _error("TIMEOUT", f"the task did not finish within {timeout} s")
        except Crash as crash:
            if not fork:
                self.exit(crash.exit_code, oom=crash.oom)
                return None
            code = "OOM_KILLED" if crash.oom else "EXIT_NONZERO"
            response = _error(code, str(crash), exit_code=crash.exit_code)
        except Exception as exc:
            response = _error("USER_ERROR", f"{type(exc).__name__}: {exc}")
        if isinstance(marker, str):
            self._emit(2, marker.encode() + b"\n")
            response["log_marker"] = marker
        try:
            return _line(response)
        except (TypeError, ValueError) as exc:
            return _line(_error("OUTPUT_NOT_SERIALIZABLE", str(exc)))


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _error(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"ok": False, "error": {"message": message, "code": code, **extra}}


def _line(response: dict[str, Any]) -> bytes:
    return json.dumps(response, separators=(",", ":")).encode() + b"\n"


class _FakeAttachment(Attachment):
    def __init__(self, container: _FakeContainer) -> None:
        self._c = container
        self._ended = False

    async def write(self, data: bytes) -> None:
        if self._c.state != "exited" and not self._c.stdin_closed:
            self._c.stdin += data
            self._c.stdin_changed.set()

    def close_stdin(self) -> None:
        self._c.stdin_closed = True
        self._c.stdin_changed.set()

    def alive(self) -> bool:
        return not self._ended and self._c.state != "exited"

    async def read(self) -> tuple[int, bytes] | None:
        if self._ended:
            return None
        frame = await self._c.frames.get()
        if frame is None:
            self._ended = True
        return frame

    async def close(self) -> None:
        self._ended = True


class _FakeImages(Images):
    def __init__(self, engine: FakeEngine, present: set[str] | None) -> None:
        self._engine = engine
        self.present = present  # None: every image exists
        self.details: dict[str, dict[str, Any]] = {}  # ref -> Labels, Created (list())

    def _has(self, ref: str) -> bool:
        return self.present is None or ref in self.present or f"{ref}:latest" in self.present

    async def inspect(self, ref: str) -> dict[str, Any] | None:
        await self._engine._enter("image")
        if not self._has(ref):
            return None
        return {"Id": f"sha256:{abs(hash(ref)):064x}"[:71], "RepoTags": [ref], "Config": {}}

    async def list(self) -> list[dict[str, Any]]:
        await self._engine._enter("image")
        return [
            {"Id": ref, "RepoTags": [ref], "Size": 0, **self.details.get(ref, {})}
            for ref in sorted(self.present or ())
        ]

    async def _add(self, ref: str, labels: Mapping[str, str] | None = None) -> None:
        if self.present is not None:
            self.present.add(ref)
        self.details[ref] = {"Labels": dict(labels or {}), "Created": int(time.time())}

    async def remove(self, ref: str) -> bool:
        await self._engine._enter("image")
        if any(c.body.get("Image") == ref for c in self._engine._containers.values()):
            return False
        if self.present is not None:
            self.present.discard(ref)
        self.details.pop(ref, None)
        return True

    async def tag(self, ref: str, repository: str, tag: str) -> None:
        await self._engine._enter("image")
        await self._add(f"{repository}:{tag}")

    async def derive(
        self,
        image: str,
        files: Mapping[str, bytes],
        tag: str,
        labels: Mapping[str, str],
        more: Callable[[], Awaitable[Mapping[str, bytes]]] | None = None,
    ) -> None:
        await self._engine._enter("image")
        if not self._has(image):
            raise ImageNotFound(image, engine=self._engine.name)
        if more is not None:
            await more()
        await self._add(tag, labels)

    async def export(self, ref: str) -> AsyncIterator[bytes]:
        await self._engine._enter("image")
        if not self._has(ref):
            raise ImageNotFound(ref, engine=self._engine.name)
        yield ref.encode()

    async def load(self, chunks: AsyncIterator[bytes]) -> None:
        await self._engine._enter("image")
        data = b"".join([chunk async for chunk in chunks])
        await self._add(data.decode())

    async def pull(self, ref: str) -> bool:
        return False

    async def build(
        self,
        context: bytes,
        *,
        tag: str,
        dockerfile: str,
        buildargs: Mapping[str, str],
        labels: Mapping[str, str],
        network: str | None,
    ) -> AsyncIterator[dict[str, Any]]:
        await self._engine._enter("image")
        yield {"stream": f"fake build of {tag}\n"}
        await self._add(tag)


class FakeEngine(Engine):
    """An in-memory engine whose containers run ``handler`` (default: echo the input).

    ``images``: the image references present (``None``: every image exists). ``cpus`` is
    what :meth:`info` reports (the default admission limit).
    """

    def __init__(
        self,
        handler: Handler | Callable[[Any], Awaitable[Any]] | None = None,
        *,
        name: str = "fake://engine",
        capacity: float = 1.0,
        images: set[str] | None = None,
        cpus: int = 2,
    ) -> None:
        self.handler: Callable[[Any], Any] = handler or _echo
        self.name = name
        self.capacity = capacity
        self.cpus = cpus
        self._images = _FakeImages(self, images)
        self._containers: dict[str, _FakeContainer] = {}
        self._faults: dict[str, list[_Fault]] = defaultdict(list)
        self._delays: dict[str, float] = {}
        self._down = False
        self._closed = False
        #: Counters: containers created and removed, requests delivered to containers,
        #: engine requests by operation, and the most containers seen created but not yet
        #: started at once (what admission control bounds).
        self.created = 0
        self.removed = 0
        self.requests = 0
        self.operations: dict[str, int] = defaultdict(int)
        self.max_starting_seen = 0

    # -- fault injection -----------------------------------------------------------------------

    def fail(self, operation: str, *, times: int = 1, error: ExecutorError | None = None) -> None:
        """Make the next ``times`` requests of ``operation`` fail (default: engine gone).

        Operations: ping, info, create, attach, start, state, wait, remove, list, image.
        """
        if operation not in _OPERATIONS:
            raise ValueError(f"unknown operation {operation!r}; one of {', '.join(_OPERATIONS)}")
        self._faults[operation].append(_Fault(times, error))

    def delay(self, operation: str, seconds: float) -> None:
        """Make every request of ``operation`` take ``seconds`` longer (0 to stop)."""
        if operation not in _OPERATIONS:
            raise ValueError(f"unknown operation {operation!r}; one of {', '.join(_OPERATIONS)}")
        self._delays[operation] = seconds

    def go_down(self) -> None:
        """The engine goes away: every request fails and every container dies (exit 137)."""
        self._down = True
        for container in self._containers.values():
            container.exit(137)
            if container.task is not None:
                container.task.cancel()

    def come_back(self) -> None:
        """The engine answers again; the containers that died stay until removed."""
        self._down = False

    @property
    def down(self) -> bool:
        return self._down

    # -- what happened -------------------------------------------------------------------------

    def live(self, labels: Mapping[str, str] | None = None) -> list[str]:
        """Ids of containers not removed yet (carrying ``labels``, if given)."""
        wanted = dict(labels or {})
        return [
            cid
            for cid, c in self._containers.items()
            if all(c.labels.get(k) == v for k, v in wanted.items())
        ]

    def running(self) -> list[str]:
        """Ids of containers whose runner is running."""
        return [cid for cid, c in self._containers.items() if c.state == "running"]

    def container(self, container_id: str) -> dict[str, Any]:
        """A container's create body, state and the requests it received."""
        c = self._containers[container_id]
        return {
            "body": c.body,
            "state": c.state,
            "exit_code": c.exit_code,
            "requests": c.requests,
        }

    # -- the Engine interface ------------------------------------------------------------------

    async def _enter(self, operation: str) -> None:
        if self._closed:
            raise ExecutorClosed(f"the fake engine {self.name} is closed")
        self.operations[operation] += 1
        delay = self._delays.get(operation)
        if delay:
            await anyio.sleep(delay)
        if self._down:
            raise EngineUnavailable(f"the fake engine {self.name} is down.", engine=self.name)
        faults = self._faults.get(operation)
        if faults:
            fault = faults[0]
            fault.times -= 1
            if fault.times <= 0:
                faults.pop(0)
            raise fault.error or EngineUnavailable(
                f"injected failure of {operation} on {self.name}.", engine=self.name
            )

    @property
    def images(self) -> Images:
        return self._images

    async def ping(self) -> None:
        await self._enter("ping")

    async def info(self) -> EngineInfo:
        await self._enter("info")
        return EngineInfo(
            name=self.name, kind="fake", version="0", api_version="1.41", cpus=self.cpus
        )

    async def create(self, body: Mapping[str, Any]) -> str:
        await self._enter("create")
        image = str(body.get("Image"))
        if not self._images._has(image):
            raise ImageNotFound(image, engine=self.name)
        container_id = f"fake{next(_ids):012d}"
        self._containers[container_id] = _FakeContainer(container_id, dict(body), self)
        self.created += 1
        starting = sum(c.state == "created" for c in self._containers.values())
        self.max_starting_seen = max(self.max_starting_seen, starting)
        return container_id

    def _get(self, container_id: str) -> _FakeContainer:
        try:
            return self._containers[container_id]
        except KeyError:
            raise ExecutorError(
                f"no such container {container_id} on {self.name}", code="ENGINE_ERROR"
            ) from None

    async def attach(self, container_id: str) -> Attachment:
        await self._enter("attach")
        container = self._get(container_id)
        container.attached = True
        return _FakeAttachment(container)

    async def start(self, container_id: str) -> None:
        await self._enter("start")
        container = self._get(container_id)
        container.state = "running"
        container.task = asyncio.get_running_loop().create_task(container.run())

    async def state(self, container_id: str) -> ExitState:
        await self._enter("state")
        c = self._containers.get(container_id)
        if c is None:
            return ExitState(running=False, exit_code=None, oom_killed=False, removed=True)
        running = c.state == "running"
        return ExitState(running, None if running else c.exit_code, c.oom_killed)

    async def wait(self, container_id: str) -> None:
        await self._enter("wait")
        c = self._containers.get(container_id)
        if c is not None:
            await c.exited.wait()

    async def remove(self, container_id: str) -> None:
        await self._enter("remove")
        container = self._containers.pop(container_id, None)
        if container is None:
            return
        self.removed += 1
        container.exit(137)
        task = container.task
        if task is not None and not task.done():
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = None
            if loop is task.get_loop():
                task.cancel()
            else:
                task.get_loop().call_soon_threadsafe(task.cancel)

    async def list_managed(self, filters: Mapping[str, str]) -> list[dict[str, Any]]:
        await self._enter("list")
        out = []
        for cid, c in list(self._containers.items()):
            labels = c.labels
            if all((labels.get(k) == v) if v else k in labels for k, v in filters.items()):
                out.append(
                    {"Id": cid, "Image": c.body.get("Image"), "Labels": labels, "State": c.state}
                )
        return out

    async def aclose(self) -> None:
        """Nothing to release (a fake engine outlives the executors that use it)."""

    def reconnect(self) -> Engine | None:
        return self
