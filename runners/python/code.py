"""The code runner: runs a program (Python or bash source) as its own process for CodeExecutor.

The Python runner loads this file as its task module (``EXECUTOR_MODULE=/opt/executor/code.py``)
in every mode (one-shot, serve, fork), so the program runs as a child of the task process:

1. a fresh working directory ``$TMPDIR/executor-code-XXXX/work``; the program is saved there as
   ``main.py`` (``main.sh`` for bash) and the input files are written next to it;
2. ``python3 main.py ARGV...`` (or ``bash main.sh ARGV...``) in that directory, in a session of
   its own, stdin fed from ``input.stdin``, stdout and stderr read through pipes: each kept up
   to its cap (``max_stdout``/``max_stderr`` bytes; more is read, dropped and flagged), and, in
   stream mode (``forward``), each line copied to this process's stderr as it comes, tagged
   ``\\x1eo`` (stdout) or ``\\x1ee`` (stderr) so the host can tell them apart;
3. at ``timeout`` (just under the call's own) the program's session is killed: ``timed_out``;
   when the program exits, whatever it left running in its session is killed too;
4. the files back: every regular file under the working directory that is new, or whose
   content differs from the input file of that name (the program file counts as an input),
   within ``max_collect_bytes`` (sizes plus relative path lengths) and ``max_collect_files``;
   past a limit ``files_error`` says so, and no file comes back;
5. the directory is removed.

Output: ``{stdout, stderr, exit_code, stdout_truncated, stderr_truncated, timed_out, duration,
files, files_error}``; ``exit_code`` is 128 + N for a program killed by signal N. Standard
library only, Python >= 3.8.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import selectors
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time

LANGUAGES = {"python": "main.py", "bash": "main.sh"}
TAGS = {"stdout": b"\x1eo", "stderr": b"\x1ee"}
#: A line longer than this is forwarded in pieces (stream mode stays live).
_LINE_PIECE = 64 * 1024
#: After the program exits, how long to wait for what its leftovers hold in the pipes.
_DRAIN_SECONDS = 0.5
_CONTROL = re.compile("[\x00-\x1f\x7f]")
_OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_OPEN_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class _Stream:
    """One of the program's output pipes: the bytes kept, and the line being forwarded."""

    def __init__(self, name: str, cap: int, forward: bool):
        self.tag = TAGS[name] if forward else None
        self.cap = cap
        self.kept = bytearray()
        self.truncated = False
        self.line = bytearray()

    def take(self, data: bytes) -> None:
        room = self.cap - len(self.kept)
        if len(data) > room:
            self.truncated = True
            data = data[: max(room, 0)]
        self.kept += data
        if self.tag is not None and data:
            self.line += data
            start = 0
            while True:
                end = self.line.find(b"\n", start)
                if end < 0:
                    break
                _forward(self.tag + bytes(self.line[start : end + 1]))
                start = end + 1
            del self.line[:start]
            while len(self.line) >= _LINE_PIECE:
                _forward(self.tag + bytes(self.line[:_LINE_PIECE]) + b"\n")
                del self.line[:_LINE_PIECE]

    def flush(self) -> None:
        if self.tag is not None and self.line:
            _forward(self.tag + bytes(self.line) + b"\n")
            self.line.clear()


def _forward(data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(2, view) :]


def _relative(name: str) -> str:
    """A safe relative path (``a/b.txt``) or ValueError."""
    if not isinstance(name, str) or not name or name.startswith("/") or "\\" in name:
        raise ValueError(f"file name {name!r} must be a relative path")
    parts = name.split("/")
    if any(part in ("", ".", "..") for part in parts) or _CONTROL.search(name):
        raise ValueError(f"file name {name!r} must be a plain relative path")
    return name


def _write_inputs(work: str, files: dict, program: str, code: str) -> dict:
    inputs = {}
    for name, encoded in files.items():
        name = _relative(name)
        if name == program:
            raise ValueError(f"{program} is the program itself: give the input file another name")
        data = base64.b64decode(encoded)
        path = os.path.join(work, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as fh:
            fh.write(data)
        inputs[name] = data
    source = code.encode("utf-8", "surrogateescape")
    with open(os.path.join(work, program), "wb") as fh:
        fh.write(source)
    inputs[program] = source
    return inputs


def _environment(work: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXECUTOR_")}
    env["PYTHONUNBUFFERED"] = "1"  # lines reach the pipe (and the stream) as printed
    env["PWD"] = work
    return env


def _kill_session(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _run(command: list, work: str, task: dict) -> dict:
    """Run the program; what it wrote, how it ended and how long it took."""
    forward = bool(task.get("forward"))
    streams = {
        "stdout": _Stream("stdout", int(task["max_stdout"]), forward),
        "stderr": _Stream("stderr", int(task["max_stderr"]), forward),
    }
    pending = memoryview(task.get("stdin", "").encode("utf-8", "surrogateescape"))
    timeout = task.get("timeout")
    started = time.monotonic()
    process = subprocess.Popen(
        command,
        cwd=work,
        env=_environment(work),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        close_fds=True,
    )
    deadline = None if timeout is None else started + float(timeout)
    selector = selectors.DefaultSelector()
    for pipe, name in ((process.stdout, "stdout"), (process.stderr, "stderr")):
        os.set_blocking(pipe.fileno(), False)
        selector.register(pipe, selectors.EVENT_READ, name)
    os.set_blocking(process.stdin.fileno(), False)
    if pending:
        selector.register(process.stdin, selectors.EVENT_WRITE, "stdin")
    else:
        process.stdin.close()
    timed_out = False
    ended_at = drain_until = None
    try:
        while True:
            now = time.monotonic()
            if ended_at is None and process.poll() is not None:
                ended_at = now
            if ended_at is None and deadline is not None and now >= deadline:
                timed_out = True
                _kill_session(process.pid)
                process.wait()
                ended_at = now
            if ended_at is not None:
                if drain_until is None:
                    _kill_session(process.pid)  # what the program left running ends with it
                    drain_until = now + _DRAIN_SECONDS
                reading = any(key.data != "stdin" for key in selector.get_map().values())
                if not reading or now >= drain_until:
                    break  # read to the end, or an escaped process holds the pipes
            wait = 0.05
            for limit in (deadline if ended_at is None else None, drain_until):
                if limit is not None:
                    wait = min(wait, max(0.0, limit - now))
            if not selector.get_map():
                # The pipes are closed and the program still runs: wait for its exit.
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=wait)
                continue
            for key, _ in selector.select(wait):
                if key.data == "stdin":
                    try:
                        pending = pending[os.write(key.fileobj.fileno(), pending[:65536]) :]
                    except BlockingIOError:
                        continue
                    except OSError:  # the program closed its stdin: the rest is not wanted
                        pending = pending[:0]
                    if not pending:
                        selector.unregister(key.fileobj)
                        key.fileobj.close()
                    continue
                try:
                    data = os.read(key.fileobj.fileno(), 65536)
                except BlockingIOError:
                    continue
                if data:
                    streams[key.data].take(data)
                else:
                    selector.unregister(key.fileobj)
    finally:
        _kill_session(process.pid)
        selector.close()
        for pipe in (process.stdin, process.stdout, process.stderr):
            if not pipe.closed:
                pipe.close()
        returncode = process.wait()
    for stream in streams.values():
        stream.flush()
    return {
        "stdout": streams["stdout"].kept.decode("utf-8", "replace"),
        "stderr": streams["stderr"].kept.decode("utf-8", "replace"),
        "stdout_truncated": streams["stdout"].truncated,
        "stderr_truncated": streams["stderr"].truncated,
        "exit_code": 128 - returncode if returncode < 0 else returncode,
        "timed_out": timed_out,
        "duration": (ended_at or time.monotonic()) - started,
    }


class _TooLarge(Exception):
    pass


def _collect(work: str, inputs: dict, max_bytes: int, max_files: int) -> dict:
    """New or changed regular files under ``work`` as {relative path: base64}."""
    files = {}
    used = 0

    def walk(dir_fd: int, prefix: str) -> None:
        nonlocal used
        for name in sorted(os.listdir(dir_fd)):
            relative = prefix + name
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                sub = os.open(name, _OPEN_DIR, dir_fd=dir_fd)
                try:
                    walk(sub, relative + "/")
                finally:
                    os.close(sub)
                continue
            if not stat.S_ISREG(st.st_mode):
                continue  # symlinks, FIFOs, sockets: regular files only
            try:
                encoded = relative.encode("utf-8")
            except UnicodeEncodeError:
                raise OSError(f"a file name is not valid UTF-8: {relative!r}") from None
            if _CONTROL.search(relative):
                raise OSError(f"a file name holds a control character: {relative!r}")
            original = inputs.get(relative)
            room = max_bytes - used - len(encoded)
            limit = max(room, len(original) if original is not None else 0)
            fd = os.open(name, _OPEN_FILE, dir_fd=dir_fd)
            try:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    continue
                chunks = []
                size = 0
                while size <= limit:
                    chunk = os.read(fd, min(limit + 1 - size, 1 << 20))
                    if not chunk:
                        break
                    chunks.append(chunk)
                    size += len(chunk)
            finally:
                os.close(fd)
            data = b"".join(chunks)
            if original is not None and data == original:
                continue  # an input file, unchanged
            if len(files) >= max_files:
                raise _TooLarge(f"more than {max_files} files")
            if size > room:
                raise _TooLarge(f"more than {max_bytes} bytes")
            used += len(encoded) + size
            files[relative] = base64.b64encode(data).decode("ascii")

    fd = os.open(work, _OPEN_DIR)
    try:
        walk(fd, "")
    finally:
        os.close(fd)
    return files


def _remove(path: str) -> None:
    def retry(function, target, _info):
        with contextlib.suppress(OSError):  # made unreadable by the program: open it up
            os.chmod(os.path.dirname(target), 0o700)
            os.chmod(target, 0o700)
        with contextlib.suppress(OSError):
            function(target)

    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=retry)
    else:  # onerror is deprecated from 3.12 on
        shutil.rmtree(path, onerror=retry)


def execute(task):
    language = task.get("language")
    program = LANGUAGES.get(language)
    if program is None:
        raise ValueError(
            f"this image runs {', '.join(sorted(LANGUAGES))} programs, not {language!r}"
        )
    base = tempfile.mkdtemp(prefix="executor-code-")
    try:
        work = os.path.join(base, "work")
        os.mkdir(work)
        inputs = _write_inputs(work, task.get("files") or {}, program, task["code"])
        interpreter = [sys.executable] if language == "python" else ["bash"]
        argv = [str(arg) for arg in task.get("argv") or []]
        result = _run([*interpreter, program, *argv], work, task)
        result["files"] = {}
        result["files_error"] = None
        if not result["timed_out"]:
            try:
                result["files"] = _collect(
                    work, inputs, int(task["max_collect_bytes"]), int(task["max_collect_files"])
                )
            except _TooLarge as exc:
                result["files_error"] = {"code": "COLLECT_TOO_LARGE", "message": str(exc)}
            except (OSError, RecursionError) as exc:
                result["files_error"] = {"code": "COLLECT_FAILED", "message": str(exc)}
        return result
    finally:
        _remove(base)
