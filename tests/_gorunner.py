"""The Go runner built with a test's function compiled in (static), for tests that mount it."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

RUNNERS_GO = Path(__file__).resolve().parents[1] / "runners" / "go"
#: A static build from the sources at hand: no cgo, no toolchain download, no module proxy.
GO_ENV = {"CGO_ENABLED": "0", "GOFLAGS": "-trimpath", "GOTOOLCHAIN": "local", "GOPROXY": "off"}


def build_go_runner(function: Path, out: Path, package: str = "./cmd/runner") -> Path:
    """Build ``package`` of the Go runner's module (the runner itself by default) with the Go
    package in directory ``function`` as its function, into ``out`` (executable); the sources
    are copied beside ``out``."""
    src = out.parent / f"src-{out.name}"
    shutil.copytree(RUNNERS_GO, src, ignore=shutil.ignore_patterns("function"))
    shutil.copytree(function, src / "function")
    done = subprocess.run(
        ["go", "build", "-ldflags=-s -w", "-o", str(out), package],
        cwd=src,
        env={**os.environ, **GO_ENV},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"go build failed:\n{done.stderr}"
    out.chmod(0o755)
    return out
