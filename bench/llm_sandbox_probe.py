"""Time the same task through llm-sandbox (run in its own venv by bench/suite.py).

Prints one JSON line: {"new session per call": {...}, "reused session": {...}, "note": ...}
or {"error": "..."}. Nothing can be pulled here, so it uses a local image derived from the
Python runner image with ``python`` on PATH and an idle command (llm-sandbox starts the
container detached and runs code through ``docker exec``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import time

CODE = (
    "import json\n"
    "v = [1.0, 2.0, 3.0, 4.0, 5.0]\n"
    "print(json.dumps({'count': len(v), 'sum': sum(v), 'mean': sum(v) / len(v)}))\n"
)
IMAGE = "executor-bench/llm-sandbox-python:latest"


def build_image(base: str) -> None:
    dockerfile = (
        f"FROM {base}\nUSER root\nRUN ln -sf /usr/bin/python3 /usr/local/bin/python\n"
        'ENTRYPOINT []\nCMD ["sleep", "infinity"]\n'
    )
    subprocess.run(
        ["docker", "build", "-q", "-t", IMAGE, "-"],
        input=dockerfile.encode(),
        check=True,
        capture_output=True,
    )


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50": statistics.median(ordered) * 1e3,
        "p95": ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))] * 1e3,
        "max": ordered[-1] * 1e3,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--image", default="executor/runner-python:latest")
    args = parser.parse_args()
    try:
        from llm_sandbox import SandboxSession

        build_image(args.image)
        options = {
            "lang": "python",
            "image": IMAGE,
            "keep_template": True,
            "skip_environment_setup": True,
            "verbose": False,
            "runtime_configs": {"network_mode": "none", "labels": {"executor.bench": "1"}},
        }
        fresh = []
        for _ in range(3):  # each new session costs ~10 s (docker stop on close)
            t0 = time.perf_counter()
            with SandboxSession(**options) as session:
                out = session.run(CODE)
            fresh.append(time.perf_counter() - t0)
            assert '"count": 5' in out.stdout, out
        reused = []
        with SandboxSession(**options) as session:
            session.run(CODE)
            for _ in range(args.calls):
                t0 = time.perf_counter()
                out = session.run(CODE)
                reused.append(time.perf_counter() - t0)
                assert '"count": 5' in out.stdout, out
        print(
            json.dumps(
                {
                    "new session per call": summary(fresh),
                    "reused session": summary(reused),
                    "note": "llm-sandbox runs code via docker exec in a detached container it "
                    "starts as root with a TTY; its close() stops the container with docker stop.",
                }
            )
        )
    except Exception as exc:  # report, never crash the suite
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"[:400]}))


if __name__ == "__main__":
    main()
