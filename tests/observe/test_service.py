"""examples/service.py as a real service: uvicorn in a subprocess, hundreds of requests at once.

The service runs with ``SERVICE_OTEL=memory`` (OpenTelemetry's SDK, spans kept in memory and
listed at ``GET /debug/spans``), so the test can check that each call's ``executor.run`` span
belongs to the trace of the request that made it. Then the server is stopped with SIGINT, as
Ctrl-C would, and must close its executor (and, in containers, remove every container).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import httpx
import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
REQUESTS = 300
START_TIMEOUT = 120.0


class Service:
    """uvicorn serving examples/service.py on a free loopback port, its output collected."""

    def __init__(self, env: dict[str, str]) -> None:
        self.lines: list[str] = []
        self._ready = threading.Event()
        self.url = ""
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--app-dir",
                str(EXAMPLES),
                "service:app",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-access-log",
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self._ready.wait(START_TIMEOUT) or not self.url:
            self.process.kill()
            raise AssertionError("the service did not start:\n" + self.output)

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)
            if "Uvicorn running on " in line:
                self.url = line.split("Uvicorn running on ", 1)[1].split()[0]
                self._ready.set()
        self._ready.set()  # the process ended

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def stop(self) -> int:
        """Ctrl-C: uvicorn shuts the app down (the lifespan closes the executor)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise
        finally:
            self._reader.join(10)
            assert self.process.stdout is not None
            self.process.stdout.close()


@pytest.fixture
def service_env() -> dict[str, str]:
    return {**os.environ, "SERVICE_OTEL": "memory", "PYTHONUNBUFFERED": "1"}


async def hammer(url: str) -> tuple[list[httpx.Response], httpx.Response, httpx.Response]:
    """REQUESTS good requests at once, one the task fails on, one FastAPI refuses."""
    # Idle connections expire here before uvicorn's keep-alive timeout (5 s, httpx's default
    # expiry too) closes them: with equal timeouts a request sent on a connection the server is
    # closing at that moment fails with ReadError (seen 1 run in 15, before and after #13).
    limits = httpx.Limits(max_connections=100, keepalive_expiry=1.0)
    responses: list[httpx.Response | None] = [None] * REQUESTS
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as client:

        async def one(i: int) -> None:
            responses[i] = await client.post("/stats", json={"values": [i, i + 1]})

        async with anyio.create_task_group() as tg:
            for i in range(REQUESTS):
                tg.start_soon(one, i)
        empty = await client.post("/stats", json={"values": []})
        malformed = await client.post("/stats", json={"values": "oops"})
    assert all(r is not None for r in responses)
    return [r for r in responses if r is not None], empty, malformed


def roots(spans: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """For each ``executor.run`` span id, the root span of its trace."""
    by_id = {span["span_id"]: span for span in spans}
    found = {}
    for span in spans:
        if span["name"] != "executor.run":
            continue
        node = span
        while node["parent_id"] is not None:
            node = by_id[node["parent_id"]]
            assert node["trace_id"] == span["trace_id"]
        found[span["span_id"]] = node
    return found


async def check(service: Service, failure_code: str, attributes: dict[str, str]) -> None:
    responses, empty, malformed = await hammer(service.url)
    assert [r.status_code for r in responses] == [200] * REQUESTS
    for i, response in enumerate(responses):  # every answer is its own request's
        assert response.json() == {"count": 2, "sum": 2 * i + 1, "mean": i + 0.5}
    assert empty.status_code == 500 and empty.json()["error"]["code"] == failure_code
    assert malformed.status_code == 422  # FastAPI's own check: the executor never saw it

    async with httpx.AsyncClient(base_url=service.url, timeout=60) as client:
        spans = (await client.get("/debug/spans")).json()
    calls = [s for s in spans if s["name"] == "executor.run"]
    assert len(calls) == REQUESTS + 1
    outcomes = sorted(s["attributes"]["executor.outcome"] for s in calls)
    assert outcomes == sorted(["OK"] * REQUESTS + [failure_code])
    for span in calls:
        assert attributes.items() <= span["attributes"].items()
    request_of = roots(spans)
    assert {root["name"] for root in request_of.values()} == {"POST /stats"}
    assert len({root["span_id"] for root in request_of.values()}) == REQUESTS + 1


async def test_service_in_process(service_env: dict[str, str]) -> None:
    """LocalExecutor behind FastAPI: every concurrent request answered, spans nested, clean stop."""
    service = Service({**service_env, "SERVICE_EXECUTOR": "local"})
    try:
        await check(service, "EXECUTION_FAILED", {"executor.kind": "local"})
    finally:
        code = service.stop()
    assert code == 0, service.output
    assert "service: executor closed" in service.output
    assert "Application shutdown complete" in service.output


@pytest.fixture
def label() -> Iterator[str]:
    value = f"executor.test-service={uuid.uuid4().hex[:12]}"
    yield value
    left = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label={value}"], capture_output=True, text=True
    ).stdout.split()
    if left:
        subprocess.run(["docker", "rm", "-f", *left], capture_output=True)
    assert left == [], f"the service left containers behind: {left}"


@pytest.mark.docker
async def test_service_in_containers(service_env: dict[str, str], label: str) -> None:
    """Two reused workers behind FastAPI: the same, and no container left after shutdown."""
    env = {**service_env, "SERVICE_EXECUTOR": "container", "SERVICE_LABELS": label}
    service = Service(env)
    try:
        await check(
            service,
            "USER_ERROR",
            {"executor.kind": "container", "executor.mode": "reuse"},
        )
    finally:
        code = service.stop()
    assert code == 0, service.output
    assert "service: executor closed" in service.output
