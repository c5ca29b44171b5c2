"""Logging and OpenTelemetry: the library's loggers, one event helper, and call telemetry.

Logging: standard :mod:`logging`, one logger per area under ``executor``:

=====================  ==============================================================
``executor.engine``    an engine went down or came back
``executor.routing``   a call not delivered on one engine, retried on another
``executor.container`` per call (DEBUG); a container killed on timeout or cancellation;
                       reap results; the sweeper's hand-over and removals
``executor.pool``      refill failures and recovery; dead or unclean workers replaced
``executor.ray``       the Ray backend
``executor.cli``       the command line
=====================  ==============================================================

Lifecycle events are INFO or WARNING, per-call detail DEBUG only. Every record carries
structured fields as attributes (``extra``): ``event`` (a stable name such as
``engine.down``) and, where they apply, ``engine``, ``container_id``, ``code``, ``duration``
(seconds), ``image``, ``mode``, ``count``; JSON formatters pick them up. The library adds no
handler but the :class:`logging.NullHandler` the logging docs ask libraries for, so an
application that configures nothing sees nothing.

OpenTelemetry (``pip install 'typed-executor[otel]'``, the API only): a hook on the call path,
as httpcore's ``trace`` extension and trio's ``Instrument`` are, never a patched method.
:func:`instrument` gives each executor, at construction, its :class:`CallTelemetry` (the
attributes of its calls); its call path (``run``, a local ``execute``, a container's
streamed call) asks :func:`observer` when a call starts, and a subclass's override of
``execute`` or ``run`` runs as written, around it. When the application has configured a
real tracer or meter provider (an SDK), at any time before or after the executor was made,
the call runs inside :meth:`Observer.call`: a span ``executor.run`` (kind, image, engine,
mode, outcome; the phases of ``Execution.timings`` as events), nested under the caller's
current span, and the metrics ``executor.calls``, ``executor.failures``,
``executor.call.duration``; the gauges ``executor.pool.idle`` and ``executor.pool.in_use``
count every open container executor (registered with a meter provider when the first
container executor is made, or the first call starts, after it was set). Otherwise the call
runs as it is, after a check that costs tens of nanoseconds (``bench/observe.py``).
OpenTelemetry is never imported here: an application that did not import it cannot have
configured it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any, TypeVar

import anyio

from ._errors import ExecutorError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator

    from ._base import Execution

B = TypeVar("B")

__all__ = [
    "CLI",
    "CONTAINER",
    "ENGINE",
    "POOL",
    "RAY",
    "ROUTING",
    "CallTelemetry",
    "Observer",
    "event",
    "instrument",
    "observer",
]

logging.getLogger("executor").addHandler(logging.NullHandler())

ENGINE = logging.getLogger("executor.engine")
CONTAINER = logging.getLogger("executor.container")
POOL = logging.getLogger("executor.pool")
ROUTING = logging.getLogger("executor.routing")
RAY = logging.getLogger("executor.ray")
CLI = logging.getLogger("executor.cli")

DEBUG = logging.DEBUG
INFO = logging.INFO
WARNING = logging.WARNING

#: Span and metric attribute names.
KIND = "executor.kind"
IMAGE = "executor.image"
ENGINE_ATTR = "executor.engine"
MODE = "executor.mode"
OUTCOME = "executor.outcome"
CODE = "executor.code"
CONTAINER_ID = "executor.container_id"
#: The outcome of a call that returned, and of one that was cancelled.
OK = "OK"
CANCELLED = "CANCELLED"


def event(
    logger: logging.Logger,
    level: int,
    name: str,
    msg: str,
    *args: Any,
    _stacklevel: int = 3,
    **fields: Any,
) -> None:
    """Log ``msg % args`` with ``event=name`` and ``fields`` as record attributes.

    Formats nothing when the level is off. For per-call DEBUG records, guard the call with
    ``logger.isEnabledFor(DEBUG)`` so that even the arguments are not built. The record's
    location is ``_stacklevel`` frames up: the caller of the event function calling this.
    """
    if logger.isEnabledFor(level):
        fields["event"] = name
        logger.log(level, msg, *args, extra=fields, stacklevel=_stacklevel)


# --- the events, one function each, so that call sites stay one line -------------------------


def call_done(engine: str, container_id: str, code: str, duration: float) -> None:
    """DEBUG, per call: guard with ``CONTAINER.isEnabledFor(DEBUG)``."""
    CONTAINER.debug(
        "call in container %s on %s: %s in %.1f ms",
        container_id,
        engine,
        code,
        duration * 1e3,
        extra={
            "event": "call",
            "engine": engine,
            "container_id": container_id,
            "code": code,
            "duration": duration,
        },
        stacklevel=2,
    )


def killed(engine: str, container_id: str, exc: BaseException) -> None:
    """A container killed during its exchange: cancelled, too much output, engine failure."""
    if isinstance(exc, ExecutorError):
        code, level, why = exc.code, WARNING, exc.message
    elif isinstance(exc, anyio.get_cancelled_exc_class()):
        code, level, why = CANCELLED, INFO, "the call was cancelled"
    else:
        code, level, why = type(exc).__name__, WARNING, repr(exc)
    event(
        CONTAINER,
        level,
        "container.killed",
        "container %s on %s is killed: %s",
        container_id,
        engine,
        why,
        engine=engine,
        container_id=container_id,
        code=code,
    )


def call_timed_out(engine: str, container_id: str, timeout: float | None, fork: bool) -> None:
    """A call overran its timeout: the container is killed (fork mode: its runner recovers)."""
    event(
        CONTAINER,
        WARNING,
        "container.timeout",
        "a call overran its timeout of %g s in container %s on %s; %s",
        timeout or 0.0,
        container_id,
        engine,
        "its runner ends the task and the container serves on" if fork else "it is killed",
        engine=engine,
        container_id=container_id,
        code="TIMEOUT",
        duration=timeout,
    )


def engine_down(engine: str, error: ExecutorError) -> None:
    event(
        ENGINE,
        WARNING,
        "engine.down",
        "engine %s is down: %s",
        engine,
        error.message,
        engine=engine,
        code=error.code,
    )


def engine_up(engine: str, down_for: float) -> None:
    event(
        ENGINE,
        INFO,
        "engine.up",
        "engine %s is back after %.1f s",
        engine,
        down_for,
        engine=engine,
        duration=down_for,
    )


def retried(engine: str, error: ExecutorError) -> None:
    """A call that never reached a container on ``engine`` goes to another engine."""
    event(
        ROUTING,
        WARNING,
        "call.retry",
        "a call was not delivered on %s (%s); retrying on another engine",
        engine,
        error.message,
        engine=engine,
        code=error.code,
    )


def refill_failed(engine: str, error: ExecutorError, *, first: bool) -> None:
    """A pool could not start a container: WARNING the first time, DEBUG while it lasts."""
    event(
        POOL,
        WARNING if first else DEBUG,
        "pool.refill_failed",
        "the pool on %s could not start a container: %s",
        engine,
        error.message,
        engine=engine,
        code=error.code,
    )


def refilled(engine: str) -> None:
    event(
        POOL,
        INFO,
        "pool.refilled",
        "the pool on %s starts containers again",
        engine,
        engine=engine,
    )


def replaced(engine: str, container_id: str, why: str, *, warning: bool = False) -> None:
    """A pooled container that died idle (INFO), or a fork-mode one not back clean (WARNING)."""
    event(
        POOL,
        WARNING if warning else INFO,
        "pool.replaced",
        "pooled container %s on %s is replaced: %s",
        container_id,
        engine,
        why,
        engine=engine,
        container_id=container_id,
    )


def reaped(engine: str, ids: list[str]) -> None:
    event(
        CONTAINER,
        INFO if ids else DEBUG,
        "reap",
        "reaped %d container(s) of dead owners on %s",
        len(ids),
        engine,
        engine=engine,
        count=len(ids),
        container_ids=ids,
    )


def handed_over(engine: str, instance: str, container: str | None = None) -> None:
    if container is not None:
        event(
            CONTAINER,
            WARNING,
            "sweeper.hand_over",
            "engine %s did not remove container %s: the sweeper removes it once the engine answers",
            engine,
            container,
            engine=engine,
            instance=instance,
            container_id=container,
        )
        return
    event(
        CONTAINER,
        WARNING,
        "sweeper.hand_over",
        "engine %s did not answer at close: the sweeper removes executor %s's containers "
        "once it does",
        engine,
        instance,
        engine=engine,
        instance=instance,
    )


def swept(engine: str, instance: str, count: int, container: str | None = None) -> None:
    if container is not None:
        event(
            CONTAINER,
            INFO,
            "sweeper.removed",
            "the sweeper removed container %s (of %s) on %s",
            container,
            instance,
            engine,
            engine=engine,
            instance=instance,
            count=count,
            container_id=container,
        )
        return
    event(
        CONTAINER,
        INFO,
        "sweeper.removed",
        "the sweeper removed %d container(s) of closed executor %s on %s",
        count,
        instance,
        engine,
        engine=engine,
        instance=instance,
        count=count,
    )


# --- OpenTelemetry ---------------------------------------------------------------------------


def _real(provider: object) -> bool:
    """A configured provider, not the API's no-op or proxy stand-in."""
    return provider is not None and not type(provider).__module__.startswith(
        ("opentelemetry.trace", "opentelemetry.metrics")
    )


#: Every container executor made (and not yet collected): what the pool gauges count.
_containers: weakref.WeakSet[Any] = weakref.WeakSet()
# Gauges are read in the metric reader's thread while executors are being made.
_containers_lock = threading.Lock()


class _Meters:
    """The instruments of one meter provider."""

    def __init__(self, meter: Any) -> None:
        self.calls = meter.create_counter(
            "executor.calls", unit="{call}", description="Calls finished, by outcome"
        )
        self.failures = meter.create_counter(
            "executor.failures", unit="{call}", description="Calls failed, by error code"
        )
        self.duration = meter.create_histogram(
            "executor.call.duration", unit="s", description="Duration of a call"
        )
        meter.create_observable_gauge(
            "executor.pool.idle",
            callbacks=[self._idle],
            unit="{container}",
            description="Containers started and waiting for a call",
        )
        meter.create_observable_gauge(
            "executor.pool.in_use",
            callbacks=[self._in_use],
            unit="{container}",
            description="Containers serving a call",
        )

    @staticmethod
    def _pools() -> dict[tuple[str, str, str], list[int]]:
        """``(image, engine, mode) -> [idle, in use]`` summed over the open executors."""
        totals: dict[tuple[str, str, str], list[int]] = {}
        with _containers_lock:
            watched = list(_containers)
        for executor in watched:
            if executor.closed:
                continue
            config = executor.config
            for status in executor.engines:
                key = (config.image, status["engine"], config.mode)
                counts = totals.setdefault(key, [0, 0])
                counts[0] += status["idle_pooled"]
                counts[1] += max(0, status["in_flight"] - status["waiting"])
        return totals

    def _observations(self, which: int) -> Iterator[Any]:
        observation = sys.modules["opentelemetry.metrics"].Observation
        for (image, engine, mode), counts in self._pools().items():
            yield observation(counts[which], {IMAGE: image, ENGINE_ATTR: engine, MODE: mode})

    def _idle(self, options: Any) -> Iterator[Any]:
        return self._observations(0)

    def _in_use(self, options: Any) -> Iterator[Any]:
        return self._observations(1)


_meters: weakref.WeakKeyDictionary[Any, _Meters] = weakref.WeakKeyDictionary()


def _version() -> str:
    from . import __version__

    return __version__


class CallTelemetry:
    """One executor's side of call telemetry: the attributes of its calls' spans and metrics."""

    __slots__ = ("attributes", "engine")

    def __init__(self, attributes: dict[str, str], engine: Callable[[], str] | None) -> None:
        self.attributes = attributes
        #: The engine a failed call names when its error does not (one-engine executors).
        self.engine = engine


def instrument(
    executor: Any, *, kind: str, mode: str | None = None, image: str | None = None
) -> CallTelemetry:
    """``executor``'s :class:`CallTelemetry`; called once, in its ``__init__``.

    Costs no OpenTelemetry call: whether a call is observed is decided when it starts
    (:func:`observer`). ``kind`` is ``local`` or ``container``; container executors (which
    have ``engines``, ``config`` and ``closed``) are also counted by the pool gauges.
    """
    attributes: dict[str, str] = {KIND: kind}
    if mode is not None:
        attributes[MODE] = mode
    if image is not None:
        attributes[IMAGE] = image
    engine = None
    if kind == "container":
        with _containers_lock:
            _containers.add(executor)
        if len(executor.engines) == 1:
            # A failed call names its engine too (read late: a name may follow discovery).
            engine = lambda: executor.engine.name  # noqa: E731
        observer()  # a configured meter provider gets the pool gauges now, before any call
    return CallTelemetry(attributes, engine)


# What the last look saw (see observer()): module globals, the cheapest reads there are.
_trace: Any = None  # opentelemetry.trace, once imported
_metrics: Any = None  # opentelemetry.metrics._internal, once imported
_direct = False  # both imported, their provider globals readable
_tracer_provider: object = None
_meter_provider: object = None
_current: Observer | None = None
_look_lock = threading.Lock()
_modules = sys.modules
_MISSING = object()
_TRACE, _METRICS = "opentelemetry.trace", "opentelemetry.metrics._internal"
#: A provider named by the environment is loaded (and set) by the API's getter on first use.
_FROM_ENVIRONMENT = any(
    name in os.environ for name in ("OTEL_PYTHON_TRACER_PROVIDER", "OTEL_PYTHON_METER_PROVIDER")
)


def observer() -> Observer | None:
    """The observer of a call starting now, or None when no SDK is configured: the hook.

    Called at the start of every call, so it is cheap (``bench/observe.py``): without
    OpenTelemetry imported, one dict lookup; with its API imported, the API's two provider
    globals read and compared with the last ones seen. (The public getters look at
    ``os.environ`` on every call, ~0.9 µs each: :func:`_look` uses them only for a provider
    named by the environment, or an API version without those globals.)
    """
    if "opentelemetry" not in _modules:
        return None
    if (
        _direct
        and _trace._TRACER_PROVIDER is _tracer_provider
        and _metrics._METER_PROVIDER is _meter_provider
    ):
        return _current
    return _look()


class _NotImported:
    """Stands for an API module not imported (yet): its provider reads as None until it is,
    then as a value no provider is, which sends :func:`observer` to :func:`_look` again."""

    def __init__(self, module: str) -> None:
        self.module = module

    @property
    def _TRACER_PROVIDER(self) -> object:
        return _MISSING if self.module in _modules else None

    _METER_PROVIDER = _TRACER_PROVIDER


def _provider(module: Any, name: str, getter: str) -> tuple[object, bool]:
    """A module's global provider (None while unset) and whether it can be read directly."""
    if module is None:
        return None, True
    value = getattr(module, name, _MISSING)
    if value is _MISSING:
        return getattr(module, getter)(), False
    if value is None and _FROM_ENVIRONMENT:
        getattr(module, getter)()  # loads and sets the provider the environment names
        value = getattr(module, name)
    return value, True


def _look() -> Observer | None:
    """The slow path of :func:`observer`: find the modules, read the providers, and make the
    observer when they changed (once per provider)."""
    global _trace, _metrics, _direct, _tracer_provider, _meter_provider, _current
    trace = _modules.get(_TRACE)
    metrics = _modules.get(_METRICS)
    tracing, trace_direct = _provider(trace, "_TRACER_PROVIDER", "get_tracer_provider")
    metering, metrics_direct = _provider(metrics, "_METER_PROVIDER", "get_meter_provider")
    if tracing is not _tracer_provider or metering is not _meter_provider:
        with _look_lock:
            tracer = tracing.get_tracer("executor", _version()) if _real(tracing) else None  # type: ignore[attr-defined]
            meters = None
            if _real(metering):
                meters = _meters.get(metering)
                if meters is None:
                    meter = metering.get_meter("executor", _version())  # type: ignore[attr-defined]
                    meters = _meters[metering] = _Meters(meter)
            _current = None if tracer is None and meters is None else Observer(tracer, meters)
            _tracer_provider, _meter_provider = tracing, metering
    _trace = trace or _NotImported(_TRACE)
    _metrics = metrics or _NotImported(_METRICS)
    _direct = trace_direct and metrics_direct
    return _current


class Observer:
    """A call's span and metrics, for the tracer and meters configured when it started."""

    def __init__(self, tracer: Any, meters: _Meters | None) -> None:
        self.tracer = tracer
        self.meters = meters
        self._trace = sys.modules["opentelemetry.trace"] if tracer is not None else None

    def _span(self, attributes: dict[str, str]) -> contextlib.AbstractContextManager[Any]:
        if self.tracer is None:
            return contextlib.nullcontext()
        return self.tracer.start_as_current_span(  # type: ignore[no-any-return]
            "executor.run",
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        )

    async def call(
        self,
        telemetry: CallTelemetry,
        run: Callable[..., Awaitable[Execution[B]]],
        *args: Any,
    ) -> Execution[B]:
        """``await run(*args)`` inside the call's span, recording its metrics."""
        attributes, meters, perf = telemetry.attributes, self.meters, time.perf_counter
        t0 = perf()
        with self._span(attributes) as current:
            started_ns = time.time_ns()
            try:
                execution = await run(*args)
            except BaseException as exc:
                outcome, engine = _failure(exc)
                if engine is None and telemetry.engine is not None:
                    engine = telemetry.engine()
                if current is not None:
                    current.set_attribute(OUTCOME, outcome)
                    if engine:
                        current.set_attribute(ENGINE_ATTR, engine)
                    if container_id := getattr(exc, "container_id", None):
                        current.set_attribute(CONTAINER_ID, container_id)
                    if outcome != CANCELLED:
                        trace = self._trace
                        assert trace is not None
                        current.set_status(trace.Status(trace.StatusCode.ERROR, str(exc)))
                        current.record_exception(exc)
                if meters is not None:
                    labels = {**attributes, OUTCOME: outcome}
                    if engine:
                        labels[ENGINE_ATTR] = engine
                    meters.calls.add(1, labels)
                    meters.duration.record(perf() - t0, labels)
                    if outcome != CANCELLED:
                        meters.failures.add(1, {**attributes, CODE: outcome})
                raise
            if current is not None:
                current.set_attribute(OUTCOME, OK)
                if execution.engine:
                    current.set_attribute(ENGINE_ATTR, execution.engine)
                if execution.container_id:
                    current.set_attribute(CONTAINER_ID, execution.container_id)
                at = started_ns
                for phase, seconds in execution.timings.items():
                    at += max(0, int(seconds * 1e9))
                    current.add_event(phase, {"executor.duration": seconds}, timestamp=at)
            if meters is not None:
                labels = {**attributes, OUTCOME: OK}
                if execution.engine:
                    labels[ENGINE_ATTR] = execution.engine
                meters.calls.add(1, labels)
                meters.duration.record(perf() - t0, labels)
            return execution


def _failure(exc: BaseException) -> tuple[str, str | None]:
    """The outcome of a failed call (its error code) and the engine it names, if any."""
    if isinstance(exc, ExecutorError):
        return exc.code, getattr(exc, "engine", None)
    if isinstance(exc, anyio.get_cancelled_exc_class()):
        return CANCELLED, None
    return type(exc).__name__, None
