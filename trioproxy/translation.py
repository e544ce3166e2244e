"""How a request on a `translate` route crosses between the Anthropic and OpenAI APIs.

`plan_translation` turns the client's request into the upstream's (endpoint, headers,
body) or into a local answer; the `ResponseTranslation` it returns turns the upstream's
response back, whole or as a stream. Sans-io: the proxy and relay do the I/O; the
formats themselves live in `trioproxy.translate`.

Endpoints on an "anthropic-to-openai" route (clients speak Anthropic):
  POST .../messages               -> POST .../chat/completions
  POST .../messages/count_tokens  -> answered here with an estimate (no upstream call)
  GET  .../models                 -> GET .../models, the list translated
On an "openai-to-anthropic" route: POST .../chat/completions -> POST .../messages and
GET .../models likewise. Any other path gets a 404 in the client's shape. The query
string belongs to the client's API (Claude Code sends `?beta=true`) and is not forwarded.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Protocol

from . import headers as hdr
from .config import Route
from .errors import BadRequest, ProxyError
from .translate import (
    AnthropicToOpenAIStream,
    OpenAIToAnthropicStream,
    Translated,
    UpstreamFormatError,
    anthropic_models_to_openai,
    anthropic_to_openai_request,
    anthropic_to_openai_response,
    count_tokens_response,
    openai_models_to_anthropic,
    openai_to_anthropic_request,
    openai_to_anthropic_response,
    translate_error_body,
    wants_usage_chunk,
)

ANTHROPIC_VERSION = b"2023-06-01"  # sent to an Anthropic upstream when the client sent none
DROPPED_HEADER = b"x-trioproxy-dropped"  # names what translation dropped, comma-separated

# Client headers that belong to the client's API and mean nothing (or the wrong thing)
# to the other one. Auth is re-sent in the upstream's own header.
_ANTHROPIC_ONLY = frozenset({
    b"x-api-key", b"authorization", b"anthropic-version", b"anthropic-beta",
    b"anthropic-dangerous-direct-browser-access", b"accept-encoding",
})
_OPENAI_ONLY = frozenset({
    b"authorization", b"x-api-key", b"openai-organization", b"openai-project",
    b"accept-encoding",
})


class NotTranslated(ProxyError):
    """A path that a translate route does not serve."""

    status = 404
    outcome = "client_error"


class StreamTranslator(Protocol):
    """Upstream SSE bytes in, the client's SSE bytes out (see trioproxy.translate.stream)."""

    @property
    def finished(self) -> bool: ...
    @property
    def errored(self) -> bool: ...
    def feed(self, chunk: bytes) -> bytes: ...
    def close(self) -> bytes: ...


@dataclass(frozen=True, slots=True)
class ResponseTranslation:
    """Turns one upstream response into the client's API shape."""

    client: str  # "anthropic" or "openai": the API the client speaks
    endpoint: str  # "messages", "chat" or "models"
    model: str  # the model name the client asked for (reported back as it is)
    include_usage: bool  # an OpenAI client asked for the usage chunk
    model_map: dict[str, str]

    def stream(self) -> StreamTranslator:
        """A translator for a successful event-stream response."""
        if self.client == "anthropic":
            return OpenAIToAnthropicStream(self.model)
        return AnthropicToOpenAIStream(
            self.model, int(time.time()), include_usage=self.include_usage
        )

    def whole(self, status: int, body: bytes) -> bytes:
        """A complete upstream body (success or error) as the client's JSON body.

        Raises UpstreamFormatError when a successful body cannot be read.
        """
        if status >= 400:
            return translate_error_body(self.client, status, body)
        try:
            obj = json.loads(body)
        except (ValueError, RecursionError):
            obj = None
        if not isinstance(obj, dict):
            raise UpstreamFormatError(
                f"upstream answered {status} with a body that is not a JSON object;"
                " it cannot be translated"
            )
        try:
            if self.endpoint == "models":
                out = (openai_models_to_anthropic(obj, self.model_map)
                       if self.client == "anthropic"
                       else anthropic_models_to_openai(obj, self.model_map))
            elif self.client == "anthropic":
                out = openai_to_anthropic_response(obj, self.model)
            else:
                out = anthropic_to_openai_response(obj, self.model, int(time.time()))
            return _dumps(out)
        except RecursionError:
            raise UpstreamFormatError(
                f"upstream answered {status} with a body nested too deeply to be translated"
            ) from None


@dataclass(frozen=True, slots=True)
class TranslationPlan:
    """What to send upstream for one translated request, or what to answer locally."""

    local: bytes | None = None  # a JSON body answered with 200, without calling upstream
    method: bytes = b""
    target: str = ""  # upstream target (base path + endpoint)
    headers: hdr.Headers | None = None
    body: bytes = b""
    scan_path: str = ""  # the upstream endpoint, for the usage scanner
    response: ResponseTranslation | None = None
    dropped: tuple[str, ...] = ()


# json and the translators recurse: a value nested about a thousand deep exhausts the stack.
_TOO_DEEP = "request body is nested too deeply (about 1,000 levels) to be translated"


def plan_translation(
    route: Route, method: bytes, upstream_target: str, headers: hdr.Headers, body: bytes
) -> TranslationPlan:
    """The upstream request (or local answer) for a request on a translate route.

    Raises BadRequest (400) for a body that is not a JSON object or is nested too deeply,
    TranslationError (400, names the field) for what cannot be expressed upstream,
    NotTranslated (404) for a path the route does not serve.
    """
    try:
        return _plan_translation(route, method, upstream_target, headers, body)
    except RecursionError:
        raise BadRequest(_TOO_DEEP) from None


def _plan_translation(
    route: Route, method: bytes, upstream_target: str, headers: hdr.Headers, body: bytes
) -> TranslationPlan:
    client = route.flavour
    path = upstream_target.partition("?")[0].rstrip("/")
    if client == "anthropic":
        if method == b"POST" and path.endswith("/messages/count_tokens"):
            return TranslationPlan(local=_dumps(count_tokens_response(_json_object(body))))
        if method == b"POST" and path.endswith("/messages"):
            endpoint, new_path = "messages", path[: -len("/messages")] + "/chat/completions"
        elif method == b"GET" and path.endswith("/models"):
            endpoint, new_path = "models", path
        else:
            raise NotTranslated(_not_served(route, method, "POST .../v1/messages"))
    else:
        if method == b"POST" and path.endswith("/chat/completions"):
            endpoint, new_path = "chat", path[: -len("/chat/completions")] + "/messages"
        elif method == b"GET" and path.endswith("/models"):
            endpoint, new_path = "models", path
        else:
            raise NotTranslated(_not_served(route, method, "POST .../v1/chat/completions"))

    dropped: list[str] = []
    new_body = b""
    model = ""
    include_usage = False
    if endpoint != "models":
        request = _json_object(body)
        model = request.get("model") if isinstance(request.get("model"), str) else ""
        translated: Translated
        if client == "anthropic":
            translated = anthropic_to_openai_request(
                request, route.model_map, max_tokens_field=route.max_tokens_field
            )
        else:
            translated = openai_to_anthropic_request(request, route.model_map)
            include_usage = wants_usage_chunk(request)
        dropped.extend(translated.dropped)
        new_body = _dumps(translated.body)
    if client == "anthropic" and hdr.get(headers, b"anthropic-beta") is not None:
        dropped.append("anthropic-beta")
    return TranslationPlan(
        method=method,
        target=new_path,
        headers=_upstream_headers(client, headers, route.host_header.encode(), new_body, method),
        body=new_body,
        scan_path=new_path,
        response=ResponseTranslation(client, endpoint, model, include_usage, route.model_map),
        dropped=tuple(dict.fromkeys(dropped)),
    )


def _upstream_headers(
    client: str, headers: hdr.Headers, host: bytes, body: bytes, method: bytes
) -> hdr.Headers:
    key = _api_key(headers)
    own = _ANTHROPIC_ONLY if client == "anthropic" else _OPENAI_ONLY
    out = hdr.request_headers(
        [(n, v) for n, v in headers if n not in own], host,
        len(body) if method == b"POST" else None,
    )
    # The proxy must read the answer to translate it: ask for it uncompressed.
    out.append((b"accept-encoding", b"identity"))
    if client == "anthropic":  # the upstream speaks OpenAI
        if key is not None:
            out.append((b"authorization", b"Bearer " + key))
    else:
        if key is not None:
            out.append((b"x-api-key", key))
        out.append((b"anthropic-version", hdr.get(headers, b"anthropic-version")
                    or ANTHROPIC_VERSION))
    if method == b"POST":
        out = [(n, v) for n, v in out if n != b"content-type"]
        out.append((b"content-type", b"application/json"))
    return out


def _api_key(headers: hdr.Headers) -> bytes | None:
    """The client's key from x-api-key or `Authorization: Bearer`, whichever it sent."""
    key = hdr.get(headers, b"x-api-key")
    if key:
        return key
    auth = hdr.get(headers, b"authorization")
    if auth and auth[:7].lower() == b"bearer ":
        return auth[7:].strip()
    return None


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        obj = json.loads(body)
    except ValueError:
        raise BadRequest("request body is not valid JSON") from None
    if not isinstance(obj, dict):
        raise BadRequest(f"request body must be a JSON object, not {type(obj).__name__}")
    return obj


def _dumps(obj: Any) -> bytes:
    # A lone surrogate (JSON may escape one) cannot be UTF-8: written back as the same
    # JSON escape, it keeps its meaning.
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    return text.encode("utf-8", "backslashreplace")


def _not_served(route: Route, method: bytes, what: str) -> str:
    return (
        f"{method.decode('latin-1')} on this path is not served by the route {route.prefix!r}"
        f" (translate = {route.translate!r}); it serves {what} and GET .../v1/models"
    )

