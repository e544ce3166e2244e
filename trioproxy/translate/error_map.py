"""Translation errors, and upstream error bodies re-shaped for the client's API.

`TranslationError` is the one refusal: a request field that the other API cannot express.
It is a `BadRequest`, so the proxy answers it with a 400 in the client's shape like any
other ProxyError. `UpstreamFormatError` is an upstream answer that cannot be translated
(502).

An upstream error (status + body, JSON or not) becomes the client API's error body with
the same status and the upstream's message text. Error types follow each API reference:
Anthropic https://docs.anthropic.com/en/api/errors ({"type": "error", "error": {"type",
"message"}}), OpenAI {"error": {"message", "type", "param", "code"}}.
"""

from __future__ import annotations

import http
import json
from typing import Any

from trioproxy.errors import BadRequest, UpstreamError

# Upstream error text longer than this is cut (a misbehaving server may answer with a page).
MAX_MESSAGE_CHARS = 2000


class TranslationError(BadRequest):
    """A request that cannot be translated; `str()` is "<field>: <problem>"."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.param = field
        self.problem = problem


class UpstreamFormatError(UpstreamError):
    """An upstream response that is not in the shape its API promises."""


#: HTTP status -> Anthropic error type. Other 4xx are invalid_request_error and other
#: statuses api_error, as the Anthropic reference says.
ANTHROPIC_ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}

#: Anthropic error type -> OpenAI (error.type, error.code), as OpenAI itself answers
#: the same condition (e.g. a bad key is invalid_request_error / invalid_api_key).
OPENAI_ERROR_SHAPES: dict[str, tuple[str, str | None]] = {
    "invalid_request_error": ("invalid_request_error", None),
    "authentication_error": ("invalid_request_error", "invalid_api_key"),
    "billing_error": ("insufficient_quota", "insufficient_quota"),
    "permission_error": ("invalid_request_error", "permission_denied"),
    "not_found_error": ("invalid_request_error", "not_found"),
    "request_too_large": ("invalid_request_error", "request_too_large"),
    "rate_limit_error": ("requests", "rate_limit_exceeded"),
    "timeout_error": ("timeout", "timeout"),
    "api_error": ("server_error", None),
    "overloaded_error": ("server_error", "overloaded"),
}

# OpenAI error.type values -> the status they stand for, for in-stream errors, which
# carry no HTTP status.
_OPENAI_TYPE_STATUS: dict[str, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "requests": 429,
    "tokens": 429,
    "rate_limit_exceeded": 429,
    "rate_limit_error": 429,
    "insufficient_quota": 429,
    "server_error": 500,
    "overloaded_error": 503,
}


def anthropic_error_type(status: int) -> str:
    """The Anthropic error type for an HTTP status."""
    if status in ANTHROPIC_ERROR_TYPES:
        return ANTHROPIC_ERROR_TYPES[status]
    return "invalid_request_error" if 400 <= status < 500 else "api_error"


def anthropic_error(status: int, message: str) -> dict[str, Any]:
    """An Anthropic error body for `status` saying `message`."""
    return {"type": "error", "error": {"type": anthropic_error_type(status), "message": message}}


def openai_error(kind: str, message: str) -> dict[str, Any]:
    """An OpenAI error body for the Anthropic error type `kind` saying `message`."""
    openai_type, code = OPENAI_ERROR_SHAPES.get(kind, ("server_error", None))
    return {"error": {"message": message, "type": openai_type, "param": None, "code": code}}


def anthropic_error_from_openai(status: int, body: bytes) -> dict[str, Any]:
    """An OpenAI-compatible upstream's error response as an Anthropic error body."""
    parsed = _loads(body)
    return anthropic_error(status, _message(parsed, body, status))


def openai_error_from_anthropic(status: int, body: bytes) -> dict[str, Any]:
    """An Anthropic upstream's error response as an OpenAI error body."""
    parsed = _loads(body)
    kind = None
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
        kind = parsed["error"].get("type")
    if not isinstance(kind, str) or kind not in OPENAI_ERROR_SHAPES:
        kind = anthropic_error_type(status)
    return openai_error(kind, _message(parsed, body, status))


def translate_error_body(client_flavour: str, status: int, body: bytes) -> bytes:
    """The upstream error `body` re-shaped for a client of `client_flavour`, as JSON bytes.

    `client_flavour` is "anthropic" (the upstream spoke OpenAI) or "openai" (the upstream
    spoke Anthropic). The status stays the upstream's.
    """
    if client_flavour == "anthropic":
        obj = anthropic_error_from_openai(status, body)
    else:
        obj = openai_error_from_anthropic(status, body)
    return json.dumps(obj, ensure_ascii=False).encode()


def anthropic_error_from_openai_object(error: Any) -> dict[str, Any]:
    """The `error` value of an OpenAI in-stream error chunk as an Anthropic error body.

    Servers differ: OpenAI sends {"message", "type", "code"}; vLLM puts the HTTP status in
    `code`; some send a bare string.
    """
    if not isinstance(error, dict):
        return anthropic_error(500, _clip(str(error)))
    status = _status_of(error)
    message = error.get("message")
    if not isinstance(message, str) or not message:
        message = _clip(json.dumps(error, ensure_ascii=False))
    return anthropic_error(status, message)


def openai_error_from_anthropic_object(error: Any) -> dict[str, Any]:
    """The `error` object of an Anthropic `error` event as an OpenAI error chunk body."""
    if not isinstance(error, dict):
        return openai_error("api_error", _clip(str(error)))
    kind = error.get("type")
    message = error.get("message")
    if not isinstance(message, str) or not message:
        message = _clip(json.dumps(error, ensure_ascii=False))
    return openai_error(kind if isinstance(kind, str) else "api_error", message)


def _status_of(error: dict[str, Any]) -> int:
    code = error.get("code")
    if isinstance(code, int) and 400 <= code <= 599:
        return code
    if isinstance(code, str) and code.isdigit() and 400 <= int(code) <= 599:
        return int(code)
    for key in ("type", "code"):
        value = error.get(key)
        if isinstance(value, str) and value in _OPENAI_TYPE_STATUS:
            return _OPENAI_TYPE_STATUS[value]
    return 500


def _loads(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None


def _message(parsed: Any, body: bytes, status: int) -> str:
    """The upstream's own words: error.message, a bare error string, a top-level message
    (vLLM's older shape) or detail (FastAPI), else the body text itself."""
    if isinstance(parsed, dict):
        error = parsed.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return _clip(error["message"])
        for value in (error, parsed.get("message"), parsed.get("detail")):
            if isinstance(value, str) and value:
                return _clip(value)
        if parsed.get("detail") is not None:
            return _clip(json.dumps(parsed["detail"], ensure_ascii=False))
    text = body.decode("utf-8", "replace").strip()
    if text:
        return _clip(text)
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = "error"
    return f"upstream answered {status} {phrase} with an empty body"


def _clip(text: str) -> str:
    if len(text) <= MAX_MESSAGE_CHARS:
        return text
    return text[:MAX_MESSAGE_CHARS] + "..."
