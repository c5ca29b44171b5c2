"""What OpenTelemetry costs a call: the same executors with and without a configured SDK.

Run: ``.venv/bin/python bench/observe.py [--calls N] [--container-calls N]`` (the container
rows need an engine and the Python runner image; they are skipped without one).

Everything runs in one process, interleaved. An executor decides at construction whether it
is observed, so the executors made before the SDK is configured stay unobserved after it:

* ``no OTel``: made before OpenTelemetry was imported at all;
* ``OTel API, no SDK``: made after ``import opentelemetry`` with no provider set (the case
  of an app that has the ``otel`` extra but configured nothing);
* ``SDK configured``: made after a real tracer provider (batch processor, exporter that
  drops the spans) and meter provider (in-memory reader) were set: a span and three metric
  records per call.
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

from executor import ContainerConfig, ContainerExecutor, Executor, LocalConfig, LocalExecutor

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


def observed(ex: Executor[Any, Any]) -> str:
    return "yes" if "execute" in vars(ex) else "no"


async def empty_span(x: Any) -> None:
    """The reference: what the configured SDK charges for one span, with nothing in it."""
    from opentelemetry import trace

    with trace.get_tracer("bench").start_as_current_span("empty"):
        pass


async def local_rows(variants: dict[str, LocalExecutor[Input, Output]], calls: int) -> list[Any]:
    """Best µs/op of 5 interleaved rounds per variant (and for an empty SDK span)."""
    x = Input(values=[1.0, 2.0, 3.0, 4.0, 5.0])
    calls_of: dict[str, Any] = {name: ex.execute for name, ex in variants.items()}
    calls_of["(reference: an empty SDK span)"] = empty_span
    best = dict.fromkeys(calls_of, float("inf"))
    per_round = calls // 5
    for _ in range(5):
        for name, execute in calls_of.items():
            t0 = time.perf_counter_ns()
            for _ in range(per_round):
                await execute(x)
            best[name] = min(best[name], (time.perf_counter_ns() - t0) / per_round / 1e3)
    base = best["no OTel"]
    return [
        [
            name,
            observed(variants[name]) if name in variants else "",
            best[name],
            f"{best[name] - base:+.2f}",
        ]
        for name in calls_of
    ]


async def container_rows(
    pairs: dict[str, tuple[ContainerExecutor[Any, Any], ContainerExecutor[Any, Any]]], calls: int
) -> list[Any]:
    """p50 ms per mode, without and with the SDK, calls interleaved; pool calls each start
    with the pool refilled (the latency a service sees while its pool keeps up)."""
    rows: list[Any] = []
    for mode, (plain, traced) in pairs.items():
        samples: dict[str, list[float]] = {"no OTel": [], "SDK configured": []}
        executors = {"no OTel": plain, "SDK configured": traced}
        try:
            for ex in executors.values():
                await ex.__aenter__()
                await ex.execute(ECHO_INPUT)  # warm-up
            for _ in range(calls):
                for name, ex in executors.items():
                    if mode == "pool":
                        await settle(ex)
                    t0 = time.perf_counter()
                    await ex.execute(ECHO_INPUT)
                    samples[name].append(time.perf_counter() - t0)
        finally:
            for ex in executors.values():
                await ex.aclose()
        base = statistics.median(samples["no OTel"]) * 1e3
        for name, ex in executors.items():
            p50 = statistics.median(samples[name]) * 1e3
            rows.append([f"{mode}, {name}", observed(ex), p50, f"{p50 - base:+.3f}"])
    return rows


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
    variants = {"no OTel": local()}
    plain = {"pool": pooled(), "reuse": reused()}  # made now: they stay unobserved
    import opentelemetry.metrics
    import opentelemetry.trace  # noqa: F401 - the API imported, nothing configured

    variants["OTel API, no SDK"] = local()
    configure_sdk()
    variants["SDK configured"] = local()
    pairs = {mode: (ex, pooled() if mode == "pool" else reused()) for mode, ex in plain.items()}

    print(f"machine: {machine()}")
    print(f"\nlocal: {args.calls} calls per row, best of 5 interleaved rounds\n")
    rows = asyncio.run(local_rows(variants, args.calls))
    print(table(["LocalExecutor.execute", "observed", "µs/op", "vs no OTel"], rows))

    if args.container_calls < 1 or not asyncio.run(engine_answers()):
        print(f"\ncontainer rows skipped: no engine answers, no {PYTHON_IMAGE}, or no calls")
        return
    print(f"\ncontainer: {args.container_calls} calls per row, interleaved\n")
    rows = asyncio.run(container_rows(pairs, args.container_calls))
    print(table(["ContainerExecutor.execute", "observed", "p50 ms", "vs no OTel"], rows))
    print(f"\ncontainers left behind: {len(bench_leftovers())}")


if __name__ == "__main__":
    main()
