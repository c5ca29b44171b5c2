"""Alternative OCI runtimes: a round trip under gVisor (``runtime="runsc"``)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .conftest import MakeExecutor

pytestmark = pytest.mark.docker

PROBE = """
import os


def execute(input):
    with open("/proc/version") as fh:
        version = fh.read()
    return {"echo": input, "uid": os.getuid(), "version": version,
            "interfaces": sorted(os.listdir("/sys/class/net"))}
"""


def registered_runtimes() -> set[str]:
    """Runtime names the engine knows (``docker info``'s Runtimes)."""
    done = subprocess.run(
        ["docker", "info", "--format", "{{json .Runtimes}}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        return set()
    return set(json.loads(done.stdout or "{}"))


def require_runsc() -> None:
    """Skip unless runsc is registered; fail instead if it is installed and Docker is required.

    On Podman it skips: Podman 4.3's Docker API ignores ``HostConfig.Runtime``, and the executor
    refuses a runtime there rather than run runc in its place.
    """
    from tests.podman.conftest import is_podman

    if is_podman():
        pytest.skip(
            "Podman's Docker API cannot choose a runtime per container (Podman 4.3 ignores "
            "HostConfig.Runtime; the executor raises ConfigError for runtime='runsc' there)"
        )
    if "runsc" in registered_runtimes():
        return
    if os.environ.get("EXECUTOR_REQUIRE_DOCKER") == "1" and shutil.which("runsc"):
        pytest.fail("runsc is installed but not registered with the engine; run `make engine`")
    pytest.skip("the gVisor runtime runsc is not registered with the engine (`make engine`)")


async def test_gvisor_round_trip(make_executor: MakeExecutor) -> None:
    """With runtime="runsc" a call runs under gVisor's kernel, as uid 1000 without network."""
    require_runsc()
    ex = make_executor(files={"/app/execute.py": PROBE}, runtime="runsc")
    result = await ex.run({"values": [1, 2, 3]})
    out = result.output
    assert out["echo"] == {"values": [1, 2, 3]}
    assert out["uid"] == 1000
    # gVisor's Sentry reports its own kernel, not the host's.
    host_version = Path("/proc/version").read_text()
    assert out["version"] != host_version
    assert out["interfaces"] == ["lo"]
