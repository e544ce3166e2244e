"""Usage from OpenAI-style responses: Chat Completions, legacy Completions, Embeddings
and the Responses API, streamed or not.

Field names follow the OpenAI API reference. Chat and Completions report
`usage` {prompt_tokens, completion_tokens, prompt_tokens_details.cached_tokens} and
`choices[].finish_reason`; the Responses API reports `usage` {input_tokens,
output_tokens, input_tokens_details.cached_tokens}, `status` and
`incomplete_details.reason`. Errors are {"error": {"message", "type", "param", "code"}}.
"""

from __future__ import annotations

import re

from trioproxy.sse import SSEEvent
from trioproxy.usage.fields import (
    JSONObject,
    error_text,
    get_dict,
    get_int,
    get_list,
    get_str,
    loads_object,
    sniff_type,
)
from trioproxy.usage.record import Usage

# A chat chunk is worth decoding only if it may carry a non-null usage, finish_reason
# or error. JSON escapes quotes inside strings, so generated text cannot match a key.
_CHAT_WORTH_DECODING = re.compile(r'"(?:usage|finish_reason|error)"\s*:\s*[^\sn]')
# Stop looking for the model name after this many chunks without one.
_MODEL_TRIES = 8

_RESPONSE_DONE = frozenset({"response.completed", "response.incomplete", "response.failed"})


def chat_usage(body: JSONObject) -> Usage:
    """Usage of a chat.completion or text_completion object, or of an error body."""
    usage = Usage(model=get_str(body, "model"), error=_error(body))
    _read_chat_counts(get_dict(body, "usage"), usage)
    choices = get_list(body, "choices")
    if choices:
        usage.stop_reason = get_str(choices[0], "finish_reason")
    return usage


def embeddings_usage(body: JSONObject) -> Usage:
    """Usage of an embeddings list (input tokens only), or of an error body."""
    usage = Usage(model=get_str(body, "model"), error=_error(body))
    usage.input_tokens = get_int(get_dict(body, "usage"), "prompt_tokens")
    return usage


def responses_usage(body: JSONObject) -> Usage:
    """Usage of a Responses API response object, or of an error body."""
    usage = Usage()
    _read_response(body, usage)
    return usage


class ChatStream:
    """Usage from a streamed chat or legacy completion: chunk objects, then [DONE]."""

    def __init__(self) -> None:
        self.usage = Usage()
        self._model_tries = _MODEL_TRIES

    def on_event(self, event: SSEEvent) -> None:
        """Take what `event` says; raise MalformedEvent if it is unreadable."""
        data = event.data
        looking_for_model = self._model_tries > 0
        if (
            not looking_for_model
            and event.event != "error"
            and not _CHAT_WORTH_DECODING.search(data)
        ):
            return
        if data.startswith("[DONE]"):
            return
        chunk = loads_object(data)
        usage = self.usage
        if looking_for_model:
            # Azure's first chunk has an empty model (prompt filter results only).
            usage.model = get_str(chunk, "model")
            self._model_tries = 0 if usage.model else self._model_tries - 1
        error = _error(chunk)
        if error is None and event.event == "error":
            error = error_text(None, get_str(chunk, "message"))
        if error is not None:
            usage.error = error
        # With stream_options.include_usage the usage comes in a last chunk with empty
        # choices; some servers (vLLM) send a running total on every chunk: keep the last.
        _read_chat_counts(get_dict(chunk, "usage"), usage)
        for choice in get_list(chunk, "choices"):
            reason = get_str(choice, "finish_reason")
            # With n > 1, prefer choice 0, as chat_usage does.
            if reason and (usage.stop_reason is None or get_int(choice, "index") in (0, None)):
                usage.stop_reason = reason


class ResponsesStream:
    """Usage from a streamed Responses API response."""

    def __init__(self) -> None:
        self.usage = Usage()

    def on_event(self, event: SSEEvent) -> None:
        """Take what `event` says; raise MalformedEvent if it is unreadable."""
        name = event.event
        if name == "message":  # no "event:" field: fall back to the JSON "type"
            name = sniff_type(event.data) or name
        if name == "response.created":
            model = get_str(get_dict(loads_object(event.data), "response"), "model")
            if model is not None:
                self.usage.model = model
        elif name in _RESPONSE_DONE:
            # The final response object carries everything, as the non-streamed body does.
            _read_response(get_dict(loads_object(event.data), "response"), self.usage)
        elif name == "error":
            data = loads_object(event.data)
            if nested := get_dict(data, "error"):
                kind = get_str(nested, "type") or get_str(nested, "code")
                self.usage.error = error_text(kind, get_str(nested, "message"))
            else:  # the documented shape: {"type": "error", "code", "message", "param"}
                self.usage.error = error_text(get_str(data, "code"), get_str(data, "message"))


def _read_chat_counts(counts: JSONObject, usage: Usage) -> None:
    if (n := get_int(counts, "prompt_tokens")) is not None:
        usage.input_tokens = n
    if (n := get_int(counts, "completion_tokens")) is not None:
        usage.output_tokens = n
    if (n := get_int(get_dict(counts, "prompt_tokens_details"), "cached_tokens")) is not None:
        usage.cache_read_tokens = n


def _read_response(response: JSONObject, usage: Usage) -> None:
    if (model := get_str(response, "model")) is not None:
        usage.model = model
    counts = get_dict(response, "usage")
    if (n := get_int(counts, "input_tokens")) is not None:
        usage.input_tokens = n
    if (n := get_int(counts, "output_tokens")) is not None:
        usage.output_tokens = n
    if (n := get_int(get_dict(counts, "input_tokens_details"), "cached_tokens")) is not None:
        usage.cache_read_tokens = n
    reason = get_str(get_dict(response, "incomplete_details"), "reason")
    if (stop := reason or get_str(response, "status")) is not None:
        usage.stop_reason = stop
    if (error := _error(response)) is not None:
        usage.error = error


def _error(body: JSONObject) -> str | None:
    """The error an OpenAI-style body reports, or None.

    Covers {"error": {...}} (OpenAI; a failed Responses object has {"code", "message"}
    there), {"error": "text"} (Ollama) and {"object": "error", "message", "type"} (vLLM).
    A Responses object's `"error": null` is no error.
    """
    error = body.get("error")
    if isinstance(error, dict):
        return error_text(
            get_str(error, "type") or get_str(error, "code"), get_str(error, "message")
        )
    if isinstance(error, str) and error:
        return error
    if body.get("object") == "error":
        return error_text(get_str(body, "type"), get_str(body, "message"))
    return None
