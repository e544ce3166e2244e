"""Usage from Anthropic Messages API responses (POST /v1/messages).

Field names follow the Messages API reference: a Message object carries `model`,
`stop_reason` and `usage` {input_tokens, output_tokens, cache_read_input_tokens,
cache_creation_input_tokens, cache_creation {ephemeral_5m_input_tokens,
ephemeral_1h_input_tokens}}; a stream carries the same in `message_start` and
`message_delta` events. Errors are {"type": "error", "error": {"type", "message"}}.
"""

from __future__ import annotations

from trioproxy.sse import SSEEvent
from trioproxy.usage.fields import (
    JSONObject,
    error_text,
    get_dict,
    get_int,
    get_str,
    loads_object,
    sniff_type,
)
from trioproxy.usage.record import Usage

# Most events of a stream are content_block_delta: they are dropped by name, undecoded.
_IGNORED = frozenset(
    {"ping", "content_block_start", "content_block_delta", "content_block_stop", "message_stop"}
)


def message_usage(body: JSONObject) -> Usage:
    """Usage of a non-streamed response: a Message object or an error object."""
    usage = Usage()
    if body.get("type") == "error":
        usage.error = _error(body)
    _read_message(body, usage)
    return usage


class MessagesStream:
    """Builds a Usage from the events of a streamed response, one event at a time."""

    def __init__(self) -> None:
        self.usage = Usage()

    def on_event(self, event: SSEEvent) -> None:
        """Take what `event` says; raise MalformedEvent if it is unreadable."""
        name = event.event
        if name in _IGNORED:
            return
        if name == "message":  # no "event:" field: fall back to the JSON "type"
            name = sniff_type(event.data) or name
            if name in _IGNORED:
                return
        if name == "message_start":
            _read_message(get_dict(loads_object(event.data), "message"), self.usage)
        elif name == "message_delta":
            self._message_delta(loads_object(event.data))
        elif name == "error":
            self.usage.error = _error(loads_object(event.data))
        # Other event types are new to this code: ignore them, as the API asks clients to.

    def _message_delta(self, data: JSONObject) -> None:
        usage = self.usage
        stop_reason = get_str(get_dict(data, "delta"), "stop_reason")
        if stop_reason is not None:
            usage.stop_reason = stop_reason
        # Counts here are cumulative for the message, so the last one wins. Newer API
        # versions also repeat the input and cache counts, sometimes as null.
        _read_counts(get_dict(data, "usage"), usage)


def _read_message(message: JSONObject, usage: Usage) -> None:
    model = get_str(message, "model")
    if model is not None:
        usage.model = model
    stop_reason = get_str(message, "stop_reason")
    if stop_reason is not None:
        usage.stop_reason = stop_reason
    _read_counts(get_dict(message, "usage"), usage)


def _read_counts(counts: JSONObject, usage: Usage) -> None:
    if (n := get_int(counts, "input_tokens")) is not None:
        usage.input_tokens = n
    if (n := get_int(counts, "output_tokens")) is not None:
        usage.output_tokens = n
    if (n := get_int(counts, "cache_read_input_tokens")) is not None:
        usage.cache_read_tokens = n
    if (n := get_int(counts, "cache_creation_input_tokens")) is not None:
        usage.cache_write_tokens = n
    creation = get_dict(counts, "cache_creation")
    if (n := get_int(creation, "ephemeral_5m_input_tokens")) is not None:
        usage.cache_write_5m_tokens = n
    if (n := get_int(creation, "ephemeral_1h_input_tokens")) is not None:
        usage.cache_write_1h_tokens = n


def _error(body: JSONObject) -> str:
    error = get_dict(body, "error")
    return error_text(get_str(error, "type"), get_str(error, "message"))
