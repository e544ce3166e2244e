"""Hypothesis round trips on the supported subset:

* Anthropic request -> OpenAI -> Anthropic equals the original;
* Anthropic response -> OpenAI -> Anthropic equals the original;
* a translated stream, re-accumulated, equals the translated non-stream response (both
  directions), whatever the fragmenting of deltas and the byte chunking;
* an Anthropic stream through both stream translators re-accumulates to the original.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trioproxy.translate import (
    AnthropicToOpenAIStream,
    OpenAIToAnthropicStream,
    anthropic_to_openai_request,
    anthropic_to_openai_response,
    openai_to_anthropic_request,
    openai_to_anthropic_response,
)

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

ids = st.from_regex(r"[A-Za-z0-9_-]{1,24}", fullmatch=True)
texts = st.text(min_size=1, max_size=30)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=3),
    max_leaves=8,
)
objects = st.dictionaries(st.text(max_size=8), json_values, max_size=4)
usages = st.fixed_dictionaries({
    "input_tokens": st.integers(0, 10**6),
    "cache_creation_input_tokens": st.integers(0, 10**6),
    "cache_read_input_tokens": st.integers(0, 10**6),
    "output_tokens": st.integers(0, 10**6),
}, optional={"output_tokens_details": st.fixed_dictionaries(
    {"thinking_tokens": st.integers(0, 1000)})})


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


# -- requests --------------------------------------------------------------------------

images = st.one_of(
    st.builds(lambda t, d: {"type": "image", "source": {"type": "base64", "media_type": t,
                                                         "data": d}},
              st.sampled_from(["image/png", "image/jpeg", "image/webp"]),
              st.from_regex(r"[A-Za-z0-9+/]{4,16}={0,2}", fullmatch=True)),
    st.builds(lambda p: {"type": "image", "source": {"type": "url",
                                                      "url": f"https://img.test/{p}.png"}}, ids),
)
user_blocks = st.lists(st.builds(lambda t: {"type": "text", "text": t}, texts) | images,
                       min_size=1, max_size=3)


@st.composite
def conversations(draw: st.DrawFn) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    pending: list[str] = []  # tool_use ids of the last assistant turn
    for turn in range(draw(st.integers(1, 6))):
        if turn % 2 == 0:
            results = [{"type": "tool_result", "tool_use_id": i, "content": draw(st.text())}
                       for i in pending]
            if results:
                rest = draw(st.none() | user_blocks)
                content: Any = results + (rest or [])
            else:
                content = draw(texts | user_blocks)
            messages.append({"role": "user", "content": content})
        else:
            calls = draw(st.lists(st.builds(
                lambda i, n, o: {"type": "tool_use", "id": i, "name": n, "input": o},
                ids, ids, objects), max_size=3, unique_by=lambda b: b["id"]))
            pending = [c["id"] for c in calls]
            if calls:
                text = draw(st.none() | texts)
                content = ([{"type": "text", "text": text}] if text else []) + calls
            else:
                content = draw(texts)
            messages.append({"role": "assistant", "content": content})
    return messages


@st.composite
def anthropic_requests(draw: st.DrawFn) -> dict[str, Any]:
    body: dict[str, Any] = {"model": draw(ids), "max_tokens": draw(st.integers(1, 10**5)),
                            "messages": draw(conversations())}
    optional = {
        "system": texts | st.lists(st.builds(lambda t: {"type": "text", "text": t}, texts),
                                   min_size=2, max_size=3),
        "temperature": st.floats(0, 1),
        "top_p": st.floats(0, 1),
        "top_k": st.integers(1, 500),
        "stop_sequences": st.lists(texts, max_size=3),
        "metadata": st.builds(lambda u: {"user_id": u}, texts),
        "stream": st.booleans(),
        "output_config": st.builds(lambda s: {"format": {"type": "json_schema", "schema": s}},
                                   objects),
    }
    for key, strategy in optional.items():
        if draw(st.booleans()):
            body[key] = draw(strategy)
    tools = draw(st.lists(st.fixed_dictionaries(
        {"name": ids, "input_schema": objects},
        optional={"description": st.text(), "strict": st.booleans()}),
        max_size=3, unique_by=lambda t: t["name"]))
    if tools:
        body["tools"] = tools
        choice = draw(st.sampled_from(["auto", "any", "tool", "none", None]))
        if choice is not None:
            body["tool_choice"] = {"type": choice}
            if choice == "tool":
                body["tool_choice"]["name"] = draw(st.sampled_from([t["name"] for t in tools]))
            if choice != "none" and draw(st.booleans()):
                body["tool_choice"]["disable_parallel_tool_use"] = draw(st.booleans())
    return body


@SETTINGS
@given(anthropic_requests())
def test_anthropic_request_round_trip(body: dict[str, Any]) -> None:
    original = copy.deepcopy(body)
    there = anthropic_to_openai_request(body)
    back = openai_to_anthropic_request(json.loads(json.dumps(there.body)))
    assert body == original  # inputs are not mutated
    assert there.dropped == ()
    assert back.dropped == ()
    assert back.body == original


# -- responses -------------------------------------------------------------------------


@st.composite
def anthropic_messages(draw: st.DrawFn) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if draw(st.booleans()):
        content.append({"type": "thinking", "thinking": draw(texts), "signature": ""})
    if draw(st.booleans()):
        content.append({"type": "text", "text": draw(texts)})
    calls = draw(st.lists(st.builds(
        lambda i, n, o: {"type": "tool_use", "id": i, "name": n, "input": o}, ids, ids, objects),
        max_size=3, unique_by=lambda b: b["id"]))
    content += calls
    stop_sequence = None
    if calls:
        stop_reason = draw(st.sampled_from(["tool_use", "max_tokens"]))
    else:
        stop_reason = draw(st.sampled_from(["end_turn", "max_tokens", "stop_sequence",
                                            "refusal"]))
        if stop_reason == "stop_sequence":
            stop_sequence = draw(texts)
    return {"id": "msg_" + draw(ids), "type": "message", "role": "assistant",
            "model": draw(ids), "content": content, "stop_reason": stop_reason,
            "stop_sequence": stop_sequence, "usage": draw(usages)}


@SETTINGS
@given(anthropic_messages())
def test_anthropic_response_round_trip(message: dict[str, Any]) -> None:
    there = anthropic_to_openai_response(message, "gpt-x", 1700000000)
    assert openai_to_anthropic_response(json.loads(json.dumps(there)),
                                        message["model"]) == message


# -- streams: builders and accumulators -------------------------------------------------


def pieces(draw: st.DrawFn, text: str) -> list[str]:
    """`text` cut at random places (never into nothing unless it is empty)."""
    cuts = sorted(set(draw(st.lists(st.integers(1, max(len(text) - 1, 1)), max_size=4))))
    bounds = [0, *[c for c in cuts if c < len(text)], len(text)]
    return [text[a:b] for a, b in zip(bounds, bounds[1:], strict=False)] or [""]


def chunked(draw: st.DrawFn, data: bytes) -> list[bytes]:
    cuts = sorted(set(draw(st.lists(st.integers(0, len(data)), max_size=12))))
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


def run(translator: Any, parts: list[bytes]) -> bytes:
    out = b"".join(translator.feed(p) for p in parts) + translator.close()
    assert translator.finished
    assert not translator.errored
    return out


def frames_of(data: bytes) -> list[dict[str, Any]]:
    events = []
    for frame in data.decode().split("\n\n")[:-1]:
        payload = frame.split("data: ", 1)[1]
        if payload != "[DONE]":
            events.append(json.loads(payload))
    return events


def accumulate_anthropic(data: bytes) -> dict[str, Any]:
    """Rebuild the message as the Anthropic SDK does, checking that blocks never
    interleave and that indices count up from 0."""
    message: dict[str, Any] | None = None
    open_index: int | None = None
    buffers: dict[int, str] = {}
    stopped = False
    for event in frames_of(data):
        kind = event["type"]
        if kind == "message_start":
            assert message is None
            message = copy.deepcopy(event["message"])
            continue
        assert message is not None
        assert not stopped
        if kind == "content_block_start":
            assert open_index is None
            assert event["index"] == len(message["content"])
            open_index = event["index"]
            message["content"].append(copy.deepcopy(event["content_block"]))
        elif kind == "content_block_delta":
            assert event["index"] == open_index
            block, delta = message["content"][open_index], event["delta"]
            if delta["type"] == "text_delta":
                block["text"] += delta["text"]
            elif delta["type"] == "thinking_delta":
                block["thinking"] += delta["thinking"]
            elif delta["type"] == "signature_delta":
                block["signature"] = delta["signature"]
            else:
                assert delta["type"] == "input_json_delta"
                buffers[open_index] = buffers.get(open_index, "") + delta["partial_json"]
        elif kind == "content_block_stop":
            assert event["index"] == open_index
            if open_index in buffers:
                message["content"][open_index]["input"] = json.loads(buffers[open_index])
            open_index = None
        elif kind == "message_delta":
            assert open_index is None
            message["stop_reason"] = event["delta"]["stop_reason"]
            message["stop_sequence"] = event["delta"]["stop_sequence"]
            message["usage"].update({k: v for k, v in event["usage"].items() if v is not None})
        else:
            assert kind == "message_stop"
            stopped = True
    assert message is not None
    assert stopped
    return message


def accumulate_openai(data: bytes) -> dict[str, Any]:
    """Rebuild a chat.completion from chunks as an OpenAI client would."""
    chunks = frames_of(data)
    assert data.endswith(b"data: [DONE]\n\n")
    content: list[str] = []
    reasoning: list[str] = []
    calls: dict[int, dict[str, Any]] = {}
    choice: dict[str, Any] = {"index": 0, "logprobs": None}
    usage = None
    for chunk in chunks:
        if chunk.get("usage") is not None:
            usage = chunk["usage"]
        for c in chunk["choices"]:
            delta = c["delta"]
            if delta.get("content"):
                content.append(delta["content"])
            if delta.get("reasoning_content"):
                reasoning.append(delta["reasoning_content"])
            for call in delta.get("tool_calls") or []:
                if "id" in call:
                    assert call["index"] == len(calls)
                    calls[call["index"]] = copy.deepcopy(call)
                    del calls[call["index"]]["index"]
                else:
                    calls[call["index"]]["function"]["arguments"] += call["function"]["arguments"]
            if c["finish_reason"] is not None:
                choice["finish_reason"] = c["finish_reason"]
                if "stop_reason" in c:
                    choice["stop_reason"] = c["stop_reason"]
    message: dict[str, Any] = {"role": "assistant", "content": "".join(content) or None,
                               "refusal": None}
    if reasoning:
        message["reasoning_content"] = "".join(reasoning)
    if calls:
        message["tool_calls"] = [calls[i] for i in sorted(calls)]
    first = chunks[0]
    return {"id": first["id"], "object": "chat.completion", "created": first["created"],
            "model": first["model"], "choices": [{**choice, "message": message}],
            "usage": usage}


def anthropic_stream_bytes(draw: st.DrawFn, message: dict[str, Any]) -> bytes:
    def event(obj: dict[str, Any]) -> bytes:
        return f"event: {obj['type']}\ndata: {json.dumps(obj)}\n\n".encode()

    def ping() -> bytes:
        return event({"type": "ping"}) if draw(st.booleans()) else b""

    start = {**message, "content": [], "stop_reason": None, "stop_sequence": None,
             "usage": {**message["usage"], "output_tokens": 1}}
    out = [event({"type": "message_start", "message": start}), ping()]
    for index, block in enumerate(message["content"]):
        empty = {"text": {"type": "text", "text": ""},
                 "thinking": {"type": "thinking", "thinking": "", "signature": ""},
                 "tool_use": {**block, "input": {}}}[block["type"]]
        out.append(event({"type": "content_block_start", "index": index, "content_block": empty}))
        if block["type"] == "text":
            deltas = [{"type": "text_delta", "text": p} for p in pieces(draw, block["text"])]
        elif block["type"] == "thinking":
            deltas = [{"type": "thinking_delta", "thinking": p}
                      for p in pieces(draw, block["thinking"])]
            deltas.append({"type": "signature_delta", "signature": block["signature"]})
        else:
            deltas = [{"type": "input_json_delta", "partial_json": p}
                      for p in ["", *pieces(draw, dumps(block["input"]))]]
        for delta in deltas:
            out.append(event({"type": "content_block_delta", "index": index, "delta": delta}))
            out.append(ping())
        out.append(event({"type": "content_block_stop", "index": index}))
    out.append(event({"type": "message_delta", "delta": {
        "stop_reason": message["stop_reason"], "stop_sequence": message["stop_sequence"]},
        "usage": {"output_tokens": message["usage"]["output_tokens"]}}))
    out.append(event({"type": "message_stop"}))
    return b"".join(out)


# -- streams: properties -----------------------------------------------------------------


@SETTINGS
@given(anthropic_messages(), st.data())
def test_anthropic_stream_equals_non_stream(message: dict[str, Any], data: st.DataObject) -> None:
    stream = anthropic_stream_bytes(data.draw, message)
    translator = AnthropicToOpenAIStream("gpt-x", 1700000000, include_usage=True)
    out = run(translator, chunked(data.draw, stream))
    assert accumulate_openai(out) == anthropic_to_openai_response(message, "gpt-x", 1700000000)


@SETTINGS
@given(anthropic_messages(), st.data())
def test_anthropic_stream_through_both_translators(message: dict[str, Any],
                                                   data: st.DataObject) -> None:
    stream = anthropic_stream_bytes(data.draw, message)
    there = run(AnthropicToOpenAIStream("gpt-x", 0, include_usage=True),
                chunked(data.draw, stream))
    back = run(OpenAIToAnthropicStream(message["model"]), chunked(data.draw, there))
    assert accumulate_anthropic(back) == message


@st.composite
def openai_completions(draw: st.DrawFn) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": draw(st.none() | texts)}
    if draw(st.booleans()):
        message[draw(st.sampled_from(["reasoning_content", "reasoning"]))] = draw(texts)
    calls = draw(st.lists(st.builds(
        lambda i, n, o: {"id": i, "type": "function",
                         "function": {"name": n, "arguments": json.dumps(o)}},
        ids, ids, objects), max_size=3, unique_by=lambda c: c["id"]))
    if calls:
        message["tool_calls"] = calls
    finish = draw(st.sampled_from(["tool_calls", "length", "stop"] if calls
                                  else ["stop", "length", "content_filter"]))
    choice: dict[str, Any] = {"index": 0, "message": message, "finish_reason": finish}
    if finish == "stop" and draw(st.booleans()):
        choice["stop_reason"] = draw(texts | st.integers(0, 200000))  # vLLM
    cached = draw(st.integers(0, 1000))
    usage: dict[str, Any] = {"prompt_tokens": cached + draw(st.integers(0, 10**5)),
                             "completion_tokens": draw(st.integers(0, 10**5)),
                             "prompt_tokens_details": {"cached_tokens": cached}}
    usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    return {"id": "chatcmpl-" + draw(ids), "object": "chat.completion", "created": 1,
            "model": "upstream", "choices": [choice], "usage": usage}


def openai_stream_bytes(draw: st.DrawFn, body: dict[str, Any]) -> bytes:
    choice = body["choices"][0]
    message = choice["message"]

    def chunk(delta: dict[str, Any] | None, **extra: Any) -> bytes:
        obj: dict[str, Any] = {"id": body["id"], "object": "chat.completion.chunk",
                               "created": 1, "model": "upstream", "choices": []}
        if delta is not None:
            obj["choices"] = [{"index": 0, "delta": delta, "finish_reason": None}]
            obj["choices"][0].update(extra)
        else:
            obj.update(extra)
        return f"data: {json.dumps(obj)}\n\n".encode()

    out = [chunk({"role": "assistant", "content": ""})]
    for key in ("reasoning_content", "reasoning"):
        if message.get(key):
            out += [chunk({key: p}) for p in pieces(draw, message[key])]
    if message["content"]:
        out += [chunk({"content": p}) for p in pieces(draw, message["content"])]
    # Tool-call fragments, possibly interleaved across calls; call k starts after call k-1.
    queues = []
    for index, call in enumerate(message.get("tool_calls") or []):
        parts = pieces(draw, call["function"]["arguments"])
        first = {"index": index, "id": call["id"], "type": "function",
                 "function": {"name": call["function"]["name"], "arguments": parts[0]}}
        queues.append([first, *({"index": index, "function": {"arguments": p}}
                                for p in parts[1:])])
    started = 0
    while any(queues):
        ready = [i for i, q in enumerate(queues) if q and (i < started or i == started)]
        i = draw(st.sampled_from(ready))
        started = max(started, i + 1)
        out.append(chunk({"tool_calls": [queues[i].pop(0)]}))
    extra = {"stop_reason": choice["stop_reason"]} if "stop_reason" in choice else {}
    out.append(chunk({}, finish_reason=choice["finish_reason"], **extra))
    out.append(chunk(None, usage=body["usage"]))
    out.append(b"data: [DONE]\n\n")
    return b"".join(out)


@SETTINGS
@given(openai_completions(), st.data())
def test_openai_stream_equals_non_stream(body: dict[str, Any], data: st.DataObject) -> None:
    stream = openai_stream_bytes(data.draw, body)
    out = run(OpenAIToAnthropicStream("claude-x"), chunked(data.draw, stream))
    assert accumulate_anthropic(out) == openai_to_anthropic_response(body, "claude-x")


@SETTINGS
@given(st.lists(st.text(), max_size=5), st.data())
def test_any_text_survives_any_chunking(deltas: list[str], data: st.DataObject) -> None:
    body = {"id": "chatcmpl-1", "choices": [{"index": 0, "finish_reason": "stop", "message": {
        "role": "assistant", "content": "".join(deltas) or None}}]}
    frames = b"".join(f"data: {json.dumps({'choices': [{'index': 0, 'delta': {'content': d}}]})}"
                      f"\n\n".encode() for d in deltas)
    frames += (b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
               b"data: [DONE]\n\n")
    out = run(OpenAIToAnthropicStream("m"), chunked(data.draw, frames))
    expected = openai_to_anthropic_response(body, "m")
    expected["id"] = "msg_"  # the stream's chunks above carry no id
    expected["usage"] = {"input_tokens": 0, "cache_creation_input_tokens": 0,
                         "cache_read_input_tokens": 0, "output_tokens": 0}
    assert accumulate_anthropic(out) == expected


def test_lone_surrogates_stay_valid_json() -> None:
    frames = (b'data: {"choices":[{"index":0,"delta":{"content":"a\\ud800b"}}]}\n\n'
              b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
              b"data: [DONE]\n\n")
    out = run(OpenAIToAnthropicStream("m"), [frames])
    assert accumulate_anthropic(out)["content"] == [{"type": "text", "text": "a\ud800b"}]
