"""Evaluate a JSONL file of programs in locked-down containers, writing a JSONL of verdicts.

    python examples/evaluate_programs.py programs.jsonl verdicts.jsonl [--language python]
        [--concurrency 4] [--timeout 5] [--image IMAGE]

Each input line is ``{"id", "code", "stdin"?, "argv"?, "files"?, "expected"?}``; each output
line, written as soon as its program finishes (so in completion order, with its 0-based
``index``), is ``{"index", "id", "verdict", "exit_code", "stdout", "stderr", "files",
"duration"}`` where ``verdict`` is:

* ``pass``: exit status 0 and stdout equal to ``expected`` (trailing white space ignored; no
  ``expected``: any output passes);
* ``wrong``: exit status 0, other output;
* ``error``: a non-zero exit status (an uncaught exception, ``exit(1)``, a signal);
* ``timeout``: the program ran past ``--timeout`` seconds;
* ``failed:<CODE>``: the run itself failed (for example ``COLLECT_TOO_LARGE``).

Every program runs as its own process in fork mode (``mode="fork"``): a fresh process in a
container wiped between programs, so nothing one program does reaches the next, at a few
milliseconds per program. ``CodeExecutor.map`` keeps ``--concurrency`` programs running and
reads the input lazily, so a file of any size runs in bounded memory. A progress bar (rich)
shows the rate and the verdicts so far on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from executor import (
    CodeExecutor,
    CodeResult,
    CodeRun,
    ContainerConfig,
    ExecutionTimeout,
    ExecutorError,
)

if TYPE_CHECKING:
    from collections.abc import Iterator


def read_programs(path: Path, meta: list[dict[str, Any]]) -> Iterator[CodeRun]:
    """The file's programs, one line at a time; each line's id and expected output go to
    ``meta`` (by index) as the line is read."""
    with path.open() as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            item = json.loads(line)
            meta.append({"id": item.get("id", number), "expected": item.get("expected")})
            yield CodeRun(
                item["code"],
                stdin=item.get("stdin", ""),
                argv=item.get("argv", []),
                files=item.get("files", {}),
            )


def verdict(result: CodeResult | ExecutorError, expected: str | None) -> dict[str, Any]:
    """The verdict line's fields for one program's outcome."""
    if isinstance(result, ExecutionTimeout):
        return {"verdict": "timeout"}
    if isinstance(result, ExecutorError):
        return {"verdict": f"failed:{result.code}", "message": result.message}
    if result.exit_code != 0:
        outcome = "error"
    elif expected is None or result.stdout.rstrip() == expected.rstrip():
        outcome = "pass"
    else:
        outcome = "wrong"
    return {
        "verdict": outcome,
        "exit_code": result.exit_code,
        "stdout": result.stdout[-2000:],
        "stderr": result.stderr[-2000:],
        "files": sorted(result.files),
        "duration": round(result.duration, 4),
    }


async def evaluate(args: argparse.Namespace) -> Counter[str]:
    config = ContainerConfig(
        args.image or CodeExecutor.image_for(args.language),
        mode="fork",
        containers=args.concurrency,
        timeout=args.timeout,
        memory_bytes=256 * 1024 * 1024,
    )
    meta: list[dict[str, Any]] = []
    counts: Counter[str] = Counter()
    total = sum(1 for line in args.programs.open() if line.strip())
    console = Console(stderr=True)
    columns = (
        TextColumn("[bold]evaluating"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[summary]}"),
        TimeRemainingColumn(),
    )
    async with CodeExecutor(args.language, config) as ex:
        with Progress(*columns, console=console) as progress, args.verdicts.open("w") as out:
            task = progress.add_task("programs", total=total, summary="")
            programs = read_programs(args.programs, meta)
            async with ex.map(programs, concurrency=args.concurrency) as results:
                async for index, result in results:
                    line = {"index": index, "id": meta[index]["id"]}
                    line.update(verdict(result, meta[index]["expected"]))
                    out.write(json.dumps(line) + "\n")
                    out.flush()
                    counts[line["verdict"]] += 1
                    summary = " ".join(f"{k}={v}" for k, v in sorted(counts.items()))
                    progress.update(task, advance=1, summary=summary)
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("programs", type=Path, help="the JSONL file of programs")
    parser.add_argument("verdicts", type=Path, help="where to write the JSONL of verdicts")
    parser.add_argument("--language", default="python", choices=["python", "bash", "node"])
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per program")
    parser.add_argument("--image", help="a runner image (default: the stock one)")
    args = parser.parse_args(argv)
    counts = anyio.run(evaluate, args)
    print(json.dumps(dict(sorted(counts.items()))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
