"""Podman's default ulimits merged under the create body's own (no engine needed)."""

from __future__ import annotations

from executor.engine.docker import _merge_ulimits

BODY = {
    "Image": "executor/runner-python:latest",
    "HostConfig": {"Memory": 1, "Ulimits": [{"Name": "core", "Soft": 0, "Hard": 0}]},
}
PODMAN_DEFAULTS = [
    {"Name": "RLIMIT_NOFILE", "Soft": 20000, "Hard": 20000},
    {"Name": "RLIMIT_NPROC", "Soft": 32768, "Hard": 32768},
    {"Name": "RLIMIT_CORE", "Soft": -1, "Hard": -1},
]


def test_defaults_are_added_and_ours_win() -> None:
    """Podman's nofile and nproc join the body's list; the body's core=0 beats a default."""
    merged = _merge_ulimits(PODMAN_DEFAULTS, BODY)
    assert merged["HostConfig"]["Ulimits"] == [
        {"Name": "nofile", "Soft": 20000, "Hard": 20000},
        {"Name": "nproc", "Soft": 32768, "Hard": 32768},
        {"Name": "core", "Soft": 0, "Hard": 0},
    ]
    assert merged["HostConfig"]["Memory"] == 1
    assert BODY["HostConfig"]["Ulimits"] == [{"Name": "core", "Soft": 0, "Hard": 0}]  # unchanged


def test_no_defaults_leaves_the_body_alone() -> None:
    """Without configured defaults the body's own list is sent as it is."""
    assert _merge_ulimits([], BODY) == BODY
