"""Engine discovery is aiodocker's: a Docker context is found with DOCKER_HOST unset."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from .conftest import REPO

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.docker


def engine_socket() -> str | None:
    """The unix socket path of the engine the suite uses (DOCKER_HOST or the CLI's context)."""
    host = os.environ.get("DOCKER_HOST")
    if not host:
        done = subprocess.run(
            ["docker", "context", "inspect", "--format", "{{.Endpoints.docker.Host}}"],
            capture_output=True,
            text=True,
            check=False,
        )
        host = done.stdout.strip()
    return host.removeprefix("unix://") if host.startswith("unix://") else None


def test_the_current_docker_context_is_used(tmp_path: Path) -> None:
    """With DOCKER_HOST unset, the context `docker context use` chose is the engine, by name."""
    socket = engine_socket()
    if socket is None:
        pytest.skip("the engine under test is not on a unix socket")
    # A path no search list holds: only the context can lead there.
    link = tmp_path / "ctx.sock"
    link.symlink_to(socket)
    home = tmp_path / "home"
    home.mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_CONFIG")
    }
    env["HOME"] = str(home)  # the docker CLI and aiodocker read ~/.docker
    for args in (
        ["context", "create", "executor-test", "--docker", f"host=unix://{link}"],
        ["context", "use", "executor-test"],
    ):
        subprocess.run(["docker", *args], env=env, capture_output=True, check=True)

    doctor = subprocess.run(
        [sys.executable, "-m", "executor", "doctor", "--json", "--no-smoke"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    checks = {c["name"]: c for c in map(json.loads, doctor.stdout.splitlines())}
    assert checks["engine"]["status"] == "ok", doctor.stdout + doctor.stderr
    assert checks["engine"]["detail"].startswith(f"unix://{link}:")

    task, values = str(REPO / "examples" / "stats.py"), '{"values": [1, 2, 3]}'
    run = subprocess.run(
        [sys.executable, "-m", "executor", "run", task, "--runner", "python", "-i", values],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["mean"] == 2
