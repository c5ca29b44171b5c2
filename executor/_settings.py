"""Declarative settings: one rule per field, read by one validator, and checked keywords.

A config dataclass declares each field's rule next to it (``setting(default, rule)``); its
``__post_init__`` calls :func:`validate`, which runs the field rules in field order and then
the class's cross-field checks (small named functions). :func:`checked_keywords` makes the
class's ``__init__`` refuse an unknown keyword with a :class:`ConfigError` and a "did you
mean" (``timout`` -> ``timeout``) instead of Python's ``TypeError``, and lets a class
translate the keywords it still accepts under old names (``renamed``).

A rule is a function ``(value) -> str | None``: ``None`` when the value is acceptable, else
what it must be (``"a positive integer"``); the message becomes ``Class.field must be ...,
got value``. Adding a field with its rule is one line.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import inspect
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from ._errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Callable

    Rule = Callable[[Any], str | None]

__all__ = [
    "boolean",
    "checked_keywords",
    "did_you_mean",
    "number",
    "one_of",
    "optional",
    "positive_int",
    "ruled",
    "seconds",
    "setting",
    "str_map",
    "str_seq",
    "text",
    "validate",
]

T = TypeVar("T")
_RULE = "executor.rule"


def setting(default: Any = dataclasses.MISSING, rule: Rule | None = None, **kw: Any) -> Any:
    """A dataclass field with its rule (``kw``: ``default_factory``, ``compare``, ...)."""
    return dataclasses.field(default=default, metadata=ruled(rule), **kw)


def ruled(rule: Rule | None) -> dict[str, Any]:
    """The field metadata carrying ``rule`` (for a plain ``field(metadata=...)``)."""
    return {_RULE: rule} if rule is not None else {}


def validate(obj: Any, checks: Sequence[Callable[[Any], str | None]] = ()) -> None:
    """Apply every field's rule, then each cross-field check; raise the first failure.

    A cross-field check returns ``None`` or the whole message (after ``Class.``)."""
    owner = type(obj).__name__
    for f in dataclasses.fields(obj):
        rule = f.metadata.get(_RULE)
        if rule is None:
            continue
        value = getattr(obj, f.name)
        must = rule(value)
        if must is not None:
            raise ConfigError(f"{owner}.{f.name} must be {must}, got {value!r}")
    for check in checks:
        message = check(obj)
        if message is not None:
            raise ConfigError(f"{owner}.{message}")


# -- rules -------------------------------------------------------------------------------------


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def positive_int(minimum: int = 1, what: str | None = None) -> Rule:
    """An integer >= ``minimum`` (not a bool); ``what`` names the bound in the message."""
    must = what or ("a positive integer" if minimum == 1 else f"an integer >= {minimum}")

    def rule(value: Any) -> str | None:
        return None if _is_int(value) and value >= minimum else must

    return rule


def seconds(value: Any) -> str | None:
    """A positive, finite number of seconds."""
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    return None if ok and value > 0 and math.isfinite(value) else "a positive number of seconds"


def number(low: float, high: float) -> Rule:
    """A number in ``(low, high]``."""

    def rule(value: Any) -> str | None:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return None if ok and low < value <= high else f"a number > {low:g} and <= {high:g}"

    return rule


def boolean(value: Any) -> str | None:
    """``True`` or ``False``."""
    return None if isinstance(value, bool) else "True or False"


def text(value: Any) -> str | None:
    """A non-empty string."""
    return None if isinstance(value, str) and value else "a non-empty string"


def one_of(*choices: object) -> Rule:
    """One of ``choices`` (compared with ``==``, bools kept apart from ints)."""
    names = [repr(c) for c in choices]
    must = ", ".join(names[:-1]) + f" or {names[-1]}" if len(names) > 1 else names[0]

    def rule(value: Any) -> str | None:
        if isinstance(value, bool) and not any(isinstance(c, bool) for c in choices):
            return must
        return None if value in choices else must

    return rule


def optional(inner: Rule) -> Rule:
    """``None`` or what ``inner`` accepts."""

    def rule(value: Any) -> str | None:
        if value is None:
            return None
        must = inner(value)
        return None if must is None else f"{must} or None"

    return rule


def str_map(values: tuple[type, ...] = (str,), what: str = "strings") -> Rule:
    """A mapping of strings to ``values``."""

    def rule(value: Any) -> str | None:
        ok = isinstance(value, Mapping) and all(
            isinstance(k, str) and isinstance(v, values) for k, v in value.items()
        )
        return None if ok else f"a mapping of strings to {what}"

    return rule


def str_seq(value: Any) -> str | None:
    """A sequence of strings (a list or tuple: a lone string is refused, not split)."""
    ok = (
        isinstance(value, Sequence)
        and not isinstance(value, str | bytes)
        and all(isinstance(v, str) for v in value)
    )
    return None if ok else "a list of strings"


# -- keywords ----------------------------------------------------------------------------------


def did_you_mean(word: str, known: Sequence[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest known name, or nothing."""
    close = difflib.get_close_matches(word, known, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def checked_keywords(
    renamed: Callable[[dict[str, Any]], None] | None = None,
) -> Callable[[type[T]], type[T]]:
    """Class decorator (outside ``@dataclass``): misspelled or missing keywords, wrong
    positional arguments to ``__init__`` raise :class:`ConfigError`.

    ``renamed(kwargs)`` runs first and may rewrite old keyword names in place (warning)."""

    def decorate(cls: type[T]) -> type[T]:
        init = cls.__init__
        signature = inspect.signature(init)
        names = [n for n in signature.parameters if n != "self"]
        owner = cls.__name__

        @functools.wraps(init)
        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            if renamed is not None:
                renamed(kwargs)
            unknown = [k for k in kwargs if k not in names]
            if unknown:
                word = unknown[0]
                hint = did_you_mean(word, names) or f" (its settings: {', '.join(names)})"
                raise ConfigError(f"{owner} has no setting {word!r}{hint}")
            try:
                signature.bind(self, *args, **kwargs)
            except TypeError as exc:
                raise ConfigError(f"{owner}: {exc}") from None
            init(self, *args, **kwargs)

        setattr(cls, "__init__", __init__)  # noqa: B010 - mypy refuses assigning a method
        return cls

    return decorate
