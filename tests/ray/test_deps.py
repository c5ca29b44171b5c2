"""``requirements=`` on a two-node Ray cluster: each node's engine gets its own derived image,
built on that node from the packages its own pip fetched, on the first call there."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid

import pytest

from tests.container._support import pypi

from .conftest import MakeRay, TwoNodes, case

__all__ = ["pypi"]

pytestmark = [pytest.mark.docker, pytest.mark.ray]

TASK = """
import attrs

def execute(input):
    return {"id": input["id"], "attrs": attrs.__name__}
"""


def _docker(engine: str, *args: str) -> str:
    done = subprocess.run(["docker", "-H", engine, *args], capture_output=True, text=True)
    return done.stdout if done.returncode == 0 else ""


def deps_images(engine: str, requirement: str) -> list[str]:
    """Tags of the dependencies images on ``engine`` whose requirements include ``requirement``."""
    found = []
    for image in set(_docker(engine, "images", "-q", "--filter=label=executor.deps").split()):
        seen = _docker(engine, "image", "inspect", "-f", "{{json .}}", image)
        if not seen:
            continue
        inspected = json.loads(seen)
        if requirement in inspected["Config"]["Labels"].get("executor.deps", ""):
            found.extend(inspected["RepoTags"])
    return found


def remove_deps_images(engine: str, requirement: str) -> None:
    """Remove those images, and the ``files`` images made on top of them first."""
    for tag in deps_images(engine, requirement):
        on_top = _docker(engine, "images", "-q", f"--filter=label=executor.files-of={tag}")
        for image in set(on_top.split()):
            _docker(engine, "rmi", "-f", image)
        _docker(engine, "rmi", tag)


@pytest.mark.usefixtures("pypi")
async def test_requirements_built_on_each_node(cluster: TwoNodes, make_ray: MakeRay) -> None:
    """A RayExecutor with requirements=[...] runs tasks importing the package on both nodes,
    each node's engine holding its own derived image afterwards."""
    if not cluster.ray.alive("worker"):
        await asyncio.to_thread(cluster.start_worker)
    # Unique per run: the same package, an image neither engine has cached.
    requirement = f"attrs!=0.9.{uuid.uuid4().int % 10**6}"
    engines = [cluster.system, cluster.private.url]
    try:
        ex = make_ray(
            case(), files={"/app/execute.py": TASK}, requirements=[requirement], build_timeout=300
        )
        async with ex:
            runs = await asyncio.gather(*(ex.run({"id": i}) for i in range(6)))
        assert {r.engine for r in runs} == set(engines)
        assert [r.output for r in runs] == [{"id": i, "attrs": "attrs"} for i in range(6)]
        for engine in engines:
            assert deps_images(engine, requirement), f"no dependencies image on {engine}"
    finally:
        for engine in engines:
            remove_deps_images(engine, requirement)
