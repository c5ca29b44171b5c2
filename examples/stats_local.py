"""The stats example: values in, count/sum/mean out, run in-process by LocalExecutor.

Run it with ``make demo`` (or ``.venv/bin/python examples/stats_local.py``).
"""

from __future__ import annotations

import anyio
import msgspec

from executor import LocalExecutor


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
    async with LocalExecutor[Input, Output](stats) as ex:
        # Plain JSON-like data is converted to Input and validated before stats() runs.
        result = await ex.execute({"values": [1.0, 2.0, 3.0, 4.0]})
    print(msgspec.json.encode(result).decode())


if __name__ == "__main__":
    anyio.run(main)
