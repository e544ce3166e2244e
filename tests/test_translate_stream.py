"""Streaming translators: exact event sequences, chunking that must not matter, endings,
errors, and events the official SDKs' types accept."""

from __future__ import annotations

import json
from typing import Any

import anthropic.types
import openai.types.chat
import pydantic
import pytest

from tests import mock_upstream
from trioproxy.translate import AnthropicToOpenAIStream, OpenAIToAnthropicStream
from trioproxy.translate.stream import wants_usage_chunk

ANTHROPIC_EVENT = pydantic.TypeAdapter(anthropic.types.RawMessageStreamEvent)
CMPL_ID = "chatcmpl-Mock1"


def sse(obj: dict[str, Any] | str, event: str | None = None) -> bytes:
    payload = obj if isinstance(obj, str) else json.dumps(obj)
    return (f"event: {event}\n" if event else "").encode() + f"data: {payload}\n\n".encode()


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None,
          usage: dict[str, Any] | None = None, choices: bool = True,
          **choice: Any) -> bytes:
    obj: dict[str, Any] = {"id": CMPL_ID, "object": "chat.completion.chunk", "created": 1,
                           "model": "qwen3", "choices": []}
    if choices:
        obj["choices"] = [{"index": 0, "delta": delta or {}, "logprobs": None,
                           "finish_reason": finish, **choice}]
    if usage is not None:
        obj["usage"] = usage
    return sse(obj)


def call(index: int, arguments: str, id: str | None = None,
         name: str | None = None) -> dict[str, Any]:
    fragment: dict[str, Any] = {"index": index, "function": {"arguments": arguments}}
    if id is not None:
        fragment.update(id=id, type="function")
        fragment["function"]["name"] = name
    return fragment


USAGE = {"prompt_tokens": 31, "completion_tokens": 19, "total_tokens": 50,
         "prompt_tokens_details": {"cached_tokens": 12}}
ANTHROPIC_FINAL_USAGE = {"input_tokens": 19, "cache_creation_input_tokens": 0,
                         "cache_read_input_tokens": 12, "output_tokens": 19}
DONE = sse("[DONE]")


def anthropic_events(data: bytes) -> list[dict[str, Any]]:
    """Parse translator output; check the framing and the SDK's event types on the way."""
    events = []
    assert data.endswith(b"\n\n")
    for frame in data.decode().split("\n\n")[:-1]:
        head, body = frame.split("\n")
        assert head.startswith("event: ")
        assert body.startswith("data: {")
        event = json.loads(body.removeprefix("data: "))
        assert head == f"event: {event['type']}"
        if event["type"] != "error":
            ANTHROPIC_EVENT.validate_python(event)
        events.append(event)
    return events


def shape(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """(type, index, block type or delta type) of each event."""
    out: list[tuple[Any, ...]] = []
    for e in events:
        if e["type"] == "content_block_start":
            out.append(("start", e["index"], e["content_block"]["type"]))
        elif e["type"] == "content_block_delta":
            out.append(("delta", e["index"], e["delta"]["type"]))
        elif e["type"] == "content_block_stop":
            out.append(("stop", e["index"]))
        else:
            out.append((e["type"],))
    return out


def translate(*frames: bytes) -> tuple[OpenAIToAnthropicStream, bytes]:
    stream = OpenAIToAnthropicStream("claude-sonnet-4-6")
    return stream, stream.feed(b"".join(frames)) + stream.close()


def translated_events(*frames: bytes) -> list[dict[str, Any]]:
    return anthropic_events(translate(*frames)[1])


MESSAGE_START = {"type": "message_start", "message": {
    "id": "msg_Mock1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-6",
    "content": [], "stop_reason": None, "stop_sequence": None,
    "usage": {"input_tokens": 0, "cache_creation_input_tokens": 0,
              "cache_read_input_tokens": 0, "output_tokens": 0}}}


# -- OpenAI -> Anthropic ---------------------------------------------------------------


def test_mock_text_stream_becomes_the_exact_anthropic_sequence() -> None:
    usage = mock_upstream._Usage(31, 19, 12, 0, 3)
    frames, _ = mock_upstream.chat_completion_stream(
        "chatcmpl-Mock1", 1, "gpt-4o-mini", usage, {"stream_options": {"include_usage": True}})
    stream, output = translate(*frames)
    events = anthropic_events(output)
    assert events == [
        MESSAGE_START,
        {"type": "content_block_start", "index": 0,
         "content_block": {"type": "text", "text": ""}},
        *[{"type": "content_block_delta", "index": 0,
           "delta": {"type": "text_delta", "text": text}} for text in mock_upstream.OUTPUT_DELTAS],
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
         "usage": {**ANTHROPIC_FINAL_USAGE, "output_tokens_details": {"thinking_tokens": 3}}},
        {"type": "message_stop"},
    ]
    assert stream.finished
    assert not stream.errored
    # Framing exactly as Anthropic (and tests/mock_upstream.py) writes it.
    assert output.startswith(
        b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_Mock1",')
    assert "世界".encode() in output


TOOL_TURN = [
    chunk({"role": "assistant", "content": None, "reasoning_content": "Two"}),
    chunk({"reasoning_content": " lookups."}),
    chunk({"content": "Checking"}),
    chunk({"content": " both."}),
    chunk({"tool_calls": [call(0, "", "call_w", "get_weather")]}),
    chunk({"tool_calls": [call(0, '{"ci')]}),
    chunk({"tool_calls": [call(0, 'ty": "Paris"}')]}),
    chunk({"tool_calls": [call(1, '{"tz"', "call_t", "get_time")]}),
    chunk({"tool_calls": [call(1, ': "CET"}')]}),
    chunk({}, "tool_calls"),
    chunk(usage=USAGE, choices=False),
    DONE,
]


def test_reasoning_text_and_two_tool_calls() -> None:
    events = translated_events(*TOOL_TURN)
    assert shape(events) == [
        ("message_start",),
        ("start", 0, "thinking"), ("delta", 0, "thinking_delta"),
        ("delta", 0, "thinking_delta"), ("delta", 0, "signature_delta"), ("stop", 0),
        ("start", 1, "text"), ("delta", 1, "text_delta"), ("delta", 1, "text_delta"),
        ("stop", 1),
        ("start", 2, "tool_use"), ("delta", 2, "input_json_delta"),
        ("delta", 2, "input_json_delta"),
        # The second call starts once the first's arguments are a whole JSON object: the
        # first block closes and the second streams fragment by fragment too.
        ("stop", 2), ("start", 3, "tool_use"), ("delta", 3, "input_json_delta"),
        ("delta", 3, "input_json_delta"), ("stop", 3),
        ("message_delta",), ("message_stop",),
    ]
    assert events[1]["content_block"] == {"type": "thinking", "thinking": "", "signature": ""}
    assert events[4]["delta"] == {"type": "signature_delta", "signature": ""}
    assert events[10]["content_block"] == {"type": "tool_use", "id": "call_w",
                                           "name": "get_weather", "input": {}}
    assert [e["delta"]["partial_json"] for e in events[11:13]] == ['{"ci', 'ty": "Paris"}']
    assert events[14]["content_block"] == {"type": "tool_use", "id": "call_t",
                                           "name": "get_time", "input": {}}
    assert [e["delta"]["partial_json"] for e in events[15:17]] == ['{"tz"', ': "CET"}']
    assert events[-2]["delta"] == {"stop_reason": "tool_use", "stop_sequence": None}
    assert events[-2]["usage"] == ANTHROPIC_FINAL_USAGE


def test_interleaved_parallel_tool_calls_are_emitted_whole_in_index_order() -> None:
    # Call 1 starts while call 0's arguments are still "" (not a whole object): held.
    frames = [
        chunk({"role": "assistant", "tool_calls": [call(0, "", "c0", "a")]}),
        chunk({"tool_calls": [call(1, '{"y"', "c1", "b"), call(0, '{"x"')]}),
        chunk({"tool_calls": [call(2, "{}", "c2", "c")]}),
        chunk({"tool_calls": [call(1, ": 2}")]}),
        chunk({"content": "late"}),
        chunk({"content": " text"}),
        chunk({"tool_calls": [call(0, ": 1}")]}),
        chunk({}, "tool_calls", usage=USAGE),
        DONE,
    ]
    events = translated_events(*frames)
    assert shape(events) == [
        ("message_start",),
        ("start", 0, "tool_use"), ("delta", 0, "input_json_delta"),
        ("delta", 0, "input_json_delta"), ("stop", 0),
        ("start", 1, "tool_use"), ("delta", 1, "input_json_delta"), ("stop", 1),
        ("start", 2, "tool_use"), ("delta", 2, "input_json_delta"), ("stop", 2),
        ("start", 3, "text"), ("delta", 3, "text_delta"), ("stop", 3),
        ("message_delta",), ("message_stop",),
    ]
    blocks = {e["index"]: e["content_block"] for e in events
              if e["type"] == "content_block_start"}
    assert [(b.get("id"), b.get("name")) for b in blocks.values()] == [
        ("c0", "a"), ("c1", "b"), ("c2", "c"), (None, None)]
    json_by_index: dict[int, str] = {}
    for e in events:
        if e["type"] == "content_block_delta" and e["delta"]["type"] == "input_json_delta":
            json_by_index[e["index"]] = json_by_index.get(e["index"], "") + e["delta"][
                "partial_json"]
    assert json_by_index == {0: '{"x": 1}', 1: '{"y": 2}', 2: "{}"}
    assert events[12]["delta"] == {"type": "text_delta", "text": "late text"}
    assert events[-2]["usage"] == ANTHROPIC_FINAL_USAGE


def test_text_after_a_closed_block_opens_a_new_block() -> None:
    frames = [chunk({"content": "a"}), chunk({"reasoning": "r"}), chunk({"content": "b"}),
              chunk({}, "stop"), DONE]
    events = translated_events(*frames)
    assert shape(events) == [
        ("message_start",), ("start", 0, "text"), ("delta", 0, "text_delta"), ("stop", 0),
        ("start", 1, "thinking"), ("delta", 1, "thinking_delta"),
        ("delta", 1, "signature_delta"), ("stop", 1),
        ("start", 2, "text"), ("delta", 2, "text_delta"), ("stop", 2),
        ("message_delta",), ("message_stop",),
    ]


def all_at_once(translator: Any, data: bytes) -> bytes:
    return translator.feed(data) + translator.close()


def byte_by_byte(translator: Any, data: bytes) -> bytes:
    return b"".join(translator.feed(data[i:i + 1]) for i in range(len(data))) + translator.close()


def test_one_byte_at_a_time_changes_nothing() -> None:
    data = b"".join(TOOL_TURN) + chunk({"content": "é世🎉"})
    whole = all_at_once(OpenAIToAnthropicStream("m"), data)
    assert byte_by_byte(OpenAIToAnthropicStream("m"), data) == whole
    crlf = data.replace(b"\n", b"\r\n")
    assert byte_by_byte(OpenAIToAnthropicStream("m"), crlf) == whole


def test_comments_and_keepalives_are_ignored() -> None:
    data = b": OPENROUTER PROCESSING\n\n" + b"".join(TOOL_TURN)
    assert all_at_once(OpenAIToAnthropicStream("m"), data) == all_at_once(
        OpenAIToAnthropicStream("m"), b"".join(TOOL_TURN))


@pytest.mark.parametrize(("choice", "expected"), [
    ({"stop_reason": "###"}, {"stop_reason": "stop_sequence", "stop_sequence": "###"}),
    ({"stop_reason": 128001}, {"stop_reason": "end_turn", "stop_sequence": None}),
    ({}, {"stop_reason": "end_turn", "stop_sequence": None}),
])
def test_vllm_stop_reason(choice: dict[str, Any], expected: dict[str, Any]) -> None:
    frames = [chunk({"content": "x"}), chunk({}, "stop", **choice), DONE]
    events = translated_events(*frames)
    assert events[-2]["delta"] == expected


def test_length_and_refusal() -> None:
    events = translated_events(chunk({"content": "x"}), chunk({}, "length"), DONE)
    assert events[-2]["delta"]["stop_reason"] == "max_tokens"
    events = translated_events(chunk({"refusal": "No."}), chunk({}, "stop"), DONE)
    assert events[2]["delta"] == {"type": "text_delta", "text": "No."}
    assert events[-2]["delta"]["stop_reason"] == "refusal"


def test_no_usage_reported() -> None:
    events = translated_events(chunk({"content": "x"}), chunk({}, "stop"), DONE)
    assert events[-2]["usage"] == {"output_tokens": 0}


def test_tool_call_without_id_gets_a_stable_one() -> None:
    frames = [chunk({"tool_calls": [{"index": 0, "function": {"name": "f",
                                                              "arguments": {"a": 1}}}]}),
              chunk({}, "tool_calls"), DONE]
    events = translated_events(*frames)
    assert events[1]["content_block"]["id"] == "toolu_Mock1_0"
    assert events[2]["delta"]["partial_json"] == '{"a":1}'


def test_in_stream_error_ends_the_stream() -> None:
    error = {"error": {"message": "context too long", "type": "BadRequestError", "code": 400}}
    stream = OpenAIToAnthropicStream("m")
    out = stream.feed(chunk({"content": "x"}) + sse(error) + chunk({"content": "y"}) + DONE)
    assert stream.errored
    assert not stream.finished
    events = anthropic_events(out + stream.close())
    assert events[-1] == {"type": "error", "error": {"type": "invalid_request_error",
                                                     "message": "context too long"}}
    assert shape(events) == [("message_start",), ("start", 0, "text"),
                             ("delta", 0, "text_delta"), ("error",)]


def test_invalid_json_event_becomes_an_error_event() -> None:
    stream = OpenAIToAnthropicStream("m")
    events = anthropic_events(stream.feed(b"data: {not json\n\n"))
    assert events == [{"type": "error", "error": {
        "type": "api_error",
        "message": "upstream sent a stream event that is not a JSON object: '{not json'"}}]
    assert stream.errored


def test_endings() -> None:
    # [DONE] missing but the choice finished: close() completes the message.
    stream = OpenAIToAnthropicStream("m")
    out = stream.feed(chunk({"content": "x"}) + chunk({}, "stop", usage=USAGE))
    assert not stream.finished
    assert shape(anthropic_events(out))[-1] == ("stop", 0)
    assert shape(anthropic_events(stream.close())) == [("message_delta",), ("message_stop",)]
    assert stream.finished
    # Cut before the finish_reason: nothing owed, not finished; the caller sends an error.
    stream = OpenAIToAnthropicStream("m")
    stream.feed(chunk({"content": "x"}) + b"data: {\"id\": \"chatcmpl-")
    assert stream.close() == b""
    assert not stream.finished
    assert not stream.errored
    # Anything after [DONE] is ignored.
    stream = OpenAIToAnthropicStream("m")
    out = stream.feed(DONE + chunk({"content": "late"}))
    assert shape(anthropic_events(out)) == [("message_start",), ("message_delta",),
                                            ("message_stop",)]
    assert stream.feed(chunk({"content": "later"})) == b""
    assert stream.close() == b""


# -- Anthropic -> OpenAI ---------------------------------------------------------------


def openai_chunks(data: bytes) -> list[Any]:
    """Parse translator output ("[DONE]" kept as a string); check each chunk's type."""
    out: list[Any] = []
    assert data.endswith(b"\n\n")
    for frame in data.decode().split("\n\n")[:-1]:
        assert frame.startswith("data: ")
        assert "\n" not in frame
        payload = frame.removeprefix("data: ")
        if payload == "[DONE]":
            out.append(payload)
            continue
        obj = json.loads(payload)
        if "error" not in obj:
            openai.types.chat.ChatCompletionChunk.model_validate(obj)
        out.append(obj)
    return out


def deltas(chunks: list[Any]) -> list[Any]:
    return [c if isinstance(c, str) else (c["choices"][0]["delta"] if c["choices"] else "usage")
            for c in chunks]


def a_event(obj: dict[str, Any]) -> bytes:
    return sse(obj, obj["type"])


def test_mock_anthropic_stream_becomes_exact_openai_chunks() -> None:
    usage = mock_upstream._Usage(25, 17, 1200, 340, 0)
    frames, _ = mock_upstream.anthropic_stream("msg_01Mock", "claude-sonnet-4-6", usage)
    stream = AnthropicToOpenAIStream("gpt-4o", 1700000000, include_usage=True)
    chunks = openai_chunks(all_at_once(stream, b"".join(frames)))
    base = {"id": "chatcmpl-01Mock", "object": "chat.completion.chunk", "created": 1700000000,
            "model": "gpt-4o"}

    def expect(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                     "finish_reason": finish}], "usage": None}

    assert chunks == [
        expect({"role": "assistant", "content": ""}),
        *[expect({"content": text}) for text in mock_upstream.OUTPUT_DELTAS],
        expect({}, "stop"),
        {**base, "choices": [], "usage": {
            "prompt_tokens": 25 + 1200 + 340, "completion_tokens": 17,
            "total_tokens": 25 + 1200 + 340 + 17,
            "prompt_tokens_details": {"cached_tokens": 1200, "cache_write_tokens": 340}}},
        "[DONE]",
    ]
    assert stream.finished
    assert not stream.errored


def test_without_include_usage_there_is_no_usage_chunk() -> None:
    frames, _ = mock_upstream.anthropic_stream("msg_1", "c", mock_upstream._Usage(1, 2, 0, 0, 0))
    chunks = openai_chunks(all_at_once(AnthropicToOpenAIStream("m", 0), b"".join(frames)))
    assert all("usage" not in c for c in chunks[:-1])
    assert chunks[-1] == "[DONE]"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"


ANTHROPIC_TOOL_TURN = [
    a_event({"type": "message_start", "message": {
        "id": "msg_7", "type": "message", "role": "assistant", "model": "claude", "content": [],
        "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": 10, "cache_read_input_tokens": 4, "output_tokens": 1}}}),
    a_event({"type": "content_block_start", "index": 0,
             "content_block": {"type": "thinking", "thinking": "", "signature": ""}}),
    a_event({"type": "content_block_delta", "index": 0,
             "delta": {"type": "thinking_delta", "thinking": "Plan."}}),
    a_event({"type": "content_block_delta", "index": 0,
             "delta": {"type": "signature_delta", "signature": "EqQB"}}),
    a_event({"type": "content_block_stop", "index": 0}),
    a_event({"type": "ping"}),
    a_event({"type": "content_block_start", "index": 1,
             "content_block": {"type": "text", "text": ""}}),
    a_event({"type": "content_block_delta", "index": 1,
             "delta": {"type": "text_delta", "text": "On it."}}),
    a_event({"type": "content_block_stop", "index": 1}),
    a_event({"type": "content_block_start", "index": 2, "content_block": {
        "type": "tool_use", "id": "toolu_A", "name": "get_weather", "input": {}}}),
    a_event({"type": "content_block_delta", "index": 2,
             "delta": {"type": "input_json_delta", "partial_json": ""}}),
    a_event({"type": "content_block_delta", "index": 2,
             "delta": {"type": "input_json_delta", "partial_json": '{"city":'}}),
    a_event({"type": "content_block_delta", "index": 2,
             "delta": {"type": "input_json_delta", "partial_json": ' "Oslo"}'}}),
    a_event({"type": "content_block_stop", "index": 2}),
    a_event({"type": "content_block_start", "index": 3, "content_block": {
        "type": "tool_use", "id": "toolu_B", "name": "get_time", "input": {}}}),
    a_event({"type": "content_block_delta", "index": 3,
             "delta": {"type": "input_json_delta", "partial_json": "{}"}}),
    a_event({"type": "content_block_stop", "index": 3}),
    a_event({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None},
             "usage": {"output_tokens": 42}}),
    a_event({"type": "message_stop"}),
]


def test_thinking_text_and_tool_calls_become_openai_deltas() -> None:
    stream = AnthropicToOpenAIStream("gpt-4o", 5, include_usage=True)
    chunks = openai_chunks(all_at_once(stream, b"".join(ANTHROPIC_TOOL_TURN)))
    assert deltas(chunks) == [
        {"role": "assistant", "content": ""},
        {"reasoning_content": "Plan."},
        {"content": "On it."},
        {"tool_calls": [{"index": 0, "id": "toolu_A", "type": "function",
                         "function": {"name": "get_weather", "arguments": ""}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": ' "Oslo"}'}}]},
        {"tool_calls": [{"index": 1, "id": "toolu_B", "type": "function",
                         "function": {"name": "get_time", "arguments": ""}}]},
        {"tool_calls": [{"index": 1, "function": {"arguments": "{}"}}]},
        {},
        "usage",
        "[DONE]",
    ]
    assert chunks[-3]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-2]["usage"] == {"prompt_tokens": 14, "completion_tokens": 42,
                                   "total_tokens": 56, "prompt_tokens_details": {
                                       "cached_tokens": 4}}
    assert byte_by_byte(AnthropicToOpenAIStream("gpt-4o", 5, include_usage=True),
                        b"".join(ANTHROPIC_TOOL_TURN)) == all_at_once(
        AnthropicToOpenAIStream("gpt-4o", 5, include_usage=True), b"".join(ANTHROPIC_TOOL_TURN))


def test_stop_sequence_and_max_tokens() -> None:
    start, end = ANTHROPIC_TOOL_TURN[0], ANTHROPIC_TOOL_TURN[-1]
    for delta, finish, extra in [
        ({"stop_reason": "stop_sequence", "stop_sequence": "###"}, "stop", {"stop_reason": "###"}),
        ({"stop_reason": "max_tokens", "stop_sequence": None}, "length", {}),
    ]:
        data = start + a_event({"type": "message_delta", "delta": delta,
                                "usage": {"output_tokens": 3}}) + end
        chunks = openai_chunks(all_at_once(AnthropicToOpenAIStream("m", 0), data))
        assert chunks[1]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None,
                                           "finish_reason": finish, **extra}


def test_anthropic_error_event() -> None:
    stream = AnthropicToOpenAIStream("m", 0)
    out = stream.feed(ANTHROPIC_TOOL_TURN[0] + a_event({"type": "error", "error": {
        "type": "overloaded_error", "message": "Overloaded"}}) + ANTHROPIC_TOOL_TURN[-1])
    assert openai_chunks(out)[1:] == [{"error": {"message": "Overloaded", "type": "server_error",
                                                 "param": None, "code": "overloaded"}}]
    assert stream.errored
    assert not stream.finished
    assert stream.close() == b""


def test_anthropic_endings() -> None:
    stream = AnthropicToOpenAIStream("m", 0)
    stream.feed(b"".join(ANTHROPIC_TOOL_TURN[:-1]))
    assert not stream.finished
    assert stream.close() == b"data: [DONE]\n\n"
    assert stream.finished
    stream = AnthropicToOpenAIStream("m", 0)
    stream.feed(b"".join(ANTHROPIC_TOOL_TURN[:5]))
    assert stream.close() == b""
    assert not stream.finished
    stream = AnthropicToOpenAIStream("m", 0)
    assert openai_chunks(stream.feed(b"event: x\ndata: [1]\n\n"))[0]["error"]["type"] == (
        "server_error")


@pytest.mark.parametrize(("body", "expected"), [
    ({"stream_options": {"include_usage": True}}, True),
    ({"stream_options": {"include_usage": False}}, False),
    ({"stream_options": None}, False),
    ({}, False),
])
def test_wants_usage_chunk(body: dict[str, Any], expected: bool) -> None:
    assert wants_usage_chunk(body) is expected
