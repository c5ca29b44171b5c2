"""Fork mode of the Go and Node runners: the Go supervisor (runners/go/forkd) as PID 1.

Each test starts the runner image the way the container executor does (locked down, the runner
as PID 1, ``EXECUTOR_SERVE=fork``) with one of the ``fork_*`` test modules, and talks to it over
``docker run -i``: ready line, request, answer, ready line, ... The ``fork_*`` conformance
vectors (tests/vectors/) pin the protocol for every runner; these tests pin what is specific to
the supervisor (process cleanup, orphans, SysV IPC, signals, refusal outside PID 1), under runc
and, where the engine has it, gVisor (runsc). Images: ``EXECUTOR_GO_IMAGE`` and
``EXECUTOR_NODE_IMAGE`` (default ``executor/runner-{go,node}:latest``).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import IO, Any

import pytest

from tests._gorunner import GO_ENV, build_go_runner

ROOT = Path(__file__).resolve().parents[2]
MODULES = Path(__file__).resolve().parent / "modules"
RUNNERS = ROOT / "runners"
IMAGES = {
    lang: os.environ.get(f"EXECUTOR_{lang.upper()}_IMAGE", f"executor/runner-{lang}:latest")
    for lang in ("go", "node")
}
LOCKDOWN = ("--read-only", "--network", "none", "--cap-drop", "ALL", "--tmpfs", "/tmp")
READ_TIMEOUT = 30.0


def runtime_options(runtime: str) -> tuple[str, ...]:
    """``--runtime``, and under gVisor the profile the executor sends there (tests/runners/
    _gvisor.py: the engine's default would keep every thread of the Node runner from starting)."""
    if "runsc" in runtime:
        from tests.runners._gvisor import gvisor_profile_file  # run as a script: from the root

        return ("--runtime", runtime, "--security-opt", f"seccomp={gvisor_profile_file()}")
    return ("--runtime", runtime)


REQUEST: dict[str, Any] = {"schema_in": None, "schema_out": None}


# --- building and starting -----------------------------------------------------------------


def go_build(workdir: Path, module: str | None, package: str = "./cmd/runner") -> Path:
    """The Go runner (or another command) built with a test module as its function."""
    out = workdir / "bin" / f"{package.rsplit('/', 1)[-1]}-{module}"
    if out.exists():
        return out
    return build_go_runner(MODULES / "go" / (module or "echo"), out, package)


@pytest.fixture(scope="module")
def go_workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("go") is None:
        pytest.skip("no Go toolchain on PATH (Debian: apt-get install golang-go)")
    return tmp_path_factory.mktemp("forkd-go")


def image_present(image: str) -> bool:
    inspected = subprocess.run(["docker", "image", "inspect", image], capture_output=True)
    return inspected.returncode == 0


@pytest.fixture(scope="module")
def images() -> dict[str, str]:
    missing = [image for image in IMAGES.values() if not image_present(image)]
    if missing:
        message = f"runner images missing: {', '.join(missing)}; run `make images`"
        if os.environ.get("EXECUTOR_REQUIRE_DOCKER") == "1":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return IMAGES


@pytest.fixture(scope="module")
def runtimes() -> list[str]:
    """runc always; runsc when the engine has it registered."""
    info = subprocess.run(
        ["docker", "info", "--format", "{{json .Runtimes}}"],
        capture_output=True,
        text=True,
        check=False,
    )
    names = json.loads(info.stdout or "{}") if info.returncode == 0 else {}
    return ["runc", *(["runsc"] if "runsc" in names else [])]


class Forked:
    """One fork-mode container: send a request, get its answer and the next ready line."""

    def __init__(self, argv: list[str], name: str) -> None:
        self.name = name
        self.stderr: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 (closed by kill)
        self.final_logs = ""
        self.process = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr
        )
        self.lines: queue.Queue[bytes] = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.ready = b""

    def wait_ready(self) -> None:
        """The first ready line (containers start in parallel; their ready lines come later)."""
        if self.ready:
            return
        ready = self.next_line()
        assert ready is not None, f"no ready line; stderr:\n{self.logs()}"
        assert json.loads(ready)["ready"] is True
        assert b'"ok"' not in ready
        self.ready = ready

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put(b"")

    def next_line(self, timeout: float = READ_TIMEOUT) -> bytes | None:
        line = self.lines.get(timeout=timeout)
        return line or None

    def call(self, request: dict[str, Any] | str) -> dict[str, Any]:
        """The answer to one request; asserts the ready line that follows it."""
        answer = self.send(request)
        assert answer is not None, f"no answer; stderr:\n{self.logs()}"
        ready = self.next_line()
        assert ready is not None, f"no ready line after the answer; stderr:\n{self.logs()}"
        assert json.loads(ready) == json.loads(self.ready)
        return answer

    def send(self, request: dict[str, Any] | str) -> dict[str, Any] | None:
        self.wait_ready()
        assert self.process.stdin is not None
        data = request if isinstance(request, str) else json.dumps({**REQUEST, **request})
        self.process.stdin.write(data.encode() + b"\n")
        self.process.stdin.flush()
        line = self.next_line()
        if line is None:
            return None
        assert line.endswith(b"\n")
        answer: dict[str, Any] = json.loads(line)
        if answer.get("ok") is True:
            # Every ok answer says what the call used (docs/RUNNERS.md, "Usage"): its shape is
            # checked here, its numbers in tests/container/test_usage.py.
            usage = answer.pop("usage")
            assert set(usage) == {"cpu_time", "peak_memory", "wall_time"}, usage
        return answer

    def logs(self) -> str:
        if self.stderr.closed:
            return self.final_logs
        self.stderr.seek(0)
        return self.stderr.read().decode("utf-8", "replace")

    def close(self) -> int:
        """Close stdin; the exit status of the container."""
        assert self.process.stdin is not None
        try:
            self.process.stdin.close()
            return self.process.wait(timeout=READ_TIMEOUT)
        finally:
            self.kill()

    def kill(self) -> None:
        if self.process.stdin is not None and not self.process.stdin.closed:
            with contextlib.suppress(BrokenPipeError):
                self.process.stdin.close()
        if self.process.poll() is None:
            subprocess.run(["docker", "rm", "-f", self.name], capture_output=True, check=False)
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        self.reader.join(timeout=5)
        if not self.stderr.closed:
            self.final_logs = self.logs()
            self.stderr.close()


def start(
    lang: str,
    module: str,
    images: dict[str, str],
    workdir: Path | None,
    runtime: str = "runc",
    extra: tuple[str, ...] = (),
) -> Forked:
    name = f"executor-forkd-{uuid.uuid4().hex[:12]}"
    argv = ["docker", "run", "-i", "--rm", "--name", name, *LOCKDOWN, *runtime_options(runtime)]
    argv += ["-e", "EXECUTOR_SERVE=fork", *extra]
    if lang == "go":
        assert workdir is not None
        argv += ["-v", f"{go_build(workdir, module)}:/usr/local/bin/executor-runner:ro"]
    else:
        argv += ["-v", f"{MODULES / 'node' / f'{module}.mjs'}:/app/execute.mjs:ro"]
    return Forked([*argv, images[lang]], name)


@pytest.fixture
def fork(
    images: dict[str, str], request: pytest.FixtureRequest
) -> Any:  # a factory: (lang, module, runtime="runc", extra=()) -> Forked
    started: list[Forked] = []

    def factory(lang: str, module: str, runtime: str = "runc", **kw: Any) -> Forked:
        workdir = request.getfixturevalue("go_workdir") if lang == "go" else None
        forked = start(lang, module, images, workdir, runtime, **kw)
        started.append(forked)
        return forked

    yield factory
    for forked in started:
        forked.kill()


def error_of(answer: dict[str, Any], code: str) -> dict[str, Any]:
    assert answer["ok"] is False, answer
    error: dict[str, Any] = answer["error"]
    assert error["code"] == code, answer
    assert isinstance(error["message"], str) and error["message"]
    return error


LANGS = ["go", "node"]


# --- the container's state between calls ---------------------------------------------------


@pytest.mark.docker
@pytest.mark.parametrize("lang", LANGS)
def test_state_does_not_outlive_a_call(lang: str, fork: Any, runtimes: list[str]) -> None:
    """Module state, /tmp, /dev/shm and the environment are fresh at every call; the answer
    carries the log marker, written to stderr after the task's own logs."""
    for forked in [fork(lang, "fork_state", runtime) for runtime in runtimes]:
        fresh = {"calls": 1, "file_existed": False, "shm_existed": False, "env_seen": False}
        for i in range(2):
            answer = forked.call({"input": None, "log_marker": f"marker-{i}"})
            assert answer == {"ok": True, "output": fresh, "log_marker": f"marker-{i}"}
        assert forked.close() == 0
        logs = forked.logs()
        assert logs.count("marker-0\n") == 1, logs


@pytest.mark.docker
@pytest.mark.parametrize("lang", LANGS)
def test_background_processes_are_killed(lang: str, fork: Any, runtimes: list[str]) -> None:
    """A detached process that ignores SIGTERM does not survive its call's cleanup."""
    for forked in [fork(lang, "fork_daemon", runtime) for runtime in runtimes]:
        assert forked.call({"input": {"spawn": True, "seconds": 0.5}})["output"] == {
            "spawned": True
        }
        assert forked.call({"input": {"check": True}})["output"] == []
        time.sleep(0.8)  # past the daemon's wake-up, had it survived
        assert forked.close() == 0
        assert "survived cleanup" not in forked.logs()


@pytest.mark.docker
@pytest.mark.parametrize("lang", LANGS)
def test_system_v_ipc_and_orphans(lang: str, fork: Any, runtimes: list[str]) -> None:
    """Go: System V IPC objects are removed between calls (gVisor has no /proc/sysvipc: the
    supervisor scans ids there). Node: orphans re-parented to PID 1 are reaped at once."""
    module = "fork_ipc" if lang == "go" else "fork_zombie"
    for forked in [fork(lang, module, runtime) for runtime in runtimes]:
        if lang == "go":
            fresh = {"shm_existed": False, "sem_existed": False, "msg_existed": False}
            for _ in range(2):
                assert forked.call({"input": None})["output"] == fresh
        else:
            assert forked.call({"input": None})["output"] == {"zombies": []}
        assert forked.close() == 0


# --- the answer rules ------------------------------------------------------------------------


@pytest.mark.docker
@pytest.mark.parametrize("lang", LANGS)
def test_timeout_exit_codes_and_protocol_errors(lang: str, fork: Any) -> None:
    """TIMEOUT (the task killed, the container serves on), EXIT_NONZERO with the status,
    PROTOCOL_ERROR for an exit 0 without a response. (The fork_* vectors run these under gVisor
    too.)"""
    for forked, exiting in [(fork(lang, "fork_sleep"), fork(lang, "fork_exit"))]:
        forked.wait_ready()
        started = time.monotonic()
        answer = forked.call({"input": {"seconds": 30}, "timeout": 0.5, "log_marker": "m-t"})
        assert time.monotonic() - started < 5
        assert error_of(answer, "TIMEOUT") and answer["log_marker"] == "m-t"
        answer = forked.call({"input": {"seconds": 0.05}, "timeout": 10})
        assert answer == {"ok": True, "output": {"slept": 0.05}}
        assert forked.close() == 0

        error = error_of(exiting.call({"input": {"code": 3}}), "EXIT_NONZERO")
        assert error["exit_code"] == 3
        error = error_of(exiting.call({"input": {"code": 0}}), "PROTOCOL_ERROR")
        assert "nothing" in error["message"]
        assert exiting.close() == 0


@pytest.mark.docker
@pytest.mark.parametrize("lang", LANGS)
def test_output_limit_and_bad_requests(lang: str, fork: Any) -> None:
    """max_output_bytes is enforced by the parent; requests the task cannot parse still get
    one answer each, from the task's runner."""
    forked = fork(lang, "echo")
    big = {"input": {"text": "x" * 5000}, "max_output_bytes": 1000, "log_marker": "m-big"}
    answer = forked.call(big)
    assert error_of(answer, "OUTPUT_TOO_LARGE") and answer["log_marker"] == "m-big"
    answer = forked.call({"input": {"text": "x" * 5000}, "max_output_bytes": 6000})
    assert answer == {"ok": True, "output": {"text": "x" * 5000}}
    error_of(forked.call("not json"), "BAD_REQUEST")
    error_of(forked.call("[1, 2]"), "BAD_REQUEST")
    assert forked.call({"input": [1, None]}) == {"ok": True, "output": [1, None]}
    assert forked.close() == 0


@pytest.mark.docker
@pytest.mark.parametrize("lang", LANGS)
def test_out_of_memory(lang: str, fork: Any) -> None:
    """Runaway allocation: OOM_KILLED (137), read from the memory cgroup's oom_kill counter; the
    task, not the parent, is the OOM killer's victim, so the container serves on. (Under gVisor
    the host's OOM killer ends the whole sandbox instead: the host replaces the container.)"""
    forked = fork(lang, "fork_oom", extra=("--memory", "128m", "--memory-swap", "128m"))
    answer = forked.call({"input": {"grow": True}, "timeout": 30})
    assert error_of(answer, "OOM_KILLED")["exit_code"] == 137
    assert forked.call({"input": {}}) == {"ok": True, "output": {"grew": False}}
    assert forked.close() == 0


@pytest.mark.docker
def test_a_hoarding_task_leaves_the_next_call_room(fork: Any) -> None:
    """Go: a task that answers holding all but one of the container's tasks, or all but a MiB
    of its memory, does not keep the next call's process from starting (a spare starts beside
    the last task's dying process only when the cgroups leave it room, else after the reaping;
    that dying process usually frees its share first, so this pins the outcome, not the rule)."""
    limits = ("--pids-limit", "96", "--memory", "160m", "--memory-swap", "160m")
    forked = fork("go", "fork_hoard", extra=limits)
    for ask, held in [
        ({"leave_tasks": 1}, {"threads": True, "memory": False}),
        ({"leave_mib": 1}, {"threads": False, "memory": True}),
        ({}, {"threads": False, "memory": False}),
    ]:
        assert forked.call({"input": ask, "timeout": 30}) == {"ok": True, "output": held}
    assert forked.close() == 0


# --- the parent ------------------------------------------------------------------------------


@pytest.mark.docker
def test_parent_is_hardened(fork: Any) -> None:
    """Signals sent to PID 1 are ignored; its /proc files are closed to the task's uid."""
    forked = fork("node", "fork_state")
    # Until its ready line PID 1 may still be run.sh (its snapshot check runs node once), and
    # no task has run yet: the supervisor's hardening is what is probed here.
    forked.wait_ready()
    for signal in ("TERM", "INT", "HUP", "QUIT", "USR1", "USR2", "ABRT"):
        subprocess.run(["docker", "kill", "-s", signal, forked.name], capture_output=True)
    probe = subprocess.run(
        ["docker", "exec", forked.name, "sh", "-c", "cat /proc/1/environ; ls /proc/1/fd"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert probe.returncode != 0
    assert "Permission denied" in probe.stderr
    assert forked.call({"input": None})["ok"] is True
    assert forked.close() == 0


@pytest.mark.docker
def test_protocol_fds_out_of_reach(fork: Any, runtimes: list[str]) -> None:
    """A task's process cannot forge or steal protocol lines through /proc/1/fd: Linux closes
    it (PR_SET_DUMPABLE 0); under gVisor, which does not, the supervisor seals the protocol fds
    while any other process lives. Even a helper left by the module's import (the idle spare)
    gets nothing. (Under gVisor it can spoil its own call's private channel: PROTOCOL_ERROR.)"""
    for forked in [fork("node", "fork_steal", runtime) for runtime in runtimes]:
        answer = forked.call({"input": "secret", "log_marker": "m-secret"})
        assert answer["log_marker"] == "m-secret", answer
        if not answer["ok"]:
            assert error_of(answer, "PROTOCOL_ERROR")
        else:
            assert answer["output"] == "secret", answer
        assert forked.close() == 0
        assert forked.next_line(timeout=5) is None, "a stray line on the protocol stdout"


def node_blob(image: str, out: Path) -> tuple[str, ...]:
    """The docker options that give the image's spares a start-up snapshot: none when the image
    ships one, else a blob built here from its snapshot.cjs (the image builds none when its node
    has V8's built-in snapshot, as the official builds do) and mounted where run.sh looks."""
    blob = "/opt/executor/runner.blob"
    probe = ["docker", "run", "--rm", "--network", "none", "--entrypoint", "test", image]
    if subprocess.run([*probe, "-r", blob], capture_output=True).returncode == 0:
        return ()
    build = ["docker", "run", "--rm", "--network", "none", "--user", "0", "-v", f"{out}:/out"]
    build += ["--entrypoint", "node", image, "--snapshot-blob", "/out/runner.blob"]
    subprocess.run([*build, "--build-snapshot", "/opt/executor/snapshot.cjs"], check=True)
    return ("-v", f"{out / 'runner.blob'}:{blob}:ro")


@pytest.mark.docker
def test_node_spares_start_from_the_snapshot(
    fork: Any, images: dict[str, str], runtimes: list[str], tmp_path: Path
) -> None:
    """Node spares start from a start-up snapshot (the image's, or one built from its
    snapshot.cjs), and their tasks cannot tell (execArgv without the blob, worker threads work,
    Math.random differs per call); with EXECUTOR_NODE_SNAPSHOT=0, or a blob this node cannot
    load, they start without it."""
    (tmp_path / "blob").mkdir()
    with_blob = node_blob(images["node"], tmp_path / "blob")
    for runtime in runtimes:
        forked = fork("node", "fork_snapshot", runtime, extra=with_blob)
        first, second = (forked.call({"input": None}) for _ in range(2))
        for answer in (first, second):
            assert answer["ok"] is True, answer
            output = answer["output"]
            assert "--snapshot-blob" in output["cmdline"], output
            assert output["execArgv"] == [] and output["env"] is None, output
            assert output["worker"] == 42, output
        assert first["output"]["random"] != second["output"]["random"]
        assert forked.close() == 0
    garbage = tmp_path / "runner.blob"
    garbage.write_bytes(b"not a snapshot\n")
    for extra in (
        ("-e", "EXECUTOR_NODE_SNAPSHOT=0"),
        ("-v", f"{garbage}:/opt/executor/runner.blob:ro"),
    ):
        forked = fork("node", "fork_snapshot", extra=extra)
        answer = forked.call({"input": None})
        assert answer["ok"] is True, answer
        assert "--snapshot-blob" not in answer["output"]["cmdline"], answer
        assert forked.close() == 0
        assert ("cannot load" in forked.logs()) == (extra[0] == "-v"), forked.logs()


@pytest.mark.docker
@pytest.mark.parametrize("lang", LANGS)
def test_refuses_unless_pid_1_in_image(lang: str, images: dict[str, str], go_workdir: Path) -> None:
    """Under an init (docker --init), the runner is not PID 1: exit 2, nothing on stdout."""
    argv = ["docker", "run", "-i", "--rm", "--init", *LOCKDOWN, "-e", "EXECUTOR_SERVE=fork"]
    if lang == "go":
        argv += ["-v", f"{go_build(go_workdir, 'echo')}:/usr/local/bin/executor-runner:ro"]
    done = subprocess.run([*argv, images[lang]], input=b"", capture_output=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert done.stdout == b""
    assert b"PID 1" in done.stderr


def test_refuses_unless_pid_1_on_host(go_workdir: Path) -> None:
    """As a host process (Go runner, executor-forkd, or run.sh in fork mode): exit 2."""
    env = {**os.environ, "EXECUTOR_SERVE": "fork"}
    runner = go_build(go_workdir, "echo")
    forkd = go_build(go_workdir, "echo", "./cmd/forkd")
    for argv, extra in (
        ([str(runner)], {}),
        ([str(runner), "--fork"], {"EXECUTOR_SERVE": ""}),
        ([str(forkd), "--", "/bin/true"], {}),
    ):
        done = subprocess.run(argv, input=b"", capture_output=True, env={**env, **extra})
        assert done.returncode == 2, (argv, done.stderr)
        assert b"PID 1" in done.stderr and done.stdout == b""
        assert len(done.stderr.strip().splitlines()) == 1
    run_sh = str(RUNNERS / "node" / "run.sh")
    for argv, extra in (([run_sh], {}), ([run_sh, "--fork"], {"EXECUTOR_SERVE": ""})):
        done = subprocess.run(argv, input=b"", capture_output=True, env={**env, **extra})
        assert done.returncode == 2, done.stderr
        assert b"PID 1" in done.stderr and done.stdout == b""
        assert len(done.stderr.strip().splitlines()) == 1


def test_go_vet_and_unit_tests(go_workdir: Path) -> None:
    """The Go runner's packages (the supervisor included) pass go vet and their unit tests."""
    env = {**os.environ, **GO_ENV}
    for argv in (["go", "vet", "./..."], ["go", "test", "-count=1", "./..."]):
        done = subprocess.run(
            argv, cwd=RUNNERS / "go", env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stdout + done.stderr


# --- cost ------------------------------------------------------------------------------------


def measure(image: str, calls: int = 50, runtime: str = "runc") -> str:
    """Per-call latency (p50) with calls spaced out, and back-to-back throughput, of a trivial
    call to a fork-mode container (the image's own echo function), through ``docker run -i``.

    ``python -m tests.runners.test_forkd IMAGE [CALLS] [RUNTIME]`` prints it.
    """
    name = f"executor-forkd-bench-{uuid.uuid4().hex[:12]}"
    argv = ["docker", "run", "-i", "--rm", "--name", name, *LOCKDOWN, *runtime_options(runtime)]
    forked = Forked([*argv, "-e", "EXECUTOR_SERVE=fork", image], name)
    try:
        request = {"input": {"n": 1}, "log_marker": "bench-marker"}
        answer_times, ready_times = [], []
        for _ in range(calls):
            time.sleep(0.2)  # the next spare is long loaded
            started = time.perf_counter()
            assert forked.send(request) is not None
            answered = time.perf_counter()
            assert forked.next_line() is not None
            answer_times.append(answered - started)
            ready_times.append(time.perf_counter() - answered)
        cpu_before = container_cpu(name)
        started = time.perf_counter()
        for _ in range(calls):
            forked.call(request)
        elapsed = time.perf_counter() - started
        cpu = container_cpu(name) - cpu_before
        assert forked.close() == 0
    finally:
        forked.kill()
    answer_times.sort()
    ready_times.sort()
    cpu_text = f", {cpu / calls * 1000:.1f} ms of CPU a call" if cpu >= 0 else ""
    return (
        f"{image} ({runtime}): spaced calls p50 {answer_times[calls // 2] * 1000:.1f} ms "
        f"(then cleanup + next spare p50 {ready_times[calls // 2] * 1000:.1f} ms); "
        f"back to back {calls / elapsed:.1f} calls/s ({elapsed / calls * 1000:.1f} ms a call"
        f"{cpu_text})"
    )


def container_cpu(name: str) -> float:
    """CPU seconds the container has used (cgroup v1, cgroupfs driver), or -1 if unknown."""
    found = subprocess.run(
        ["docker", "inspect", "-f", "{{.Id}}", name], capture_output=True, text=True, check=False
    )
    usage = Path("/sys/fs/cgroup/cpuacct/docker") / found.stdout.strip() / "cpuacct.usage"
    try:
        return int(usage.read_text()) / 1e9
    except (OSError, ValueError):
        return -1.0


if __name__ == "__main__":
    import sys

    args = sys.argv[1:]
    if not args:
        sys.exit("usage: python -m tests.runners.test_forkd IMAGE [CALLS] [RUNTIME]")
    print(measure(args[0], int(args[1]) if len(args) > 1 else 50, *args[2:3]))
