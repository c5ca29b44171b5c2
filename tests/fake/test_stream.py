"""``stream()`` over the fake engine: live lines in order, the Execution last, errors, early
exits and cancellation leaving nothing behind; the exchange's tap and marker handling."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from executor import (
    Execution,
    ExecutionFailed,
    ExecutionTimeout,
    LocalExecutor,
    LogLine,
)
from executor.container.exchange import CallSpec, Encoder, exchange
from executor.engine import Attachment
from executor.testing import FakeEngine, log

if TYPE_CHECKING:
    from .conftest import Make

MODES: dict[str, dict[str, Any]] = {
    "fresh": {},
    "pool": {"mode": "pool", "containers": 1},
    "reuse": {"mode": "reuse", "containers": 0},
    "fork": {"mode": "fork", "containers": 1},
}


async def chatty(value: Any) -> Any:
    """Logs a line, pauses (so the host sees it before the answer), logs, answers."""
    if value == "raise":
        log("about to fail")
        raise ValueError("asked to fail")
    if value == "hang":
        log("hanging")
        await anyio.sleep(3600)
    log(f"first {value}")
    await anyio.sleep(0.05)
    log(f"second {value}")
    return {"echo": value}


async def collect(events: Any) -> tuple[list[LogLine], list[Execution[Any]]]:
    lines: list[LogLine] = []
    done: list[Execution[Any]] = []
    async for event in events:
        if isinstance(event, LogLine):
            assert not done, "a line after the final Execution"
            lines.append(event)
        else:
            done.append(event)
    return lines, done


@pytest.mark.parametrize("mode", MODES.values(), ids=MODES.keys())
async def test_lines_arrive_in_order_then_the_execution(make: Make, mode: dict[str, Any]) -> None:
    """Each logged line is a LogLine (stream stderr, increasing times), the Execution comes
    last with the same lines in its logs, in every mode."""
    ex = make(FakeEngine(chatty), **mode)
    async with ex:
        for n in range(2):
            async with ex.stream(n) as events:
                lines, done = await collect(events)
            assert [line.text for line in lines] == [f"first {n}", f"second {n}"]
            assert {line.stream for line in lines} == {"stderr"}
            assert lines[0].time <= lines[1].time
            assert len(done) == 1 and done[0].output == {"echo": n}
            assert done[0].logs == f"first {n}\nsecond {n}\n"


async def test_the_first_line_comes_before_the_answer(make: Make) -> None:
    """A line is yielded while the task still runs, not when the call ends."""
    gate = anyio.Event()

    async def slow(value: Any) -> Any:
        log("started")
        await gate.wait()
        return "done"

    ex = make(FakeEngine(slow))
    async with ex.stream(None) as events:
        first = await events.__anext__()
        assert isinstance(first, LogLine) and first.text == "started"
        gate.set()
        lines, done = await collect(events)
    assert lines == [] and done[0].output == "done"


async def test_a_failure_is_raised_after_its_lines(make: Make) -> None:
    """The task's lines come first, then its error is raised from the iteration."""
    ex = make(FakeEngine(chatty))
    seen: list[str] = []
    with pytest.raises(ExecutionFailed) as info:
        async with ex.stream("raise") as events:
            async for event in events:
                assert isinstance(event, LogLine)
                seen.append(event.text)
    assert seen == ["about to fail"]
    assert info.value.code == "USER_ERROR"


async def test_timeout_is_raised_as_in_run(make: Make) -> None:
    """A call that overruns its timeout raises ExecutionTimeout from the stream."""
    engine = FakeEngine(chatty)
    ex = make(engine, timeout=0.2)
    with pytest.raises(ExecutionTimeout):
        async with ex.stream("hang") as events:
            await collect(events)
    await ex.aclose()
    assert engine.live() == []


@pytest.mark.parametrize("mode", MODES.values(), ids=MODES.keys())
async def test_leaving_early_and_cancelling_leave_nothing(make: Make, mode: dict[str, Any]) -> None:
    """Breaking out after the first line, or a cancel scope expiring mid-stream, cancels the
    call and removes its container before the block exits."""
    engine = FakeEngine(chatty)
    ex = make(engine, **mode)
    async with ex:
        async with ex.stream("hang") as events:
            async for event in events:
                assert isinstance(event, LogLine) and event.text == "hanging"
                break
        with anyio.move_on_after(0.2) as scope:
            async with ex.stream("hang") as events:
                await collect(events)
        assert scope.cancelled_caught
        assert await ex.execute(7) == {"echo": 7}  # the executor serves on
    assert engine.live() == []


async def test_stream_must_be_entered() -> None:
    """Iterating a stream outside `async with` says how to use it."""
    ex = LocalExecutor[int, int](lambda n: n)
    with pytest.raises(RuntimeError, match="async with"):
        await ex.stream(1).__anext__()


async def test_local_executor_streams_only_its_execution() -> None:
    """An executor without live logs yields its Execution alone."""
    async with LocalExecutor[int, int](lambda n: n * 2) as ex, ex.stream(21) as events:
        lines, done = await collect(events)
    assert lines == [] and done[0].output == 42


# -- the exchange's tap, without an engine ---------------------------------------------------


@dataclass
class Frames(Attachment):
    """An attachment that plays back fixed frames."""

    frames: list[tuple[int, bytes]]
    written: bytearray = field(default_factory=bytearray)

    async def write(self, data: bytes) -> None:
        self.written += data

    def close_stdin(self) -> None:
        pass

    def alive(self) -> bool:
        return True

    async def read(self) -> tuple[int, bytes] | None:
        await anyio.lowlevel.checkpoint()
        return self.frames.pop(0) if self.frames else None

    async def close(self) -> None:
        pass


@dataclass
class Box:
    attachment: Frames
    id: str = "c"
    rest: bytes = b""


async def test_tap_sees_the_logs_and_the_marker_is_cut_with_a_ready_line_behind() -> None:
    """The tap gets what the logs keep; the echoed marker is recognised (and cut from the
    logs) even when a fork-mode ready line shares the response's frame."""
    encoder = Encoder(msgspec_null(), msgspec_null())
    payload = encoder({"x": 1})
    marker = payload.marker
    response = b'{"ok":true,"output":1,"log_marker":"' + marker + b'"}\n'
    frames = [
        (2, b"partial line, no newline"),
        (1, response + b'{"ready":true}\n'),
        (2, marker + b"\n"),
    ]
    box = Box(Frames(frames))
    tapped = bytearray()
    spec = CallSpec("i", 1 << 28, 1 << 20, 1 << 20, None, lambda raw: raw)
    reply = await exchange(box, payload, spec, close_stdin=False, tap=tapped.extend)  # type: ignore[arg-type]
    assert reply.logs == "partial line, no newline"
    assert bytes(tapped) == b"partial line, no newline" + marker + b"\n"
    assert box.rest == b'{"ready":true}\n'


def msgspec_null() -> Any:
    import msgspec

    return msgspec.Raw(b"null")
