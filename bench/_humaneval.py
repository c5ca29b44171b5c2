"""An unsandboxed harness shaped like the one evaluation suites ship (openai/human-eval's
``execution.py``): per program, a ``multiprocessing.Manager`` list for the result, one
``Process`` that works in a fresh temporary directory, disables dangerous functions
(``reliability_guard``), runs the program under an interval-timer limit, and is killed when it
outlives the timeout. Written here for the benchmark only: it gives the same verdicts as
``bench/fork.py``'s task (``pass``, ``fail``, ``error:<type>``, ``timeout``).
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import signal
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any


class _TimeLimit(Exception):
    pass


def _on_alarm(signum: int, frame: Any) -> None:
    raise _TimeLimit


def reliability_guard(memory_bytes: int | None = None) -> None:
    """Take away what a program could break the host with (not a sandbox: a guard rail)."""
    import builtins
    import resource
    import shutil
    import subprocess

    if memory_bytes is not None:
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
        resource.setrlimit(resource.RLIMIT_DATA, (memory_bytes, memory_bytes))
    os.environ["OMP_NUM_THREADS"] = "1"
    builtins.exit = None  # type: ignore[assignment]
    builtins.quit = None  # type: ignore[assignment]
    for name in (
        "kill", "system", "putenv", "remove", "removedirs", "rmdir", "fchdir", "setuid",
        "fork", "forkpty", "killpg", "rename", "renames", "truncate", "replace", "unlink",
        "fchmod", "fchown", "chmod", "chown", "chroot", "lchown", "getcwd", "chdir",
    ):  # fmt: skip
        if hasattr(os, name):
            setattr(os, name, None)
    shutil.rmtree = None  # type: ignore[assignment]
    shutil.move = None  # type: ignore[assignment]
    shutil.chown = None  # type: ignore[assignment]
    subprocess.Popen = None  # type: ignore[assignment,misc]


def _unsafe_execute(code: str, timeout: float, result: Any) -> None:
    with tempfile.TemporaryDirectory() as directory:
        os.chdir(directory)
        # Kept for the clean-up after the guard took them away.
        import shutil

        rmtree, rmdir, chdir = shutil.rmtree, os.rmdir, os.chdir
        reliability_guard(1 << 30)
        signal.signal(signal.SIGALRM, _on_alarm)
        signal.setitimer(signal.ITIMER_REAL, timeout)
        scope = {"__name__": "__main__"}
        try:
            with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
                exec(compile(code, "<program>", "exec"), scope)
            verdict = "pass"
        except _TimeLimit:
            verdict = "timeout"
        except AssertionError:
            verdict = "fail"
        except Exception as exc:
            verdict = "error:" + type(exc).__name__
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        result.append(verdict)
        shutil.rmtree, os.rmdir, os.chdir = rmtree, rmdir, chdir
        chdir("/")


def check_one(code: str, timeout: float) -> str:
    """One program, as the human-eval harness checks it: its own Manager and Process."""
    with multiprocessing.Manager() as manager:
        result = manager.list()
        process = multiprocessing.Process(target=_unsafe_execute, args=(code, timeout, result))
        process.start()
        process.join(timeout + 1)
        if process.is_alive():
            process.kill()
            process.join()
        return result[0] if result else "timeout"


async def human_eval_harness(
    programs: list[str], timeout: float, workers: int = 4
) -> tuple[list[str], float]:
    """Every program through :func:`check_one`, ``workers`` at a time (as human-eval's
    ``evaluate_functional_correctness`` does with a thread pool)."""
    loop = asyncio.get_running_loop()
    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        verdicts = await asyncio.gather(
            *(loop.run_in_executor(pool, check_one, code, timeout) for code in programs)
        )
    return list(verdicts), time.perf_counter() - started
