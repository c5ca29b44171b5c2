"""The orval generator image turns an OpenAPI document into client files, locked down."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

DATA = Path(__file__).resolve().parent / "data"
IMAGE = os.environ.get("EXECUTOR_ORVAL_IMAGE", "executor/generator-orval:latest")
LOCKDOWN = ("--read-only", "--network", "none", "--cap-drop", "ALL", "--tmpfs", "/tmp")

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def orval_image() -> str:
    found = subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True, check=False)
    if found.returncode != 0:
        message = f"{IMAGE} is missing; run `make images`"
        if os.environ.get("EXECUTOR_REQUIRE_DOCKER") == "1":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return IMAGE


def generate(image: str, payload: object, *extra: str) -> dict[str, Any]:
    request = {"schema_in": None, "schema_out": None, "input": payload}
    done = subprocess.run(
        ["docker", "run", "-i", "--rm", *LOCKDOWN, *extra, image],
        input=json.dumps(request).encode(),
        capture_output=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    response: dict[str, Any] = json.loads(done.stdout)
    return response


@pytest.mark.parametrize("client", ["fetch", "axios"])
def test_generates_a_client(orval_image: str, client: str) -> None:
    """An OpenAPI document in, a TypeScript client with every operation and schema out."""
    spec = json.loads((DATA / "petstore.openapi.json").read_text())
    response = generate(orval_image, {"spec": spec, "client": client})
    assert response["ok"] is True, response
    files = response["output"]
    assert isinstance(files, dict) and files
    (name, source), *_ = files.items()
    assert name.endswith(".ts")
    for needle in ("listPets", "createPet", "getPet", "Pet", "NewPet"):
        assert needle in source, needle
    if client == "axios":
        assert "axios" in source


def test_accepts_yaml_text(orval_image: str) -> None:
    """The document may be YAML text instead of a JSON object."""
    yaml = (
        "openapi: 3.0.3\n"
        "info: {title: Tiny, version: '1'}\n"
        "paths:\n"
        "  /ping:\n"
        "    get:\n"
        "      operationId: ping\n"
        "      responses:\n"
        "        '200': {description: pong}\n"
    )
    response = generate(orval_image, {"spec": yaml})
    assert response["ok"] is True, response
    assert any("ping" in content for content in response["output"].values())


def test_bad_document_is_a_user_error(orval_image: str) -> None:
    """An input without a spec is reported as USER_ERROR, not a crash."""
    response = generate(orval_image, {"nothing": True})
    assert response["ok"] is False
    assert response["error"]["code"] == "USER_ERROR"
