"""What OpenTelemetry costs a call: the hook on the call path, without and with an SDK.

Run: ``.venv/bin/python bench/observe.py [--calls N] [--container-calls N]`` (the container
rows need an engine and the Python runner image; they are skipped without one).

Everything runs in one process, with the same executors, all made before OpenTelemetry was
imported (as an executor made at import time is). Whether a call is observed is decided when
it starts (``executor._observe.observer()``, the hook), so the process goes through three
states, one way:

* ``no OTel``: OpenTelemetry not imported at all;
* ``OTel API, no SDK``: ``import opentelemetry`` with no provider set (an app that has the
  ``otel`` extra but configured nothing);
* ``SDK configured``: a real tracer provider (batch processor, exporter that drops the spans)
  and meter provider (in-memory reader) set: a span and three metric records per call.

Local rows, per state, best of 20 interleaved rounds: ``execute`` and ``run`` (both call the
hook), ``run`` without the hook (``_run``, the call the hook leads to when nothing is
configured) and the hook alone. Container rows: p50 of the same executors before
OpenTelemetry and after the SDK is configured.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import BENCH_LABEL, ECHO_INPUT, PYTHON_IMAGE, bench_leftovers, machine, table

from executor import ContainerConfig, ContainerExecutor, LocalConfig, LocalExecutor
from executor._observe import observer

#: Rounds per local cell: the best one counts (a shared machine's load comes in bursts).
ROUNDS = 20
STATS = (Path(__file__).resolve().parents[1] / "examples" / "stats.py").read_text()


class Input(msgspec.Struct):
    values: list[float]


class Output(msgspec.Struct):
    count: int
    sum: float
    mean: float


async def stats(inp: Input) -> Output:
    total = sum(inp.values)
    return Output(count=len(inp.values), sum=total, mean=total / len(inp.values))


def local() -> LocalExecutor[Input, Output]:
    return LocalExecutor[Input, Output](stats, LocalConfig(timeout=10.0))


def pooled() -> ContainerExecutor[Any, Any]:
    config = ContainerConfig(
        PYTHON_IMAGE,
        files={"/app/execute.py": STATS},
        mode="pool",
        containers=2,
        prewarm=True,
        labels={BENCH_LABEL: "1"},
    )
    return ContainerExecutor(config)


def reused() -> ContainerExecutor[Any, Any]:
    config = ContainerConfig(
        PYTHON_IMAGE,
        files={"/app/execute.py": STATS},
        mode="reuse",
        containers=1,
        prewarm=True,
        labels={BENCH_LABEL: "1"},
    )
    return ContainerExecutor(config)


def configure_sdk() -> None:
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )

    class Drop(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Drop()))
    trace.set_tracer_provider(provider)
    metrics.set_meter_provider(MeterProvider(metric_readers=[InMemoryMetricReader()]))


def observed() -> str:
    return "no" if observer() is None else "yes"


async def empty_span() -> None:
    """The reference: what the configured SDK charges for one span, with nothing in it."""
    from opentelemetry import trace

    with trace.get_tracer("bench").start_as_current_span("empty"):
        pass


async def local_row(state: str, ex: LocalExecutor[Input, Output], calls: int) -> list[Any]:
    """Best µs/op of ROUNDS interleaved rounds of each way of calling, in the current state."""
    x = Input(values=[1.0, 2.0, 3.0, 4.0, 5.0])
    ways: dict[str, Any] = {
        "execute": lambda: ex.execute(x),
        "run": lambda: ex.run(x),
        "run without the hook": lambda: ex._run(x),
    }
    best = dict.fromkeys([*ways, "the hook alone"], float("inf"))
    per_round = calls // ROUNDS
    for _ in range(ROUNDS):
        for name, call in ways.items():
            t0 = time.perf_counter_ns()
            for _ in range(per_round):
                await call()
            best[name] = min(best[name], (time.perf_counter_ns() - t0) / per_round / 1e3)
        t0 = time.perf_counter_ns()
        for _ in range(per_round):
            observer()
        alone = (time.perf_counter_ns() - t0) / per_round / 1e3
        best["the hook alone"] = min(best["the hook alone"], alone)
    *per_call, alone = best.values()
    return [state, observed(), *per_call, f"{alone * 1e3:.0f} ns"]


async def reference_row(calls: int) -> list[Any]:
    per_round, best = calls // ROUNDS, float("inf")
    for _ in range(ROUNDS):
        t0 = time.perf_counter_ns()
        for _ in range(per_round):
            await empty_span()
        best = min(best, (time.perf_counter_ns() - t0) / per_round / 1e3)
    return ["(reference: an empty SDK span)", "", best, "", "", ""]


async def container_p50(ex: ContainerExecutor[Any, Any], mode: str, calls: int) -> float:
    """p50 ms of ``calls`` calls; pool calls each start with the pool refilled (the latency a
    service sees while its pool keeps up)."""
    samples = []
    await ex.execute(ECHO_INPUT)  # warm-up
    for _ in range(calls):
        if mode == "pool":
            await settle(ex)
        t0 = time.perf_counter()
        await ex.execute(ECHO_INPUT)
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples) * 1e3


async def settle(ex: ContainerExecutor[Any, Any]) -> None:
    """A warm pool's latency: start each call with the pool full and the engine quiet."""
    deadline = time.monotonic() + 30
    while ex.engines[0]["idle_pooled"] < 2 and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.2)


async def engine_answers() -> bool:
    from executor.engine.docker import DockerEngine

    engine = DockerEngine()
    try:
        await asyncio.wait_for(engine.ping(), 5)
        return (await engine.images.inspect(PYTHON_IMAGE)) is not None
    except Exception:
        return False
    finally:
        await engine.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--container-calls", type=int, default=100)
    args = parser.parse_args()
    assert "opentelemetry" not in sys.modules
    ex = local()
    print(f"machine: {machine()}")
    containers = args.container_calls > 0 and asyncio.run(engine_answers())
    asyncio.run(run_all(ex, containers, args.calls, args.container_calls))


async def run_all(
    ex: LocalExecutor[Input, Output], containers: bool, calls: int, container_calls: int
) -> None:
    executors = {"pool": pooled(), "reuse": reused()} if containers else {}
    try:
        for remote in executors.values():
            await remote.__aenter__()
        rows = [await local_row("no OTel", ex, calls)]
        before = {m: await container_p50(r, m, container_calls) for m, r in executors.items()}
        import opentelemetry.metrics
        import opentelemetry.trace  # noqa: F401 - the API imported, nothing configured

        rows.append(await local_row("OTel API, no SDK", ex, calls))
        configure_sdk()
        rows.append(await local_row("SDK configured", ex, calls))
        rows.append(await reference_row(calls))
        after = {m: await container_p50(r, m, container_calls) for m, r in executors.items()}
    finally:
        for remote in executors.values():
            await remote.aclose()
    print(f"\nlocal: {calls} calls per cell, best of {ROUNDS} interleaved rounds, µs/op\n")
    headers = ["LocalExecutor", "observed", "execute", "run", "run without the hook"]
    print(table([*headers, "the hook alone"], rows))
    if not containers:
        print(f"\ncontainer rows skipped: no engine answers, no {PYTHON_IMAGE}, or no calls")
        return
    print(f"\ncontainer: {container_calls} calls per row, the same executors\n")
    crows = []
    for mode in executors:
        crows.append([f"{mode}, no OTel", "no", before[mode], "+0.000"])
        crows.append(
            [f"{mode}, SDK configured", "yes", after[mode], f"{after[mode] - before[mode]:+.3f}"]
        )
    print(table(["ContainerExecutor.execute", "observed", "p50 ms", "vs no OTel"], crows))
    print(f"\ncontainers left behind: {len(bench_leftovers())}")


if __name__ == "__main__":
    main()
