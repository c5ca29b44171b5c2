"""Reading ``docker-bake.hcl``: targets, groups, variables, interpolation, ``inherits``.

The bake file stays the one source of truth for tags, contexts, Dockerfiles and build args.
:func:`load_bake` reads it with a real HCL parser (python-hcl2, imported only here) and
resolves groups, variable defaults (overridden by the environment, then by ``variables``),
``${VAR}`` interpolation and ``inherits``. Raises :class:`ConfigError` for invalid HCL,
unknown variables or targets, or unsupported expressions.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence

__all__ = [
    "CHECKOUT",
    "DATA_ROOT",
    "DEFAULT_BAKE_FILE",
    "TargetSpec",
    "bake_variables",
    "load_bake",
    "resolve_targets",
]

_PACKAGE = Path(__file__).resolve().parents[1]


def _checkout() -> Path | None:
    """The source checkout this package runs from (an editable install), else None."""
    root = _PACKAGE.parent
    if (root / "docker-bake.hcl").is_file() and (root / "pyproject.toml").is_file():
        return root
    return None


#: The source checkout, when running from one: its own bake file, contexts and ``.state``.
CHECKOUT = _checkout()
#: Where the bake file and its build contexts are: the checkout's real files, else the copies
#: the wheel carries in ``executor/_data/`` (same layout, so the contexts resolve alike).
DATA_ROOT = CHECKOUT if CHECKOUT is not None else _PACKAGE / "_data"
DEFAULT_BAKE_FILE = DATA_ROOT / "docker-bake.hcl"
_VAR_RE = re.compile(r"\$\$\{|\$\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}")
_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class TargetSpec:
    """One resolved bake target: what to send to the engine and what to tag."""

    name: str
    context: Path
    dockerfile: str = "Dockerfile"
    args: Mapping[str, str] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    #: Network mode for RUN steps (bake's ``network``), e.g. ``"none"``; None: the default.
    network: str | None = None


# --- the bake file ---------------------------------------------------------------------------


def _unquote_key(key: str) -> str:
    return _literal(key) if key.startswith('"') else key


def _literal(text: str) -> str:
    """The content of an HCL quoted string as python-hcl2 returns it (quotes included)."""
    try:
        value = json.loads(text)
    except ValueError:
        value = text[1:-1]
    if not isinstance(value, str):
        raise ConfigError(f"bake file: cannot read string {text!r}")
    return value


def _blocks(tree: Mapping[str, Any], kind: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for entry in tree.get(kind, []):
        for label, body in entry.items():
            yield (
                _unquote_key(label),
                {_unquote_key(k): v for k, v in body.items() if not k.startswith("__")},
            )


def _interpolate(value: Any, variables: Mapping[str, str], where: str) -> Any:
    """Resolve a python-hcl2 value: quoted strings interpolate ``${VAR}``; bare names are refs."""
    if isinstance(value, list):
        return [_interpolate(item, variables, where) for item in value]
    if isinstance(value, dict):
        return {
            _unquote_key(k): _interpolate(v, variables, where)
            for k, v in value.items()
            if not k.startswith("__")
        }
    if isinstance(value, bool | int | float) or value is None:
        return value
    if not isinstance(value, str):
        raise ConfigError(f"bake file: unsupported value {value!r} in {where}")
    if value.startswith('"') and value.endswith('"') and len(value) >= 2:
        text = _literal(value)

        def substitute(match: re.Match[str]) -> str:
            if match.group(0) == "$${":
                return "${"
            name = match.group(1)
            if name not in variables:
                raise ConfigError(f"bake file: unknown variable {name!r} in {where}")
            return variables[name]

        return _VAR_RE.sub(substitute, text)
    expression = value.strip()
    if expression.startswith("${") and expression.endswith("}"):
        expression = expression[2:-1].strip()
    if _IDENT_RE.fullmatch(expression):
        if expression not in variables:
            raise ConfigError(f"bake file: unknown variable {expression!r} in {where}")
        return variables[expression]
    raise ConfigError(
        f"bake file: expression {value!r} in {where} is not supported "
        "(only strings, ${VAR} interpolation and variable references)"
    )


def _as_str(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _parse(path: Path) -> dict[str, Any]:
    import hcl2  # imported here so that `import executor` stays light

    try:
        with path.open() as f:
            tree: dict[str, Any] = hcl2.load(f)
    except FileNotFoundError as exc:
        raise ConfigError(f"bake file {path} not found") from exc
    except Exception as exc:  # lark's parse errors have no common public base
        raise ConfigError(f"bake file {path} is not valid HCL: {exc}") from exc
    return tree


def bake_variables(path: Path | str, overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """Resolve the bake file's variables: defaults, then the environment, then ``overrides``."""
    tree = _parse(Path(path))
    raw: dict[str, Any] = {}
    for name, body in _blocks(tree, "variable"):
        raw[name] = body.get("default", '""')
    resolved: dict[str, str] = {}
    for name in raw:
        if overrides and name in overrides:
            resolved[name] = overrides[name]
        elif name in os.environ:
            resolved[name] = os.environ[name]
    # Defaults may refer to other variables: resolve until nothing changes.
    pending = {n: v for n, v in raw.items() if n not in resolved}
    for _ in range(len(pending) + 1):
        progressed = False
        for name, value in list(pending.items()):
            try:
                resolved[name] = _as_str(_interpolate(value, resolved, f"variable {name!r}"))
            except ConfigError:
                continue
            del pending[name]
            progressed = True
        if not pending or not progressed:
            break
    if pending:
        name, value = next(iter(pending.items()))
        _interpolate(value, resolved, f"variable {name!r}")  # raises the precise error
    for name, value in (overrides or {}).items():
        resolved.setdefault(name, value)
    return resolved


def load_bake(
    path: Path | str = DEFAULT_BAKE_FILE, variables: Mapping[str, str] | None = None
) -> dict[str, TargetSpec]:
    """Read a bake file and return every target, resolved, by name.

    ``variables`` override the defaults (after the environment, as ``docker buildx bake``
    does). Contexts are relative to the bake file's directory, Dockerfiles to the context.
    Raises :class:`ConfigError` for invalid HCL, unknown variables or unsupported expressions.
    """
    path = Path(path).resolve()
    tree = _parse(path)
    values = bake_variables(path, variables)
    bodies = dict(_blocks(tree, "target"))

    def merged(name: str, seen: tuple[str, ...] = ()) -> dict[str, Any]:
        if name in seen:
            raise ConfigError(f"bake file: target {name!r} inherits from itself")
        if name not in bodies:
            raise ConfigError(f"bake file: unknown target {name!r}")
        body = bodies[name]
        out: dict[str, Any] = {}
        parents = _interpolate(body.get("inherits", []), values, f"target {name!r}")
        for parent in parents:
            for key, value in merged(parent, (*seen, name)).items():
                if isinstance(value, dict) and isinstance(out.get(key), dict):
                    out[key] = {**out[key], **value}
                else:
                    out[key] = value
        for key, value in body.items():
            if key == "inherits":
                continue
            resolved = _interpolate(value, values, f"target {name!r}")
            if isinstance(resolved, dict) and isinstance(out.get(key), dict):
                out[key] = {**out[key], **resolved}
            else:
                out[key] = resolved
        return out

    specs: dict[str, TargetSpec] = {}
    for name in bodies:
        body = merged(name)
        if body.get("contexts"):
            raise ConfigError(
                f"bake file: target {name!r} uses named contexts, which the Engine API "
                "builder does not support; use docker buildx bake"
            )
        specs[name] = TargetSpec(
            name=name,
            context=(path.parent / _as_str(body.get("context", "."))).resolve(),
            dockerfile=_as_str(body.get("dockerfile", "Dockerfile")),
            args={k: _as_str(v) for k, v in dict(body.get("args", {})).items()},
            tags=tuple(_as_str(t) for t in body.get("tags", [])),
            labels={k: _as_str(v) for k, v in dict(body.get("labels", {})).items()},
            network=_as_str(body["network"]) if body.get("network") else None,
        )
    return specs


def resolve_targets(path: Path | str, names: Sequence[str]) -> list[str]:
    """Expand group names into target names (in order, without duplicates)."""
    tree = _parse(Path(path))
    groups = {
        name: [_literal(t) if t.startswith('"') else t for t in body.get("targets", [])]
        for name, body in _blocks(tree, "group")
    }
    targets = {name for name, _ in _blocks(tree, "target")}
    out: list[str] = []

    def add(name: str, seen: tuple[str, ...]) -> None:
        if name in seen:
            raise ConfigError(f"bake file: group {name!r} contains itself")
        if name in targets:
            if name not in out:
                out.append(name)
        elif name in groups:
            for member in groups[name]:
                add(member, (*seen, name))
        else:
            known = ", ".join(sorted(targets | set(groups)))
            raise ConfigError(f"bake file: no target or group {name!r} (known: {known})")

    for name in names:
        add(name, ())
    return out
