"""The wire protocol: encode/decode round trips and decoding of what a runner may print."""

from __future__ import annotations

import json

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from executor import ProtocolError
from executor.container.exchange import Encoder
from executor.protocol import (
    ErrorInfo,
    Request,
    Response,
    decode_request,
    decode_response,
    encode_request,
    encode_response,
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(), children, max_size=5)
    ),
    max_leaves=20,
)
error_infos = st.builds(
    ErrorInfo,
    message=st.text(),
    code=st.sampled_from(["USER_ERROR", "NO_EXECUTE", "BAD_REQUEST", "OUTPUT_NOT_SERIALIZABLE"]),
    details=st.none() | st.text(),
)


@given(schema_in=json_values, schema_out=json_values, input=json_values)
def test_request_round_trips(schema_in: object, schema_out: object, input: object) -> None:
    """A request with any JSON-like schemas and input decodes to an equal request."""
    request = Request(schema_in=schema_in, schema_out=schema_out, input=input)
    assert decode_request(encode_request(request)) == request


@given(output=json_values)
def test_ok_response_round_trips(output: object) -> None:
    """A successful response with any JSON-like output decodes to an equal response."""
    response = Response(ok=True, output=output)
    assert decode_response(encode_response(response)) == response


@given(error=error_infos)
def test_error_response_round_trips(error: ErrorInfo) -> None:
    """A failed response keeps its error's message, code and details through encode/decode."""
    response = Response(ok=False, error=error)
    assert decode_response(encode_response(response)) == response


@pytest.mark.parametrize(
    "garbage",
    [b"", b"hello", b"Traceback (most recent call last):", b"[1, 2]", b'{"output": 1}', b"{"],
)
def test_decode_response_rejects_garbage(garbage: bytes) -> None:
    """Bytes that are not one protocol response raise ProtocolError keeping what was received."""
    with pytest.raises(ProtocolError) as info:
        decode_response(garbage)
    assert info.value.code == "PROTOCOL_ERROR"
    assert info.value.received == garbage.decode()


def test_not_ok_without_error_is_a_protocol_error() -> None:
    """``{"ok": false}`` without an ``error`` object is rejected, not read as a null output."""
    with pytest.raises(ProtocolError, match='without an "error" object') as info:
        decode_response(b'{"ok": false}')
    assert info.value.received == '{"ok": false}'


def test_decode_request_rejects_garbage() -> None:
    """A request that is not a JSON object raises ProtocolError, not a msgspec error."""
    with pytest.raises(ProtocolError) as info:
        decode_request(b"not json")
    assert info.value.received == "not json"


def test_pretty_printed_response_is_accepted() -> None:
    """A runner may indent its JSON and end it with a newline; the response still decodes."""
    text = json.dumps(
        {"ok": False, "error": {"message": "boom", "code": "USER_ERROR", "details": "tb"}},
        indent=2,
    )
    response = decode_response(text + "\n")
    assert response == Response(
        ok=False, error=ErrorInfo(message="boom", code="USER_ERROR", details="tb")
    )
    ok = decode_response(json.dumps({"ok": True, "output": {"mean": 2.5}}, indent=4).encode())
    assert ok == Response(ok=True, output={"mean": 2.5})


# Arbitrary bytes, plus JSON objects shaped roughly like responses (to get past the parser).
error_like = st.fixed_dictionaries(
    {}, optional={"message": json_values, "code": json_values, "details": json_values}
)
response_like = st.fixed_dictionaries(
    {},
    optional={
        "ok": json_values | st.booleans(),
        "output": json_values,
        "error": json_values | error_like,
    },
).map(lambda obj: json.dumps(obj).encode())


@given(data=st.binary() | response_like | json_values.map(lambda v: json.dumps(v).encode()))
def test_decode_response_fuzz(data: bytes) -> None:
    """On any bytes decode_response returns a Response or raises ProtocolError, nothing else."""
    try:
        response = decode_response(data)
    except ProtocolError as exc:
        assert exc.code == "PROTOCOL_ERROR"
    else:
        assert isinstance(response, Response)
        assert response.ok or response.error is not None


def test_a_request_carries_its_input_always_and_optional_fields_only_when_set() -> None:
    """The one request Struct writes schema_in, schema_out and input (a null input too) and
    leaves out the optional fields that are unset, as the executor's encoder sends it."""
    assert json.loads(encode_request(Request(None, None, None))) == {
        "schema_in": None,
        "schema_out": None,
        "input": None,
    }
    sent = Encoder(msgspec.Raw(b'{"type":"integer"}'), msgspec.Raw(b"null"), timeout=2.5)(None)
    assert json.loads(sent.data) == {
        "schema_in": {"type": "integer"},
        "schema_out": None,
        "input": None,
        "log_marker": sent.marker.decode(),
        "timeout": 2.5,
    }
    assert decode_request(sent.data) == Request(
        {"type": "integer"}, None, None, log_marker=sent.marker.decode(), timeout=2.5
    )
