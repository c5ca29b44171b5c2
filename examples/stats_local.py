"""The stats example run in-process by LocalExecutor (the seed's LocalExecutor example).

Run it with ``make demo`` (or ``.venv/bin/python examples/stats_local.py``).
"""

from __future__ import annotations

import anyio
import msgspec

from executor import LocalConfig, LocalExecutor


class Input(msgspec.Struct):
    values: list[float]


class Output(msgspec.Struct):
    count: int
    sum: float
    mean: float


async def stats(inp: Input) -> Output:
    total = sum(inp.values)
    return Output(count=len(inp.values), sum=total, mean=total / len(inp.values))


async def main() -> None:
    # The input and output schemas are derived from Input and Output; both are validated.
    async with LocalExecutor[Input, Output](stats, LocalConfig(timeout=10)) as ex:
        output = await ex.execute(Input(values=[1.0, 2.0, 3.0, 4.0, 5.0]))
    print(f"local:     sum={output.sum} mean={output.mean}  {msgspec.json.encode(output).decode()}")


if __name__ == "__main__":
    anyio.run(main)
