"""scripts/engine.sh against a stopping engine, with a fake dockerd (the real one is never touched).

The fake ``dockerd`` and ``docker`` live in a temporary directory first on PATH, with their own
pid file, daemon.json and log (the script's EXECUTOR_* overrides): the first fake never answers
and takes 3 s to exit after SIGTERM, like a dockerd shutting down; a later one answers.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from typing import TYPE_CHECKING

import pytest

from .conftest import REPO

if TYPE_CHECKING:
    from pathlib import Path

FAKE_DOCKERD = """#!/bin/bash
# A fake dockerd: the first one started never answers and exits 3 s after SIGTERM.
pidfile="$FAKE_STATE/docker.pid"
for ((i = 1; i <= $#; i++)); do [ "${!i}" = --pidfile ] && j=$((i + 1)) && pidfile=${!j}; done
if [ ! -e "$FAKE_STATE/started-once" ]; then
    touch "$FAKE_STATE/started-once"
    # The handler first, then the pid file the test waits for before its SIGTERM.
    trap 'sleep 3; rm -f "$pidfile"; exit 0' TERM
    echo $$ >"$pidfile"
    while :; do sleep 0.1; done
fi
echo $$ >"$pidfile"
sleep 1
touch "$FAKE_STATE/answering"
while :; do sleep 0.2; done
"""

FAKE_DOCKER = """#!/bin/bash
# A fake docker CLI: the engine answers once a fake dockerd said so.
case "$1" in
    info | version) [ -e "$FAKE_STATE/answering" ] || exit 1; echo fake; exit 0 ;;
    *) exit 0 ;;
esac
"""


def executable(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o755)


@pytest.mark.skipif(os.geteuid() != 0, reason="engine.sh starts dockerd only as root")
def test_engine_waits_for_a_stopping_dockerd_then_starts_a_new_one(tmp_path: Path) -> None:
    """SIGTERM to dockerd, then engine.sh at once: it waits for the exit and starts a new one."""
    bin_dir, state = tmp_path / "bin", tmp_path / "state"
    bin_dir.mkdir()
    state.mkdir()
    executable(bin_dir / "dockerd", FAKE_DOCKERD)
    executable(bin_dir / "docker", FAKE_DOCKER)
    executable(bin_dir / "runsc", "#!/bin/sh\nexit 0\n")  # present: nothing to install
    pidfile = state / "docker.pid"
    env = {
        **{k: v for k, v in os.environ.items() if k != "DOCKER_HOST"},
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "FAKE_STATE": str(state),
        "EXECUTOR_DOCKERD_PIDFILE": str(pidfile),
        "EXECUTOR_DAEMON_JSON": str(state / "daemon.json"),
        "EXECUTOR_DOCKERD_LOG": str(state / "dockerd.log"),
        "EXECUTOR_ENGINE_WAIT": "20",
    }
    dying = subprocess.Popen([str(bin_dir / "dockerd")], env=env, start_new_session=True)
    started: int | None = None
    try:
        deadline = time.monotonic() + 10
        while not pidfile.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        dying.send_signal(signal.SIGTERM)
        begun = time.monotonic()
        done = subprocess.run(
            ["bash", str(REPO / "scripts" / "engine.sh")],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        took = time.monotonic() - begun
        started = int(pidfile.read_text()) if pidfile.exists() else None
        assert done.returncode == 0, done.stderr
        assert "waiting for it to answer or exit" in done.stderr
        assert f"dockerd (pid {dying.pid}) exited" in done.stderr
        assert "engine ready" in done.stderr
        assert dying.poll() == 0  # the stopping one finished on its own
        assert started is not None and started != dying.pid
        assert took >= 2.5  # it waited for the exit instead of failing at once
    finally:
        for pid in (dying.pid, started):  # by pid: the new one shares our process group
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        dying.wait(timeout=10)


RELOADING_DOCKERD = """#!/bin/bash
# A fake dockerd that answers and records each SIGHUP (a reload of daemon.json).
trap 'echo hup >>"$FAKE_STATE/reloads"' HUP
echo $$ >"$FAKE_STATE/docker.pid"
touch "$FAKE_STATE/answering"
while :; do sleep 0.1; done
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="engine.sh registers runsc only as root")
def test_a_running_engine_gets_runsc_with_oci_seccomp_and_reloads(tmp_path: Path) -> None:
    """An answering local dockerd whose runsc lacks --oci-seccomp is re-registered and sent
    SIGHUP once; a second run finds nothing to change and sends none."""
    bin_dir, state = tmp_path / "bin", tmp_path / "state"
    bin_dir.mkdir()
    state.mkdir()
    executable(bin_dir / "dockerd", RELOADING_DOCKERD)
    executable(bin_dir / "docker", FAKE_DOCKER)
    executable(bin_dir / "runsc", "#!/bin/sh\nexit 0\n")
    daemon_json = state / "daemon.json"
    daemon_json.write_text(
        '{"debug": true, "runtimes": {"runsc": {"path": "/x", "runtimeArgs": ["--network=none"]}}}'
    )
    env = {
        **{k: v for k, v in os.environ.items() if k != "DOCKER_HOST"},
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "FAKE_STATE": str(state),
        "EXECUTOR_DOCKERD_PIDFILE": str(state / "docker.pid"),
        "EXECUTOR_DAEMON_JSON": str(daemon_json),
        "EXECUTOR_DOCKERD_LOG": str(state / "dockerd.log"),
    }
    fake = subprocess.Popen([str(bin_dir / "dockerd")], env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while not (state / "answering").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        script = ["bash", str(REPO / "scripts" / "engine.sh")]
        first = subprocess.run(script, env=env, capture_output=True, text=True, timeout=60)
        assert first.returncode == 0, first.stderr
        assert "reloaded its runtimes" in first.stderr
        config = json.loads(daemon_json.read_text())
        assert config["debug"] is True  # other settings kept
        assert config["runtimes"]["runsc"]["runtimeArgs"] == ["--network=none", "--oci-seccomp"]
        deadline = time.monotonic() + 10
        while not (state / "reloads").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        second = subprocess.run(script, env=env, capture_output=True, text=True, timeout=60)
        assert second.returncode == 0 and "reloaded" not in second.stderr, second.stderr
        time.sleep(0.3)
        assert (state / "reloads").read_text().split() == ["hup"]
    finally:
        os.kill(fake.pid, signal.SIGKILL)
        fake.wait(timeout=10)
