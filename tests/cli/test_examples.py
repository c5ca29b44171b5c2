"""The examples run as documented, and a newcomer's clone runs ``make demo``.

examples/service.py is a real server now: tests/observe/test_service.py runs it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from .conftest import REPO, RUN_LABEL, executor_cli

if TYPE_CHECKING:
    from pathlib import Path

EXAMPLES = REPO / "examples"


def _python(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, cwd=REPO, timeout=timeout
    )


def test_stats_local() -> None:
    """examples/stats_local.py prints the stats of 1..5."""
    done = _python(str(EXAMPLES / "stats_local.py"))
    assert done.returncode == 0, done.stderr
    assert '{"count":5,"sum":15.0,"mean":3.0}' in done.stdout


def test_stats_task_runs_locally_through_the_cli() -> None:
    """examples/stats.py follows the runner convention and runs in-process too."""
    result = executor_cli("run", "examples/stats.py", "--input", '{"values": [2, 4]}')
    assert result.json() == {"count": 2, "sum": 6, "mean": 3.0}


@pytest.mark.docker
def test_stats_container() -> None:
    """examples/stats_container.py gets the same stats from a container."""
    done = _python(str(EXAMPLES / "stats_container.py"))
    assert done.returncode == 0, done.stderr
    assert '{"count":5,"sum":15.0,"mean":3.0}' in done.stdout


@pytest.mark.docker
def test_stats_node() -> None:
    """examples/stats.mjs runs in the Node runner."""
    result = executor_cli(
        "run",
        "examples/stats.mjs",
        "--runner",
        "node",
        "--label",
        RUN_LABEL,
        "--input",
        '{"values": [1, 2, 3, 4, 5]}',
    )
    assert (result.code, result.json()) == (0, {"count": 5, "sum": 15, "mean": 3})


@pytest.mark.docker
def test_example_pytest_file_passes() -> None:
    """examples/test_with_pytest.py (the plugin's fixtures and one of its own) passes."""
    done = _python(
        "-m", "pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLES / "test_with_pytest.py")
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "5 passed" in done.stdout


@pytest.mark.docker
@pytest.mark.slow
def test_stats_go_builds_into_the_go_runner(tmp_path: Path) -> None:
    """examples/stats/ compiles into the Go runner (FUNCTION_DIR) and answers the stats.

    Built with ``docker build --network none`` from a copy of the runners/go context (the
    function directory must lie inside it); no network is needed (GOPROXY=off), and the
    build does not depend on the engine's default bridge.
    """
    from executor.build import DEFAULT_LOCAL_BASES

    context = tmp_path / "go"
    shutil.copytree(REPO / "runners" / "go", context)
    shutil.copytree(EXAMPLES / "stats", context / "functions-stats")
    tag = "executor-test/stats-go:latest"
    bases = json.loads(DEFAULT_LOCAL_BASES.read_text()) if DEFAULT_LOCAL_BASES.is_file() else {}
    build = subprocess.run(
        [
            "docker",
            "build",
            "--network",
            "none",
            "--build-arg",
            f"GO_BUILD_BASE={bases.get('GO_BUILD_BASE', 'golang:1.23')}",
            "--build-arg",
            "BASE_IMAGE=scratch",
            "--build-arg",
            "FUNCTION_DIR=functions-stats",
            "--tag",
            tag,
            str(context),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "DOCKER_BUILDKIT": "0"},
        check=False,
    )
    assert build.returncode == 0, build.stdout[-2000:] + build.stderr[-2000:]
    try:
        result = executor_cli(
            "run", "--image", tag, "--label", RUN_LABEL, "--input", '{"values": [1, 2, 3, 4, 5]}'
        )
        assert (result.code, result.json()) == (0, {"count": 5, "sum": 15, "mean": 3})
        failed = executor_cli(
            "run", "--image", tag, "--label", RUN_LABEL, "--input", '{"values": []}'
        )
        assert failed.code == 6
        assert "values must not be empty" in failed.error()["message"]
    finally:
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_newcomer_make_demo(tmp_path: Path) -> None:
    """A fresh clone runs ``make demo``: it makes its own venv and prints both results."""
    clone = tmp_path / "executor"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIRTUAL_ENV")}
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(str(REPO))
    )
    done = subprocess.run(
        ["make", "demo"], cwd=clone, capture_output=True, text=True, env=env, timeout=840
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (clone / ".venv" / "bin" / "executor").exists()
    assert "local:" in done.stdout and '"mean":3.0' in done.stdout
    engine = subprocess.run(["docker", "info"], capture_output=True, check=False)
    if engine.returncode == 0:
        assert "container:" in done.stdout, done.stdout + done.stderr


@pytest.mark.docker
def test_evaluate_programs(tmp_path: Path) -> None:
    """examples/evaluate_programs.py gives each program of examples/programs.jsonl its verdict
    (pass, wrong, error, timeout), one JSONL line each, and prints the counts."""
    verdicts = tmp_path / "verdicts.jsonl"
    done = _python(
        str(EXAMPLES / "evaluate_programs.py"),
        str(EXAMPLES / "programs.jsonl"),
        str(verdicts),
        "--concurrency",
        "2",
        "--timeout",
        "2",
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"error": 1, "pass": 2, "timeout": 1, "wrong": 1}
    lines = [json.loads(line) for line in verdicts.read_text().splitlines()]
    by_id = {line["id"]: line for line in lines}
    assert sorted(line["index"] for line in lines) == [0, 1, 2, 3, 4]
    assert by_id["sum"]["verdict"] == "pass" and by_id["sum-wrong"]["stdout"] == "-1\n"
    assert by_id["crash"]["exit_code"] == 1 and "ZeroDivisionError" in by_id["crash"]["stderr"]
    assert by_id["loop"]["verdict"] == "timeout"
    assert by_id["files"]["files"] == ["report.txt"]
