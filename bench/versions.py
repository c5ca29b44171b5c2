"""Local µs/op, warm-pool p50 and reuse p50 of whichever ``executor`` this Python imports.

Used to compare two versions side by side (issue #11: "no regression beyond noise"): install
each in its own venv and alternate the runs, e.g.::

    git worktree add /tmp/old 3c3c7ee   # 0.1.0: the layout before issue #11
    python3 -m venv /tmp/old/.venv
    /tmp/old/.venv/bin/pip install -e /tmp/old
    cd /tmp && for i in 1 2; do /tmp/old/.venv/bin/python $REPO/bench/versions.py; \
        $REPO/.venv/bin/python $REPO/bench/versions.py; done

(run from outside the checkout, so each interpreter imports its own ``executor``). Prints one
dict per run. Needs the engine and ``executor/runner-python:latest``.
"""

import asyncio
import statistics
import time

import msgspec

import executor
from executor import ContainerConfig, ContainerExecutor, LocalConfig, LocalExecutor


class In(msgspec.Struct):
    values: list[float]


class Out(msgspec.Struct):
    total: float


async def fn(x: In) -> Out:
    return Out(total=sum(x.values))


async def local_us(n=200_000):
    best = {}
    for name, cfg in (
        ("validated+timeout", LocalConfig(timeout=10)),
        ("bare", LocalConfig(timeout=None, validate=False)),
    ):
        ex = LocalExecutor[In, Out](fn, cfg)
        value = In(values=[1.0, 2.0, 3.0])
        runs = []
        for _ in range(5):
            t = time.perf_counter()
            for _ in range(n):
                await ex.execute(value)
            runs.append((time.perf_counter() - t) / n * 1e6)
        best[name] = min(runs)
    return best


async def p50(settings, calls=300):
    cfg = ContainerConfig("executor/runner-python:latest", timeout=30, **settings)
    async with ContainerExecutor(cfg) as ex:
        for _ in range(5):
            await ex.execute({"w": 1})
        lat = []
        for i in range(calls):
            if settings.get("pool_size") and not settings.get("reuse"):
                pool = ex._pool
                deadline = time.monotonic() + 10
                while pool.idle < pool.size and time.monotonic() < deadline:
                    await asyncio.sleep(0.01)
                await asyncio.sleep(0.05)
            t = time.perf_counter()
            await ex.execute({"i": i})
            lat.append(time.perf_counter() - t)
    return statistics.median(lat) * 1000


async def main():
    out = {"version": executor.__version__}
    out.update({f"local {k} µs": round(v, 3) for k, v in (await local_us()).items()})
    out["pool p50 ms"] = round(await p50({"pool_size": 2, "prewarm": True}, 100), 2)
    out["reuse p50 ms"] = round(await p50({"reuse": True, "max_uses": 100000}), 3)
    print(out, flush=True)


asyncio.run(main())
