"""What is particular to Podman's Docker API, pinned (run by ``make test-podman``)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from executor import ConfigError, ContainerFailed, ExecutionTimeout, InputValidationError
from executor.engine.docker import DockerEngine

from ..container._support import case, containers

if TYPE_CHECKING:
    from ..container.conftest import MakeExecutor

pytestmark = pytest.mark.docker

PROBE = r"""
import signal
import time


def execute(input):
    if input == "limits":
        with open("/proc/self/limits") as fh:
            rows = [line.split() for line in fh.read().splitlines()[1:]]
        return {" ".join(r[:-3]): r[-3:-1] for r in rows}
    if input == "stubborn":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        time.sleep(3600)
    if input == "bomb":
        hold = []
        while True:
            hold.append(b"x" * (8 * 1024 * 1024))
    return input
"""
FILES = {"/app/execute.py": PROBE}


def podman_default_ulimits() -> dict[str, list[str]]:
    """What Podman gives a container created without ulimits (its configured defaults)."""
    made = subprocess.run(
        ["docker", "create", "executor/runner-python:latest"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    try:
        shown = subprocess.run(
            ["docker", "inspect", made, "--format", "{{json .HostConfig.Ulimits}}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        subprocess.run(["docker", "rm", "-f", made], capture_output=True, check=False)
    return {
        u["Name"].lower().removeprefix("rlimit_"): [str(u["Soft"]), str(u["Hard"])]
        for u in json.loads(shown) or []
    }


async def test_engine_is_recognized_as_podman() -> None:
    """DockerEngine says "podman" (from /_ping's headers) with Podman's own version."""
    found = DockerEngine()
    try:
        info = await found.info()
    finally:
        await found.aclose()
    version = (
        subprocess.run(
            ["podman", "version", "--format", "{{.Server.Version}}"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        or subprocess.run(
            ["podman", "version", "--format", "{{.Client.Version}}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    assert (info.kind, info.version) == ("podman", version)


def test_doctor_recognizes_podman_and_says_what_differs() -> None:
    """`executor doctor` passes on Podman, names it, and warns about what differs."""
    done = subprocess.run(
        [sys.executable, "-m", "executor", "doctor", "--json"],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    checks = {c["name"]: c for c in map(json.loads, done.stdout.splitlines())}
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Podman" in checks["engine"]["detail"]
    assert checks["podman"]["status"] == "warn"
    assert "localhost/" in checks["podman"]["detail"]
    assert checks["seccomp"]["status"] == "ok", checks["seccomp"]


def test_images_loaded_as_localhost_are_listed_by_their_short_name() -> None:
    """Images that `podman load` named localhost/executor/... list as executor/..."""
    refs = subprocess.run(
        ["podman", "images", "--format", "{{.Repository}}:{{.Tag}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert "localhost/executor/runner-python:latest" in refs
    done = subprocess.run(
        [sys.executable, "-m", "executor", "images", "list", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    listed = {row["repository"] for row in map(json.loads, done.stdout.splitlines())}
    assert "executor/runner-python" in listed


async def test_our_ulimits_are_added_to_podmans_defaults(make_executor: MakeExecutor) -> None:
    """Inside the container: no core dumps (ours), and Podman's default open-files limit."""
    defaults = podman_default_ulimits()
    limits: dict[str, Any] = await make_executor(files=FILES).execute("limits")
    assert limits["Max core file size"] == ["0", "0"]
    if "nofile" in defaults:
        assert limits["Max open files"] == defaults["nofile"]


async def test_timeout_kills_without_podmans_stop_grace(make_executor: MakeExecutor) -> None:
    """Code ignoring SIGTERM is gone well before Podman's 10 s stop timeout would end it."""
    labels = case()
    ex = make_executor(files=FILES, labels=labels, timeout=2)
    assert await ex.execute("warm") == "warm"
    started = time.monotonic()
    with pytest.raises(ExecutionTimeout):
        await ex.execute("stubborn")
    assert time.monotonic() - started < 6
    assert containers(labels) == []


async def test_memory_bomb_is_oom_killed(make_executor: MakeExecutor) -> None:
    """The memory limit holds on Podman, and its kill is OOM_KILLED though Podman sets no flag."""
    ex = make_executor(files=FILES, memory_bytes=64 * 1024 * 1024)
    with pytest.raises(ContainerFailed) as info:
        await ex.execute("bomb")
    assert (info.value.code, info.value.exit_code) == ("OOM_KILLED", 137)
    assert info.value.oom_killed is True


async def test_a_runtime_podman_would_ignore_is_refused(make_executor: MakeExecutor) -> None:
    """runtime='runsc' is a ConfigError on Podman (it ignores HostConfig.Runtime), none left."""
    labels = case()
    ex = make_executor(files=FILES, labels=labels, runtime="runsc")
    with pytest.raises(ConfigError, match=r"ignores HostConfig\.Runtime"):
        await ex.execute("x")
    await ex.aclose()
    assert containers(labels) == []


async def test_invalid_input_creates_no_container(make_executor: MakeExecutor) -> None:
    """Input failing validation makes no container: `podman events` sees only the valid call."""
    labels = case()
    ex = make_executor(files=FILES, labels=labels, input_type=int, output_type=Any)
    since = time.time() - 1
    with pytest.raises(InputValidationError):
        await ex.execute("not an int")
    assert await ex.execute(7) == 7
    await anyio.sleep(0.5)
    (label,) = (f"--filter=label={k}={v}" for k, v in labels.items())
    since_arg = f"--since={since:.0f}"
    events = subprocess.run(
        ["podman", "events", "--stream=false", since_arg, "--filter=event=create", label],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert events.stdout.count("container create") == 1, events.stdout
