"""A FastAPI service holding one executor for its whole life, served by uvicorn.

``POST /stats`` takes ``{"values": [...]}`` and answers ``{"count", "sum", "mean"}``, computed
in-process (``LocalExecutor``) or in containers of the Python runner (``ContainerExecutor``,
two reused workers started with the app). The executor is made in the app's lifespan and
closed when the server stops; an ``ExecutorError`` becomes an HTTP status by its ``code``.
Needs ``pip install 'typed-executor[examples]'`` (FastAPI, uvicorn)::

    .venv/bin/python examples/service.py                 # http://127.0.0.1:8000, in-process
    .venv/bin/python examples/service.py --container     # in containers
    .venv/bin/uvicorn --app-dir examples service:app     # the same app, under uvicorn's CLI
    curl -s localhost:8000/stats -H 'content-type: application/json' -d '{"values": [1, 2]}'

Settings come from the environment, so that ``uvicorn service:app`` sees them too:
``SERVICE_EXECUTOR`` (``local`` or ``container``), ``SERVICE_LABELS`` (``key=value,...``,
added to the containers' labels), ``SERVICE_OTEL=memory`` (OpenTelemetry's SDK with spans
kept in memory, a server span per request, and ``GET /debug/spans`` listing the finished
spans: what tests/observe/test_service.py checks; needs ``opentelemetry-sdk``).
"""

from __future__ import annotations

import argparse
import logging
import os
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from executor import ContainerConfig, ContainerExecutor, Executor, ExecutorError, LocalExecutor

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping

HERE = Path(__file__).resolve().parent
log = logging.getLogger("service")


@dataclass
class Input:
    values: list[float]


@dataclass
class Output:
    count: int
    sum: float
    mean: float


async def stats(inp: Input) -> Output:
    """The in-process task (the container runs examples/stats.py, the same computation)."""
    total = sum(inp.values)
    return Output(count=len(inp.values), sum=total, mean=total / len(inp.values))


#: HTTP status per error code; anything else is a 500.
STATUS = {
    "INPUT_INVALID": 422,  # the body passed FastAPI's checks but not the task's schema
    "TIMEOUT": 504,
    "START_TIMEOUT": 503,
    "ENGINE_UNAVAILABLE": 503,
    "IMAGE_NOT_FOUND": 503,
    "CLOSED": 503,  # shutting down
    "OOM_KILLED": 502,
    "EXIT_NONZERO": 502,
    "PROTOCOL_ERROR": 502,
    "OUTPUT_TOO_LARGE": 502,
    "OUTPUT_INVALID": 502,
}


def make_executor() -> Executor[Input, Output]:
    if os.environ.get("SERVICE_EXECUTOR", "local") == "local":
        return LocalExecutor[Input, Output](stats)
    labels = dict(
        item.split("=", 1) for item in os.environ.get("SERVICE_LABELS", "").split(",") if item
    )
    config = ContainerConfig(
        "executor/runner-python:latest",
        files={"/app/execute.py": (HERE / "stats.py").read_text()},
        mode="reuse",  # trusted code: one process serves many calls (0.3 ms each)
        containers=2,  # two such workers...
        prewarm=True,  # ...started before the first request
        timeout=10,
        labels=labels,
    )
    return ContainerExecutor[Input, Output](config)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """One executor for the app's whole life, closed (every container removed) at shutdown."""
    async with make_executor() as executor:
        app.state.executor = executor
        log.info("executor ready: %r", executor)
        yield
    log.info("executor closed")


class RequestSpans:
    """ASGI middleware: a server span around each HTTP request, unless one is open already
    (recent FastAPI versions make their own once an SDK is configured; older ones need this,
    or an instrumentation package such as opentelemetry-instrumentation-fastapi)."""

    def __init__(self, app: Callable[..., Awaitable[None]], trace: Any) -> None:
        self.app = app
        self.trace = trace
        self.tracer = trace.get_tracer("service")

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or self.trace.get_current_span().is_recording():
            return await self.app(scope, receive, send)
        name = f"{scope['method']} {scope['path']}"
        kind = self.trace.SpanKind.SERVER
        with self.tracer.start_as_current_span(name, kind=kind) as span:
            span.set_attribute("http.request.method", scope["method"])
            span.set_attribute("url.path", scope["path"])
            await self.app(scope, receive, send)


def _tracing(app: FastAPI) -> None:
    """SERVICE_OTEL=memory: the SDK, spans in memory, a server span around each request."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)  # before the lifespan makes the executor
    app.add_middleware(RequestSpans, trace=trace)

    @app.get("/debug/spans")
    async def spans() -> list[dict[str, Any]]:
        """The finished spans, for tests: ids as hex, parent, attributes."""
        return [
            {
                "name": span.name,
                "trace_id": f"{span.context.trace_id:032x}",
                "span_id": f"{span.context.span_id:016x}",
                "parent_id": f"{span.parent.span_id:016x}" if span.parent else None,
                "attributes": dict(span.attributes or {}),
                "events": [event.name for event in span.events],
            }
            for span in exporter.get_finished_spans()
            if span.context is not None
        ]


def create_app() -> FastAPI:
    app = FastAPI(title="stats", lifespan=lifespan)

    @app.post("/stats")
    async def post_stats(body: Input, request: Request) -> Output:
        executor: Executor[Input, Output] = request.app.state.executor
        return await executor.execute(body)

    @app.exception_handler(ExecutorError)
    async def executor_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ExecutorError)
        return JSONResponse({"error": exc.to_dict()}, status_code=STATUS.get(exc.code, 500))

    if os.environ.get("SERVICE_OTEL") == "memory":
        _tracing(app)
    return app


logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
app = create_app()


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description="The stats service.")
    parser.add_argument("--container", action="store_true", help="run calls in containers")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    if args.container:
        os.environ["SERVICE_EXECUTOR"] = "container"
    uvicorn.run("service:app", app_dir=str(HERE), host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
