"""Types, JSON Schemas and the conversions between them, all prepared once per executor.

A :class:`Codec` is built at executor construction for one side (input or output): it knows
the Python type (or ``Any``), the loaded schema (explicit, or derived from the type with
``msgspec.json.schema``) compiled once with fastjsonschema, and cached msgspec encoders and
decoders. Per call it only converts and validates; nothing is compiled or looked up.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Generic, TypeVar, cast, is_typeddict

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
    * with ``validate=False`` values are only converted to the type.
    """

    __slots__ = (
        "_check_instance",
        "_decoder",
        "_error",
        "_exact",
        "_explicit",
        "_validator",
        "coerce",
        "schema",
        "schema_json",
        "type",
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
        self.schema: dict[str, Any] | None = (
            explicit if explicit is not None else derive_schema(tp, which=which)
        )
        # The schema as JSON, encoded once: the container protocol carries it on every call.
        self.schema_json: msgspec.Raw = msgspec.Raw(msgspec.json.encode(self.schema))
        # Compile even when validation is off, so a bad schema always fails at construction.
        validator = compile_schema(self.schema, which=which) if self.schema is not None else None
        self._explicit = explicit is not None and validate
        self._validator = validator if self._explicit else None
        self._exact: type | None = tp if _is_plain_class(tp) else None
        self._decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(Any if self.is_any else tp)
        check: Callable[[Any], Any] | None = None
        if self._explicit:
            check = self._check_builtins
        elif validate and self.schema is not None:
            check = self._check_by_type
        self._check_instance = check
        #: ``coerce(value) -> T``: the general method, or a specialised closure for the hot
        #: case (value already of the exact type, schema derived from it).
        self.coerce: Callable[[Any], T] = self._coerce
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

    def decode_json(self, raw: bytes) -> T:
        """Decode JSON (a runner's output) into this side's type, validated."""
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
