"""``executor doctor``, ``reap`` and ``images``: against the engine, and without one."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import uuid
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread
import pytest

from .._notdocker import NOT_DOCKER, serving
from .conftest import RUN_LABEL, executor_cli

if TYPE_CHECKING:
    from .._notdocker import NotDocker
    from .conftest import Result

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


@pytest.mark.docker
def test_doctor_shows_the_seccomp_profile_and_that_it_refuses() -> None:
    """doctor names the profile in force and shows io_uring and user namespaces refused."""
    result = executor_cli("doctor", "--json")
    checks = {c["name"]: c for c in map(json.loads, result.stdout.splitlines())}
    seccomp = checks["seccomp"]
    assert seccomp["status"] == "ok", seccomp
    assert "the library's profile" in seccomp["detail"]
    assert "io_uring_setup refused (EPERM)" in seccomp["detail"]
    assert "unshare(CLONE_NEWUSER) refused (EPERM)" in seccomp["detail"]


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


@pytest.mark.parametrize("handler", NOT_DOCKER.values(), ids=NOT_DOCKER.keys())
def test_doctor_against_a_server_that_is_not_docker(handler: type[NotDocker]) -> None:
    """A DOCKER_HOST that answers HTTP but is no Docker API (a 404 in JSON or HTML; a 200 in
    HTML, ``{}`` or plain text) gets doctor's FAIL line naming the address and the fix, not a
    raw error object or a traceback."""
    with serving(handler) as url:
        result = executor_cli("doctor", env={"DOCKER_HOST": url}, timeout=60)
    assert result.code == 1
    assert "FAIL  engine" in result.stdout, result.stdout + result.stderr
    assert url in result.stdout and "not a Docker Engine API" in result.stdout
    assert f"HTTP {handler.status} to its ping" in result.stdout
    assert "DOCKER_HOST" in result.stdout
    assert result.stderr == ""


def test_reap_and_images_without_an_engine_exit_9() -> None:
    """``reap``, ``images list`` and ``images prune`` report ENGINE_UNAVAILABLE (9) as JSON when
    no engine answers."""
    for args in (["reap"], ["images", "list"], ["images", "prune"]):
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


@pytest.mark.docker
async def test_images_prune_removes_derived_images_no_container_uses() -> None:
    """``images prune``: a derived ``files`` image nothing uses goes, one an idle pooled
    container uses stays (never forced) and keeps serving; the removed one is derived again
    by the next executor that needs it. ``--base`` limits it to one base image."""
    from executor import ContainerConfig, ContainerExecutor

    base = f"executor-test/prune-{uuid.uuid4().hex[:12]}:latest"
    subprocess.run(["docker", "image", "tag", "executor/runner-python:latest", base], check=True)
    labels = {RUN_LABEL.split("=")[0]: RUN_LABEL.split("=")[1]}

    def files(n: int) -> dict[str, str | bytes]:
        return {"/app/execute.py": f"def execute(input):\n    return input + {n}\n"}

    def derived() -> set[str]:
        out = subprocess.run(
            ["docker", "image", "ls", "-q", "--filter", f"label=executor.files-of={base}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return set(out.split())

    async def cli(*args: str) -> Result:
        return await anyio.to_thread.run_sync(lambda: executor_cli("images", "prune", *args))

    try:
        async with ContainerExecutor(ContainerConfig(base, files=files(1), labels=labels)) as ex:
            assert await ex.execute(1) == 2
        pooled = ContainerExecutor(
            ContainerConfig(base, files=files(2), labels=labels, mode="reuse", containers=1)
        )
        async with pooled:
            assert await pooled.execute(1) == 3
            assert len(derived()) == 2

            dry = await cli("--base", base, "--dry-run", "--json")
            assert dry.code == 0, dry.stderr
            rows = [json.loads(line) for line in dry.stdout.splitlines()]
            assert sorted(r["removed"] for r in rows) == [False, True], rows
            assert len(derived()) == 2, "a dry run removes nothing"

            done = await cli("--base", base)
            assert done.code == 0, done.stderr
            assert "removed 1 derived image(s); kept 1 in use" in done.stderr + done.stdout
            assert len(derived()) == 1
            assert await pooled.execute(1) == 3, "the kept image still serves its pool"

        async with ContainerExecutor(ContainerConfig(base, files=files(1), labels=labels)) as ex:
            assert await ex.execute(1) == 2, "a pruned image is derived again when needed"

        young = await cli("--base", base, "--older-than", "1h")
        assert "removed 0 derived image(s)" in young.stderr + young.stdout
        assert len(derived()) == 2
    finally:
        await cli("--base", base)
        subprocess.run(["docker", "image", "rm", base], capture_output=True, check=False)
    assert derived() == set()
