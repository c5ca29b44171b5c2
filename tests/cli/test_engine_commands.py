"""``executor doctor``, ``reap`` and ``images``: against the engine, and without one."""

from __future__ import annotations

import json
import socket
import subprocess
import time

import pytest

from .conftest import RUN_LABEL, executor_cli

NOWHERE = {"DOCKER_HOST": "tcp://127.0.0.1:1"}


@pytest.mark.docker
def test_doctor_on_a_healthy_engine() -> None:
    """On this machine's engine every check passes: exit 0, engine/API/images reported."""
    result = executor_cli("doctor")
    assert result.code == 0, result.stdout + result.stderr
    for name in ("engine", "api", "runtimes", "runner-python", "runner-node", "runner-go"):
        assert f"  {name}" in result.stdout
    assert "everything is in place" in result.stdout
    assert "FAIL" not in result.stdout


@pytest.mark.docker
def test_doctor_json() -> None:
    """``doctor --json`` prints one object per check with name, status and detail."""
    result = executor_cli("doctor", "--json", "--no-smoke")
    checks = [json.loads(line) for line in result.stdout.splitlines()]
    assert {c["name"] for c in checks} >= {"engine", "api", "runner-python"}
    assert all(c["status"] in ("ok", "warn") for c in checks)


def test_doctor_without_an_engine_is_clear_and_quick() -> None:
    """DOCKER_HOST pointing nowhere: non-zero exit, the fix is printed, no hang."""
    started = time.monotonic()
    result = executor_cli("doctor", env=NOWHERE, timeout=60)
    assert result.code == 1
    assert "FAIL  engine" in result.stdout
    assert "tcp://127.0.0.1:1" in result.stdout
    assert "make engine" in result.stdout
    assert time.monotonic() - started < 30


def test_doctor_against_a_silent_engine_is_bounded() -> None:
    """An engine address that accepts but never answers still ends in bounded time."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        port = server.getsockname()[1]
        started = time.monotonic()
        result = executor_cli("doctor", env={"DOCKER_HOST": f"tcp://127.0.0.1:{port}"}, timeout=90)
    assert result.code == 1
    assert "did not answer" in result.stdout
    assert time.monotonic() - started < 60


def test_reap_and_images_without_an_engine_exit_9() -> None:
    """``reap`` and ``images list`` report ENGINE_UNAVAILABLE (9) as JSON when no engine answers."""
    for args in (["reap"], ["images", "list"]):
        result = executor_cli(*args, env=NOWHERE, timeout=60)
        assert result.code == 9, (args, result.stderr)
        assert json.loads(result.stderr.splitlines()[0])["code"] == "ENGINE_UNAVAILABLE"


@pytest.mark.docker
def test_reap_removes_orphans_only() -> None:
    """A managed container whose owner process is gone is removed; a live owner's is kept."""
    host = socket.gethostname()

    def create(owner: str) -> str:
        done = subprocess.run(
            [
                "docker",
                "create",
                "--label",
                "executor.managed=true",
                "--label",
                f"executor.owner={owner}",
                "--label",
                RUN_LABEL,
                "executor/runner-python:latest",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout.strip()

    orphan = create(f"{host}/999999999/1")  # no such process
    other_host = create("elsewhere/1/1")  # another host's: never touched
    try:
        result = executor_cli("reap", "--verbose")
        assert result.code == 0, result.stderr
        assert orphan in result.stdout
        assert other_host not in result.stdout
        assert "reaped" in result.stdout and "orphaned container(s)" in result.stdout
        left = subprocess.run(
            ["docker", "ps", "-aq", "--no-trunc", "--filter", f"label={RUN_LABEL}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        assert orphan not in left and other_host in left
    finally:
        subprocess.run(["docker", "rm", "-f", orphan, other_host], capture_output=True)


@pytest.mark.docker
def test_images_list_shows_runners_with_versions() -> None:
    """``images list --json`` lists the runner images with their version."""
    result = executor_cli("images", "list", "--json")
    assert result.code == 0, result.stderr
    rows = {r["repository"]: r for r in map(json.loads, result.stdout.splitlines())}
    for name in ("executor/runner-python", "executor/runner-node", "executor/runner-go"):
        assert name in rows
    import executor

    latest = [r for r in map(json.loads, result.stdout.splitlines()) if "latest" in r["tags"]]
    assert all(r["version"] == executor.__version__ for r in latest if "runner-" in r["repository"])
    table = executor_cli("images", "list")
    assert table.stdout.splitlines()[0].split()[:3] == ["REPOSITORY", "TAGS", "VERSION"]


@pytest.mark.docker
def test_images_build_delegates_to_the_bake_builder() -> None:
    """``images build runner-python`` builds (or finds up to date) through executor.build."""
    result = executor_cli("images", "build", "runner-python", "--quiet", timeout=600)
    assert result.code == 0, result.stderr
    assert "runner-python" in result.stderr
    assert "executor/runner-python:latest" in result.stderr
