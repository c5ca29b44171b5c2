"""Naming a package's re-exported classes and functions after the package, as anyio does."""

from __future__ import annotations

import inspect
import sys
from typing import Any

__all__ = ["show_as_public"]


def show_as_public(value: Any, package: str) -> None:
    """Name a class or function re-exported by ``package`` (``executor``, ``executor.engine``)
    ``package.X`` in tracebacks and reprs, as anyio and httpx do. Pickle finds it there too
    (the lazy names through the package's ``__getattr__``). Only what is defined below
    ``package`` is renamed.

    A class's postponed annotations (strings, ``from __future__ import annotations``) are
    evaluated first, in the module that defined them: msgspec, pydantic and
    ``typing.get_type_hints`` look them up in ``sys.modules[cls.__module__]``, which is about
    to be ``package``. One that cannot be evaluated (a name imported for type checking only)
    stays a string.
    """
    home = getattr(value, "__module__", None) or ""
    if not home.startswith(package + "."):
        return
    if isinstance(value, type):
        annotations = inspect.get_annotations(value)  # a copy
        namespace = vars(sys.modules[home])
        resolved = 0
        for field, annotation in annotations.items():
            if isinstance(annotation, str):
                try:
                    annotations[field] = eval(annotation, namespace, dict(vars(value)))
                except Exception:
                    continue  # left as a string, as before
                resolved += 1
        if resolved:
            value.__annotations__ = annotations
    value.__module__ = package
