"""The Podman subset: the container tests against Podman's Docker API (``make test-podman``).

``make test-podman`` brings up Podman's API service (scripts/podman.sh, which also copies the
runner images over), points DOCKER_HOST at it and runs this directory plus the default,
failure, pool, files and reap container tests. Against Podman, each test in
:data:`DIFFERENCES` is skipped with its reason (the README's Podman section lists the same);
against any other engine, the tests of this directory skip, or fail under
``EXECUTOR_REQUIRE_PODMAN=1`` (``make test-podman`` sets it).
"""

from __future__ import annotations

import functools
import os
import subprocess

import pytest

from ..container.conftest import make_executor as make_executor  # the same factory fixture

#: Container tests that cannot pass on Podman 4.3, by node id, with the reason.
DIFFERENCES = {
    "tests/container/test_defaults.py::test_memory_limit_stops_a_memory_bomb": (
        "cgroup v1",
        "Podman 4.3 on cgroup v1 never sets State.OOMKilled (conmon does not see the OOM kill; "
        "`podman run --memory 64m` of a memory bomb reports OOMKilled=false as well), so the "
        "call ends EXIT_NONZERO with exit_code 137, not OOM_KILLED: "
        "tests/podman/test_podman.py::test_memory_bomb_is_killed_with_137 pins that",
    ),
    "tests/container/test_failures.py::test_invalid_input_never_creates_a_container": (
        None,
        "the test counts creations with `docker events --since/--until`, and Podman 4.3's "
        "/events answers no past events (`podman events` lists them); "
        "tests/podman/test_podman.py::test_invalid_input_creates_no_container checks the same "
        "with `podman events`",
    ),
}


@functools.cache
def engine() -> tuple[str, str]:
    """``(kind, cgroup version)`` of the engine at DOCKER_HOST, as the docker CLI sees it."""
    done = subprocess.run(
        ["docker", "version", "--format", "{{range .Server.Components}}{{.Name}} {{end}}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if done.returncode != 0:
        return "none", ""
    kind = "podman" if "podman" in done.stdout.lower() else "docker"
    cgroup = subprocess.run(
        ["docker", "info", "--format", "{{.CgroupVersion}}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    ).stdout.strip()
    return kind, cgroup


def is_podman() -> bool:
    return engine()[0] == "podman"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not is_podman():
        return
    for item in items:
        known = DIFFERENCES.get(item.nodeid)
        if known is not None and known[0] in (None, f"cgroup v{engine()[1]}"):
            item.add_marker(pytest.mark.skip(reason=f"on Podman: {known[1]}"))


def pytest_runtest_setup(item: pytest.Item) -> None:
    if is_podman() or not item.nodeid.startswith("tests/podman/"):
        return
    why = f"{os.environ.get('DOCKER_HOST', 'the default engine')} is not a Podman engine"
    if os.environ.get("EXECUTOR_REQUIRE_PODMAN") == "1":
        pytest.fail(f"EXECUTOR_REQUIRE_PODMAN=1 but {why}; run `make test-podman`", pytrace=False)
    pytest.skip(f"{why}; `make test-podman` runs these against Podman")
