"""Upstream errors re-shaped for the client's API, and the refusal error itself."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.mock_upstream import anthropic_error, openai_error
from trioproxy.errors import BadRequest, ProxyError, error_body
from trioproxy.translate import (
    TranslationError,
    anthropic_error_from_openai,
    openai_error_from_anthropic,
    translate_error_body,
)
from trioproxy.translate.error_map import (
    MAX_MESSAGE_CHARS,
    anthropic_error_from_openai_object,
    anthropic_error_type,
    openai_error_from_anthropic_object,
)


@pytest.mark.parametrize(("status", "kind"), [
    (400, "invalid_request_error"), (401, "authentication_error"), (402, "billing_error"),
    (403, "permission_error"), (404, "not_found_error"), (409, "invalid_request_error"),
    (413, "request_too_large"), (422, "invalid_request_error"), (429, "rate_limit_error"),
    (500, "api_error"), (502, "api_error"), (503, "overloaded_error"),
    (504, "timeout_error"), (529, "overloaded_error"), (599, "api_error"),
])
def test_anthropic_types_by_status(status: int, kind: str) -> None:
    assert anthropic_error_type(status) == kind
    body = json.dumps(openai_error(status, "upstream words")).encode()
    assert anthropic_error_from_openai(status, body) == {
        "type": "error", "error": {"type": kind, "message": "upstream words"}}


@pytest.mark.parametrize(("body", "message"), [
    # OpenAI, llama.cpp, Ollama
    (b'{"error": {"message": "model x not found", "type": "invalid_request_error"}}',
     "model x not found"),
    # vLLM (older): a top-level error object
    (b'{"object": "error", "message": "max_tokens too large", "type": "BadRequestError",'
     b' "param": null, "code": 400}', "max_tokens too large"),
    (b'{"error": "bare string"}', "bare string"),
    (b'{"detail": "Not authenticated"}', "Not authenticated"),  # FastAPI
    (b'{"detail": [{"loc": ["body"], "msg": "bad"}]}', '[{"loc": ["body"], "msg": "bad"}]'),
    (b"<html>502 Bad Gateway</html>\n", "<html>502 Bad Gateway</html>"),
    (b"\xff\xfe not utf-8", "\ufffd\ufffd not utf-8"),
    (b"", "upstream answered 503 Service Unavailable with an empty body"),
])
def test_upstream_message_text_is_kept(body: bytes, message: str) -> None:
    assert anthropic_error_from_openai(503, body)["error"]["message"] == message


def test_long_bodies_are_clipped() -> None:
    message = anthropic_error_from_openai(500, b"x" * 5000)["error"]["message"]
    assert message == "x" * MAX_MESSAGE_CHARS + "..."


@pytest.mark.parametrize(("status", "kind", "openai_type", "code"), [
    (400, "invalid_request_error", "invalid_request_error", None),
    (401, "authentication_error", "invalid_request_error", "invalid_api_key"),
    (403, "permission_error", "invalid_request_error", "permission_denied"),
    (404, "not_found_error", "invalid_request_error", "not_found"),
    (413, "request_too_large", "invalid_request_error", "request_too_large"),
    (429, "rate_limit_error", "requests", "rate_limit_exceeded"),
    (500, "api_error", "server_error", None),
    (529, "overloaded_error", "server_error", "overloaded"),
])
def test_anthropic_errors_for_openai_clients(status: int, kind: str, openai_type: str,
                                            code: str | None) -> None:
    body = json.dumps(anthropic_error(status, "req_1", "said upstream")).encode()
    assert openai_error_from_anthropic(status, body) == {"error": {
        "message": "said upstream", "type": openai_type, "param": None, "code": code}}


def test_anthropic_error_type_wins_over_status() -> None:
    body = b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'
    assert openai_error_from_anthropic(500, body)["error"]["code"] == "overloaded"
    # Not JSON: typed by status.
    assert openai_error_from_anthropic(429, b"slow down")["error"] == {
        "message": "slow down", "type": "requests", "param": None, "code": "rate_limit_exceeded"}


def test_translate_error_body_bytes() -> None:
    body = translate_error_body("anthropic", 404, b'{"error":{"message":"no such model"}}')
    assert json.loads(body) == {"type": "error", "error": {"type": "not_found_error",
                                                           "message": "no such model"}}
    body = translate_error_body("openai", 401, b'{"type":"error","error":{'
                                               b'"type":"authentication_error","message":"k"}}')
    assert json.loads(body)["error"]["code"] == "invalid_api_key"


@pytest.mark.parametrize(("error", "expected"), [
    ({"message": "too long", "type": "BadRequestError", "code": 400},
     ("invalid_request_error", "too long")),  # vLLM: the status in code
    ({"message": "slow", "type": "requests", "code": "rate_limit_exceeded"},
     ("rate_limit_error", "slow")),
    ({"message": "boom", "type": "server_error", "code": None}, ("api_error", "boom")),
    ({"message": "", "code": "503"}, ("overloaded_error", '{"message": "", "code": "503"}')),
    ("plain", ("api_error", "plain")),
])
def test_in_stream_openai_errors(error: Any, expected: tuple[str, str]) -> None:
    result = anthropic_error_from_openai_object(error)
    assert (result["error"]["type"], result["error"]["message"]) == expected


def test_in_stream_anthropic_errors() -> None:
    assert openai_error_from_anthropic_object(
        {"type": "overloaded_error", "message": "Overloaded"}) == {"error": {
            "message": "Overloaded", "type": "server_error", "param": None, "code": "overloaded"}}
    assert openai_error_from_anthropic_object(None)["error"]["type"] == "server_error"


def test_translation_error_is_a_400_with_the_field_first() -> None:
    err = TranslationError("messages[2].content[0]", "document blocks cannot be sent")
    assert str(err) == "messages[2].content[0]: document blocks cannot be sent"
    assert (err.field, err.problem) == ("messages[2].content[0]", "document blocks cannot be sent")
    assert isinstance(err, BadRequest)
    assert isinstance(err, ProxyError)
    assert err.status == 400
    assert err.outcome == "client_error"
    # The proxy's one error-to-response function shapes it for either client.
    assert json.loads(error_body("anthropic", err.status, err.message)) == {
        "type": "error", "error": {"type": "invalid_request_error", "message": str(err)}}
    assert json.loads(error_body("openai", err.status, err.message))["error"]["message"] == str(err)
