"""The proxy's own errors, each knowing its HTTP status, and their bodies in each API's shape.

Errors that the upstream itself returns are relayed untouched; these are only for what
the proxy decides: a bad request, a cap, a deadline, an unreachable upstream.
"""

from __future__ import annotations

import json

import trio


class ProxyError(Exception):
    """An error the proxy answers itself. `status` is the HTTP status sent to the client."""

    status = 500
    outcome = "proxy_error"  # the ledger's outcome for a request that ended with this error
    param: str | None = None  # the request field at fault, if any (OpenAI's error.param)

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(ProxyError):
    status = 400
    outcome = "client_error"


class NoRoute(ProxyError):
    status = 404
    outcome = "client_error"


class RequestTimeout(ProxyError):
    """The client was too slow sending its request head or body."""

    status = 408
    outcome = "client_error"


class ClientTooSlow(ProxyError):
    """The client stopped reading the response."""

    status = 408
    outcome = "client_error"


class BodyTooLarge(ProxyError):
    status = 413
    outcome = "client_error"


class HeadersTooLarge(ProxyError):
    status = 431
    outcome = "client_error"


class UpstreamError(ProxyError):
    """Upstream could not be reached or broke the protocol."""

    status = 502
    outcome = "upstream_error"


class UpstreamTLSError(UpstreamError):
    pass


class UpstreamTimeout(ProxyError):
    """Upstream did not connect, answer or continue in time."""

    status = 504
    outcome = "timeout"


# Anthropic's error types by status, from the API reference ("Errors").
_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "request_too_large",
    429: "rate_limit_error",
    431: "invalid_request_error",
    502: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
}

_OPENAI_TYPES = {
    400: "invalid_request_error",
    404: "invalid_request_error",
    408: "timeout",
    413: "invalid_request_error",
    431: "invalid_request_error",
    504: "timeout",
}


def error_json(flavour: str, status: int, message: str, param: str | None = None) -> dict:
    """The error object an API of `flavour` ("anthropic" or else OpenAI) uses for `status`;
    `param` names the request field at fault (OpenAI's shape has a place for it)."""
    if flavour == "anthropic":
        kind = _ANTHROPIC_TYPES.get(status, "api_error")
        return {"type": "error", "error": {"type": kind, "message": message}}
    kind = _OPENAI_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    code = f"proxy_{status}"
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def error_body(flavour: str, status: int, message: str, param: str | None = None) -> bytes:
    """A complete JSON error response body in the shape of the API the client called."""
    return json.dumps(error_json(flavour, status, message, param)).encode()


def error_sse_event(flavour: str, message: str) -> bytes:
    """An SSE event that tells a streaming client the stream broke, in its API's shape.

    Anthropic streams carry `event: error`; OpenAI streams carry a `data:` line whose
    JSON has an `error` key, which the OpenAI SDK raises as an APIError.
    """
    if flavour == "anthropic":
        payload = json.dumps(error_json("anthropic", 502, message))
        return f"event: error\ndata: {payload}\n\n".encode()
    payload = json.dumps(error_json("openai", 502, message))
    return f"data: {payload}\n\n".encode()


def flavour_for_path(flavour: str, path: str) -> str:
    """The API shape to answer in: the route's flavour, or for "auto" a guess from the path."""
    if flavour != "auto":
        return flavour
    return "anthropic" if "/messages" in path else "openai"


def is_cancellation(exc: BaseException) -> bool:
    """Cancelled, or a group of them (as a cancelled nursery raises)."""
    if isinstance(exc, BaseExceptionGroup):
        return all(is_cancellation(inner) for inner in exc.exceptions)
    return isinstance(exc, trio.Cancelled)
