"""A newcomer's path: pip install the wheel in a fresh venv, away from the checkout, and use it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from typing import TYPE_CHECKING

import pytest

from executor.build import load_bake

from .conftest import REPO
from .test_wheel import metadata

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.docker, pytest.mark.slow]

TASK = "def execute(input):\n    return {'doubled': input.get('n', 21) * 2}\n"


def base_overrides() -> list[str]:
    """``--set PYTHON_BASE=...`` when the official base cannot be had on this engine.

    A machine without a registry (like CI's) has only the local Debian bases that `make bases`
    built; a newcomer there names one, as the build's error message says.
    """
    official = load_bake(REPO / "docker-bake.hcl", {})["runner-python"].args["BASE_IMAGE"]
    present = subprocess.run(["docker", "image", "inspect", official], capture_output=True)
    recorded = REPO / ".state" / "bake-vars.json"
    if present.returncode == 0 or not recorded.is_file():
        return []
    return ["--set", f"PYTHON_BASE={json.loads(recorded.read_text())['PYTHON_BASE']}"]


def test_wheel_in_a_fresh_venv_builds_the_image_and_runs_a_task(
    wheel: Path, tmp_path: Path
) -> None:
    """From a bare directory: doctor, images build runner-python and run --runner python work."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    install = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert install.returncode == 0, install.stderr[-3000:]

    work = tmp_path / "work"  # not the checkout, and no checkout above it
    work.mkdir()
    (work / "task.py").write_text(TASK)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"

    def run(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            args, cwd=work, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )

    version = metadata(wheel)["Version"]
    assert run("executor", "--version").stdout.split()[-1] == version
    where = run("python", "-c", "import executor.build as b; print(b.DEFAULT_BAKE_FILE)")
    assert where.stdout.strip().startswith(str(venv)), where  # the packaged copy, not REPO's

    doctor = run("executor", "doctor")
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr

    registry = f"executor-newcomer-{uuid.uuid4().hex[:8]}"
    tags = [f"{registry}/runner-python:{version}", f"{registry}/runner-python:latest"]
    try:
        build = run(
            "executor",
            "images",
            "build",
            "runner-python",
            "--set",
            f"REGISTRY={registry}",
            *base_overrides(),
            timeout=600,
        )
        assert build.returncode == 0, build.stdout + build.stderr
        labels = subprocess.run(
            ["docker", "image", "inspect", tags[1], "--format", "{{json .Config.Labels}}"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert json.loads(labels.stdout)["org.opencontainers.image.version"] == version

        for image in ([], ["--image", tags[1]]):  # the stock image, then the one just built
            done = run("executor", "run", "task.py", "--runner", "python", *image, "-i", "{}")
            assert done.returncode == 0, done.stderr
            assert json.loads(done.stdout) == {"doubled": 42}
    finally:
        subprocess.run(["docker", "image", "rm", *tags], capture_output=True, check=False)
