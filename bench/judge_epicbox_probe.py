"""Judge the A+B program through epicbox (run in its own venv by bench/judge.py).

epicbox (PyPI, 1.1.0) runs each command in a fresh Docker container with cputime/memory
limits; the compiled binary is shared between them through a Docker volume
(``epicbox.working_directory()``), which is its documented way to compile once and run many.
It is pointed at the local judge image (no image can be pulled here). Prints one JSON line:
{"compile": s, "tests": n, "seconds": s, "passed": n}.
"""

from __future__ import annotations

import json
import sys
import time


def main() -> None:
    image, count = sys.argv[1], int(sys.argv[2])
    source = sys.stdin.read().encode()
    import epicbox  # type: ignore[import-not-found]

    epicbox.configure(profiles=[epicbox.Profile("gcc", image, user="root", read_only=False)])
    limits = {"cputime": 2, "memory": 256}
    with epicbox.working_directory() as workdir:
        t0 = time.perf_counter()
        built = epicbox.run(
            "gcc",
            "g++ -O2 -std=gnu++17 -pipe main.cpp -o main",
            files=[{"name": "main.cpp", "content": source}],
            limits={"cputime": 30, "memory": 512},
            workdir=workdir,
        )
        compiled = time.perf_counter() - t0
        if built["exit_code"] != 0:
            raise SystemExit(f"compile failed: {built}")
        passed = 0
        t1 = time.perf_counter()
        for i in range(count):
            out = epicbox.run(
                "gcc", "./main", stdin=f"{i} {2 * i}\n", limits=limits, workdir=workdir
            )
            passed += out["stdout"].decode().split() == [str(3 * i)]
        seconds = time.perf_counter() - t1
    print(json.dumps({"compile": compiled, "tests": count, "seconds": seconds, "passed": passed}))


if __name__ == "__main__":
    main()
