"""Fixtures for the fault tests: the container fixtures (labels, factory, leftover check)."""

from __future__ import annotations

from tests.container.conftest import (
    PYTHON_IMAGE,
    RUN_ID,
    RUN_LABEL,
    config,
    leftover_containers,
    make_executor,
    no_leftover_containers,
)

__all__ = [
    "PYTHON_IMAGE",
    "RUN_ID",
    "RUN_LABEL",
    "config",
    "leftover_containers",
    "make_executor",
    "no_leftover_containers",
]
