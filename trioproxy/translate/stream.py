"""Streaming translators: upstream SSE bytes in, the client API's SSE bytes out.

Each translator is a sans-io state machine: `feed(chunk)` takes raw upstream bytes (split
anywhere; `SSEDecoder` reassembles events) and returns the bytes to send to the client,
possibly b""; `close()` marks the clean end of the upstream body and returns what is still
owed. `finished` says the client's stream has its proper ending; `errored` that an error
event was sent instead. A caller whose upstream ended with neither should append its own
error event (`trioproxy.errors.error_sse_event`).

Wire formats: Anthropic https://docs.anthropic.com/en/docs/build-with-claude/streaming
(`event: <type>` + `data: <json>` frames: message_start, content_block_start/delta/stop,
message_delta, message_stop, ping, error); OpenAI chat.completion.chunk objects in
`data:` frames ending with `data: [DONE]`, usage in a last chunk with `choices: []` when
the request set stream_options.include_usage.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from trioproxy.sse import SSEDecoder, SSEEvent
from trioproxy.translate.error_map import (
    anthropic_error,
    anthropic_error_from_openai_object,
    openai_error,
    openai_error_from_anthropic_object,
)
from trioproxy.translate.response import (
    anthropic_message_id,
    anthropic_stop,
    anthropic_usage,
    arguments_json,
    openai_completion_id,
    openai_finish,
    openai_usage,
    reasoning_text,
)

JSONObject = dict[str, Any]

OPENAI_DONE = b"data: [DONE]\n\n"


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def _encode(text: str) -> bytes:
    # A lone surrogate (JSON may escape one: "\ud800") cannot be UTF-8; written back as
    # the same JSON escape it stays valid JSON with the same meaning.
    return text.encode("utf-8", "backslashreplace")


def anthropic_event(kind: str, payload: Mapping[str, Any]) -> bytes:
    """One Anthropic SSE frame: `event: kind`, `data: {"type": kind, ...}`, blank line."""
    return _encode(f"event: {kind}\ndata: {_dumps({'type': kind, **payload})}\n\n")


def openai_data(payload: Mapping[str, Any]) -> bytes:
    """One OpenAI SSE frame: `data: <json>`, blank line."""
    return _encode(f"data: {_dumps(payload)}\n\n")


def wants_usage_chunk(body: Mapping[str, Any]) -> bool:
    """Whether an OpenAI request asked for the final usage chunk (stream_options)."""
    options = body.get("stream_options")
    return isinstance(options, Mapping) and options.get("include_usage") is True


def _object(value: Any) -> JSONObject:
    return value if isinstance(value, dict) else {}


def _loads(data: str) -> JSONObject | None:
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError):
        return None
    return obj if isinstance(obj, dict) else None


# -- OpenAI chunks -> Anthropic events -------------------------------------------------


@dataclass(slots=True)
class _Tool:
    key: int  # the OpenAI tool_calls index
    id: str
    name: str
    held: list[str] = field(default_factory=list)  # argument fragments held back
    sent: list[str] = field(default_factory=list)  # argument fragments already emitted
    deferred: bool = False

    def complete(self) -> bool:
        """The emitted arguments are a whole JSON object: no fragment can follow."""
        try:
            return isinstance(json.loads("".join(self.sent)), dict)
        except (ValueError, RecursionError):
            return False


class _Translator(ABC):
    """What both directions share: SSE decoding, the output buffer, the end states."""

    def __init__(self) -> None:
        self._decoder = SSEDecoder()
        self._out: list[bytes] = []
        self._finished = False
        self._errored = False

    @property
    def finished(self) -> bool:
        """The client's stream got its proper ending (message_stop, or data: [DONE]):
        upstream sent its own, or closed cleanly after its final stop reason."""
        return self._finished

    @property
    def errored(self) -> bool:
        """An error event was sent (an upstream in-stream error or an unreadable event)."""
        return self._errored

    def feed(self, chunk: bytes) -> bytes:
        """Take upstream bytes; return the client's SSE bytes they complete."""
        for event in self._decoder.feed(chunk):
            if self._finished or self._errored:
                break
            self._on_event(event)
        return self._take()

    def _take(self) -> bytes:
        data = b"".join(self._out)
        self._out.clear()
        return data

    @abstractmethod
    def _on_event(self, event: SSEEvent) -> None:
        """Turn one upstream event into output in self._out."""


class OpenAIToAnthropicStream(_Translator):
    """OpenAI chat.completion.chunk SSE in, the Anthropic Messages event sequence out.

    Blocks get indices in the order they start. Anthropic blocks cannot interleave. When
    the next tool call starts and the open one's arguments are already a whole JSON
    object (servers send calls one after another), the open block is closed and the next
    one streams too. Otherwise (OpenAI may interleave parallel calls) fragments of other
    tool calls and any text or reasoning are held and emitted, each as one whole block,
    when the open one closes at the finish_reason: tool calls in index order, then held
    text. `reasoning_content` /
    `reasoning` deltas become a thinking block (with an empty signature, sent as the API
    sends one, in a signature_delta before the block stops). Usage arrives last in
    OpenAI streams, so message_start reports zeros and message_delta the real counts.
    """

    def __init__(self, model: str) -> None:
        super().__init__()
        self._model = model  # the model name the client asked for
        self._message_id: str | None = None
        self._next_index = 0
        self._open: str | None = None  # "text", "thinking" or "tool"
        self._open_index = 0
        self._open_tool: _Tool | None = None
        self._tools: dict[int, _Tool] = {}
        self._held_tools: list[_Tool] = []
        self._held_text: list[tuple[str, list[str]]] = []  # (kind, fragments)
        self._finish_reason: Any = None
        self._matched_stop: Any = None
        self._refusal = False
        self._usage: Any = None

    def close(self) -> bytes:
        """The upstream body ended cleanly; return the closing events still owed."""
        self._decoder.flush()
        if not (self._finished or self._errored) and self._finish_reason is not None:
            self._end()
        return self._take()

    def _emit(self, kind: str, **payload: Any) -> None:
        self._out.append(anthropic_event(kind, payload))

    def _on_event(self, event: SSEEvent) -> None:
        if event.data.strip() == "[DONE]":
            self._end()
            return
        obj = _loads(event.data)
        if obj is None:
            self._fail(anthropic_error(502, "upstream sent a stream event that is not a JSON "
                                            f"object: {event.data[:200]!r}"))
            return
        if obj.get("error") is not None or event.event == "error":
            self._fail(anthropic_error_from_openai_object(obj.get("error", obj)))
            return
        self._start(obj.get("id"))
        if isinstance(obj.get("usage"), dict):
            self._usage = obj["usage"]  # the last one wins: some servers send running totals
        for choice in obj.get("choices") or ():
            # n > 1 is refused in requests; other choices can only be noise.
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            if isinstance(choice.get("delta"), dict):
                self._delta(choice["delta"])
            if choice.get("finish_reason") is not None:
                self._finish_reason = choice["finish_reason"]
                self._matched_stop = choice.get("stop_reason")
                self._close_blocks()

    def _fail(self, body: JSONObject) -> None:
        self._out.append(anthropic_event("error", {"error": body["error"]}))
        self._errored = True

    def _start(self, upstream_id: Any) -> None:
        if self._message_id is not None:
            return
        self._message_id = anthropic_message_id(upstream_id)
        self._emit("message_start", message={
            "id": self._message_id,
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "cache_creation_input_tokens": 0,
                      "cache_read_input_tokens": 0, "output_tokens": 0},
        })

    def _end(self) -> None:
        if self._finished or self._errored:
            return
        self._start(None)
        self._close_blocks()
        stop_reason, stop_sequence = anthropic_stop(
            self._finish_reason, self._matched_stop, tool_calls=bool(self._tools))
        if self._refusal:
            stop_reason, stop_sequence = "refusal", None
        usage = anthropic_usage(self._usage) if self._usage is not None else {"output_tokens": 0}
        self._emit("message_delta",
                   delta={"stop_reason": stop_reason, "stop_sequence": stop_sequence},
                   usage=usage)
        self._emit("message_stop")
        self._finished = True

    def _delta(self, delta: JSONObject) -> None:
        reasoning = reasoning_text(delta)
        if reasoning:
            self._text("thinking", reasoning)
        content = delta.get("content")
        if isinstance(content, str) and content:
            self._text("text", content)
        refusal = delta.get("refusal")
        if isinstance(refusal, str) and refusal:
            self._refusal = True
            self._text("text", refusal)
        calls = delta.get("tool_calls")
        if isinstance(calls, list):
            for position, call in enumerate(calls):
                if isinstance(call, dict):
                    self._tool_fragment(position, call)

    def _text(self, kind: str, text: str) -> None:
        if self._open == kind:
            self._block_delta(kind, text)
        elif self._open == "tool":
            if self._held_text and self._held_text[-1][0] == kind:
                self._held_text[-1][1].append(text)
            else:
                self._held_text.append((kind, [text]))
        else:
            self._close_open()
            self._open_block(kind)
            self._block_delta(kind, text)

    def _tool_fragment(self, position: int, call: JSONObject) -> None:
        key = call.get("index")
        if not isinstance(key, int) or isinstance(key, bool):
            key = position  # a server that omits index: its place in this chunk's list
        function = _object(call.get("function"))
        arguments = arguments_json(function.get("arguments"))
        tool = self._tools.get(key)
        if tool is None:
            tool = _Tool(key, self._tool_id(call.get("id"), key), str(function.get("name") or ""))
            self._tools[key] = tool
            if (
                self._open_tool is not None and not self._held_tools and not self._held_text
                and self._open_tool.complete()
            ):
                self._close_open()
            if self._open == "tool":
                tool.deferred = True
                self._held_tools.append(tool)
            else:
                self._close_open()
                self._open_block("tool", tool)
        if tool is self._open_tool:
            if arguments:
                tool.sent.append(arguments)
                self._block_delta("tool", arguments)
        elif tool.deferred:
            tool.held.append(arguments)
        # Otherwise the tool's block closed at finish_reason and nothing can carry a late
        # fragment; a server that sends one has broken its own stream.

    def _tool_id(self, upstream_id: Any, key: int) -> str:
        if isinstance(upstream_id, str) and upstream_id:
            return upstream_id
        # Anthropic requires an id; derive a stable one (a later tool_result refers to it).
        return f"toolu_{(self._message_id or '').removeprefix('msg_')}_{key}"

    def _open_block(self, kind: str, tool: _Tool | None = None) -> None:
        if tool is not None:
            block: JSONObject = {"type": "tool_use", "id": tool.id, "name": tool.name,
                                 "input": {}}
        elif kind == "thinking":
            block = {"type": "thinking", "thinking": "", "signature": ""}
        else:
            block = {"type": "text", "text": ""}
        self._open, self._open_index, self._open_tool = kind, self._next_index, tool
        self._next_index += 1
        self._emit("content_block_start", index=self._open_index, content_block=block)

    def _block_delta(self, kind: str, text: str) -> None:
        if kind == "text":
            delta = {"type": "text_delta", "text": text}
        elif kind == "thinking":
            delta = {"type": "thinking_delta", "thinking": text}
        else:
            delta = {"type": "input_json_delta", "partial_json": text}
        self._emit("content_block_delta", index=self._open_index, delta=delta)

    def _close_open(self) -> None:
        if self._open is None:
            return
        if self._open == "thinking":
            self._emit("content_block_delta", index=self._open_index,
                       delta={"type": "signature_delta", "signature": ""})
        self._emit("content_block_stop", index=self._open_index)
        self._open = self._open_tool = None

    def _close_blocks(self) -> None:
        self._close_open()
        for tool in sorted(self._held_tools, key=lambda t: t.key):
            tool.deferred = False
            self._open_block("tool", tool)
            arguments = "".join(tool.held)
            if arguments:
                self._block_delta("tool", arguments)
            self._close_open()
        self._held_tools.clear()
        for kind, texts in self._held_text:
            self._open_block(kind)
            self._block_delta(kind, "".join(texts))
            self._close_open()
        self._held_text.clear()


# -- Anthropic events -> OpenAI chunks -------------------------------------------------


class AnthropicToOpenAIStream(_Translator):
    """Anthropic Messages SSE in, OpenAI chat.completion.chunk SSE out.

    The first chunk has `delta.role`; text deltas become `delta.content`, thinking deltas
    `delta.reasoning_content`, tool_use blocks `delta.tool_calls` (index counted among tool
    calls; the first fragment carries id, type, name and `arguments: ""`). message_delta
    gives the finish_reason chunk; message_stop the usage chunk (`choices: []`, only with
    `include_usage`) and `data: [DONE]`. `created` is the Unix time to report.
    """

    def __init__(self, model: str, created: int, *, include_usage: bool = False) -> None:
        super().__init__()
        self._model = model  # the model name the client asked for
        self._created = created
        self._include_usage = include_usage
        self._id = openai_completion_id(None)
        self._tool_index: dict[Any, int] = {}  # Anthropic block index -> OpenAI tool index
        self._usage: JSONObject = {}
        self._stop_reason: Any = None
        self._stop_sequence: Any = None
        self._finish_sent = False

    def close(self) -> bytes:
        """The upstream body ended cleanly; return the closing chunks still owed."""
        self._decoder.flush()
        if self._finish_sent and not (self._finished or self._errored):
            self._end()
        return self._take()

    def _on_event(self, event: SSEEvent) -> None:
        obj = _loads(event.data)
        if obj is None:
            self._fail(openai_error("api_error", "upstream sent a stream event that is not a "
                                                 f"JSON object: {event.data[:200]!r}"))
            return
        kind = obj.get("type", event.event)
        if kind == "message_start":
            message = _object(obj.get("message"))
            self._id = openai_completion_id(message.get("id"))
            self._merge_usage(message.get("usage"))
            self._chunk({"role": "assistant", "content": ""})
        elif kind == "content_block_start":
            self._block_start(obj)
        elif kind == "content_block_delta":
            self._block_delta(obj)
        elif kind == "message_delta":
            delta = _object(obj.get("delta"))
            self._stop_reason = delta.get("stop_reason")
            self._stop_sequence = delta.get("stop_sequence")
            self._merge_usage(obj.get("usage"))
            self._finish()
        elif kind == "message_stop":
            self._end()
        elif kind == "error":
            self._fail(openai_error_from_anthropic_object(obj.get("error")))
        # ping, content_block_stop and event types added later carry nothing for OpenAI.

    def _fail(self, body: JSONObject) -> None:
        self._out.append(openai_data(body))
        self._errored = True

    def _merge_usage(self, usage: Any) -> None:
        # message_delta counts are cumulative and overwrite; absent ones keep the
        # message_start value (as the Anthropic SDK merges them).
        if isinstance(usage, dict):
            self._usage.update({k: v for k, v in usage.items() if v is not None})

    def _chunk(self, delta: JSONObject, finish_reason: str | None = None,
               stop_sequence: str | None = None) -> None:
        choice: JSONObject = {"index": 0, "delta": delta, "logprobs": None,
                              "finish_reason": finish_reason}
        if stop_sequence is not None:
            choice["stop_reason"] = stop_sequence  # vLLM's field for the matched stop string
        obj: JSONObject = {"id": self._id, "object": "chat.completion.chunk",
                           "created": self._created, "model": self._model, "choices": [choice]}
        if self._include_usage:
            obj["usage"] = None  # every chunk but the last, per the stream_options docs
        self._out.append(openai_data(obj))

    def _block_start(self, obj: JSONObject) -> None:
        block = _object(obj.get("content_block"))
        kind = block.get("type")
        if kind == "tool_use":
            index = len(self._tool_index)
            self._tool_index[obj.get("index")] = index
            self._chunk({"tool_calls": [{
                "index": index, "id": block.get("id"), "type": "function",
                "function": {"name": block.get("name"), "arguments": ""},
            }]})
            if block.get("input"):
                self._arguments(index, arguments_json(block["input"]))
        elif kind == "text" and block.get("text"):
            self._chunk({"content": block["text"]})
        elif kind == "thinking" and block.get("thinking"):
            self._chunk({"reasoning_content": block["thinking"]})

    def _block_delta(self, obj: JSONObject) -> None:
        delta = _object(obj.get("delta"))
        kind = delta.get("type")
        if kind == "text_delta" and delta.get("text"):
            self._chunk({"content": delta["text"]})
        elif kind == "thinking_delta" and delta.get("thinking"):
            self._chunk({"reasoning_content": delta["thinking"]})
        elif kind == "input_json_delta" and delta.get("partial_json"):
            index = self._tool_index.get(obj.get("index"))
            if index is not None:
                self._arguments(index, delta["partial_json"])
        # signature_delta and citations_delta have no OpenAI form.

    def _arguments(self, index: int, fragment: str) -> None:
        self._chunk({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]})

    def _finish(self) -> None:
        if self._finish_sent:
            return
        self._finish_sent = True
        sequence = self._stop_sequence if self._stop_reason == "stop_sequence" else None
        self._chunk({}, openai_finish(self._stop_reason),
                    sequence if isinstance(sequence, str) else None)

    def _end(self) -> None:
        self._finish()
        if self._include_usage:
            self._out.append(openai_data({
                "id": self._id, "object": "chat.completion.chunk", "created": self._created,
                "model": self._model, "choices": [], "usage": openai_usage(self._usage),
            }))
        self._out.append(OPENAI_DONE)
        self._finished = True
