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

    def __init__(self, name: str, cap: int, forward: bool, limit=None):
        self.tag = TAGS[name] if forward else None
        self.cap = cap
        self.kept = bytearray()
        self.truncated = False
        self.line = bytearray()
        self.limit = limit  # judging: more than this is OLE (the program is killed)
        self.total = 0

    def take(self, data: bytes) -> None:
        self.total += len(data)
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


def _reap(process, flags: int):
    """``wait4`` the program: its status into ``process.returncode``, its rusage kept."""
    try:
        pid, status, rusage = os.wait4(process.pid, flags)
    except ChildProcessError:
        return process.returncode
    if pid == 0:
        return None
    if os.WIFSIGNALED(status):
        process.returncode = -os.WTERMSIG(status)
    else:
        process.returncode = os.WEXITSTATUS(status)
    process.rusage = rusage
    return process.returncode


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _cpu_seconds(pid: int):
    """The CPU seconds (user + system, all threads) a running process used so far, or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICK
    except (OSError, IndexError, ValueError):
        return None


def _peak_rss(pid: int):
    """The peak resident set (bytes) of a running process so far (gVisor has no VmHWM: its
    current one), or None."""
    found = {}
    try:
        with open(f"/proc/{pid}/status", "rb") as fh:
            for line in fh:
                if line.startswith((b"VmHWM:", b"VmRSS:")):
                    found[line[:5]] = int(line.split()[1]) * 1024
    except (OSError, IndexError, ValueError):
        pass
    return found.get(b"VmHWM", found.get(b"VmRSS"))


#: The judge image's spawner (runners/python/spawn.c): the program forked from a tiny process.
SPAWN = "/opt/executor/executor-spawn"


class _Spawned:
    """The program behind ``executor-spawn``: its pid, then its wait4 status and rusage."""

    def __init__(self, fd: int):
        self.fd = fd
        self.buffer = b""
        self.pid = None
        self.line = self._line()
        if self.line:
            self.pid = int(self.line)

    def _line(self):
        while b"\n" not in self.buffer:
            chunk = os.read(self.fd, 256)
            if not chunk:
                return None
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line

    def finish(self, process) -> None:
        """After the spawner exited: the program's status and rusage in place of its own."""
        try:
            line = self._line()
        finally:
            os.close(self.fd)
        if not line:
            return  # the spawner was killed: its own status and rusage stand
        status, utime, stime, maxrss = line.split()
        status = int(status)
        if os.WIFSIGNALED(status):
            process.returncode = -os.WTERMSIG(status)
        else:
            process.returncode = os.WEXITSTATUS(status)
        process.rusage = (float(utime) + float(stime), int(maxrss) * 1024)


def _limiter(limits):
    """A preexec function setting RLIMIT_CPU (a backstop for the polled CPU limit)."""
    seconds = limits.get("cpu")
    if seconds is None:
        return None

    def apply():
        import resource

        soft = int(seconds) + 1
        resource.setrlimit(resource.RLIMIT_CPU, (soft, soft + 1))

    return apply


def _run(command: list, work: str, task: dict, limits=None, env=None) -> dict:
    """Run the program; what it wrote, how it ended, how long it took and what it used.

    ``limits`` (judging): ``cpu`` seconds (polled from /proc, RLIMIT_CPU as a backstop),
    ``wall`` seconds, ``memory`` bytes of peak RSS (polled), ``output`` bytes of stdout; the
    first passed is ``limit_hit`` (the program is killed then).
    """
    limits = limits or {}
    forward = bool(task.get("forward"))
    streams = {
        "stdout": _Stream("stdout", int(task["max_stdout"]), forward, limits.get("output")),
        "stderr": _Stream("stderr", int(task["max_stderr"]), forward),
    }
    pending = memoryview(task.get("stdin", "").encode("utf-8", "surrogateescape"))
    timeout = task.get("timeout")
    report = None
    if limits.get("spawn") and os.access(SPAWN, os.X_OK):
        report, writer = os.pipe()
        command = [SPAWN, str(writer), *command]
    started = time.monotonic()
    process = subprocess.Popen(
        command,
        cwd=work,
        env=env or _environment(work),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        close_fds=True,
        pass_fds=() if report is None else (writer,),
        preexec_fn=_limiter(limits),
    )
    process.rusage = None
    spawned = None
    pid = process.pid  # the program's (its session's) pid
    if report is not None:
        os.close(writer)
        spawned = _Spawned(report)
        pid = spawned.pid or process.pid
    deadline = None if timeout is None else started + float(timeout)
    wall = limits.get("wall")
    if wall is not None:
        wall = started + float(wall)
    cpu_limit = limits.get("cpu")
    memory_limit = limits.get("memory")
    watching = cpu_limit is not None or memory_limit is not None
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
    limit_hit = None
    ended_at = drain_until = None
    try:
        while True:
            now = time.monotonic()
            if ended_at is None and _reap(process, os.WNOHANG) is not None:
                ended_at = now
            if ended_at is None:
                if deadline is not None and now >= deadline:
                    timed_out = True
                elif wall is not None and now >= wall:
                    limit_hit = "wall"
                elif streams["stdout"].limit is not None and (
                    streams["stdout"].total > streams["stdout"].limit
                ):
                    limit_hit = "output"
                elif watching:
                    used = _cpu_seconds(pid) if cpu_limit is not None else None
                    peak = _peak_rss(pid) if memory_limit is not None else None
                    if used is not None and used > cpu_limit:
                        limit_hit = "cpu"
                    elif peak is not None and peak > memory_limit:
                        limit_hit = "memory"
                if timed_out or limit_hit:
                    _kill_session(pid)  # the spawner, if any, lives on to reap it
                    _reap(process, 0)
                    ended_at = now
            if ended_at is not None:
                if drain_until is None:
                    _kill_session(pid)  # what the program left running ends with it
                    drain_until = now + _DRAIN_SECONDS
                reading = any(key.data != "stdin" for key in selector.get_map().values())
                if not reading or now >= drain_until:
                    break  # read to the end, or an escaped process holds the pipes
            wait = 0.02 if watching else 0.05
            for limit in (deadline if ended_at is None else None, wall, drain_until):
                if limit is not None:
                    wait = min(wait, max(0.0, limit - now))
            if not selector.get_map():
                # The pipes are closed and the program still runs: wait for its exit.
                time.sleep(wait)
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
        _kill_session(pid)
        if pid != process.pid:
            if process.returncode is None:
                with contextlib.suppress(OSError):
                    _reap(process, 0)  # the spawner reports, then exits
            _kill_session(process.pid)
        selector.close()
        for pipe in (process.stdin, process.stdout, process.stderr):
            if not pipe.closed:
                pipe.close()
        if process.returncode is None:
            _reap(process, 0)
        if spawned is not None:
            spawned.finish(process)
        returncode = process.returncode
    for stream in streams.values():
        stream.flush()
    duration = (ended_at or time.monotonic()) - started
    rusage = process.rusage
    if hasattr(rusage, "ru_maxrss"):  # wait4's own (a structseq is a tuple too)
        rusage = (rusage.ru_utime + rusage.ru_stime, rusage.ru_maxrss * 1024)
    return {
        "stdout": streams["stdout"].kept.decode("utf-8", "replace"),
        "stderr": streams["stderr"].kept.decode("utf-8", "replace"),
        "stdout_truncated": streams["stdout"].truncated,
        "stderr_truncated": streams["stderr"].truncated,
        "exit_code": 128 - returncode if returncode < 0 else returncode,
        "signal": -returncode if returncode < 0 else None,
        "timed_out": timed_out,
        "limit_hit": limit_hit,
        "duration": duration,
        "usage": {
            "cpu_time": None if rusage is None else rusage[0],
            "peak_memory": None if rusage is None else rusage[1],
            "wall_time": duration,
        },
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


# -- compiled languages and judging -------------------------------------------------------------

#: Language → (source file, compile command before the flags or None, the files' tail).
_COMPILERS = {
    "c": ("main.c", ["gcc"], ["main.c", "-o", "main", "-lm"]),
    "cpp": ("main.cpp", ["g++"], ["main.cpp", "-o", "main"]),
    "rust": ("main.rs", ["rustc"], ["main.rs", "-o", "main"]),
    "go": ("main.go", ["go", "build"], ["-o", "main", "main.go"]),
    "java": ("Main.java", ["javac"], ["Main.java"]),
}
_SIGNALS = {getattr(signal, n): n for n in dir(signal) if n.startswith("SIG") and "_" not in n}
#: Limits of the compile step besides the call's own timeout.
_COMPILE_SECONDS = 60.0


#: An ES module (import/export statements): main.mjs, else main.cjs; as runners/node/code.mjs.
_ESM = re.compile(r"^\s*(import\s*[\w{*'\"]|export\s)", re.MULTILINE | re.ASCII)


def _program(language: str, code: str = "") -> str:
    if language in LANGUAGES:
        return LANGUAGES[language]
    if language == "node" and shutil.which("node"):
        # The judge image carries the Node runner's node: a Node program next to a checker in
        # any language, or a JavaScript checker for any program.
        return "main.mjs" if _ESM.search(code) else "main.cjs"
    if language in _COMPILERS and shutil.which(_COMPILERS[language][1][0]):
        return _COMPILERS[language][0]
    runs = sorted(set(LANGUAGES) | {n for n, c in _COMPILERS.items() if shutil.which(c[1][0])})
    if shutil.which("node"):
        runs.append("node")
    raise ValueError(f"this image runs {', '.join(runs)} programs, not {language!r}")


#: A Node program's preload: its stdout and stderr block on a full pipe, as every other
#: language's do. Node makes pipes non-blocking and queues what does not fit in memory, so a
#: program flooding its output would stall at the pipe's 64 KiB and grow until MLE instead of
#: reaching the output limit (OLE).
_NODE_PRELOAD = """"use strict";
{ const at = process.execArgv.indexOf("--require"); if (at >= 0) process.execArgv.splice(at, 2); }
for (const stream of [process.stdout, process.stderr]) stream._handle?.setBlocking?.(true);
"""


def _node_preload(base: str) -> str:
    path = os.path.join(base, "stdio.cjs")
    if not os.path.exists(path):
        with open(path, "w") as fh:
            fh.write(_NODE_PRELOAD)
    return path


def _command(language: str, work: str, program: str, memory_limit, base: str) -> list:
    """How to start the (compiled) program in ``work`` (``base``: the run's directory)."""
    if language == "python":
        return [sys.executable, program]
    if language == "bash":
        return ["bash", program]
    if language == "node":
        return ["node", "--require", _node_preload(base), program]
    if language == "java":
        # RLIMIT_AS would stop the JVM reserving its heap and code cache: the heap is capped
        # with -Xmx instead, and the peak RSS is measured like everyone else's.
        heap = [f"-Xmx{memory_limit // 1024}k"] if memory_limit else []
        return ["java", *heap, "-Xss64m", "-XX:+UseSerialGC", "-Xshare:auto", "-cp", work, "Main"]
    return [os.path.join(work, "main")]


def _toolchain_env(base: str, work: str) -> dict:
    env = _environment(work)
    env.update(HOME=base, TMPDIR=os.path.join(base, "tmp"), GOCACHE=os.path.join(base, "gocache"))
    env.update(GOPATH=os.path.join(base, "gopath"), CGO_ENABLED="0", GO111MODULE="off")
    env.setdefault("JAVA_TOOL_OPTIONS", "-XX:+UseSerialGC -Xshare:auto")
    os.makedirs(env["TMPDIR"], exist_ok=True)
    return env


def _compile(language: str, flags, work: str, base: str, task: dict, deadline) -> dict:
    """Compile ``work``'s source; the Compile record (``ok`` false: CE)."""
    _, compiler, tail = _COMPILERS[language]
    seconds = (
        _COMPILE_SECONDS if deadline is None else min(_COMPILE_SECONDS, deadline - time.monotonic())
    )
    sub = dict(task, stdin="", forward=False, timeout=max(seconds, 0.0))
    result = _run([*compiler, *(flags or []), *tail], work, sub, env=_toolchain_env(base, work))
    timed_out = result["timed_out"]
    ok = result["exit_code"] == 0 and not timed_out
    stderr = result["stderr"]
    if timed_out:
        stderr += f"\n[executor] the compiler ran out of time ({seconds:.1f} s)\n"
    # Java: the compiler wrote Main.class; the JVM is told the class path at run time.
    return {
        "ok": ok,
        "stdout": result["stdout"],
        "stderr": stderr,
        "exit_code": result["exit_code"],
        "duration": result["duration"],
        "usage": result["usage"],
        "timed_out": timed_out and deadline is not None and time.monotonic() >= deadline,
    }


def _signal_name(number) -> str:
    return _SIGNALS.get(number, f"signal {number}")


def _tokens_equal(actual: str, expected: str, tolerance) -> bool:
    got, want = actual.split(), expected.split()
    if len(got) != len(want):
        return False
    if tolerance is None:
        return got == want
    for index, a in enumerate(got):
        b = want[index]
        if a == b:
            continue
        try:
            x, y = float(a), float(b)
        except ValueError:
            return False
        if x != x or y != y or abs(x - y) > tolerance * max(1.0, abs(y)):
            return False
    return True


def _lines(text: str) -> list:
    lines = [line.rstrip() for line in text.split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def _same(actual: str, expected: str, compare: str, tolerance) -> bool:
    if compare == "exact":
        return actual == expected
    if compare == "lines":
        return _lines(actual) == _lines(expected)
    if compare == "float":
        return _tokens_equal(actual, expected, tolerance)
    return _tokens_equal(actual, expected, None)


def _verdict(run: dict, memory_limit, language: str):
    """The verdict of a run before its output is looked at (None: it ended well), and why.

    The limits this runner enforced come first (it killed the program for one of them); then
    what the kernel says: SIGXCPU (RLIMIT_CPU), a peak RSS over the limit (the container's
    OOM killer included: its peak was over it too), Java's OutOfMemoryError (-Xmx), V8's heap
    out of memory.
    """
    hit = run["limit_hit"]
    peak = run["usage"]["peak_memory"]
    if hit == "cpu":
        return "TLE", "CPU time limit exceeded (killed)"
    if hit == "wall":
        return "TLE", "wall time limit (3x the CPU limit) exceeded: the program waited (killed)"
    if hit == "memory":
        return "MLE", f"peak memory over the limit of {memory_limit} bytes (killed)"
    if hit == "output":
        return "OLE", "output limit exceeded (killed)"
    if run["signal"] == signal.SIGXCPU:
        return "TLE", "CPU time limit exceeded (SIGXCPU)"
    if memory_limit and peak is not None and peak > memory_limit:
        return "MLE", f"peak memory {peak} bytes > limit {memory_limit}"
    if language == "java" and "java.lang.OutOfMemoryError" in run["stderr"]:
        return "MLE", "java.lang.OutOfMemoryError (heap capped at the memory limit)"
    if language == "node" and "JavaScript heap out of memory" in run["stderr"]:
        return "MLE", "JavaScript heap out of memory"
    if run["signal"] is not None:
        return "RE", f"killed by {_signal_name(run['signal'])}"
    if run["exit_code"] != 0:
        return "RE", f"exit code {run['exit_code']}"
    return None, ""


def _add_artefacts(work: str, inputs: dict) -> None:
    """What the compiler made counts as input: files back are what the program made."""
    for root, _dirs, names in os.walk(work):
        for name in names:
            path = os.path.join(root, name)
            relative = os.path.relpath(path, work)
            if relative not in inputs and os.path.isfile(path) and not os.path.islink(path):
                with open(path, "rb") as fh:
                    inputs[relative] = fh.read()


def _fresh_copy(source: str, target: str) -> None:
    shutil.copytree(source, target, symlinks=True)


def _check(checker: dict, test: dict, actual: str, base: str, task: dict, deadline):
    """Run the checker on one test: (passed, message)."""
    where = tempfile.mkdtemp(prefix="check-", dir=base)
    try:
        work = os.path.join(where, "work")
        _fresh_copy(checker["dir"], work)
        paths = []
        for name, text in (
            ("input.txt", test.get("stdin") or ""),
            ("output.txt", actual),
            ("answer.txt", test.get("expected") or ""),
        ):
            path = os.path.join(where, name)
            with open(path, "wb") as fh:
                fh.write(text.encode("utf-8", "surrogateescape"))
            paths.append(path)
        command = _command(checker["language"], work, checker["program"], None, base)
        seconds = None if deadline is None else max(deadline - time.monotonic(), 0.0)
        sub = dict(task, stdin="", forward=False, timeout=seconds, max_stdout=4096, max_stderr=4096)
        result = _run([*command, *paths], work, sub)
        message = (result["stdout"] + result["stderr"]).strip()[:1000]
        if result["timed_out"]:
            return None, "the checker ran out of time"
        if result["exit_code"] != 0:
            return False, message or f"the checker said WA (exit code {result['exit_code']})"
        return True, message
    finally:
        _remove(where)


def _prepare(language: str, code: str, files: dict, flags, base: str, name: str, task, deadline):
    """Write and (for compiled languages) compile one program in ``base/name``."""
    program = _program(language, code)
    work = os.path.join(base, name)
    os.mkdir(work)
    inputs = _write_inputs(work, files, program, code)
    compiled = None
    if language in _COMPILERS:
        compiled = _compile(language, flags, work, base, task, deadline)
    return program, work, inputs, compiled


def _judge(task: dict, language: str, base: str, work: str, program: str, compiled) -> dict:
    timeout = task.get("timeout")
    started = time.monotonic()
    deadline = None if timeout is None else started + float(timeout)
    time_limit = task.get("time_limit")
    memory_limit = task.get("memory_limit")
    limits = {
        "cpu": time_limit,
        "wall": None if time_limit is None else 3 * float(time_limit),
        "memory": memory_limit,
        "output": int(task["max_stdout"]),
        "spawn": True,
    }
    keep = dict(
        task,
        max_stdout=int(task.get("keep_stdout") or task["max_stdout"]),
        max_stderr=int(task.get("keep_stderr") or task["max_stderr"]),
        forward=False,
    )
    checker = task.get("checker")
    if checker is not None:
        cprogram, cwork, _, ccompiled = _prepare(
            checker["language"],
            checker["code"],
            {},
            checker.get("flags"),
            base,
            "checker",
            task,
            deadline,
        )
        if ccompiled is not None and not ccompiled["ok"]:
            raise ValueError("the checker does not compile:\n" + ccompiled["stderr"][-4000:])
        checker = dict(checker, dir=cwork, program=cprogram)
    compare = task.get("compare") or "tokens"
    tolerance = float(task.get("float_tolerance") or 0.0) if compare == "float" else None
    results = []
    timed_out = False
    for index, test in enumerate(task.get("tests") or []):
        if deadline is not None and time.monotonic() >= deadline:
            timed_out = True
            break
        # Each test in a fresh copy of the program's directory, removed after it: a test
        # sees neither another's files nor its input or expected output (kept in memory here).
        where = os.path.join(base, f"test-{index}")
        _fresh_copy(work, where)
        try:
            sub = dict(
                keep,
                stdin=test.get("stdin") or "",
                timeout=None if deadline is None else max(deadline - time.monotonic(), 0.0),
            )
            run = _run(_command(language, where, program, memory_limit, base), where, sub, limits)
        finally:
            _remove(where)
        if run["timed_out"]:
            timed_out = True
            break
        verdict, message = _verdict(run, memory_limit, language)
        expected = test.get("expected")
        if verdict is None and checker is not None:
            # The checker reads the whole output: OLE already caps what it could be.
            passed, message = _check(checker, test, run["stdout"], base, task, deadline)
            if passed is None:
                timed_out = True
                break
            verdict = "AC" if passed else "WA"
        elif verdict is None and expected is not None:
            if run["stdout_truncated"]:
                verdict, message = "WA", "output longer than what is kept for comparison"
            elif _same(run["stdout"], expected, compare, tolerance):
                verdict = "AC"
            else:
                verdict, message = "WA", f"output differs from the expected ({compare})"
        elif verdict is None:
            verdict = "AC"
        results.append(
            {
                "verdict": verdict,
                "message": message,
                "stdout": run["stdout"],
                "stderr": run["stderr"],
                "exit_code": run["exit_code"],
                "usage": run["usage"],
                "stdout_truncated": run["stdout_truncated"],
                "stderr_truncated": run["stderr_truncated"],
            }
        )
        if verdict != "AC" and task.get("stop_on_first_failure"):
            break
    failed = [r["verdict"] for r in results if r["verdict"] != "AC"]
    total = {
        "cpu_time": sum(r["usage"]["cpu_time"] or 0.0 for r in results),
        "peak_memory": max([r["usage"]["peak_memory"] or 0 for r in results] or [0]),
        "wall_time": time.monotonic() - started,
    }
    return {
        "stdout": "",
        "stderr": "",
        "stdout_truncated": False,
        "stderr_truncated": False,
        "exit_code": 0,
        "timed_out": timed_out,
        "duration": total["wall_time"],
        "usage": total,
        "compile": compiled,
        "verdict": failed[0] if failed else "AC",
        "tests": results,
        "files": {},
        "files_error": None,
    }


def execute(task):
    language = task.get("language")
    base = tempfile.mkdtemp(prefix="executor-code-")
    try:
        timeout = task.get("timeout")
        deadline = None if timeout is None else time.monotonic() + float(timeout)
        program, work, inputs, compiled = _prepare(
            language,
            task["code"],
            task.get("files") or {},
            task.get("flags"),
            base,
            "work",
            task,
            deadline,
        )
        if compiled is not None:
            out_of_time = compiled.pop("timed_out")
            if not compiled["ok"]:
                return {
                    "stdout": "",
                    "stderr": "",
                    "exit_code": -1,
                    "stdout_truncated": False,
                    "stderr_truncated": False,
                    "timed_out": out_of_time,
                    "duration": 0.0,
                    "files": {},
                    "files_error": None,
                    "usage": None,
                    "compile": compiled,
                    "verdict": "CE",
                    "tests": [] if task.get("tests") is not None else None,
                }
            _add_artefacts(work, inputs)
            if deadline is not None:
                task = dict(task, timeout=max(deadline - time.monotonic(), 0.0))
        if task.get("tests") is not None:
            return _judge(task, language, base, work, program, compiled)
        limited = task.get("time_limit") is not None or task.get("memory_limit") is not None
        limit = task.get("time_limit")
        limits = {
            "cpu": limit,
            "wall": None if limit is None else 3 * float(limit),
            "memory": task.get("memory_limit"),
            "spawn": True,
        }
        argv = [str(arg) for arg in task.get("argv") or []]
        command = _command(language, work, program, task.get("memory_limit"), base)
        env = _toolchain_env(base, work) if compiled is not None else None
        result = _run([*command, *argv], work, task, limits, env=env)
        result["compile"] = compiled
        result["verdict"] = None
        if limited and not result["timed_out"]:
            result["verdict"] = _verdict(result, task.get("memory_limit"), language)[0] or "AC"
        result["tests"] = None
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
        for key in ("signal", "limit_hit"):
            result.pop(key, None)
        return result
    finally:
        _remove(base)
