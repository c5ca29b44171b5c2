"""Go fork mode: two runner images side by side (before and after a change to the supervisor).

Run: ``.venv/bin/python bench/fork_go.py --before IMAGE --after IMAGE [--calls N] [--rounds R]``
(engine + images; ``--before`` defaults to ``EXECUTOR_GO_IMAGE``). Each round runs
``bench/fork.py``'s trivial-call measurement on each image, in alternated order: on one
container, a call 5 ms after the last answer then one right after that answer (p50 of each,
p95 of the spaced ones), then calls/s with 4 containers at concurrency 8 and the containers'
CPU per call (their cgroups). The table shows the median over the rounds. The echo function is
compiled into the images.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import GO_IMAGE, bench_leftovers, machine, table
from fork import trivial


async def main(args: argparse.Namespace) -> None:
    print(f"machine: {machine()}")
    images = {"before": args.before, "after": args.after or args.before}
    rows: dict[str, list[list[str]]] = {key: [] for key in images}
    for round_ in range(args.rounds):
        order = list(images) if round_ % 2 == 0 else list(images)[::-1]
        for key in order:
            rows[key].append(await trivial({"mode": "fork"}, images[key], args.calls))

    def median(key: str, column: int) -> str:
        values = [float(row[column]) for row in rows[key] if row[column] != "-"]
        return f"{statistics.median(values):.2f}" if values else "-"

    headers = ["go fork mode", "p50 ms back to back", "p50 ms 5 ms apart", "p95 ms 5 ms apart"]
    headers += ["calls/s, 4 containers, concurrency 8", "container CPU ms/call"]
    print(table(headers, [[f"{k}: {images[k]}", *(median(k, c) for c in range(5))] for k in rows]))
    left = len(bench_leftovers())
    print(f"\n{args.rounds} alternated rounds of {args.calls} calls; containers left: {left}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--before", default=GO_IMAGE, help="an image (default: EXECUTOR_GO_IMAGE)")
    parser.add_argument("--after", help="the other image")
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=4)
    asyncio.run(main(parser.parse_args()))
