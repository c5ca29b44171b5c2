"""LocalExecutor overhead against a bare ``await fn(x)`` (ns/op, same process).

Run: ``.venv/bin/python bench/local.py`` (or ``make bench``).
"""

from __future__ import annotations

import asyncio
import platform
import time

import msgspec

from executor import LocalConfig, LocalExecutor

N = 200_000


class Input(msgspec.Struct):
    values: list[float]


class Output(msgspec.Struct):
    count: int
    sum: float
    mean: float


async def stats(inp: Input) -> Output:
    total = sum(inp.values)
    return Output(count=len(inp.values), sum=total, mean=total / len(inp.values))


async def _time(call: object, arg: object, n: int = N) -> float:
    fn = call  # local for speed
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter_ns()
        for _ in range(n // 5):
            await fn(arg)  # type: ignore[operator]
        best = min(best, (time.perf_counter_ns() - t0) / (n // 5))
    return best


async def measure() -> list[tuple[str, float]]:
    x = Input(values=[1.0, 2.0, 3.0, 4.0, 5.0])
    no_validation = LocalExecutor[Input, Output](stats, LocalConfig(timeout=None, validate=False))
    full = LocalExecutor[Input, Output](stats, LocalConfig(timeout=10.0, validate=True))
    from_dict = LocalExecutor[Input, Output](stats, LocalConfig(timeout=10.0, validate=True))
    explicit = LocalExecutor[Input, Output](
        stats,
        LocalConfig(
            timeout=10.0,
            schema_in={
                "type": "object",
                "properties": {"values": {"type": "array", "items": {"type": "number"}}},
                "required": ["values"],
            },
            schema_out={"type": "object", "required": ["count", "sum", "mean"]},
        ),
    )
    rows = [
        ("bare `await fn(x)`", await _time(stats, x)),
        ("execute(), no validation, no timeout", await _time(no_validation.execute, x)),
        ("execute(), validation in+out, timeout armed", await _time(full.execute, x)),
        (
            "execute(dict input), validation + timeout",
            await _time(from_dict.execute, {"values": [1.0, 2.0, 3.0, 4.0, 5.0]}),
        ),
        ("execute(), explicit schemas (fastjsonschema)", await _time(explicit.execute, x)),
    ]
    return rows


def main() -> None:
    rows = asyncio.run(measure())
    bare = rows[0][1]
    print(
        f"machine: {platform.machine()} {platform.python_implementation()} "
        f"{platform.python_version()}, {N} calls/row, best of 5"
    )
    print(f"| {'case':<46} | {'ns/op':>8} | {'x bare':>7} |")
    print(f"|{'-' * 48}|{'-' * 10}|{'-' * 9}|")
    for name, ns in rows:
        print(f"| {name:<46} | {ns:>8.0f} | {ns / bare:>7.1f} |")


if __name__ == "__main__":
    main()
