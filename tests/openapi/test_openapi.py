"""docs/openapi.json is a valid OpenAPI 3.1 document, and says what clients need: every
operation has an id, security (or none, stated), success and error answers, and the error
envelopes of both faces. (tests/tests/openapi.rs checks it is what the declarations make and
what the service serves.)"""

from __future__ import annotations

import json
from pathlib import Path

from openapi_spec_validator import validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
METHODS = {"get", "post", "put", "patch", "delete"}


def document() -> dict:
    return json.loads(DOCUMENT.read_text())


def operations():
    for path, item in document()["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield path, method, operation


def test_validates_as_openapi_3_1():
    doc = document()
    assert doc["openapi"].startswith("3.1")
    validate(doc)


def test_a_broken_document_is_refused():
    """The validator is not a no-op: a response without a description fails."""
    doc = document()
    path, method, operation = next(operations())
    del doc["paths"][path][method]["responses"][next(iter(operation["responses"]))]["description"]
    try:
        validate(doc)
    except OpenAPIValidationError:
        return
    raise AssertionError("a response without a description validated")


def test_every_operation_is_complete():
    ids = set()
    for path, method, operation in operations():
        where = f"{method.upper()} {path}"
        assert operation.get("operationId") and operation["operationId"] not in ids, where
        ids.add(operation["operationId"])
        assert "security" in operation, f"{where}: security must be stated (empty list: none)"
        statuses = set(operation["responses"])
        assert any(s.startswith("2") for s in statuses), f"{where}: no success answer"
        assert {"400", "404"} <= statuses, f"{where}: error answers missing"


def test_error_envelopes_of_both_faces():
    schemas = document()["components"]["schemas"]
    assert schemas["Error"]["properties"]["error"]["required"] == ["code", "message"]
    assert set(schemas["QuestError"]["required"]) == {"success", "error", "code"}
    quest = [op for path, _, op in operations() if op["operationId"].startswith("quest")]
    assert quest, "no Quest-face operations"
    for op in quest:
        assert op["responses"]["400"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/QuestError"
        }


def test_security_schemes_name_the_headers_of_api_md():
    schemes = document()["components"]["securitySchemes"]
    headers = {s["name"] for s in schemes.values() if s["type"] == "apiKey"}
    assert headers == {"apikey", "apisecret", "userid", "token", "entity-authentication-token", "Stripe-Signature"}
    assert schemes["adminBearer"]["scheme"] == "bearer"
