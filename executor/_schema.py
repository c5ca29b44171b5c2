"""Types, JSON Schemas and the conversions between them, all prepared once per executor.

A :class:`Codec` is built at executor construction for one side (input or output): it knows
the Python type (or ``Any``), the loaded schema (explicit, or derived from the type with
``msgspec.json.schema``) compiled once with fastjsonschema, and cached msgspec encoders and
decoders. Per call it only converts and validates; nothing is compiled or looked up.

Pydantic (v2) types, when pydantic is installed and the type mentions a model, go through a
``pydantic.TypeAdapter`` instead: conversion, validation, JSON decoding and the derived schema
(pydantic's JSON Schema) are pydantic's, its errors become this side's ValidationError with
the ``$.a.b[0]`` path. This module never imports pydantic itself: a pydantic type means the
caller already did.

An explicit schema is refused (:class:`SchemaError`) when it uses a keyword fastjsonschema
(drafts 4, 6 and 7) would ignore silently, such as draft 2020-12's ``prefixItems``.
"""

from __future__ import annotations

import re
import sys
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar, cast, is_typeddict

import fastjsonschema
import msgspec

from ._errors import (
    ConfigError,
    InputValidationError,
    OutputValidationError,
    SchemaError,
    ValidationError,
)

T = TypeVar("T")

#: What ``schema_in`` / ``schema_out`` accept: a dict, JSON text or bytes, or a file path.
SchemaSource = Mapping[str, Any] | str | bytes | Path | None

_MSGSPEC_PATH = re.compile(r" - at `(\$[^`]*)`$")
_json_decode = msgspec.json.decode
_json_encode = msgspec.json.Encoder().encode
#: Nesting deeper than the interpreter's recursion limit makes msgspec raise RecursionError.
_TOO_DEEP = "is nested too deeply to be encoded or decoded"


def load_schema(source: SchemaSource, *, which: str) -> dict[str, Any] | None:
    """Load a schema from a dict, JSON text/bytes or a path; raise :class:`SchemaError`."""
    if source is None:
        return None
    label = f"schema_{which}"
    try:
        if isinstance(source, Mapping):
            schema: Any = dict(source)
        elif isinstance(source, bytes) or (
            # JSON text, not a path: an object/array, or a bare boolean schema. A path may
            # well start with "true"/"false" (true_schema.json), so those must match whole.
            isinstance(source, str)
            and (source.lstrip().startswith(("{", "[")) or source.strip() in ("true", "false"))
        ):
            schema = _json_decode(source)
        else:
            path = Path(source)
            try:
                schema = _json_decode(path.read_bytes())
            except OSError as exc:
                raise SchemaError(
                    f"{label}: cannot read schema file {str(path)!r}: {exc.strerror}",
                    source=str(path),
                ) from exc
    except msgspec.DecodeError as exc:
        raise SchemaError(f"{label} is not valid JSON: {exc}") from exc
    if isinstance(schema, bool):
        schema = {} if schema else {"not": {}}
    if not isinstance(schema, dict):
        raise SchemaError(f"{label} must be a JSON object, got {type(schema).__name__}")
    return schema


#: Keywords of JSON Schema 2019-09/2020-12 that fastjsonschema (drafts 4, 6, 7) does not
#: implement, with what to use instead: a schema using them would be accepted and not enforced.
UNSUPPORTED_KEYWORDS = {
    "prefixItems": "use an array of schemas in 'items' (draft 7), with 'additionalItems'",
    "unevaluatedProperties": "use 'additionalProperties' (with the properties listed alongside)",
    "unevaluatedItems": "use 'additionalItems'",
    "dependentRequired": "use 'dependencies' with a list of property names",
    "dependentSchemas": "use 'dependencies' with a schema",
    "minContains": "drop it, or check the count in the task",
    "maxContains": "drop it, or check the count in the task",
    "$dynamicRef": "use '$ref'",
    "$dynamicAnchor": "use '$ref' to a definition",
    "$recursiveRef": "use '$ref'",
    "$recursiveAnchor": "use '$ref' to a definition",
    "$anchor": "use '$ref' with a JSON pointer ('#/$defs/name')",
    "$vocabulary": "drop it",
}
#: Keywords whose value is a schema, a list of schemas, or a map of names to schemas.
_ONE_SCHEMA = frozenset(
    {"additionalItems", "additionalProperties", "contains", "propertyNames", "not", "if", "then"}
    | {"else", "unevaluatedItems", "unevaluatedProperties", "contentSchema", "items"}
)
_SCHEMA_LIST = frozenset({"allOf", "anyOf", "oneOf", "prefixItems", "items"})
_SCHEMA_MAP = frozenset(
    {"properties", "patternProperties", "definitions", "$defs", "dependentSchemas", "dependencies"}
)


def check_keywords(schema: Any, *, which: str) -> None:
    """Refuse a schema using a keyword fastjsonschema would not enforce (see
    :data:`UNSUPPORTED_KEYWORDS`), naming it and where it is as a JSON pointer."""

    def pointer(parts: list[str]) -> str:
        return "#" + "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in parts)

    def walk(node: Any, at: list[str]) -> None:
        if not isinstance(node, dict):
            return
        for key, value in node.items():
            if key in UNSUPPORTED_KEYWORDS:
                raise SchemaError(
                    f"schema_{which} uses {key!r} at {pointer([*at, key])}, which fastjsonschema "
                    f"(JSON Schema drafts 4, 6 and 7) does not enforce: it would be ignored "
                    f"silently. {UNSUPPORTED_KEYWORDS[key][0].upper()}"
                    f"{UNSUPPORTED_KEYWORDS[key][1:]}"
                )
            if key in _SCHEMA_LIST and isinstance(value, list):
                for index, item in enumerate(value):
                    walk(item, [*at, key, str(index)])
            elif key in _ONE_SCHEMA:
                walk(value, [*at, key])
            elif key in _SCHEMA_MAP and isinstance(value, dict):
                for name, item in value.items():
                    walk(item, [*at, key, str(name)])

    walk(schema, [])


def is_pydantic(tp: Any) -> bool:
    """Does ``tp`` involve a pydantic model (or field), so that pydantic must handle it?

    Never imports pydantic: without it loaded, no type can be one of its models.
    """
    pydantic = sys.modules.get("pydantic")
    if pydantic is None:
        return False
    field_info = pydantic.fields.FieldInfo
    seen: set[int] = set()

    def mentions(node: Any) -> bool:
        if id(node) in seen:
            return False
        seen.add(id(node))
        if isinstance(node, field_info):
            return True
        if isinstance(node, type) and (
            issubclass(node, pydantic.BaseModel) or hasattr(node, "__pydantic_validator__")
        ):
            return True
        return any(mentions(arg) for arg in typing.get_args(node))

    return mentions(tp)


class _Pydantic:
    """One type through a ``pydantic.TypeAdapter``: validation, JSON, schema, error paths."""

    __slots__ = ("adapter", "error", "validation_error")

    def __init__(self, tp: Any, error: type[ValidationError], which: str) -> None:
        pydantic = sys.modules["pydantic"]
        self.validation_error: type[Exception] = pydantic.ValidationError
        self.error = error
        try:
            self.adapter = pydantic.TypeAdapter(tp)
        except Exception as exc:  # PydanticSchemaGenerationError, PydanticUserError, ...
            raise ConfigError(f"{which} type {tp!r} is not supported by pydantic: {exc}") from exc

    def schema(self, which: str) -> dict[str, Any]:
        try:
            schema: dict[str, Any] = self.adapter.json_schema(mode="validation")
        except Exception as exc:  # PydanticInvalidForJsonSchema
            raise ConfigError(f"{which} type has no JSON Schema in pydantic: {exc}") from exc
        return schema

    def failure(self, exc: Exception) -> ValidationError:
        errors = exc.errors(include_url=False)  # type: ignore[attr-defined]
        if not errors:
            return self.error(str(exc))
        first = errors[0]
        path = "$" + "".join(
            f"[{part}]" if isinstance(part, int) else f".{part}" for part in first["loc"]
        )
        reason = str(first["msg"])
        if first.get("type") == "json_invalid":
            reason = f"not valid JSON: {reason}"
        return self.error(reason, path=path)

    def validate(self, value: Any) -> Any:
        try:
            return self.adapter.validate_python(value)
        except self.validation_error as exc:
            raise self.failure(exc) from None
        except RecursionError:
            raise self.error(_TOO_DEEP) from None

    def validate_json(self, raw: bytes) -> Any:
        try:
            return self.adapter.validate_json(raw)
        except self.validation_error as exc:
            raise self.failure(exc) from None
        except RecursionError:
            raise self.error(_TOO_DEEP) from None

    def builtins(self, value: Any) -> Any:
        """A validated value as JSON-ready data (by alias, as pydantic's schema has it)."""
        return self.adapter.dump_python(value, mode="json", by_alias=True)

    def wire(self, value: Any) -> msgspec.Raw:
        """A validated value as JSON text, for a request (msgspec cannot encode models)."""
        return msgspec.Raw(self.adapter.dump_json(value, by_alias=True))


def derive_schema(tp: Any, *, which: str) -> dict[str, Any] | None:
    """Return the JSON Schema msgspec derives for ``tp`` (``None`` for ``Any``)."""
    if tp is Any or tp is object:
        return None
    try:
        return msgspec.json.schema(tp)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"{which} type {tp!r} is not supported: {exc}. Use a msgspec Struct, a dataclass, "
            "a TypedDict or builtin types"
        ) from exc


def compile_schema(schema: dict[str, Any], *, which: str) -> Callable[[Any], Any]:
    """Compile a schema once with fastjsonschema; raise :class:`SchemaError` if it is invalid."""
    try:
        validator: Callable[[Any], Any] = fastjsonschema.compile(schema)
        return validator
    except fastjsonschema.JsonSchemaDefinitionException as exc:
        raise SchemaError(f"schema_{which} is not a valid JSON Schema: {exc}") from exc
    except Exception as exc:  # fastjsonschema raises assorted errors on malformed schemas
        raise SchemaError(f"schema_{which} cannot be compiled: {exc!r}") from exc


def _jsonschema_path(exc: fastjsonschema.JsonSchemaValueException) -> tuple[str, str]:
    # fastjsonschema names the value "data.a.b[0]" (nested "data.x" for keys): rebase on "$".
    name = exc.name or "data"
    path = "$" + name[4:] if name.startswith("data") else "$"
    reason = exc.message
    if reason.startswith(name):
        reason = reason[len(name) :].strip()
    return path, reason


def _msgspec_path(exc: msgspec.ValidationError) -> tuple[str, str]:
    text = str(exc)
    match = _MSGSPEC_PATH.search(text)
    if match:
        return match.group(1), text[: match.start()]
    return "$", text


def type_name(tp: Any) -> str:
    """A short readable name for a type, for messages."""
    return getattr(tp, "__name__", None) or repr(tp)


def _is_plain_class(tp: Any) -> bool:
    """True when ``type(value) is tp`` proves a value already has the type."""
    return isinstance(tp, type) and not is_typeddict(tp) and tp is not object


class Codec(Generic[T]):
    """Conversion and validation for one side (input or output) of an executor.

    Which validator runs is decided once, here:

    * an explicit schema is checked with its compiled fastjsonschema validator;
    * a schema derived from the type is checked by msgspec against that same type (the schema
      was generated from it, so the constraints are identical), in C and about 3x faster;
    * a pydantic type is converted and checked by pydantic (and, with an explicit schema, its
      JSON form by the schema too); its derived schema is pydantic's JSON Schema;
    * with ``validate=False`` values are only converted to the type (for pydantic,
      converting is validating: only an explicit schema's check is skipped).

    ``wire`` is ``None``, or (pydantic) how to turn a value into something msgspec encodes.
    """

    __slots__ = (
        "_check_instance",
        "_decoder",
        "_error",
        "_exact",
        "_explicit",
        "_pydantic",
        "_validator",
        "coerce",
        "schema",
        "schema_json",
        "type",
        "wire",
    )

    def __init__(
        self,
        tp: Any,
        source: SchemaSource,
        *,
        which: str,
        validate: bool = True,
    ) -> None:
        self.type: Any = tp
        self._error: type[ValidationError] = (
            InputValidationError if which == "in" else OutputValidationError
        )
        explicit = load_schema(source, which=which)
        if explicit is not None:
            check_keywords(explicit, which=which)
        pydantic = _Pydantic(tp, self._error, which) if is_pydantic(tp) else None
        self._pydantic = pydantic
        self.wire: Callable[[Any], Any] | None = pydantic.wire if pydantic is not None else None
        if explicit is not None:
            self.schema: dict[str, Any] | None = explicit
        elif pydantic is not None:
            self.schema = pydantic.schema(which)
        else:
            self.schema = derive_schema(tp, which=which)
        # The schema as JSON, encoded once: the container protocol carries it on every call.
        self.schema_json: msgspec.Raw = msgspec.Raw(msgspec.json.encode(self.schema))
        # Compile even when validation is off, so a bad schema always fails at construction.
        # Pydantic's own schema is not compiled: pydantic enforces it (and it uses 2020-12).
        validator = None
        if self.schema is not None and (explicit is not None or pydantic is None):
            validator = compile_schema(self.schema, which=which)
        self._explicit = explicit is not None and validate
        self._validator = validator if self._explicit else None
        if pydantic is not None:
            self._exact: type | None = None
            self._decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder()
            self._check_instance: Callable[[Any], Any] | None = None
            self.coerce: Callable[[Any], T] = self._coerce_pydantic
            return
        self._exact = tp if _is_plain_class(tp) else None
        self._decoder = msgspec.json.Decoder(Any if self.is_any else tp)
        check: Callable[[Any], Any] | None = None
        if self._explicit:
            check = self._check_builtins
        elif validate and self.schema is not None:
            check = self._check_by_type
        self._check_instance = check
        #: ``coerce(value) -> T``: the general method, or a specialised closure for the hot
        #: case (value already of the exact type, schema derived from it).
        self.coerce = self._coerce
        if self._exact is not None and check == self._check_by_type:
            self.coerce = _fast_coerce(self._exact, self._decoder.decode, self._coerce)

    @property
    def is_any(self) -> bool:
        """True when no type is known: values pass through unconverted."""
        return self.type is Any or self.type is object

    def fail(self, reason: str, path: str = "$") -> ValidationError:
        """Build this side's validation error."""
        return self._error(reason, path=path)

    def _check_schema(self, data: Any) -> None:
        assert self._validator is not None
        try:
            self._validator(data)
        except fastjsonschema.JsonSchemaValueException as exc:
            path, reason = _jsonschema_path(exc)
            raise self._error(reason, path=path) from None

    def _failure(self, exc: Exception) -> ValidationError:
        """This side's ValidationError for a msgspec/JSON conversion failure."""
        if isinstance(exc, msgspec.ValidationError):  # before DecodeError: it is one
            path, reason = _msgspec_path(exc)
            return self._error(reason, path=path)
        if isinstance(exc, RecursionError):
            return self._error(_TOO_DEEP)
        if isinstance(exc, TypeError):
            return self._error(f"cannot be represented as JSON: {exc}")
        # msgspec.DecodeError, or UnicodeDecodeError for invalid UTF-8 inside a string.
        return self._error(f"not valid JSON: {exc}")

    def _builtins(self, value: Any) -> Any:
        try:
            return msgspec.to_builtins(value)
        except (TypeError, RecursionError) as exc:
            raise self._failure(exc) from None

    def _check_builtins(self, value: Any) -> None:
        self._check_schema(self._builtins(value))

    def _check_by_type(self, value: Any) -> None:
        # Structs and dataclasses are not validated when constructed: round-trip to check.
        try:
            self._decoder.decode(_json_encode(value))
        except (TypeError, RecursionError, msgspec.ValidationError) as exc:
            raise self._failure(exc) from None

    def _convert(self, value: Any) -> T:
        try:
            if isinstance(value, dict | list):
                return msgspec.convert(value, self.type)  # type: ignore[no-any-return]
            # Objects (other dataclasses, Structs, attrs classes) are read by attribute.
            return msgspec.convert(value, self.type, from_attributes=True)  # type: ignore[no-any-return]
        except (RecursionError, msgspec.ValidationError) as exc:
            raise self._failure(exc) from None

    def _coerce(self, value: Any) -> T:
        """Return ``value`` as this side's type, validated.

        A value already of the exact type is used as is (no copy); anything else is
        converted with msgspec (dicts, lists, other dataclasses/Structs by attribute).
        Raises this side's :class:`ValidationError` with the path of the first problem.
        """
        if type(value) is self._exact:
            if self._check_instance is not None:
                self._check_instance(value)
            return cast("T", value)
        if self._validator is not None:
            # Validate what the caller gave, so paths point into their data.
            self._check_builtins(value)
        if self.is_any:
            return cast("T", value)
        return self._convert(value)

    def _coerce_pydantic(self, value: Any) -> T:
        """``value`` validated (and converted) by pydantic, then its JSON form by an explicit
        schema when there is one."""
        pydantic = self._pydantic
        assert pydantic is not None
        result = pydantic.validate(value)
        if self._validator is not None:
            self._check_schema(pydantic.builtins(result))
        return cast("T", result)

    def _decode_pydantic(self, raw: bytes) -> T:
        pydantic = self._pydantic
        assert pydantic is not None
        if self._validator is None:
            return cast("T", pydantic.validate_json(raw))
        try:
            data = _json_decode(raw)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
            raise self._failure(exc) from None
        self._check_schema(data)
        return cast("T", pydantic.validate(data))

    def decode_json(self, raw: bytes) -> T:
        """Decode JSON (a runner's output) into this side's type, validated."""
        if self._pydantic is not None:
            return self._decode_pydantic(raw)
        if self._validator is not None:
            try:
                data = _json_decode(raw)
            except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
                raise self._failure(exc) from None
            self._check_schema(data)
            if self.is_any:
                return data  # type: ignore[no-any-return]
            return self._convert(data)
        try:
            return self._decoder.decode(raw)  # type: ignore[no-any-return]
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
            raise self._failure(exc) from None


class SchemaSettings(Protocol):
    """What :func:`codecs` reads from an executor's config (``LocalConfig``,
    ``ContainerConfig``)."""

    @property
    def schema_in(self) -> SchemaSource: ...

    @property
    def schema_out(self) -> SchemaSource: ...

    @property
    def validate(self) -> bool: ...


def codecs(
    config: SchemaSettings, input_type: Any, output_type: Any
) -> tuple[Codec[Any], Codec[Any]]:
    """An executor's input and output codecs, built (and their schemas compiled) once."""
    return (
        Codec(input_type, config.schema_in, which="in", validate=config.validate),
        Codec(output_type, config.schema_out, which="out", validate=config.validate),
    )


def _fast_coerce(
    exact: type, decode: Callable[[bytes], Any], general: Callable[[Any], T]
) -> Callable[[Any], T]:
    """``coerce`` for an exact class with a derived schema: one encode + typed decode."""

    def coerce(value: Any) -> T:
        if type(value) is exact:
            try:
                decode(_json_encode(value))
            except (TypeError, RecursionError, msgspec.ValidationError):
                return general(value)  # re-run the general path for the proper error
            return cast("T", value)
        return general(value)

    return coerce
