"""A mock of the Anthropic and OpenAI HTTP APIs, for tests: the test double of "upstream".

`MockUpstream` is a small HTTP/1.1 server (Trio + h11, keep-alive, optional TLS) that
answers the endpoints trioproxy forwards with the providers' own wire formats: status
codes, headers, JSON bodies, SSE framing and event order, usage fields and error shapes,
close enough that the official ``anthropic`` and ``openai`` SDKs parse every answer
(``tests/test_mock_upstream.py`` proves it). It records every request it receives.

Endpoints: ``POST /v1/messages`` (stream or not), ``POST /v1/messages/count_tokens``,
``GET /v1/models`` (Anthropic's list if the request has ``anthropic-version`` or
``x-api-key``, else OpenAI's), ``POST /v1/chat/completions``, ``POST /v1/completions``
(both stream or not; ``stream_options.include_usage`` honoured), ``POST /v1/embeddings``
(``encoding_format`` float or base64), ``POST /v1/responses`` (stream or not). Errors,
404s and 400s (bad JSON) take the shape of the API the path belongs to:
``/v1/messages*`` is Anthropic, everything else OpenAI.

Behaviour is steered per request by ``x-mock-*`` request headers, which a proxy forwards
untouched (a bad value gets a 400 naming the header):

``x-mock-status: 429``
    Answer with that status and the API's error body (plus ``retry-after`` for 429/529).
``x-mock-usage: in=123,out=45,cr=6,cw=7,rs=8``
    Override the usage numbers (input, output, cache read, cache write, reasoning). Each
    API's own field gets the number as given (Anthropic ``input_tokens`` excludes cache
    tokens; OpenAI ``prompt_tokens`` includes ``cached_tokens``); totals are in + out.
``x-mock-die-after: N``
    Streaming: send N events, then drop the TCP connection with the chunked body
    unfinished. Non-streaming: send the head (with Content-Length) and half the body,
    then drop the connection.
``x-mock-hold: 1``
    Streaming: send the events up to and including the first text delta, then wait until
    ``MockUpstream.release`` is set (then finish) or the peer disconnects (then record it).
    Non-streaming: the same wait, before the response head.
``x-mock-sleep-head: SECONDS`` / ``x-mock-sleep-between: SECONDS``
    ``trio.sleep`` before the response head / between stream events.
``x-mock-gzip: 1``
    ``content-encoding: gzip``. A stream is one gzip member, flushed with
    ``Z_SYNC_FLUSH`` after each event so each event is its own decodable chunk.
``x-mock-close: 1``
    Send ``connection: close`` and close the connection after the response.
``x-mock-tools: get_weather,get_time``
    ``/v1/messages`` and ``/v1/chat/completions``: answer with a turn that calls these
    tools, in this order (each must be declared in the request's ``tools``, else 400).
    Tool call k gets the id ``tool_call_id(api, n, k)`` and the input ``TOOL_INPUTS[k %
    len(TOOL_INPUTS)]``; the calls sent are recorded in ``Received.tool_calls``. Anthropic:
    ``tool_use`` blocks, ``stop_reason: "tool_use"``; streamed, each block is a
    ``content_block_start`` with ``input: {}``, an empty ``input_json_delta``, then the
    input's JSON (``json.dumps`` spacing) in small fragments cut mid-key and mid-string.
    OpenAI: ``message.tool_calls`` (arguments a compact JSON string), ``content: null``,
    ``finish_reason: "tool_calls"``; streamed, one chunk per call with ``id``, ``type``,
    ``name`` and ``arguments: ""``, then the arguments in fragments, one chunk each. With
    ``x-mock-hold``, a tool stream without text holds after the first fragment.
``x-mock-tools-text: 1``
    With ``x-mock-tools``: the reply text (``OUTPUT_TEXT``) comes first, as a text block
    or ``content``, before the tool calls.

Like the real APIs, the mock refuses (400, the API's error shape and wording) a
``/v1/messages`` request without ``max_tokens`` or ``messages`` (an empty list passes,
unlike the API: tests use it for a bare stream), with a role other than user/assistant,
an empty content (except a final assistant turn), more than 4 ``cache_control`` breakpoints,
a ``tool_result`` whose ``tool_use_id``
is not a ``tool_use`` of the previous assistant turn, or a ``tool_use`` not answered in the
next user turn (consecutive turns of one role count as one, as the API combines them);
and a ``/v1/chat/completions`` request without ``messages``, with a ``tool`` message that
does not answer a ``tool_calls`` id of the assistant message before its run of tool
messages, or with a tool call left unanswered. ``count_tokens`` checks the messages only.

The mock never waits on a thread or on real time (all its waits are trio's), so it runs
under trio's autojump ``MockClock``: sleeps and holds cost no real time. (The official SDKs
do use a worker thread on a client's first request; see tests/test_mock_upstream.py.)
"""

from __future__ import annotations

import base64
import dataclasses
import email.utils
import gzip
import hashlib
import http
import itertools
import json
import re
import ssl
import struct
import time
import zlib
from collections.abc import Callable
from typing import Any

import h11
import trio

__all__ = [
    "ANTHROPIC_ERROR_TYPES",
    "ANTHROPIC_USAGE",
    "EMBEDDINGS_USAGE",
    "EMBEDDING_DIMENSIONS",
    "OPENAI_USAGE",
    "OUTPUT_DELTAS",
    "OUTPUT_TEXT",
    "RESPONSES_USAGE",
    "RETRY_AFTER",
    "TOOL_INPUTS",
    "MockUpstream",
    "Received",
    "ToolCall",
    "embedding_vector",
    "tool_call_id",
]

# -- What the mock answers -------------------------------------------------------------

#: The reply text, streamed as these deltas (split at character boundaries; the byte
#: splitting of multi-byte characters is the job of TCP chunking in the proxy tests).
OUTPUT_DELTAS: tuple[str, ...] = ("Hello", " from the mock", " — héllo", " 世界", " 🎉")
OUTPUT_TEXT = "".join(OUTPUT_DELTAS)  # "Hello from the mock — héllo 世界 🎉"

# Default usage per API. Every number is distinct and non-zero (totals included: OpenAI
# 50, Responses 66), so a test can tell which one it is looking at.
ANTHROPIC_USAGE: dict[str, int] = {
    "input_tokens": 25,
    "output_tokens": 17,
    "cache_read_input_tokens": 1200,
    "cache_creation_input_tokens": 340,
}
#: Chat Completions and legacy Completions. ``prompt_tokens`` includes ``cached_tokens``.
OPENAI_USAGE: dict[str, int] = {
    "prompt_tokens": 31,
    "completion_tokens": 19,
    "cached_tokens": 12,
    "reasoning_tokens": 3,
}
#: Responses API. ``input_tokens`` includes ``cached_tokens``.
RESPONSES_USAGE: dict[str, int] = {
    "input_tokens": 43,
    "output_tokens": 23,
    "cached_tokens": 14,
    "cache_write_tokens": 6,
    "reasoning_tokens": 5,
}
EMBEDDINGS_USAGE: dict[str, int] = {"prompt_tokens": 9}
#: The input of tool call k is TOOL_INPUTS[k % 3] (x-mock-tools). Nested objects and
#: arrays, non-ASCII, an escaped quote, null, a boolean and numbers: what a fragment split
#: can break.
TOOL_INPUTS: tuple[dict[str, Any], ...] = (
    {"city": "Paris", "unit": "celsius"},
    {"timezone": "Europe/Paris", "formats": ["iso-8601", "unix"],
     "options": {"precision": "seconds", "label": "heure d'été", "offsets": [0, 3600]}},
    {"query": 'say "hi" — 世界 🎉', "limit": 3, "strict": True, "cursor": None,
     "filters": [{"field": "tag", "values": ["a", "b"]}, {"field": "score", "min": 0.5}]},
)
# Fragment lengths (characters) of a streamed tool input, cycled: short and uneven, so the
# cuts fall mid-key, mid-string and between a backslash and the quote it escapes.
_FRAGMENT_SIZES = (2, 5, 1, 7, 3, 4)
EMBEDDING_DIMENSIONS = 8
#: Value of the ``retry-after`` header sent with 429 and 529.
RETRY_AFTER = "7"

_ANTHROPIC_MODEL = "claude-sonnet-4-6"
_OPENAI_MODEL = "gpt-4o-mini"
_EMBEDDING_MODEL = "text-embedding-3-small"
_SYSTEM_FINGERPRINT = "fp_mock0001"
_OBFUSCATION = "mOcK"  # the padding OpenAI adds to stream deltas (include_obfuscation)

_RECEIVE_SIZE = 65536


# -- Records ---------------------------------------------------------------------------


@dataclasses.dataclass
class Received:
    """One request as the mock received it."""

    method: str
    target: str  # path + query, as sent
    headers: list[tuple[str, str]]  # names lowercased, in order, duplicates kept
    body: bytes
    json: Any | None  # the body parsed as JSON, or None
    connection_id: int  # 1 for the first TCP connection accepted, 2 for the next...
    completed: bool = False  # the whole response was written
    disconnected: bool = False  # the peer went away before the response was complete
    # The response body exactly as written, one item per chunk written (after gzip).
    sent: list[bytes] = dataclasses.field(default_factory=list)

    # The tool calls the reply made (x-mock-tools), in order.
    tool_calls: list[ToolCall] = dataclasses.field(default_factory=list)

    def header(self, name: str) -> str | None:
        """The first value of header `name` (any case), or None."""
        name = name.lower()
        for key, value in self.headers:
            if key == name:
                return value
        return None

    @property
    def path(self) -> str:
        return self.target.partition("?")[0]


@dataclasses.dataclass(frozen=True)
class ToolCall:
    """One tool call the mock answered with (x-mock-tools)."""

    id: str
    name: str
    input: dict[str, Any]


def tool_call_id(api: str, n: int, k: int) -> str:
    """The id of tool call `k` in the mock's `n`-th reply, in the shape `api` gives ids:
    "anthropic" (toolu_01 + 22 characters) or "openai" (call_ + 24)."""
    if api == "anthropic":
        return f"toolu_01Mock{n:016d}{k:02d}"
    return f"call_Mock{n:018d}{k:02d}"


@dataclasses.dataclass(frozen=True)
class _Usage:
    input: int
    output: int
    cache_read: int
    cache_write: int
    reasoning: int


@dataclasses.dataclass(frozen=True)
class _Controls:
    """The x-mock-* headers of one request."""

    status: int | None = None
    die_after: int | None = None
    hold: bool = False
    sleep_head: float = 0.0
    sleep_between: float = 0.0
    gzip: bool = False
    close: bool = False
    usage: dict[str, int] = dataclasses.field(default_factory=dict)  # _Usage field -> n
    tools: tuple[str, ...] = ()
    tools_text: bool = False

    @classmethod
    def parse(cls, received: Received) -> _Controls:
        """Raises ValueError, naming the header, if a value does not parse."""

        def get(name: str, convert: Callable[[str], Any], default: Any) -> Any:
            value = received.header(name)
            if value is None:
                return default
            try:
                return convert(value.strip())
            except ValueError:
                raise ValueError(f"bad {name} header: {value!r}") from None

        usage: dict[str, int] = {}
        raw_usage = received.header("x-mock-usage")
        if raw_usage:
            for item in raw_usage.split(","):
                key, sep, value = item.strip().partition("=")
                if not sep or key not in _USAGE_KEYS or not value.isdigit():
                    raise ValueError(f"bad x-mock-usage header: {raw_usage!r}")
                usage[_USAGE_KEYS[key]] = int(value)
        return cls(
            status=get("x-mock-status", _status, None),
            die_after=get("x-mock-die-after", int, None),
            hold=get("x-mock-hold", _flag, False),
            sleep_head=get("x-mock-sleep-head", float, 0.0),
            sleep_between=get("x-mock-sleep-between", float, 0.0),
            gzip=get("x-mock-gzip", _flag, False),
            close=get("x-mock-close", _flag, False),
            usage=usage,
            tools=get("x-mock-tools", _tool_names, ()),
            tools_text=get("x-mock-tools-text", _flag, False),
        )

    def resolve_usage(self, default: _Usage) -> _Usage:
        """`default` with this request's x-mock-usage overrides."""
        return dataclasses.replace(default, **self.usage)


# x-mock-usage keys -> _Usage fields.
_USAGE_KEYS = {"in": "input", "out": "output", "cr": "cache_read", "cw": "cache_write",
               "rs": "reasoning"}


def _status(value: str) -> int:
    status = int(value)
    if not 200 <= status <= 599:
        raise ValueError(value)
    return status


_TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")  # what both APIs accept as a tool name


def _tool_names(value: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in value.split(","))
    if not all(_TOOL_NAME.fullmatch(name) for name in names):
        raise ValueError(value)
    return names


def _flag(value: str) -> bool:
    if value.lower() in ("1", "true", "yes"):
        return True
    if value.lower() in ("0", "false", "no", ""):
        return False
    raise ValueError(value)


@dataclasses.dataclass
class _Reply:
    """A response to send: a whole body, or a list of SSE frames."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes = b""
    frames: list[bytes] | None = None  # set for a streaming response
    hold_after: int = 0  # index of the frame after which x-mock-hold waits


# -- Wire formats (pure functions) -----------------------------------------------------


def _compact(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def _sse(data: dict[str, Any] | str, event: str | None = None) -> bytes:
    """One SSE frame: optional `event:` line, one `data:` line, blank line."""
    payload = data if isinstance(data, str) else _compact(data)
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {payload}\n\n".encode()


def _json_body(obj: Any, indent: int | None = None) -> bytes:
    # Anthropic answers compact JSON; OpenAI pretty-prints (2 spaces, errors 4).
    if indent is None:
        return _compact(obj).encode()
    return json.dumps(obj, ensure_ascii=False, indent=indent).encode()


# Anthropic Messages API (https://docs.anthropic.com/en/api/messages,
# https://docs.anthropic.com/en/docs/build-with-claude/streaming).

# Status -> error.type, from https://docs.anthropic.com/en/api/errors. Other 4xx map to
# invalid_request_error ("we may also use this error type for other 4XX status codes"),
# other 5xx to api_error.
ANTHROPIC_ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
_ANTHROPIC_ERROR_MESSAGES: dict[str, str] = {
    "invalid_request_error": "messages: Field required",
    "authentication_error": "invalid x-api-key",
    "billing_error": "Your credit balance is too low to access the Anthropic API.",
    "permission_error": "Your API key does not have permission to use the specified resource.",
    "not_found_error": "Not Found",
    "request_too_large": "Request exceeds the maximum allowed number of bytes.",
    "rate_limit_error": "This request would exceed the rate limit for your organization "
    "of 50 requests per minute. Please try again later.",
    "api_error": "Internal server error",
    "timeout_error": "Request timed out",
    "overloaded_error": "Overloaded",
}


def anthropic_error(status: int, request_id: str, message: str | None = None) -> dict[str, Any]:
    if status in ANTHROPIC_ERROR_TYPES:
        kind = ANTHROPIC_ERROR_TYPES[status]
    else:
        kind = "invalid_request_error" if status < 500 else "api_error"
    return {
        "type": "error",
        "error": {"type": kind, "message": message or _ANTHROPIC_ERROR_MESSAGES[kind]},
        "request_id": request_id,
    }


def _anthropic_usage(usage: _Usage, output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": usage.input,
        "cache_creation_input_tokens": usage.cache_write,
        "cache_read_input_tokens": usage.cache_read,
        "cache_creation": {
            "ephemeral_5m_input_tokens": usage.cache_write,
            "ephemeral_1h_input_tokens": 0,
        },
        "output_tokens": output_tokens,
        "service_tier": "standard",
        "inference_geo": "not_available",
    }


def anthropic_message(msg_id: str, model: str, usage: _Usage) -> dict[str, Any]:
    return {
        "model": model,
        "id": msg_id,
        "type": "message",
        "role": "assistant",
        "content": [{"type": "text", "text": OUTPUT_TEXT}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": _anthropic_usage(usage, usage.output),
    }


def anthropic_stream(msg_id: str, model: str, usage: _Usage) -> tuple[list[bytes], int]:
    """The SSE frames of a streamed message, and the index of the first text delta."""
    start = {
        "model": model,
        "id": msg_id,
        "type": "message",
        "role": "assistant",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        # Like the real API: input and cache counts are final here; output_tokens is a
        # small running count that message_delta replaces with the cumulative total.
        "usage": _anthropic_usage(usage, 1),
    }
    frames = [
        _sse({"type": "message_start", "message": start}, "message_start"),
        _sse(
            {"type": "content_block_start", "index": 0,
             "content_block": {"type": "text", "text": ""}},
            "content_block_start",
        ),
        _sse({"type": "ping"}, "ping"),
    ]
    hold_after = len(frames)
    for delta in OUTPUT_DELTAS:
        frames.append(_sse(
            {"type": "content_block_delta", "index": 0,
             "delta": {"type": "text_delta", "text": delta}},
            "content_block_delta",
        ))
    frames.append(_sse({"type": "content_block_stop", "index": 0}, "content_block_stop"))
    return frames + _anthropic_stream_end("end_turn", usage), hold_after


def _anthropic_stream_end(stop_reason: str, usage: _Usage) -> list[bytes]:
    """message_delta (stop reason and usage) and message_stop."""
    return [
        _sse(
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                # The current API repeats the input/cache counts here; output_tokens
                # is the cumulative total.
                "usage": {
                    "input_tokens": usage.input,
                    "cache_creation_input_tokens": usage.cache_write,
                    "cache_read_input_tokens": usage.cache_read,
                    "output_tokens": usage.output,
                },
            },
            "message_delta",
        ),
        _sse({"type": "message_stop"}, "message_stop"),
    ]


def _fragments(text: str) -> list[str]:
    """`text` cut into short uneven pieces (_FRAGMENT_SIZES, cycled)."""
    pieces: list[str] = []
    sizes = itertools.cycle(_FRAGMENT_SIZES)
    start = 0
    while start < len(text):
        size = next(sizes)
        pieces.append(text[start:start + size])
        start += size
    return pieces


def _anthropic_input_json(value: dict[str, Any]) -> str:
    # The API streams tool input as the model writes it: `json.dumps` spacing.
    return json.dumps(value, ensure_ascii=False)


def anthropic_tool_message(msg_id: str, model: str, usage: _Usage, calls: list[ToolCall],
                           text: bool) -> dict[str, Any]:
    """A message whose turn calls `calls` (after the reply text if `text`)."""
    content: list[dict[str, Any]] = [{"type": "text", "text": OUTPUT_TEXT}] if text else []
    content += [{"type": "tool_use", "id": c.id, "name": c.name, "input": c.input}
                for c in calls]
    return {
        "model": model,
        "id": msg_id,
        "type": "message",
        "role": "assistant",
        "content": content,
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": _anthropic_usage(usage, usage.output),
    }


def anthropic_tool_stream(msg_id: str, model: str, usage: _Usage, calls: list[ToolCall],
                          text: bool) -> tuple[list[bytes], int]:
    """The SSE frames of a streamed tool-calling turn, and the index of the first text
    delta (or, without text, of the first input fragment)."""
    start = {
        "model": model,
        "id": msg_id,
        "type": "message",
        "role": "assistant",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": _anthropic_usage(usage, 1),
    }
    frames = [_sse({"type": "message_start", "message": start}, "message_start")]
    hold_after = 0
    index = 0

    def block_start(block: dict[str, Any]) -> None:
        frames.append(_sse({"type": "content_block_start", "index": index,
                            "content_block": block}, "content_block_start"))
        if index == 0:  # the API pings once, after the first block starts
            frames.append(_sse({"type": "ping"}, "ping"))

    def delta(value: dict[str, Any]) -> None:
        frames.append(_sse({"type": "content_block_delta", "index": index, "delta": value},
                           "content_block_delta"))

    def block_stop() -> None:
        frames.append(_sse({"type": "content_block_stop", "index": index},
                           "content_block_stop"))

    if text:
        block_start({"type": "text", "text": ""})
        hold_after = len(frames)
        for piece in OUTPUT_DELTAS:
            delta({"type": "text_delta", "text": piece})
        block_stop()
        index += 1
    for call in calls:
        block_start({"type": "tool_use", "id": call.id, "name": call.name, "input": {}})
        delta({"type": "input_json_delta", "partial_json": ""})  # the API opens with one
        if not hold_after:
            hold_after = len(frames)
        for piece in _fragments(_anthropic_input_json(call.input)):
            delta({"type": "input_json_delta", "partial_json": piece})
        block_stop()
        index += 1
    frames += _anthropic_stream_end("tool_use", usage)
    return frames, hold_after


def anthropic_request_problem(request: dict[str, Any], *, needs_max_tokens: bool
                              ) -> str | None:
    """What the Messages API would refuse in `request` (its error message), or None.

    The checks are the cheap, well-known ones; wording as the API answers.
    """
    if needs_max_tokens and "max_tokens" not in request:
        return "max_tokens: Field required"
    messages = request.get("messages")
    if messages is None:
        return "messages: Field required"
    if not isinstance(messages, list):
        return "messages: Input should be a valid list"
    # An empty list passes (the API refuses it): tests use one for a bare stream.
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            return f"messages.{i}: Input should be a valid dictionary"
        if message.get("role") not in ("user", "assistant"):
            return f"messages.{i}.role: Input should be 'user' or 'assistant'"
        last_assistant = i == len(messages) - 1 and message["role"] == "assistant"
        if not message.get("content") and not last_assistant:
            return (f"messages.{i}: all messages must have non-empty content except for the "
                    "optional final assistant message")
    # Consecutive messages of one role are one turn (the API combines them).
    turns: list[tuple[str, list[tuple[int, int, dict[str, Any]]]]] = []
    for i, message in enumerate(messages):
        content = message["content"]
        blocks = [(i, j, b) for j, b in enumerate(content) if isinstance(b, dict)] \
            if isinstance(content, list) else []
        if turns and turns[-1][0] == message["role"]:
            turns[-1][1].extend(blocks)
        else:
            turns.append((message["role"], blocks))
    offered: list[str] = []  # tool_use ids of the previous assistant turn
    offered_at = 0
    for role, blocks in turns:
        if role == "assistant":
            offered = [b.get("id") for _, _, b in blocks if b.get("type") == "tool_use"]
            offered_at = blocks[0][0] if blocks else 0
            continue
        answered = set()
        for i, j, block in blocks:
            if block.get("type") != "tool_result":
                continue
            if block.get("tool_use_id") not in offered:
                return (f"messages.{i}.content.{j}: unexpected `tool_use_id` found in "
                        f"`tool_result` blocks: {block.get('tool_use_id')}. Each `tool_result` "
                        "block must have a corresponding `tool_use` block in the previous "
                        "message.")
            answered.add(block["tool_use_id"])
        missing = [tool_id for tool_id in offered if tool_id not in answered]
        if missing:
            return (f"messages.{offered_at}: `tool_use` ids were found without `tool_result` "
                    f"blocks immediately after: {', '.join(map(str, missing))}. Each "
                    "`tool_use` block must have a corresponding `tool_result` block in the "
                    "next message.")
        offered = []
    marked = _cache_control_count(request)
    if marked > 4:
        return f"A maximum of 4 blocks with cache_control may be provided. Found {marked}."
    return None


def _cache_control_count(request: dict[str, Any]) -> int:
    """Breakpoints in a Messages request: top level, tools, system blocks, message content
    blocks and the blocks inside tool results."""
    def marked(items: Any) -> list[dict[str, Any]]:
        return [b for b in items if isinstance(b, dict)] if isinstance(items, list) else []

    blocks = marked(request.get("tools")) + marked(request.get("system"))
    for message in marked(request.get("messages")):
        for block in marked(message.get("content")):
            blocks.append(block)
            blocks += marked(block.get("content"))
    return ("cache_control" in request) + sum("cache_control" in b for b in blocks)


def _anthropic_tool_names(request: dict[str, Any]) -> set[str]:
    tools = request.get("tools")
    if not isinstance(tools, list):
        return set()
    return {t["name"] for t in tools if isinstance(t, dict) and isinstance(t.get("name"), str)}


ANTHROPIC_MODELS: list[dict[str, Any]] = [
    {
        "type": "model",
        "id": model_id,
        "display_name": name,
        "created_at": created,
        "lifecycle": "active",
        "max_input_tokens": 200000,
        "max_tokens": 64000,
    }
    for model_id, name, created in (
        ("claude-sonnet-4-6", "Claude Sonnet 4.6", "2026-02-17T00:00:00Z"),
        ("claude-haiku-4-5", "Claude Haiku 4.5", "2025-10-01T00:00:00Z"),
    )
]


# OpenAI (https://platform.openai.com/docs/api-reference).

# Status -> (error.type, error.code, message), as the API sends them.
_OPENAI_ERRORS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key",
          "Incorrect API key provided: test. You can find your API key at "
          "https://platform.openai.com/account/api-keys."),
    403: ("invalid_request_error", "unsupported_country_region_territory",
          "Country, region, or territory not supported"),
    404: ("invalid_request_error", "model_not_found",
          "The model does not exist or you do not have access to it."),
    429: ("requests", "rate_limit_exceeded",
          "Rate limit reached for requests per min (RPM): Limit 3, Used 3, Requested 1. "
          "Please try again in 20s."),
    500: ("server_error", None,
          "The server had an error while processing your request. Sorry about that!"),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
}


def openai_error(status: int, message: str | None = None, *, param: str | None = None,
                 code: str | None = None) -> dict[str, Any]:
    default = ("invalid_request_error", None, "Invalid request.") if status < 500 else \
        ("server_error", None, "The server had an error while processing your request.")
    kind, default_code, default_message = _OPENAI_ERRORS.get(status, default)
    return {
        "error": {
            "message": message or default_message,
            "type": kind,
            "param": param,
            "code": code or default_code,
        }
    }


def _chat_usage(usage: _Usage) -> dict[str, Any]:
    prompt_details: dict[str, int] = {"cached_tokens": usage.cache_read, "audio_tokens": 0}
    if usage.cache_write:
        prompt_details["cache_write_tokens"] = usage.cache_write
    return {
        "prompt_tokens": usage.input,
        "completion_tokens": usage.output,
        "total_tokens": usage.input + usage.output,
        "prompt_tokens_details": prompt_details,
        "completion_tokens_details": {
            "reasoning_tokens": usage.reasoning,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def chat_completion(cmpl_id: str, created: int, model: str, usage: _Usage) -> dict[str, Any]:
    return {
        "id": cmpl_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": OUTPUT_TEXT,
                    "refusal": None,
                    "annotations": [],
                },
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": _chat_usage(usage),
        "service_tier": "default",
        "system_fingerprint": _SYSTEM_FINGERPRINT,
    }


def _stream_options(request: dict[str, Any]) -> tuple[bool, bool]:
    """(include_usage, include_obfuscation) from the request's stream_options."""
    options = request.get("stream_options")
    if not isinstance(options, dict):
        options = {}
    return options.get("include_usage") is True, options.get("include_obfuscation") is not False


def _choice(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}


def _chunk_maker(cmpl_id: str, created: int, model: str, request: dict[str, Any]
                 ) -> tuple[bool, Callable[..., bytes]]:
    """Whether the request wants the usage chunk, and a maker of chat.completion.chunk
    frames: chunk(choices, usage_value=None)."""
    include_usage, obfuscate = _stream_options(request)

    def chunk(choices: list[dict[str, Any]], usage_value: dict[str, Any] | None = None
              ) -> bytes:
        obj: dict[str, Any] = {
            "id": cmpl_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "service_tier": "default",
            "system_fingerprint": _SYSTEM_FINGERPRINT,
            "choices": choices,
        }
        if include_usage:  # null on every chunk but the last (stream_options docs)
            obj["usage"] = usage_value
        if obfuscate:
            obj["obfuscation"] = _OBFUSCATION
        return _sse(obj)

    return include_usage, chunk


def chat_completion_stream(cmpl_id: str, created: int, model: str, usage: _Usage,
                           request: dict[str, Any]) -> tuple[list[bytes], int]:
    """`data:` frames of chat.completion.chunk objects, then `data: [DONE]`."""
    include_usage, chunk = _chunk_maker(cmpl_id, created, model, request)

    frames = [chunk([_choice({"role": "assistant", "content": "", "refusal": None})])]
    hold_after = len(frames)
    frames += [chunk([_choice({"content": delta})]) for delta in OUTPUT_DELTAS]
    frames.append(chunk([_choice({}, "stop")]))
    if include_usage:
        frames.append(chunk([], _chat_usage(usage)))
    frames.append(_sse("[DONE]"))
    return frames, hold_after


def chat_tool_completion(cmpl_id: str, created: int, model: str, usage: _Usage,
                         calls: list[ToolCall], text: bool) -> dict[str, Any]:
    """A chat.completion whose message calls `calls` (content null unless `text`)."""
    obj = chat_completion(cmpl_id, created, model, usage)
    choice = obj["choices"][0]
    choice["message"] = {
        "role": "assistant",
        "content": OUTPUT_TEXT if text else None,
        "tool_calls": [
            {"id": c.id, "type": "function",
             "function": {"name": c.name, "arguments": _compact(c.input)}}
            for c in calls
        ],
        "refusal": None,
        "annotations": [],
    }
    choice["finish_reason"] = "tool_calls"
    return obj


def chat_tool_completion_stream(cmpl_id: str, created: int, model: str, usage: _Usage,
                                request: dict[str, Any], calls: list[ToolCall], text: bool
                                ) -> tuple[list[bytes], int]:
    """The chunks of a streamed tool-calling turn, then `data: [DONE]`; and the index of
    the first text delta (or, without text, of the first arguments fragment)."""
    include_usage, chunk = _chunk_maker(cmpl_id, created, model, request)

    frames = [chunk([_choice({"role": "assistant", "content": "" if text else None,
                              "refusal": None})])]
    hold_after = 0
    if text:
        hold_after = len(frames)
        frames += [chunk([_choice({"content": delta})]) for delta in OUTPUT_DELTAS]
    for k, call in enumerate(calls):
        frames.append(chunk([_choice({"tool_calls": [
            {"index": k, "id": call.id, "type": "function",
             "function": {"name": call.name, "arguments": ""}},
        ]})]))
        if not hold_after:
            hold_after = len(frames)
        frames += [
            chunk([_choice({"tool_calls": [{"index": k, "function": {"arguments": piece}}]})])
            for piece in _fragments(_compact(call.input))
        ]
    frames.append(chunk([_choice({}, "tool_calls")]))
    if include_usage:
        frames.append(chunk([], _chat_usage(usage)))
    frames.append(_sse("[DONE]"))
    return frames, hold_after


def chat_request_problem(request: dict[str, Any]) -> tuple[str, str, str | None] | None:
    """What Chat Completions would refuse in `request`: (message, param, code), or None."""
    messages = request.get("messages")
    if not isinstance(messages, list):
        return "Missing required parameter: 'messages'.", "messages", "missing_required_parameter"
    calls: list[Any] | None = None  # ids of the assistant message before this tool run
    called_at = 0
    answered: set[Any] = set()

    def unanswered() -> tuple[str, str, None] | None:
        missing = [c for c in calls or () if c not in answered]
        if not missing:
            return None
        return ("An assistant message with 'tool_calls' must be followed by tool messages "
                "responding to each 'tool_call_id'. The following tool_call_ids did not have "
                f"response messages: {', '.join(map(str, missing))}",
                f"messages.[{called_at}].role", None)

    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role == "tool":
            if calls is None:
                return ("Invalid parameter: messages with role 'tool' must be a response to a "
                        "preceeding message with 'tool_calls'.", f"messages.[{i}].role", None)
            tool_call_id = message.get("tool_call_id")
            if tool_call_id not in calls:
                return (f"Invalid parameter: 'tool_call_id' of '{tool_call_id}' not found in "
                        "'tool_calls' of previous message.", f"messages.[{i}].tool_call_id",
                        None)
            answered.add(tool_call_id)
            continue
        problem = unanswered()
        if problem:
            return problem
        calls = None
        tool_calls = message.get("tool_calls") if role == "assistant" else None
        if isinstance(tool_calls, list) and tool_calls:
            calls = [c.get("id") for c in tool_calls if isinstance(c, dict)]
            called_at, answered = i, set()
    return unanswered()


def _openai_tool_names(request: dict[str, Any]) -> set[str]:
    tools = request.get("tools")
    if not isinstance(tools, list):
        return set()
    names = set()
    for tool in tools:
        function = tool.get("function") if isinstance(tool, dict) else None
        if tool.get("type") == "function" and isinstance(function, dict) \
                and isinstance(function.get("name"), str):
            names.add(function["name"])
    return names


def _completion_usage(usage: _Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.input,
        "completion_tokens": usage.output,
        "total_tokens": usage.input + usage.output,
    }


def text_completion(cmpl_id: str, created: int, model: str, usage: _Usage) -> dict[str, Any]:
    return {
        "id": cmpl_id,
        "object": "text_completion",
        "created": created,
        "model": model,
        "choices": [{"text": OUTPUT_TEXT, "index": 0, "logprobs": None, "finish_reason": "stop"}],
        "usage": _completion_usage(usage),
        "system_fingerprint": _SYSTEM_FINGERPRINT,
    }


def text_completion_stream(cmpl_id: str, created: int, model: str, usage: _Usage,
                           request: dict[str, Any]) -> tuple[list[bytes], int]:
    include_usage, _ = _stream_options(request)

    def chunk(choices: list[dict[str, Any]], usage_value: dict[str, Any] | None = None
              ) -> bytes:
        obj: dict[str, Any] = {
            "id": cmpl_id,
            "object": "text_completion",
            "created": created,
            "choices": choices,
            "model": model,
            "system_fingerprint": _SYSTEM_FINGERPRINT,
        }
        if include_usage:
            obj["usage"] = usage_value
        return _sse(obj)

    def choice(text: str, finish_reason: str | None = None) -> dict[str, Any]:
        return {"text": text, "index": 0, "logprobs": None, "finish_reason": finish_reason}

    frames = [chunk([choice(delta)]) for delta in OUTPUT_DELTAS]
    frames.append(chunk([choice("", "stop")]))
    if include_usage:
        frames.append(chunk([], _completion_usage(usage)))
    frames.append(_sse("[DONE]"))
    return frames, 0


def embedding_vector(text: str) -> list[float]:
    """A deterministic vector per input; k/128 values, exact in float32 and in JSON."""
    digest = hashlib.sha256(text.encode()).digest()
    return [(b - 128) / 128 for b in digest[:EMBEDDING_DIMENSIONS]]


def embeddings(model: str, inputs: list[str], usage: _Usage, encoding: str) -> dict[str, Any]:
    data: list[dict[str, Any]] = []
    for index, text in enumerate(inputs):
        vector = embedding_vector(text)
        value: Any = vector
        if encoding == "base64":  # little-endian float32, as the SDK decodes it
            value = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": value})
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": usage.input, "total_tokens": usage.input},
    }


def _embedding_inputs(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, int) for v in value):
        return [_compact(value)]  # one token array
    if isinstance(value, list):
        return [v if isinstance(v, str) else _compact(v) for v in value]
    return [_compact(value)]


def _responses_usage(usage: _Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.input,
        "input_tokens_details": {
            "cached_tokens": usage.cache_read,
            "cache_write_tokens": usage.cache_write,
        },
        "output_tokens": usage.output,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning},
        "total_tokens": usage.input + usage.output,
    }


def _output_text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "annotations": [], "logprobs": [], "text": text}


def _output_message(item_id: str, status: str, content: list[dict[str, Any]]
                    ) -> dict[str, Any]:
    return {"id": item_id, "type": "message", "status": status, "content": content,
            "role": "assistant"}


def response_object(resp_id: str, item_id: str, created: int, model: str,
                    request: dict[str, Any], usage: _Usage | None,
                    status: str = "completed") -> dict[str, Any]:
    """A Responses API `response` object; in progress (no output, no usage) or done."""
    done = status == "completed"
    output = [_output_message(item_id, "completed", [_output_text_part(OUTPUT_TEXT)])]
    return {
        "id": resp_id,
        "object": "response",
        "created_at": created,
        "status": status,
        "background": False,
        "completed_at": created if done else None,
        "error": None,
        "incomplete_details": None,
        "instructions": request.get("instructions"),
        "max_output_tokens": request.get("max_output_tokens"),
        "max_tool_calls": None,
        "model": model,
        "output": output if done else [],
        "parallel_tool_calls": True,
        "previous_response_id": request.get("previous_response_id"),
        "prompt_cache_key": None,
        "reasoning": {"effort": None, "summary": None},
        "safety_identifier": None,
        "service_tier": "default",
        "store": request.get("store", True),
        "temperature": 1.0,
        "text": {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": "auto",
        "tools": [],
        "top_logprobs": 0,
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": _responses_usage(usage) if done and usage is not None else None,
        "user": None,
        "metadata": request.get("metadata") or {},
    }


def responses_stream(resp_id: str, item_id: str, created: int, model: str,
                     request: dict[str, Any], usage: _Usage) -> tuple[list[bytes], int]:
    """`event: TYPE` + `data: {"type": TYPE, "sequence_number": n, ...}` frames."""
    _, obfuscate = _stream_options(request)
    frames: list[bytes] = []

    def emit(kind: str, **fields: Any) -> None:
        frames.append(_sse({"type": kind, "sequence_number": len(frames), **fields}, kind))

    in_progress = response_object(resp_id, item_id, created, model, request, None,
                                  status="in_progress")
    emit("response.created", response=in_progress)
    emit("response.in_progress", response=in_progress)
    emit("response.output_item.added", output_index=0,
         item=_output_message(item_id, "in_progress", []))
    emit("response.content_part.added", item_id=item_id, output_index=0, content_index=0,
         part=_output_text_part(""))
    hold_after = len(frames)
    for delta in OUTPUT_DELTAS:
        extra = {"obfuscation": _OBFUSCATION} if obfuscate else {}
        emit("response.output_text.delta", item_id=item_id, output_index=0, content_index=0,
             delta=delta, logprobs=[], **extra)
    emit("response.output_text.done", item_id=item_id, output_index=0, content_index=0,
         text=OUTPUT_TEXT, logprobs=[])
    emit("response.content_part.done", item_id=item_id, output_index=0, content_index=0,
         part=_output_text_part(OUTPUT_TEXT))
    emit("response.output_item.done", output_index=0,
         item=_output_message(item_id, "completed", [_output_text_part(OUTPUT_TEXT)]))
    emit("response.completed",
         response=response_object(resp_id, item_id, created, model, request, usage))
    return frames, hold_after


def openai_models(created: int) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [
            {"id": model_id, "object": "model", "created": created, "owned_by": owner}
            for model_id, owner in (
                (_OPENAI_MODEL, "system"),
                ("gpt-4o", "system"),
                (_EMBEDDING_MODEL, "system"),
            )
        ],
    }


# -- The server ------------------------------------------------------------------------


class _Abort(Exception):
    """Raised inside `MockUpstream._write` to drop the connection (x-mock-die-after)."""


class _Connection:
    """One accepted connection: the stream, its h11 state machine, its number."""

    def __init__(self, stream: trio.abc.Stream, connection_id: int) -> None:
        self.stream = stream
        self.h11 = h11.Connection(h11.SERVER)
        self.id = connection_id
        self.peer_gone = False  # EOF or reset seen while a response was being written

    async def send(self, *events: h11.Event) -> None:
        """Send the events' bytes in one write."""
        data = b"".join(self.h11.send(event) or b"" for event in events)
        try:
            if data:
                await self.stream.send_all(data)
        except BaseException:
            # A failed send poisons the connection (h11 examples/trio-server.py).
            self.h11.send_failed()
            raise


async def answer_on_head(stream: trio.SocketStream, status_line: bytes, body: bytes,
                         extra_headers: bytes = b"") -> None:
    """Answer with a JSON `body` as soon as a request head has arrived, without reading
    the request body (an upstream that refuses a large upload early)."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += await stream.receive_some(65536)
    await stream.send_all(
        b"HTTP/1.1 " + status_line + b"\r\ncontent-type: application/json\r\n" + extra_headers
        + b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )


class MockUpstream:
    """The mock Anthropic + OpenAI server. Start it with ``await nursery.start(mock.run)``."""

    def __init__(self, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self._ssl_context = ssl_context
        self.requests: list[Received] = []
        self.connections = 0  # TCP connections accepted so far
        #: Set it to let held responses (x-mock-hold) finish. It stays set; to hold again,
        #: assign a fresh ``trio.Event()``.
        self.release = trio.Event()
        #: Set when any request sees its peer disconnect before its response is complete.
        self.disconnect_seen = trio.Event()
        self.port = 0
        self._ids = itertools.count(1)
        self._routes: dict[tuple[str, str], Callable[[Received, _Controls, int], _Reply]] = {
            ("POST", "/v1/messages"): self._messages,
            ("POST", "/v1/messages/count_tokens"): self._count_tokens,
            ("GET", "/v1/models"): self._models,
            ("POST", "/v1/chat/completions"): self._chat_completions,
            ("POST", "/v1/completions"): self._completions,
            ("POST", "/v1/embeddings"): self._embeddings,
            ("POST", "/v1/responses"): self._responses,
        }

    @property
    def url(self) -> str:
        """Base URL, without /v1. https uses host "localhost" to match a trustme cert."""
        if self._ssl_context is not None:
            return f"https://localhost:{self.port}"
        return f"http://127.0.0.1:{self.port}"

    async def run(self, *, task_status: trio.TaskStatus[MockUpstream] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        """Listen on 127.0.0.1 (port 0), report ready with ``self``, serve until cancelled."""
        tcp_listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = tcp_listeners[0].socket.getsockname()[1]
        listeners: list[trio.abc.Listener[Any]] = list(tcp_listeners)
        if self._ssl_context is not None:
            listeners = [
                trio.SSLListener(listener, self._ssl_context, https_compatible=True)
                for listener in tcp_listeners
            ]
        async with trio.open_nursery() as nursery:
            await nursery.start(trio.serve_listeners, self._serve_connection, listeners)
            task_status.started(self)

    # -- connection loop ---------------------------------------------------------------

    async def _serve_connection(self, stream: trio.abc.Stream) -> None:
        self.connections += 1
        conn = _Connection(stream, self.connections)
        try:
            while True:
                received = await self._read_request(conn)
                if received is None:
                    return
                if not await self._respond(conn, received):
                    return
                conn.h11.start_next_cycle()
        except h11.RemoteProtocolError as exc:
            await self._send_bad_request(conn, exc)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the peer went away between requests
        finally:
            # Closing never waits here: a TCP close is immediate, and the TLS listener is
            # https_compatible (no close_notify), as most HTTPS servers are.
            await trio.aclose_forcefully(stream)

    async def _read_request(self, conn: _Connection) -> Received | None:
        request: h11.Request | None = None
        body = bytearray()
        while True:
            event = conn.h11.next_event()
            if event is h11.NEED_DATA:
                if conn.h11.they_are_waiting_for_100_continue:
                    await conn.send(h11.InformationalResponse(status_code=100, headers=[]))
                conn.h11.receive_data(await conn.stream.receive_some(_RECEIVE_SIZE))
            elif isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
            else:  # ConnectionClosed: the client closed between requests
                return None
        assert request is not None
        raw = bytes(body)
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        received = Received(
            method=request.method.decode("ascii"),
            target=request.target.decode("latin-1"),
            headers=[(k.decode("latin-1").lower(), v.decode("latin-1"))
                     for k, v in request.headers.raw_items()],
            body=raw,
            json=parsed,
            connection_id=conn.id,
        )
        self.requests.append(received)
        return received

    async def _send_bad_request(self, conn: _Connection, exc: h11.RemoteProtocolError) -> None:
        if conn.h11.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        body = f"bad request: {exc}\n".encode()
        headers = [("content-type", "text/plain; charset=utf-8"),
                   ("content-length", str(len(body))), ("connection", "close")]
        try:
            await conn.send(h11.Response(status_code=exc.error_status_hint, headers=headers))
            await conn.send(h11.Data(data=body))
            await conn.send(h11.EndOfMessage())
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.LocalProtocolError):
            pass  # the client is gone or the connection is unusable; we close it anyway

    # -- one response ------------------------------------------------------------------

    async def _respond(self, conn: _Connection, received: Received) -> bool:
        """Write the response; True if the connection may serve another request."""
        n = next(self._ids)
        try:
            controls = _Controls.parse(received)
        except ValueError as exc:
            controls = _Controls()
            reply = self._error(received, 400, n, str(exc))
        else:
            reply = self._route(received, controls, n)
        if not (controls.hold or controls.sleep_head or controls.sleep_between):
            return await self._write(conn, received, controls, reply)
        # The response waits: watch the peer meanwhile, so a disconnect is seen (and the
        # response abandoned) even when nothing is being written.
        keep_alive = False
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._watch_peer, conn, nursery.cancel_scope)
            keep_alive = await self._write(conn, received, controls, reply)
            nursery.cancel_scope.cancel()
        if conn.peer_gone:
            self._mark_disconnected(received)  # unless the whole response got out first
            return False
        return keep_alive

    async def _watch_peer(self, conn: _Connection, scope: trio.CancelScope) -> None:
        while True:
            try:
                data = await conn.stream.receive_some(_RECEIVE_SIZE)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                data = b""
            if not data:
                conn.peer_gone = True
                scope.cancel()  # abandon the response
                return
            conn.h11.receive_data(data)  # a pipelined request: h11 keeps it for later

    def _mark_disconnected(self, received: Received) -> None:
        if not received.completed:
            received.disconnected = True
            self.disconnect_seen.set()

    async def _write(self, conn: _Connection, received: Received, controls: _Controls,
                     reply: _Reply) -> bool:
        headers = [("date", email.utils.formatdate(usegmt=True)), *reply.headers]
        if controls.gzip:
            headers.append(("content-encoding", "gzip"))
        if controls.close:
            headers.append(("connection", "close"))
        reason = _reason(reply.status)
        try:
            if controls.sleep_head:
                await trio.sleep(controls.sleep_head)
            if reply.frames is None:
                if controls.hold:
                    await self.release.wait()
                body = gzip.compress(reply.body, mtime=0) if controls.gzip else reply.body
                if reply.status != 204:  # RFC 9110 8.6: no Content-Length in a 204
                    headers.append(("content-length", str(len(body))))
                if received.method == "HEAD" or reply.status in (204, 304):
                    body = b""  # RFC 9110 6.4.1: these responses have no content
                await conn.send(h11.Response(status_code=reply.status, headers=headers,
                                             reason=reason))
                if controls.die_after is not None:
                    received.sent.append(body[: len(body) // 2])
                    await conn.send(h11.Data(data=body[: len(body) // 2]))
                    raise _Abort
                last = [h11.Data(data=body)] if body else []
            else:
                await conn.send(h11.Response(status_code=reply.status, headers=headers,
                                             reason=reason))
                last = await self._write_frames(conn, controls, reply, received)
            # Mark the response complete before its last write, so that a client that
            # holds the whole response always sees `completed`; undone if the write fails.
            received.completed = True
            received.sent.extend(bytes(event.data) for event in last)
            try:
                await conn.send(*last, h11.EndOfMessage())
            except BaseException:
                received.completed = False
                raise
        except _Abort:
            return False  # the caller closes the connection mid-body
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._mark_disconnected(received)
            return False
        return conn.h11.our_state is not h11.MUST_CLOSE

    async def _write_frames(self, conn: _Connection, controls: _Controls,
                            reply: _Reply, received: Received) -> list[h11.Data]:
        """Write the events; return what is left to send before EndOfMessage."""
        assert reply.frames is not None
        # wbits=31: a gzip member. Z_SYNC_FLUSH after each event makes every chunk
        # decodable on its own arrival; the final flush writes the gzip trailer.
        compressor = zlib.compressobj(wbits=31) if controls.gzip else None
        for index, frame in enumerate(reply.frames):
            if controls.die_after is not None and index >= controls.die_after:
                raise _Abort
            if index and controls.sleep_between:
                await trio.sleep(controls.sleep_between)
            data = frame
            if compressor is not None:
                data = compressor.compress(frame) + compressor.flush(zlib.Z_SYNC_FLUSH)
            received.sent.append(data)
            await conn.send(h11.Data(data=data))  # one event, one chunk
            if controls.hold and index == reply.hold_after:
                await self.release.wait()
        if controls.die_after is not None:
            raise _Abort  # N >= number of events: everything but the end of the body
        if compressor is not None:
            return [h11.Data(data=compressor.flush())]  # the gzip trailer, its own chunk
        return []

    # -- routing -----------------------------------------------------------------------

    def _route(self, received: Received, controls: _Controls, n: int) -> _Reply:
        if controls.status is not None:
            return self._error(received, controls.status, n)
        handler = self._routes.get((received.method, received.path))
        if handler is None:
            return self._not_found(received, n)
        if received.method == "POST" and not isinstance(received.json, dict):
            if _is_anthropic(received):
                return self._error(received, 400, n,
                                   "There was an error parsing the body of your request.")
            return self._error(
                received, 400, n,
                "We could not parse the JSON body of your request. (HINT: This likely means "
                "you aren't using your HTTP library correctly. The OpenAI API expects a JSON "
                "payload, but what was sent was not valid JSON.)",
            )
        return handler(received, controls, n)

    def _not_found(self, received: Received, n: int) -> _Reply:
        if _is_anthropic(received):
            return self._error(received, 404, n, f"{received.method} {received.path} not found")
        # An unknown path on the OpenAI API: code null, unlike a missing model.
        obj = openai_error(404, f"Invalid URL ({received.method} {received.path})")
        obj["error"]["code"] = None
        return self._error_reply(received, 404, n, obj)

    def _error(self, received: Received, status: int, n: int,
               message: str | None = None) -> _Reply:
        if _is_anthropic(received):
            obj = anthropic_error(status, _anthropic_request_id(n), message)
        else:
            obj = openai_error(status, message)
        return self._error_reply(received, status, n, obj)

    def _error_reply(self, received: Received, status: int, n: int,
                     obj: dict[str, Any]) -> _Reply:
        if _is_anthropic(received):
            headers = _anthropic_headers(_anthropic_request_id(n))
            body = _json_body(obj)
        else:
            headers = _openai_headers(n)
            body = _json_body(obj, indent=4)
        if status in (429, 529):
            headers.append(("retry-after", RETRY_AFTER))
        headers.append(("content-type", "application/json"))
        return _Reply(status, headers, body=body)

    # Anthropic

    def _messages(self, received: Received, controls: _Controls, n: int) -> _Reply:
        request = received.json
        assert isinstance(request, dict)
        problem = anthropic_request_problem(request, needs_max_tokens=True)
        if problem is not None:
            return self._error(received, 400, n, problem)
        model = str(request.get("model") or _ANTHROPIC_MODEL)
        usage = controls.resolve_usage(_anthropic_default())
        msg_id = f"msg_01Mock{n:016d}"
        headers = _anthropic_headers(_anthropic_request_id(n))
        if controls.tools:
            undeclared = [t for t in controls.tools if t not in _anthropic_tool_names(request)]
            if undeclared:
                return self._error(received, 400, n, _undeclared(undeclared))
            calls = _tool_calls("anthropic", n, controls.tools)
            received.tool_calls = calls
            if request.get("stream") is True:
                frames, hold_after = anthropic_tool_stream(msg_id, model, usage, calls,
                                                           controls.tools_text)
                return _stream_reply(headers, frames, hold_after)
            headers.append(("content-type", "application/json"))
            obj = anthropic_tool_message(msg_id, model, usage, calls, controls.tools_text)
            return _Reply(200, headers, body=_json_body(obj))
        if request.get("stream") is True:
            frames, hold_after = anthropic_stream(msg_id, model, usage)
            return _stream_reply(headers, frames, hold_after)
        headers.append(("content-type", "application/json"))
        return _Reply(200, headers, body=_json_body(anthropic_message(msg_id, model, usage)))

    def _count_tokens(self, received: Received, controls: _Controls, n: int) -> _Reply:
        assert isinstance(received.json, dict)
        problem = anthropic_request_problem(received.json, needs_max_tokens=False)
        if problem is not None:
            return self._error(received, 400, n, problem)
        usage = controls.resolve_usage(_anthropic_default())
        headers = _anthropic_headers(_anthropic_request_id(n))
        headers.append(("content-type", "application/json"))
        return _Reply(200, headers, body=_json_body({"input_tokens": usage.input}))

    def _models(self, received: Received, controls: _Controls, n: int) -> _Reply:
        # Both SDKs call GET /v1/models; the Anthropic SDK always sends anthropic-version.
        if received.header("anthropic-version") is not None or received.header("x-api-key"):
            headers = _anthropic_headers(_anthropic_request_id(n))
            obj: dict[str, Any] = {
                "data": ANTHROPIC_MODELS,
                "has_more": False,
                "first_id": ANTHROPIC_MODELS[0]["id"],
                "last_id": ANTHROPIC_MODELS[-1]["id"],
            }
            body = _json_body(obj)
        else:
            headers = _openai_headers(n)
            body = _json_body(openai_models(int(time.time())), indent=2)
        headers.append(("content-type", "application/json"))
        return _Reply(200, headers, body=body)

    # OpenAI

    def _chat_completions(self, received: Received, controls: _Controls, n: int) -> _Reply:
        request = received.json
        assert isinstance(request, dict)
        problem = chat_request_problem(request)
        if problem is not None:
            message, param, code = problem
            return self._error_reply(received, 400, n,
                                     openai_error(400, message, param=param, code=code))
        model = str(request.get("model") or _OPENAI_MODEL)
        usage = controls.resolve_usage(_openai_default())
        cmpl_id = f"chatcmpl-Mock{n:020d}"
        created = int(time.time())
        headers = _openai_headers(n)
        if controls.tools:
            undeclared = [t for t in controls.tools if t not in _openai_tool_names(request)]
            if undeclared:
                return self._error(received, 400, n, _undeclared(undeclared))
            calls = _tool_calls("openai", n, controls.tools)
            received.tool_calls = calls
            if request.get("stream") is True:
                frames, hold_after = chat_tool_completion_stream(
                    cmpl_id, created, model, usage, request, calls, controls.tools_text)
                return _stream_reply(headers, frames, hold_after)
            headers.append(("content-type", "application/json"))
            obj = chat_tool_completion(cmpl_id, created, model, usage, calls,
                                       controls.tools_text)
            return _Reply(200, headers, body=_json_body(obj, indent=2))
        if request.get("stream") is True:
            frames, hold_after = chat_completion_stream(cmpl_id, created, model, usage, request)
            return _stream_reply(headers, frames, hold_after)
        headers.append(("content-type", "application/json"))
        body = _json_body(chat_completion(cmpl_id, created, model, usage), indent=2)
        return _Reply(200, headers, body=body)

    def _completions(self, received: Received, controls: _Controls, n: int) -> _Reply:
        request = received.json
        assert isinstance(request, dict)
        model = str(request.get("model") or "gpt-3.5-turbo-instruct")
        usage = controls.resolve_usage(_openai_default())
        cmpl_id = f"cmpl-Mock{n:020d}"
        created = int(time.time())
        headers = _openai_headers(n)
        if request.get("stream") is True:
            frames, hold_after = text_completion_stream(cmpl_id, created, model, usage, request)
            return _stream_reply(headers, frames, hold_after)
        headers.append(("content-type", "application/json"))
        body = _json_body(text_completion(cmpl_id, created, model, usage), indent=2)
        return _Reply(200, headers, body=body)

    def _embeddings(self, received: Received, controls: _Controls, n: int) -> _Reply:
        request = received.json
        assert isinstance(request, dict)
        model = str(request.get("model") or _EMBEDDING_MODEL)
        usage = controls.resolve_usage(
            _Usage(EMBEDDINGS_USAGE["prompt_tokens"], 0, 0, 0, 0))
        encoding = "base64" if request.get("encoding_format") == "base64" else "float"
        obj = embeddings(model, _embedding_inputs(request.get("input")), usage, encoding)
        headers = _openai_headers(n)
        headers.append(("content-type", "application/json"))
        return _Reply(200, headers, body=_json_body(obj, indent=2))

    def _responses(self, received: Received, controls: _Controls, n: int) -> _Reply:
        request = received.json
        assert isinstance(request, dict)
        model = str(request.get("model") or _OPENAI_MODEL)
        usage = controls.resolve_usage(_responses_default())
        resp_id = f"resp_mock{n:040x}"
        item_id = f"msg_mock{n:040x}"
        created = int(time.time())
        headers = _openai_headers(n)
        if request.get("stream") is True:
            frames, hold_after = responses_stream(resp_id, item_id, created, model, request,
                                                  usage)
            return _stream_reply(headers, frames, hold_after)
        headers.append(("content-type", "application/json"))
        obj = response_object(resp_id, item_id, created, model, request, usage)
        return _Reply(200, headers, body=_json_body(obj, indent=2))


# -- helpers ---------------------------------------------------------------------------


# The defaults are read from the public constants at each request, so a test may patch them.
def _anthropic_default() -> _Usage:
    u = ANTHROPIC_USAGE
    return _Usage(u["input_tokens"], u["output_tokens"], u["cache_read_input_tokens"],
                  u["cache_creation_input_tokens"], 0)


def _openai_default() -> _Usage:
    u = OPENAI_USAGE
    return _Usage(u["prompt_tokens"], u["completion_tokens"], u["cached_tokens"], 0,
                  u["reasoning_tokens"])


def _responses_default() -> _Usage:
    u = RESPONSES_USAGE
    return _Usage(u["input_tokens"], u["output_tokens"], u["cached_tokens"],
                  u["cache_write_tokens"], u["reasoning_tokens"])


def _tool_calls(api: str, n: int, names: tuple[str, ...]) -> list[ToolCall]:
    return [ToolCall(tool_call_id(api, n, k), name, TOOL_INPUTS[k % len(TOOL_INPUTS)])
            for k, name in enumerate(names)]


def _undeclared(names: list[str]) -> str:
    return (f"x-mock-tools names tools the request does not declare in `tools`: "
            f"{', '.join(names)}")


def _is_anthropic(received: Received) -> bool:
    return received.path.startswith("/v1/messages")


def _reason(status: int) -> bytes:
    try:
        return http.HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""  # e.g. 529: an empty reason phrase is valid (RFC 9112 section 4)


def _anthropic_request_id(n: int) -> str:
    return f"req_011Mock{n:016d}"


def _anthropic_headers(request_id: str) -> list[tuple[str, str]]:
    return [
        ("request-id", request_id),
        ("anthropic-organization-id", "00000000-0000-4000-8000-000000000000"),
        ("anthropic-ratelimit-requests-limit", "4000"),
        ("anthropic-ratelimit-requests-remaining", "3999"),
        ("anthropic-ratelimit-requests-reset", "2030-01-01T00:00:00Z"),
        ("server", "cloudflare"),
    ]


def _openai_headers(n: int) -> list[tuple[str, str]]:
    return [
        ("x-request-id", f"req_{n:032x}"),
        ("openai-organization", "mock-org"),
        ("openai-processing-ms", "42"),
        ("openai-version", "2020-10-01"),
        ("x-ratelimit-limit-requests", "10000"),
        ("x-ratelimit-remaining-requests", "9999"),
        ("server", "cloudflare"),
    ]


def _stream_reply(headers: list[tuple[str, str]], frames: list[bytes],
                  hold_after: int) -> _Reply:
    # No content-length: h11 sends Transfer-Encoding: chunked to an HTTP/1.1 client.
    headers = [*headers, ("content-type", "text/event-stream; charset=utf-8"),
               ("cache-control", "no-cache")]
    return _Reply(200, headers, frames=frames, hold_after=hold_after)
