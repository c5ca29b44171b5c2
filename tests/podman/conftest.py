"""The Podman subset: the container tests against Podman's Docker API (``make test-podman``).

``make test-podman`` brings up Podman's API service (scripts/podman.sh, which also copies the
runner images over), points DOCKER_HOST at it and runs this directory plus the default,
failure, pool, load (fork mode included), files and reap container tests. Against Podman,
each test in :data:`DIFFERENCES` is skipped with its reason (the README's Podman section lists
the same); against any other engine, the engine tests of this directory skip, or fail under
``EXECUTOR_REQUIRE_PODMAN=1`` (``make test-podman`` sets it).
"""

from __future__ import annotations

import functools
import os
import subprocess

import pytest

from ..container.conftest import make_executor as make_executor  # the same factory fixture

#: Container tests that cannot pass on Podman 4.3, by node id: the reason.
DIFFERENCES: dict[str, str] = {
    "tests/container/test_failures.py::test_exit_137_without_oom_is_not_called_an_oom": (
        "Podman 4.3 never sets State.OOMKilled, so the engine seam reads exit status 137 under a "
        "memory limit as an OOM kill (DockerEngine.state, _podman_oom): a task that itself "
        "exits with status 137 is the case that reading gets wrong"
    ),
    "tests/container/test_failures.py::test_docker_event_log_names_an_oom_kill_the_flag_can_miss": (
        "it reads Docker 20.10's event log, which the engine consults only on Docker; Podman "
        "4.3's /events answers no past events, and its OOM kills are read from the exit status "
        "(_podman_oom), which calls the test's `docker kill` of a PID 1 under a limit one too"
    ),
    "tests/container/test_load.py::test_start_timeout_is_raised_and_the_request_never_delivered": (
        "its start_timeout of 0.5 s is shorter than one container start on Podman 4.3 (runc "
        "create runs inside the attach request: 0.5-0.7 s here), so the warm-up call "
        "already raises StartTimeout"
    ),
    "tests/container/test_failures.py::test_invalid_input_never_creates_a_container": (
        "the test counts creations with `docker events --since/--until`, and Podman 4.3's "
        "/events answers no past events (`podman events` lists them); "
        "tests/podman/test_podman.py::test_invalid_input_creates_no_container checks the same "
        "with `podman events`"
    ),
}


@functools.cache
def is_podman() -> bool:
    """Whether the engine at DOCKER_HOST is Podman, as the docker CLI sees it."""
    done = subprocess.run(
        ["docker", "version", "--format", "{{range .Server.Components}}{{.Name}} {{end}}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return done.returncode == 0 and "podman" in done.stdout.lower()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not is_podman():
        return
    for item in items:
        reason = DIFFERENCES.get(item.nodeid)
        if reason is not None:
            item.add_marker(pytest.mark.skip(reason=f"on Podman: {reason}"))


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("docker") is None or is_podman():
        return  # unit tests run anywhere
    why = f"{os.environ.get('DOCKER_HOST', 'the default engine')} is not a Podman engine"
    if os.environ.get("EXECUTOR_REQUIRE_PODMAN") == "1":
        pytest.fail(f"EXECUTOR_REQUIRE_PODMAN=1 but {why}; run `make test-podman`", pytrace=False)
    pytest.skip(f"{why}; `make test-podman` runs these against Podman")
