"""The session server: one stateful interpreter (Python or bash) per container, for Session.

Started as the container's program (``python3 /opt/executor/session.py python|bash``), it is
PID 1 and never runs user code itself: it keeps a *worker* process (a Python interpreter
holding the session's namespace, or a persistent ``bash``) in a process group of its own, and
talks to the host over its stdin/stdout, one JSON object per line each way:

* ``{"op": "run", "code", "timeout", "grace", "stdin", "max_stdout", "max_stderr"}`` runs a
  cell in the worker; stdout and stderr are read through pipes, kept up to their caps (the
  rest is read, dropped and flagged). At ``timeout`` (or on ``{"op": "interrupt"}``) the
  worker's process group gets SIGINT: Python raises ``KeyboardInterrupt`` in the cell, bash
  abandons the cell's command line, and the state is kept. A worker that does not answer
  within ``grace`` seconds more, or that dies (``os._exit``, OOM kill, ``exit``), is killed
  with its process group and replaced by a fresh one: the answer says ``lost`` and why.
* ``upload``/``download``/``files``/``restart`` act on the working directory (``/tmp/work``,
  on the container's tmpfs) and the worker; answered by this process, never by user code.

Answers are ``{"ok": true, ...}`` or ``{"ok": false, "code", "message"}``; the first line
written is ``{"ready": true}`` once the first worker runs. The worker talks to this process
over two private pipes (``EXECUTOR_SESSION_CTL``); its fd 0 is ``/dev/null`` (or the cell's
stdin), fds 1 and 2 the output pipes. Standard library only, Python >= 3.8.
"""

from __future__ import annotations

import ast
import base64
import contextlib
import errno
import fcntl
import inspect
import io
import json
import linecache
import os
import selectors
import signal
import stat
import subprocess
import sys
import time
import traceback

WORKDIR = os.environ.get("EXECUTOR_SESSION_WORKDIR", "/tmp/work")
#: Where cells and their stdin are written for bash (outside the working directory).
PRIVATE = os.environ.get("EXECUTOR_SESSION_PRIVATE", "/tmp/.executor-session")
_READ = 65536
_MAX_FILES = 10000


def _json_line(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


def _nonblocking(fd: int) -> None:
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_NONBLOCK)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _oom_kills() -> int | None:
    """The container's OOM-kill counter (cgroup v2 or v1), None when unreadable."""
    for path in ("/sys/fs/cgroup/memory.events", "/sys/fs/cgroup/memory/memory.oom_control"):
        try:
            with open(path) as fh:
                for line in fh:
                    if line.startswith("oom_kill "):
                        return int(line.split()[1])
        except (OSError, ValueError):
            continue
    return None


# --- the supervisor (PID 1) ---------------------------------------------------------------


class _Output:
    """One of the worker's output pipes: bytes kept for the current cell, up to a cap."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.kept = bytearray()
        self.cap = 0
        self.truncated = False
        self.collecting = False

    def start(self, cap: int) -> None:
        self.kept = bytearray()
        self.cap = cap
        self.truncated = False
        self.collecting = True

    def take(self, data: bytes) -> None:
        if not self.collecting:
            return  # between cells: what background processes write is dropped
        room = self.cap - len(self.kept)
        if len(data) > room:
            self.truncated = True
            data = data[: max(room, 0)]
        self.kept += data

    def drain(self) -> bool:
        """Read what waits in the pipe; False at its end."""
        while True:
            try:
                data = os.read(self.fd, _READ)
            except BlockingIOError:
                return True
            except OSError:
                return False
            if not data:
                return False
            self.take(data)

    def text(self) -> str:
        self.collecting = False
        return self.kept.decode("utf-8", "replace")


class Worker:
    """The worker process: its pid, the control pipes and the output pipes."""

    def __init__(self, language: str) -> None:
        self.language = language
        to_worker_r, self.to_worker = os.pipe()
        self.from_worker, from_worker_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        env = dict(os.environ)
        if language == "python":
            env["EXECUTOR_SESSION_CTL"] = f"{to_worker_r},{from_worker_w}"
            argv = [sys.executable, os.path.abspath(__file__), "--worker"]
            stdin: int = subprocess.DEVNULL
            fds: tuple[int, ...] = (to_worker_r, from_worker_w)
        else:
            env.update(PS1="", PS2="", PS4="+ ", HISTFILE="")
            argv = ["bash", "--norc", "--noprofile", "--noediting", "-i"]
            stdin = to_worker_r
            fds = (from_worker_w,)
            self.status_fd = from_worker_w
        self.process = subprocess.Popen(
            argv,
            stdin=stdin,
            stdout=out_w,
            stderr=err_w,
            pass_fds=fds,
            cwd=WORKDIR,
            env=env,
            start_new_session=True,
        )
        self.pid = self.process.pid
        for fd in (to_worker_r, from_worker_w, out_w, err_w):
            os.close(fd)
        self.stdout = _Output(out_r)
        self.stderr = _Output(err_r)
        self.control = bytearray()
        self.exit_status: int | None = None
        _nonblocking(self.from_worker)
        _nonblocking(out_r)
        _nonblocking(err_r)
        if language == "bash":
            self.send(
                f"exec 3>&{from_worker_w} {from_worker_w}>&-; set +o history; "
                "printf 'ready\\n' >&3\n".encode()
            )

    def send(self, data: bytes) -> None:
        _write_all(self.to_worker, data)

    def interrupt(self) -> None:
        with contextlib.suppress(OSError):
            os.killpg(self.pid, signal.SIGINT)

    def kill(self) -> None:
        """SIGKILL the worker's process group, reap the worker, close the pipes."""
        with contextlib.suppress(OSError):
            os.killpg(self.pid, signal.SIGKILL)
        if self.exit_status is None:
            try:
                _, status = os.waitpid(self.pid, 0)
                self.exit_status = status
            except ChildProcessError:
                pass
        for fd in (self.to_worker, self.from_worker, self.stdout.fd, self.stderr.fd):
            with contextlib.suppress(OSError):
                os.close(fd)

    def message(self) -> bytes | None:
        """A complete control line from the worker, if one arrived."""
        end = self.control.find(b"\n")
        if end < 0:
            return None
        line = bytes(self.control[:end])
        del self.control[: end + 1]
        return line


def _describe_end(status: int | None, oom_before: int | None, memory: str) -> str:
    if status is None:
        return "the interpreter ended"
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        oom = _oom_kills()
        if sig == signal.SIGKILL and (
            oom is not None and oom_before is not None and oom > oom_before
        ):
            return f"the interpreter was killed: out of memory (the limit is {memory})"
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else sig
        return f"the interpreter was killed by signal {name}"
    return f"the interpreter exited with status {os.WEXITSTATUS(status)}"


class Supervisor:
    """Reads requests, runs cells in the worker, answers; restarts a lost worker."""

    def __init__(self, language: str) -> None:
        self.language = language
        # Private protocol fds; stray writes of this process go to stderr.
        self.proto_in = os.dup(0)
        self.proto_out = os.dup(1)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        os.dup2(2, 1)
        _nonblocking(self.proto_in)
        self.requests = bytearray()
        self.pending: list[dict[str, object]] = []
        self.eof = False
        self.wake_r, wake_w = os.pipe()
        _nonblocking(self.wake_r)
        _nonblocking(wake_w)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        self.memory = os.environ.get("EXECUTOR_SESSION_MEMORY", "the container's memory")
        self.lost: str | None = None
        os.makedirs(WORKDIR, exist_ok=True)
        os.makedirs(PRIVATE, mode=0o700, exist_ok=True)
        self.cell = 0
        self.worker = self._start()

    # -- the worker --------------------------------------------------------------------------

    def _start(self) -> Worker:
        worker = Worker(self.language)
        if self._await_message(worker, None) is None:
            raise SystemExit(f"session: the {self.language} worker did not start")
        return worker

    def _restart(self) -> None:
        self.worker.kill()
        self.worker = self._start()

    def _reap(self) -> None:
        """Reap every exited child (PID 1 adopts orphans); note the worker's end."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            worker = getattr(self, "worker", None)  # None while the first one starts
            if worker is not None and pid == worker.pid:
                worker.exit_status = status

    def _await_message(
        self, worker: Worker, deadline: float | None, *, host: bool = False
    ) -> bytes | None:
        """Serve the pipes until the worker sends a control line. None: it ended, the
        deadline passed, or (``host``) the host asked for an interrupt."""
        sel = selectors.DefaultSelector()
        if host:
            sel.register(self.proto_in, selectors.EVENT_READ, "host")
        sel.register(worker.from_worker, selectors.EVENT_READ, "control")
        sel.register(worker.stdout.fd, selectors.EVENT_READ, worker.stdout)
        sel.register(worker.stderr.fd, selectors.EVENT_READ, worker.stderr)
        sel.register(self.wake_r, selectors.EVENT_READ, "wake")
        try:
            while True:
                line = worker.message()
                if line is not None:
                    return line
                wait = None if deadline is None else max(0.0, deadline - time.monotonic())
                if deadline is not None and wait == 0.0:
                    return None
                for key, _ in sel.select(wait):
                    if key.data == "control":
                        try:
                            data = os.read(worker.from_worker, _READ)
                        except BlockingIOError:
                            continue
                        if not data:
                            sel.unregister(worker.from_worker)
                            self._wait_end(worker)
                            return None
                        worker.control += data
                    elif key.data == "wake":
                        self._on_wake(worker)
                        if worker.exit_status is not None:
                            return worker.message()
                    elif key.data == "host":
                        self._read_requests()
                        if self.interrupt_requested:
                            return None
                        if self.eof:
                            sel.unregister(self.proto_in)
                    else:
                        if not key.data.drain():
                            sel.unregister(key.fd)
        finally:
            sel.close()

    def _wait_end(self, worker: Worker) -> None:
        """The control pipe closed: the worker is ending; wait for it (bounded)."""
        for _ in range(200):
            self._reap_worker(worker)
            if worker.exit_status is not None:
                return
            time.sleep(0.005)
        worker.kill()

    def _reap_worker(self, worker: Worker) -> None:
        try:
            pid, status = os.waitpid(worker.pid, os.WNOHANG)
        except ChildProcessError:
            worker.exit_status = worker.exit_status or 0
            return
        if pid:
            worker.exit_status = status

    def _on_wake(self, worker: Worker) -> None:
        try:
            while os.read(self.wake_r, 512):
                pass
        except BlockingIOError:
            pass
        self._reap_worker(worker)
        self._reap()

    # -- requests ----------------------------------------------------------------------------

    def _read_requests(self) -> None:
        """Read what the host sent; an interrupt acts now, the rest waits its turn."""
        while True:
            try:
                data = os.read(self.proto_in, _READ)
            except BlockingIOError:
                break
            if not data:
                self.eof = True
                break
            self.requests += data
        while True:
            end = self.requests.find(b"\n")
            if end < 0:
                return
            line = bytes(self.requests[:end])
            del self.requests[: end + 1]
            try:
                request = json.loads(line)
            except ValueError:
                self._answer({"ok": False, "code": "BAD_REQUEST", "message": "not JSON"})
                continue
            if request.get("op") == "interrupt":
                self.interrupt_requested = True
            else:
                self.pending.append(request)

    interrupt_requested = False

    def _answer(self, obj: dict[str, object]) -> None:
        _write_all(self.proto_out, _json_line(obj))

    def serve(self) -> None:
        self._answer({"ready": True, "language": self.language})
        sel = selectors.DefaultSelector()
        sel.register(self.proto_in, selectors.EVENT_READ)
        sel.register(self.wake_r, selectors.EVENT_READ)
        while True:
            while self.pending:
                request = self.pending.pop(0)
                try:
                    answer = self.handle(request)
                except Exception as exc:  # a bug here must not end the session
                    answer = {"ok": False, "code": "SESSION_ERROR", "message": repr(exc)}
                self._answer(answer)
            if self.eof:
                return
            # Between cells: keep the pipes drained (background output is dropped) and
            # notice a worker that ends by itself.
            for pipe in (self.worker.stdout, self.worker.stderr):
                pipe.drain()
            sel.select(1.0)
            try:
                while os.read(self.wake_r, 512):
                    pass
            except BlockingIOError:
                pass
            self._reap_worker(self.worker)
            self._reap()
            if self.worker.exit_status is not None and self.lost is None:
                self.lost = _describe_end(self.worker.exit_status, None, self.memory)
                self._restart()
            self._read_requests()
            self.interrupt_requested = False  # nothing runs: nothing to interrupt

    def handle(self, request: dict[str, object]) -> dict[str, object]:
        op = request.get("op")
        if op == "run":
            if self.lost is not None:
                reason, self.lost = self.lost, None
                return {"ok": True, "lost": f"{reason} between cells; this cell did not run"}
            return self.run(request)
        if op == "restart":
            self.lost = None
            self._restart()
            return {"ok": True}
        if op == "ping":
            return {"ok": True}
        if op in ("upload", "download", "files"):
            return _file_op(request)
        return {"ok": False, "code": "BAD_REQUEST", "message": f"unknown op {op!r}"}

    def run(self, request: dict[str, object]) -> dict[str, object]:
        worker = self.worker
        code = str(request.get("code", ""))
        stdin = request.get("stdin")
        timeout = request.get("timeout")
        grace = float(request.get("grace") or 2.0)  # type: ignore[arg-type]
        self.cell += 1
        worker.stdout.start(int(request.get("max_stdout") or 1 << 20))  # type: ignore[call-overload]
        worker.stderr.start(int(request.get("max_stderr") or 1 << 20))  # type: ignore[call-overload]
        oom_before = _oom_kills()
        started = time.monotonic()
        if self.language == "python":
            cap = int(request.get("max_stdout") or 1 << 20)  # type: ignore[call-overload]
            worker.send(_json_line({"code": code, "stdin": stdin, "cell": self.cell, "cap": cap}))
        else:
            cell = os.path.join(PRIVATE, "cell.sh")
            with open(cell, "w") as fh:
                fh.write(code if code.endswith("\n") else code + "\n")
            source = os.devnull
            if stdin is not None:
                source = os.path.join(PRIVATE, "stdin")
                with open(source, "w") as fh:
                    fh.write(str(stdin))
            worker.send(
                f". {cell} < {source}\n__executor_status=$?; printf '%s\\n' "
                '"$__executor_status" >&3\n'.encode()
            )
        self.interrupt_requested = False
        deadline = None if timeout is None else started + float(timeout)  # type: ignore[arg-type]
        interrupted_at: float | None = None
        while True:
            now = time.monotonic()
            if interrupted_at is None and (
                self.interrupt_requested or (deadline is not None and now >= deadline)
            ):
                interrupted_at = now
                worker.interrupt()
            limit = deadline if interrupted_at is None else interrupted_at + grace
            line = self._await_message(worker, limit, host=interrupted_at is None)
            if line is not None or worker.exit_status is not None:
                break
            if interrupted_at is not None and time.monotonic() >= interrupted_at + grace:
                break
        duration = time.monotonic() - started
        worker.stdout.drain()
        worker.stderr.drain()
        answer: dict[str, object] = {
            "ok": True,
            "stdout": worker.stdout.text(),
            "stderr": worker.stderr.text(),
            "stdout_truncated": worker.stdout.truncated,
            "stderr_truncated": worker.stderr.truncated,
            "duration": duration,
            "interrupted": interrupted_at is not None,
        }
        if line is None:
            if worker.exit_status is None:
                reason = (
                    f"the interpreter did not stop within {grace:g} s of the interrupt "
                    "(it ignores SIGINT or is stuck in native code) and was restarted"
                )
            else:
                reason = _describe_end(worker.exit_status, oom_before, self.memory)
            answer["lost"] = reason
            self._restart()
            self.lost = None
            return answer
        if self.language == "python":
            answer.update(json.loads(line))
        else:
            try:
                answer["exit_code"] = int(line.strip())
            except ValueError:
                answer["exit_code"] = None
        return answer


# --- files --------------------------------------------------------------------------------


def _inside(rel: object) -> str:
    """The absolute path of ``rel`` under the working directory; ValueError when it leaves."""
    if not isinstance(rel, str) or not rel or "\x00" in rel:
        raise ValueError(f"a path must be a non-empty string, got {rel!r}")
    if rel.startswith("/"):
        raise ValueError(f"paths are relative to the session's working directory, got {rel!r}")
    parts = rel.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise ValueError(f"a path must not hold '', '.' or '..' parts, got {rel!r}")
    full = os.path.join(WORKDIR, rel)
    parent = os.path.realpath(os.path.dirname(full))
    root = os.path.realpath(WORKDIR)
    if parent != root and not parent.startswith(root + "/"):
        raise ValueError(f"{rel!r} leads outside the working directory (a symbolic link)")
    return full


def _file_op(request: dict[str, object]) -> dict[str, object]:
    op = request["op"]
    try:
        if op == "files":
            return {"ok": True, "files": _listing()}
        path = _inside(request.get("path"))
        if op == "upload":
            data = base64.b64decode(str(request.get("data", "")))
            os.makedirs(os.path.dirname(path), exist_ok=True)
            _inside(request.get("path"))  # a directory made may not be a link either
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            return {"ok": True, "size": len(data)}
        limit = int(request.get("max_bytes") or 0)  # type: ignore[call-overload]
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as fh:
            info = os.fstat(fh.fileno())
            if not stat.S_ISREG(info.st_mode):
                return {"ok": False, "code": "NOT_A_FILE", "message": "not a regular file"}
            if limit and info.st_size > limit:
                return {
                    "ok": False,
                    "code": "FILE_TOO_LARGE",
                    "message": f"{info.st_size} bytes, more than the {limit} allowed",
                }
            data = fh.read(limit + 1 if limit else -1)
        if limit and len(data) > limit:
            return {"ok": False, "code": "FILE_TOO_LARGE", "message": "it grew past the cap"}
        return {"ok": True, "data": base64.b64encode(data).decode()}
    except ValueError as exc:
        return {"ok": False, "code": "BAD_PATH", "message": str(exc)}
    except FileNotFoundError:
        return {"ok": False, "code": "FILE_NOT_FOUND", "message": "no such file"}
    except IsADirectoryError:
        # A download opens a directory fine but cannot read it as a file (fdopen refuses);
        # an upload cannot open one for writing.
        return {"ok": False, "code": "NOT_A_FILE", "message": "it is a directory"}
    except OSError as exc:
        code = "BAD_PATH" if exc.errno == errno.ELOOP else "FILE_ERROR"
        return {"ok": False, "code": code, "message": f"{exc.strerror} ({exc.errno})"}


def _listing() -> list[list[object]]:
    out: list[list[object]] = []
    for top, dirs, names in os.walk(WORKDIR):
        dirs.sort()
        for name in sorted(names):
            full = os.path.join(top, name)
            try:
                info = os.lstat(full)
            except OSError:
                continue
            if stat.S_ISREG(info.st_mode):
                out.append([os.path.relpath(full, WORKDIR), info.st_size])
                if len(out) >= _MAX_FILES:
                    return out
    return out


# --- the Python worker --------------------------------------------------------------------


class _Cell:
    in_cell = False
    pid = os.getpid()


def _on_sigint(signum: int, frame: object) -> None:
    if _Cell.in_cell:
        raise KeyboardInterrupt


def _displays(value: object, has_value: bool, cap: int) -> list[dict[str, str]]:
    """PNG of every open matplotlib figure (then closed), and the value's rich form; past
    ``cap`` bytes in all, the rest is dropped (and said on stderr)."""
    out = _rich(value, has_value)
    kept: list[dict[str, str]] = []
    total = 0
    for item in out:
        total += len(item["data"])
        if total > cap:
            print(f"session: displays past {cap} bytes dropped", file=sys.stderr)
            break
        kept.append(item)
    return kept


def _rich(value: object, has_value: bool) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is not None:
        try:
            for number in plt.get_fignums():
                buffer = io.BytesIO()
                plt.figure(number).savefig(buffer, format="png")
                png = base64.b64encode(buffer.getvalue()).decode()
                out.append({"mime": "image/png", "data": png})
            plt.close("all")
        except Exception:
            traceback.print_exc()
    if has_value and value is not None:
        for method, mime in (
            ("_repr_png_", "image/png"),
            ("_repr_svg_", "image/svg+xml"),
            ("_repr_html_", "text/html"),
        ):
            fn = getattr(value, method, None)
            if not callable(fn) or isinstance(value, type):
                continue
            try:
                data = fn()
            except Exception:
                traceback.print_exc()
                continue
            if isinstance(data, tuple):  # IPython's (data, metadata)
                data = data[0]
            if data is None:
                continue
            raw = data.encode() if isinstance(data, str) else bytes(data)
            out.append({"mime": mime, "data": base64.b64encode(raw).decode()})
            break
    return out


_AST_FLAGS = ast.PyCF_ONLY_AST
#: Top-level ``await`` in a cell, as in IPython (Python >= 3.8).
_AWAIT = getattr(ast, "PyCF_ALLOW_TOP_LEVEL_AWAIT", 0)
_loop = None


def _awaited(value: object) -> object:
    """A cell compiled with top-level await evaluates to a coroutine: run it on the
    session's own event loop (kept between cells, so tasks and futures survive)."""
    if not inspect.iscoroutine(value):
        return value
    global _loop
    if _loop is None:
        import asyncio

        _loop = asyncio.new_event_loop()
    task = _loop.create_task(value)
    try:
        return _loop.run_until_complete(task)
    except BaseException:
        # Interrupted: the cell's task must not run on in a later cell's await.
        task.cancel()
        with contextlib.suppress(BaseException):
            _loop.run_until_complete(task)
        raise


def _run_cell(code: str, number: int, namespace: dict[str, object], cap: int) -> dict[str, object]:
    filename = f"<cell {number}>"
    linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
    value: object = None
    has_value = False
    answer: dict[str, object] = {"result": None, "error": None, "displays": []}
    try:
        tree = compile(code, filename, "exec", _AST_FLAGS | _AWAIT, dont_inherit=True)
        last = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = ast.Expression(tree.body.pop().value)
        body = compile(tree, filename, "exec", _AWAIT, dont_inherit=True)
        tail = None
        if last is not None:
            tail = compile(last, filename, "eval", _AWAIT, dont_inherit=True)
        _Cell.in_cell = True
        try:
            _awaited(eval(body, namespace))
            if tail is not None:
                value = _awaited(eval(tail, namespace))
                has_value = True
        finally:
            _Cell.in_cell = False
    except SystemExit:
        raise
    except BaseException as exc:  # the cell's exception is its result
        _Cell.in_cell = False
        shown_tb = traceback.TracebackException(type(exc), exc, exc.__traceback__)
        # This file's frames (the cell runner, the SIGINT handler) are not the cell's.
        shown_tb.stack = traceback.StackSummary.from_list(
            [frame for frame in shown_tb.stack if frame.filename != __file__]
        )
        text = "".join(shown_tb.format())
        try:
            shown = str(exc)
        except Exception:
            shown = "<unprintable>"
        answer["error"] = {
            "name": type(exc).__name__,
            "value": shown[:cap],
            "traceback": text[-cap:],
        }
    if os.getpid() != _Cell.pid:
        # A process the cell forked (os.fork) got here: it must not answer, nor read the
        # next request. Its output so far is the cell's.
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(0)
    if has_value and value is not None:
        namespace["_"] = value
        try:
            answer["result"] = repr(value)[:cap]
        except Exception as exc:
            answer["result"] = f"<repr failed: {type(exc).__name__}: {exc}>"
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except Exception:
        pass
    answer["displays"] = _displays(value, has_value, cap)
    return answer


def worker() -> None:
    import warnings

    r, w = (int(fd) for fd in os.environ.pop("EXECUTOR_SESSION_CTL").split(","))
    os.set_inheritable(r, False)
    os.set_inheritable(w, False)
    try:  # the OOM killer takes the interpreter, never the supervisor
        with open("/proc/self/oom_score_adj", "w") as fh:
            fh.write("1000")
    except OSError:
        pass
    _Cell.pid = os.getpid()
    signal.signal(signal.SIGINT, _on_sigint)
    warnings.filterwarnings("ignore", message=".*non-interactive.*")
    warnings.filterwarnings("ignore", message=".*cannot show the figure.*")
    sys.argv = [""]
    sys.path[0] = ""
    namespace: dict[str, object] = {"__name__": "__main__", "__builtins__": __builtins__}
    control = os.fdopen(r, "rb")
    os.write(w, b'{"ready":true}\n')
    for line in control:
        request = json.loads(line)
        stdin = request.get("stdin")
        if stdin is not None:
            path = os.path.join(PRIVATE, "stdin")
            with open(path, "w") as fh:
                fh.write(stdin)
            fd = os.open(path, os.O_RDONLY)
            os.unlink(path)
        else:
            fd = os.open(os.devnull, os.O_RDONLY)
        os.dup2(fd, 0)
        os.close(fd)
        sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding="utf-8")
        answer = _run_cell(request["code"], request["cell"], namespace, request["cap"])
        try:
            data = _json_line(answer)
        except (TypeError, ValueError) as exc:
            data = _json_line({"result": None, "error": None, "displays": [], "bug": str(exc)})
        _write_all(w, data)


def main() -> None:
    if sys.argv[1:2] == ["--worker"]:
        worker()
        return
    language = sys.argv[1] if len(sys.argv) > 1 else "python"
    if language not in ("python", "bash"):
        sys.exit(f"session: unknown language {language!r} (python or bash)")
    Supervisor(language).serve()


if __name__ == "__main__":
    main()
