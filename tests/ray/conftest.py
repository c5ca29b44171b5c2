"""Fixtures for the Ray tests: a two-node Ray cluster on this machine, one engine per node.

The head node keeps this process's environment (the system engine); the worker node gets
``DOCKER_HOST`` pointing at a private dockerd (``tests/_dockerd.py``). This pytest process is
the driver (``ray.init``). The cluster is started once per session, by the first test that
needs it, and only what it started is stopped. Without ray installed (the ``ray`` extra) or
without root for a second dockerd these tests skip, unless ``EXECUTOR_REQUIRE_RAY=1``.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
import subprocess
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests._dockerd import PrivateDockerd
from tests.container.conftest import (
    PYTHON_IMAGE,
    RUN_ID,
    RUN_LABEL,
    config,
    no_leftover_containers,
)

from ._cluster import LocalRayCluster

__all__ = ["PYTHON_IMAGE", "RUN_ID", "RUN_LABEL", "config", "no_leftover_containers"]

CASE_LABEL = "executor.test-case"


def _unavailable(reason: str) -> None:
    if os.environ.get("EXECUTOR_REQUIRE_RAY") == "1":
        pytest.fail(f"EXECUTOR_REQUIRE_RAY=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def system_engine() -> str:
    """The head node's engine as its actor names it: ``DOCKER_HOST``, else the socket that the
    library's discovery picks (aiodocker 0.27 tries /run/docker.sock before /var/run/...)."""
    from executor.engine.docker import DockerEngine

    async def discover() -> str:
        engine = DockerEngine()
        try:
            engine.client()
            return engine.name
        finally:
            await engine.aclose()

    # In a thread of its own: no event loop of the test session may be running in this one.
    found: list[str] = []
    thread = threading.Thread(target=lambda: found.append(asyncio.run(discover())))
    thread.start()
    thread.join()
    return found[0]


@dataclass
class TwoNodes:
    """The running cluster: the head on the system engine, ``worker`` on a private one."""

    ray: LocalRayCluster
    private: PrivateDockerd
    system: str = field(default_factory=system_engine)

    def start_worker(self) -> None:
        """(Re)start the worker node on the private engine."""
        self.ray.start_worker("worker", {"DOCKER_HOST": self.private.url})

    def containers(self, engine: str, labels: dict[str, str]) -> list[str]:
        """Ids of the containers (running or not) of this run with ``labels`` on an engine."""
        filters = [f"--filter=label={k}={v}" for k, v in {RUN_LABEL: RUN_ID, **labels}.items()]
        done = subprocess.run(
            ["docker", "-H", engine, "ps", "-aq", *filters],
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout.split()


@pytest.fixture(scope="session")
def cluster() -> Iterator[TwoNodes]:
    """A head node (system engine) and a worker node (private dockerd), this process the driver."""
    if importlib.util.find_spec("ray") is None:
        _unavailable("ray is not installed (pip install -e '.[dev,ray]')")
    if not PrivateDockerd.available():
        _unavailable("a second dockerd cannot be started here (needs dockerd and root)")
    import ray

    private = PrivateDockerd()
    nodes = LocalRayCluster()
    failed: list[BaseException] = []

    def engine_up() -> None:
        try:
            private.start()
            private.load_image(PYTHON_IMAGE)
        except BaseException as exc:
            failed.append(exc)

    try:
        # The engine and its image copy overlap the nodes' start: the worker node needs only
        # the engine's address, not the engine, until an actor runs a call there.
        loading = threading.Thread(target=engine_up)
        loading.start()
        two = TwoNodes(nodes, private)
        nodes.start_head()
        two.start_worker()
        loading.join()
        if failed:
            raise failed[0]
        ray.init(address=nodes.address, logging_level=logging.WARNING, log_to_driver=False)
        yield two
    finally:
        ray.shutdown()
        nodes.destroy()
        private.destroy()


def case() -> dict[str, str]:
    """A label unique to one test, to find exactly its containers."""
    return {CASE_LABEL: uuid.uuid4().hex[:12]}


MakeRay = Callable[..., Any]


@pytest.fixture
async def make_ray(cluster: TwoNodes) -> AsyncIterator[MakeRay]:
    """Factory: ``make_ray(labels, image=..., actors=..., **config)`` → a RayExecutor, closed
    after the test."""
    from executor.ray import RayExecutor

    made: list[RayExecutor[Any, Any]] = []
    executor_args = (
        "actors",
        "max_in_flight_per_actor",
        "chunk_size",
        "data_channel",
        "input_type",
        "output_type",
    )

    def make(labels: dict[str, str], image: str = PYTHON_IMAGE, **kwargs: Any) -> Any:
        own = {k: kwargs.pop(k) for k in executor_args if k in kwargs}
        types = kwargs.pop("types", None)
        cls = RayExecutor if types is None else RayExecutor[types[0], types[1]]  # type: ignore[valid-type]
        ex = cls(config(image, labels=labels, **kwargs), **own)
        made.append(ex)
        return ex

    try:
        yield make
    finally:
        for ex in made:
            await ex.aclose()
