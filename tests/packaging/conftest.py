"""The distribution as a user gets it: the sdist and wheel built once per session.

``python -m build`` makes the sdist, then the wheel from the sdist (as pip does from PyPI), so
a file missing from either shows up here. Builds run without isolation, from the hatchling of
the test environment (the ``dev`` extra), so they need no network.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding the freshly built ``typed_executor-*.tar.gz`` and ``*.whl``."""
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(REPO)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out


@pytest.fixture(scope="session")
def wheel(dist: Path) -> Path:
    """The built wheel."""
    (found,) = dist.glob("typed_executor-*.whl")
    return found
