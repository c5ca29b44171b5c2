"""A rebuilt base image reaches executors that add files to it (runner fixes, security updates)."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.container.conftest import PYTHON_IMAGE, RUN_ID

if TYPE_CHECKING:
    from tests.container.conftest import MakeExecutor

pytestmark = pytest.mark.docker

PROBE = """
import os


def execute(input):
    return os.path.exists("/patched")
"""


async def test_files_image_follows_a_rebuilt_base(make_executor: MakeExecutor) -> None:
    """After the base tag moves to a new build, files= executors run on the new build."""
    base = f"executor-test/base-update:{RUN_ID}"
    patched = f"executor-test/base-update-patched:{RUN_ID}"
    files = {"/app/execute.py": PROBE}
    try:
        subprocess.run(["docker", "tag", PYTHON_IMAGE, base], check=True)
        assert await make_executor(base, files=files).execute(None) is False

        with tempfile.TemporaryDirectory() as context:
            (Path(context) / "patched").write_text("the fix\n")
            (Path(context) / "Dockerfile").write_text(f"FROM {PYTHON_IMAGE}\nCOPY patched /\n")
            subprocess.run(
                ["docker", "build", "-q", "-t", patched, context], check=True, capture_output=True
            )
        subprocess.run(["docker", "tag", patched, base], check=True)

        assert await make_executor(base, files=files).execute(None) is True
    finally:
        subprocess.run(["docker", "rmi", base, patched], check=False, capture_output=True)
