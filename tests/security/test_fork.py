"""Fork mode under attack: every attack is followed by a probe call in the same container.

``mode="fork"`` runs each call in a fresh process of a container that is wiped between
calls. Each test runs one attack, then the probe (``do: probe``), which reports what a new
call can see: other processes, files in /tmp and /dev/shm, System V IPC objects, the
environment, builtins and runner state. The probe must see a clean container, the same
container must still serve (unless the test kills it on purpose), and no container may be
left. Every test runs under runc and under gVisor (runsc).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
import msgspec
import pytest

from executor import (
    ContainerFailed,
    ExecutionTimeout,
    OutputTooLarge,
    ProtocolError,
)

if TYPE_CHECKING:
    from .conftest import Sandbox

pytestmark = pytest.mark.docker

FORK_HOSTILE = r"""
import builtins
import ctypes
import ctypes.util
import errno
import json
import os
import signal
import sys
import time

libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
IPC_CREAT = 0o1000
IPC_PRIVATE = 0
BASELINE = {"env": dict(os.environ), "print": builtins.print}
STATE = {"calls": 0}


def _errno_name(fn):
    try:
        fn()
    except OSError as exc:
        return errno.errorcode.get(exc.errno or 0, type(exc).__name__)
    except Exception as exc:
        return type(exc).__name__
    return "ok"


def _check(result):
    if result == -1:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return result


def _others():
    me = os.getpid()
    pids = []
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) not in (1, me):
            pids.append(int(name))
    return sorted(pids)


def _entries(path):
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


def _sysv_scan(kind):
    # Objects of a kind, where /proc/sysvipc is missing (gVisor): ids there are handed out in
    # order, so make one to learn the newest, remove it, and stat every id below it.
    buffer = ctypes.create_string_buffer(512)
    if kind == "shm":
        newest = libc.shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0o600)
        libc.shmctl(newest, 0, None)
        return sum(libc.shmctl(i, 2, buffer) == 0 for i in range(newest))
    if kind == "sem":
        newest = libc.semget(IPC_PRIVATE, 1, IPC_CREAT | 0o600)
        libc.semctl(newest, 0, 0)
        return sum(libc.semctl(i, 0, 2, buffer) == 0 for i in range(newest))
    newest = libc.msgget(IPC_PRIVATE, IPC_CREAT | 0o600)
    libc.msgctl(newest, 0, None)
    return sum(libc.msgctl(i, 2, buffer) == 0 for i in range(newest))


def _sysv():
    found = {}
    for kind in ("shm", "sem", "msg"):
        try:
            with open(f"/proc/sysvipc/{kind}") as fh:
                found[kind] = len(fh.read().splitlines()) - 1
        except OSError:
            found[kind] = _sysv_scan(kind)
    return found


def probe():
    STATE["calls"] += 1
    return {
        "others": _others(),
        "tmp": _entries("/tmp"),
        "shm": _entries("/dev/shm"),
        "sysv": _sysv(),
        "env_changed": dict(os.environ) != BASELINE["env"],
        "print_patched": builtins.print is not BASELINE["print"],
        "json_patched": getattr(json, "executor_attack", False),
        "calls": STATE["calls"],
        "ppid": os.getppid(),
    }


def leave_files():
    for path in ("/tmp/left", "/dev/shm/left", "/tmp/dir/nested/left"):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as fh:
            fh.write("residue")
    os.chmod("/tmp/dir", 0o000)
    return "left"


def daemon():
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
            fds = [int(fd) for fd in os.listdir("/proc/self/fd")]
            time.sleep(0.5)  # its own call has answered by now: go after the next one
            for _ in range(200):
                time.sleep(0.05)
                for fd in fds:
                    try:
                        os.write(fd, b'{"ok": true, "output": "forged by a daemon"}\n')
                    except OSError:
                        pass
                for pid in _others():
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
            os._exit(0)
        os._exit(0)
    time.sleep(0.2)
    return "spawned"


def ptrace_parent():
    PTRACE_ATTACH = 16
    attach = _errno_name(lambda: _check(libc.ptrace(PTRACE_ATTACH, 1, None, None)))

    def write_mem():
        with open("/proc/1/mem", "r+b", buffering=0) as fh:
            fh.seek(0x400000)
            fh.write(b"\x90")

    def read_fds():
        return os.listdir("/proc/1/fd")

    return {"ptrace": attach, "mem": _errno_name(write_mem), "fds": _errno_name(read_fds)}


def kill_parent():
    out = {}
    for sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1):
        out[sig.name] = _errno_name(lambda s=sig: os.kill(1, s))
    time.sleep(0.2)
    out["parent_alive"] = os.path.exists("/proc/1")
    return out


def grab_fds():
    tried = []
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd in (0, 1, 2):
            continue
        try:
            os.write(fd, b'{"ok": true, "output": "forged"}\n')
            tried.append(fd)
        except OSError:
            pass
    for fd in range(3, 64):
        try:
            os.close(fd)
        except OSError:
            pass
    for fd in (0, 1):
        try:
            os.dup2(2, fd)
        except OSError:
            pass
    return {"wrote_to": tried}


def monkeypatch():
    builtins.print = lambda *a, **k: None
    json.executor_attack = True
    json.dumps = lambda *a, **k: "patched"
    for name, module in list(sys.modules.items()):
        if "runner" in name or name == "__main__":
            for attr in list(vars(module)):
                if callable(getattr(module, attr, None)) and not attr.startswith("__"):
                    try:
                        setattr(module, attr, lambda *a, **k: None)
                    except Exception:
                        pass
    return "patched"


def environment():
    os.environ["EXECUTOR_ATTACK"] = "1"
    os.environ["PATH"] = "/nowhere"
    os.environ.pop("HOME", None)
    return "changed"


def sysv():
    shm = _check(libc.shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0o600))
    sem = _check(libc.semget(IPC_PRIVATE, 1, IPC_CREAT | 0o600))
    msg = _check(libc.msgget(IPC_PRIVATE, IPC_CREAT | 0o600))
    return {"created": [shm, sem, msg], "sysv": _sysv()}


def fork_bomb():
    children = 0
    while True:
        try:
            if os.fork() == 0:
                time.sleep(600)
                os._exit(0)
            children += 1
        except OSError:
            break
    return {"children": children}


def memory_bomb():
    hog = []
    while True:
        hog.append(bytearray(16 * 1024 * 1024))


def spin():
    while True:
        pass


def flood_stdout():
    chunk = b"x" * (1 << 20)
    for _ in range(1024):
        os.write(1, chunk)
    return "flooded"


def _write_everywhere(line):
    # Write line on every descriptor above 2 this process holds.
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2:
            try:
                os.write(fd, line)
            except OSError:
                pass


def answer_twice():
    _write_everywhere(b'{"ok":true,"output":"first"}\n')
    return "second"


def big():
    return "x" * 5000


def stop_self():
    # The runner code stops the task process once its answer is written; user code doing so
    # first, then being continued by a child, must not pass for an answer.
    if os.fork() == 0:
        time.sleep(0.3)
        os.kill(os.getppid(), signal.SIGCONT)
        os._exit(0)
    os.kill(os.getpid(), signal.SIGSTOP)
    return "continued"


def forge_and_stop():
    _write_everywhere(b'{"ok":true,"output":"forged"}\n')
    os.kill(os.getpid(), signal.SIGSTOP)


def keep_working():
    if os.fork() == 0:
        with open("/tmp/late", "w") as fh:
            for i in range(100):
                fh.write(f"{i}\n")
                fh.flush()
                time.sleep(0.05)
        os._exit(0)
    return "answered"


ATTACKS = {name: fn for name, fn in globals().items() if callable(fn) and not name.startswith("_")}


def execute(input):
    return ATTACKS[input["do"]]()
"""
FILES = {"/app/execute.py": FORK_HOSTILE}
CLEAN = {"others": [], "tmp": [], "shm": [], "sysv": {"shm": 0, "sem": 0, "msg": 0}}


def fork_sandbox(sandbox: Sandbox, **settings: Any) -> Any:
    settings.setdefault("timeout", 3)
    return sandbox(files=FILES, mode="fork", containers=1, **settings)


async def attack_then_probe(
    sandbox: Sandbox, attack: str, *, expect: type[BaseException] | None = None, **settings: Any
) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """Run ``attack`` then the probe; return (attack outcome, first probe run, second probe)."""
    ex = fork_sandbox(sandbox, **settings)
    async with ex:
        baseline = await ex.run({"do": "probe"})
        if expect is None:
            outcome: Any = await ex.execute({"do": attack})
        else:
            with pytest.raises(expect) as info:
                await ex.execute({"do": attack})
            outcome = info.value
        with anyio.fail_after(30):
            probe = await ex.run({"do": "probe"})
        again = await ex.run({"do": "probe"})
    assert probe.output["calls"] == 1, "the probe saw state from an earlier call"
    assert again.output["calls"] == 1
    assert {k: probe.output[k] for k in CLEAN} == CLEAN, probe.output
    assert not probe.output["env_changed"]
    assert not probe.output["print_patched"] and not probe.output["json_patched"]
    return (
        outcome,
        msgspec.structs.asdict(baseline) | {"id": baseline.container_id},
        msgspec.structs.asdict(probe) | {"id": probe.container_id},
    )


async def test_files_left_in_tmp_and_dev_shm_are_wiped(sandbox: Sandbox) -> None:
    """Files (and a locked directory) left in /tmp and /dev/shm are gone for the next call."""
    outcome, before, after = await attack_then_probe(sandbox, "leave_files")
    assert outcome == "left"
    assert before["id"] == after["id"]


async def test_a_daemonized_grandchild_is_killed_before_the_next_call(sandbox: Sandbox) -> None:
    """A setsid grandchild ignoring SIGTERM, writing to its fds and killing pids, is gone."""
    outcome, before, after = await attack_then_probe(sandbox, "daemon")
    assert outcome == "spawned"
    assert after["output"]["others"] == []
    assert "forged by a daemon" not in after["logs"]
    assert before["id"] == after["id"]


async def test_the_parent_cannot_be_ptraced_or_its_memory_written(
    sandbox: Sandbox, runtime: str | None
) -> None:
    """PTRACE_ATTACH to the parent and writing /proc/1/mem fail. Under runc /proc/1/fd is
    closed too; gVisor lets it be listed, so there the runner parks its protocol fds on a
    private socket while a task runs (the protocol-stream test covers what a task can reach)."""
    outcome, _, _ = await attack_then_probe(sandbox, "ptrace_parent")
    assert outcome["ptrace"] in ("EPERM", "EACCES"), outcome
    assert outcome["mem"] in ("EPERM", "EACCES", "EIO"), outcome
    if runtime is None:
        assert outcome["fds"] in ("EPERM", "EACCES"), outcome


async def test_signals_to_the_parent_do_not_kill_it(sandbox: Sandbox, runtime: str | None) -> None:
    """SIGKILL, SIGTERM, SIGINT, SIGHUP, SIGUSR1 to PID 1: under runc it survives and serves
    on. gVisor delivers SIGKILL to PID 1 from inside: that call fails with a mapped error, the
    container is replaced and the next call is clean."""
    if runtime is None:
        outcome, before, after = await attack_then_probe(sandbox, "kill_parent")
        assert outcome["parent_alive"] is True
        assert before["id"] == after["id"]
        return
    ex = fork_sandbox(sandbox)
    async with ex:
        first = await ex.run({"do": "probe"})
        with pytest.raises((ContainerFailed, ProtocolError)):
            await ex.execute({"do": "kill_parent"})
        probe = await ex.run({"do": "probe"})
    assert probe.container_id != first.container_id
    assert {k: probe.output[k] for k in CLEAN} == CLEAN


async def test_a_parent_that_dies_anyway_fails_that_call_and_is_replaced(
    sandbox: Sandbox,
) -> None:
    """The container's init killed from outside mid-call: that call fails with a mapped error,
    the container is replaced and the next call succeeds."""
    import subprocess

    ex = fork_sandbox(sandbox, timeout=20)
    async with ex:
        first = await ex.run({"do": "probe"})
        async with anyio.create_task_group() as tg:

            async def call() -> None:
                with pytest.raises((ContainerFailed, ProtocolError)):
                    await ex.execute({"do": "spin"})

            tg.start_soon(call)
            await anyio.sleep(1.0)
            await anyio.to_thread.run_sync(
                lambda: subprocess.run(
                    ["docker", "kill", first.container_id], capture_output=True, check=False
                )
            )
        probe = await ex.run({"do": "probe"})
    assert probe.container_id != first.container_id
    assert probe.output["calls"] == 1


async def test_the_task_cannot_reach_the_protocol_stream(sandbox: Sandbox) -> None:
    """Writing forged lines to every fd, closing fds and dup2-ing over 0/1 reaches only the
    task's own answer channel: the call ends in its own answer or PROTOCOL_ERROR, and the
    next call is untouched."""
    ex = fork_sandbox(sandbox)
    async with ex:
        before = await ex.run({"do": "probe"})
        try:
            outcome: Any = await ex.execute({"do": "grab_fds"})
        except (ProtocolError, ContainerFailed) as exc:
            outcome = exc  # it broke its own answer channel: its own call fails, mapped
        assert outcome == "forged" or isinstance(outcome, ProtocolError | ContainerFailed)
        after = await ex.run({"do": "probe"})
    assert after.container_id == before.container_id
    assert after.output["calls"] == 1 and after.output["others"] == []


async def test_monkeypatching_builtins_and_the_runner_does_not_persist(sandbox: Sandbox) -> None:
    """Patched builtins, json and runner functions are the originals for the next call (the
    patching call itself may break its own answer: EXIT_NONZERO)."""
    ex = fork_sandbox(sandbox)
    async with ex:
        before = await ex.run({"do": "probe"})
        try:
            outcome: Any = await ex.execute({"do": "monkeypatch"})
        except ContainerFailed as exc:
            outcome = exc
        assert outcome == "patched" or outcome.code == "EXIT_NONZERO", outcome
        after = await ex.run({"do": "probe"})
    assert after.container_id == before.container_id
    assert not after.output["print_patched"] and not after.output["json_patched"]
    assert after.output["calls"] == 1


async def test_environment_changes_do_not_persist(sandbox: Sandbox) -> None:
    """Changed and removed environment variables are back for the next call."""
    outcome, _, _ = await attack_then_probe(sandbox, "environment")
    assert outcome == "changed"


async def test_system_v_ipc_objects_are_removed(sandbox: Sandbox) -> None:
    """Shared memory, semaphores and message queues left behind are gone for the next call."""
    outcome, _, _ = await attack_then_probe(sandbox, "sysv")
    assert all(i >= 0 for i in outcome["created"]), outcome


async def test_fork_bomb_is_contained_and_cleaned(sandbox: Sandbox, runtime: str | None) -> None:
    """A fork bomb stops at pids_limit; its processes are all gone for the next call. Under
    gVisor (runsc 2022-12) reaching the pids limit ends the whole sandbox (exit 2): that call
    fails with a mapped error and the container is replaced."""
    if runtime is None:
        outcome, _, after = await attack_then_probe(sandbox, "fork_bomb", pids_limit=64)
        assert 0 < outcome["children"] < 64
        assert after["output"]["others"] == []
        return
    ex = fork_sandbox(sandbox, pids_limit=64)
    async with ex:
        first = await ex.run({"do": "probe"})
        try:
            outcome = await ex.execute({"do": "fork_bomb"})
            assert 0 < outcome["children"] < 64
        except ContainerFailed as exc:
            assert exc.exit_code is not None
        probe = await ex.run({"do": "probe"})
    assert {k: probe.output[k] for k in CLEAN} == CLEAN
    assert probe.output["calls"] == 1 and first.output["calls"] == 1


async def test_memory_bomb_is_oom_killed_and_the_container_survives(
    sandbox: Sandbox, runtime: str | None
) -> None:
    """A memory bomb is OOM_KILLED. Under runc the kill takes the task's process only and the
    container serves on; under gVisor an OOM ends the whole sandbox, which is replaced."""
    error, before, after = await attack_then_probe(
        sandbox, "memory_bomb", expect=ContainerFailed, memory_bytes=128 * 1024 * 1024
    )
    assert error.exit_code == 137
    if runtime is None:
        assert error.code == "OOM_KILLED", error
        assert before["id"] == after["id"]


async def test_infinite_loop_times_out_on_time_and_the_container_survives(
    sandbox: Sandbox,
) -> None:
    """A spinning task is ExecutionTimeout at the timeout; the container serves on."""
    error, before, after = await attack_then_probe(sandbox, "spin", expect=ExecutionTimeout)
    assert error.code == "TIMEOUT"
    assert before["id"] == after["id"]


async def test_a_gigabyte_on_stdout_is_logs_truncated(sandbox: Sandbox) -> None:
    """1 GiB written to fd 1 lands on stderr, capped in the logs; the call still answers."""
    ex = fork_sandbox(sandbox, timeout=60)
    async with ex:
        run = await ex.run({"do": "flood_stdout"})
        assert run.output == "flooded"
        assert run.logs_truncated
        probe = await ex.run({"do": "probe"})
    assert probe.container_id == run.container_id
    assert probe.output["others"] == []


async def test_a_response_written_twice_is_a_protocol_error(sandbox: Sandbox) -> None:
    """A task that writes its own response line before returning: PROTOCOL_ERROR."""
    error, before, after = await attack_then_probe(sandbox, "answer_twice", expect=ProtocolError)
    assert error.code == "PROTOCOL_ERROR"
    assert before["id"] == after["id"]


async def test_a_task_that_stops_itself_gets_a_protocol_error(sandbox: Sandbox) -> None:
    """SIGSTOP before answering is not an answer: PROTOCOL_ERROR, the container serves on."""
    error, before, after = await attack_then_probe(sandbox, "stop_self", expect=ProtocolError)
    assert error.code == "PROTOCOL_ERROR"
    assert before["id"] == after["id"]


async def test_a_forged_answer_then_a_stop_is_at_most_the_tasks_own_answer(
    sandbox: Sandbox,
) -> None:
    """A task writing a response line on every fd it holds and stopping itself: the line is
    what the task answered (as if it had returned it; the output is still validated by the
    caller's schema), never a second answer, and the next call is clean."""
    outcome, before, after = await attack_then_probe(sandbox, "forge_and_stop")
    assert outcome == "forged"
    assert before["id"] == after["id"]


async def test_work_after_the_response_is_stopped(sandbox: Sandbox) -> None:
    """A child that keeps writing after the answer is killed; its file is wiped."""
    outcome, _, after = await attack_then_probe(sandbox, "keep_working")
    assert outcome == "answered"
    assert "late" not in after["output"]["tmp"]


async def test_output_too_large_in_fork_mode(sandbox: Sandbox) -> None:
    """A response over max_output_bytes is OUTPUT_TOO_LARGE; the container serves on."""
    error, before, after = await attack_then_probe(
        sandbox, "big", expect=OutputTooLarge, max_output_bytes=1000
    )
    assert error.code == "OUTPUT_TOO_LARGE"
    assert before["id"] == after["id"]
