"""Time llm-sandbox's stateful session (``InteractiveSandboxSession``) for bench/sessions.py.

Run in a venv holding ``llm-sandbox[docker]`` (``bench/sessions.py --llm-sandbox PYTHON``).
Prints one JSON line: ``{"enter": [...s], "cell": [...s], "memory_mib": float}`` or
``{"error": "..."}``. Nothing can be pulled or pip-installed inside containers here, so the
image (``--image``, built by bench/sessions.py) is the runner image with IPython and pip in its
system site-packages and the venv llm-sandbox looks for at ``/sandbox/.sandbox-venv``; its own
``pip install ipython`` then finds it satisfied without a network. Made on the host with
``pip download ipython pip --only-binary=:all: -d wheels``, ``pip install --no-index --no-deps
--target site wheels/*.whl`` and::

    FROM <the Python runner image>
    USER root
    COPY site /usr/local/lib/python3.11/dist-packages/
    RUN ln -sf /usr/bin/python3 /usr/local/bin/python \
     && python3 -m venv --without-pip --system-site-packages /sandbox/.sandbox-venv \
     && printf '#!/bin/sh\nexec /sandbox/.sandbox-venv/bin/python -m pip "$@"\n' \
        > /sandbox/.sandbox-venv/bin/pip && chmod +x /sandbox/.sandbox-venv/bin/pip
    ENTRYPOINT []
    CMD ["sleep", "infinity"]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--image", required=True)
    parser.add_argument("--enters", type=int, default=3)
    parser.add_argument("--cells", type=int, default=30)
    parser.add_argument("--label", default="executor.bench=1")
    args = parser.parse_args()
    try:
        from llm_sandbox import InteractiveSandboxSession

        key, _, value = args.label.partition("=")
        options = {
            "image": args.image,
            "keep_template": True,
            "skip_environment_setup": True,
            "verbose": False,
            "runtime_configs": {"network_mode": "none", "labels": {key: value}},
        }
        enters, cells, memory = [], [], 0.0
        for n in range(args.enters):
            t0 = time.perf_counter()
            session = InteractiveSandboxSession(**options)
            session.open()
            enters.append(time.perf_counter() - t0)
            try:
                session.run("x = 1")
                out = session.run("print(x + 1)")
                assert "2" in out.stdout, out
                if n == 0:
                    for _ in range(args.cells):
                        t0 = time.perf_counter()
                        session.run("x = 1")
                        cells.append(time.perf_counter() - t0)
                    stats = subprocess.run(
                        ["docker", "stats", "--no-stream", "--format", "{{.MemUsage}}",
                         session.container.id],
                        capture_output=True, text=True, check=True,
                    ).stdout.split("/")[0].strip()  # fmt: skip
                    number = float("".join(c for c in stats if c.isdigit() or c == "."))
                    memory = number / 1024 if stats.endswith("KiB") else number
                    if stats.endswith("GiB"):
                        memory = number * 1024
            finally:
                session.close()
        print(json.dumps({"enter": enters, "cell": cells, "memory_mib": memory}))
    except Exception as exc:  # report, never crash the caller
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"[:400]}))


if __name__ == "__main__":
    main()
