"""The mock upstream is faithful: the official SDKs parse it, and raw HTTP shows the wire.

Rules for these tests: every test is bounded by ``trio.fail_after``; the mock runs in the
``nursery`` fixture on 127.0.0.1 port 0; nothing sleeps in real time (waits in the mock
run under a ``MockClock``); SDK clients use ``max_retries=0``.

The SDKs run on httpx2/anyio, which supports Trio as is. One catch: on its first request
each SDK client resolves platform info in a worker thread (``asyncify(get_platform)``).
Under ``autojump_clock`` (``autojump_threshold=0``) the virtual clock jumps while that
thread runs, straight to the next deadline (``fail_after`` fires). SDK tests that need
virtual time use the ``sdk_clock`` fixture below: a ``MockClock`` that jumps only after
50 ms of real idleness.
"""

from __future__ import annotations

import base64
import gzip
import json
import re
import ssl
import struct
import zlib
from contextlib import aclosing
from typing import Any

import anthropic
import httpx
import httpx2
import openai
import pytest
import trio
import trio.testing
import trustme

from tests.conftest import ANTHROPIC_ARGS, CHAT_ARGS
from tests.mock_upstream import (
    ANTHROPIC_USAGE,
    EMBEDDING_DIMENSIONS,
    EMBEDDINGS_USAGE,
    OPENAI_USAGE,
    OUTPUT_DELTAS,
    OUTPUT_TEXT,
    RESPONSES_USAGE,
    RETRY_AFTER,
    TOOL_INPUTS,
    MockUpstream,
    ToolCall,
    embedding_vector,
    tool_call_id,
)

TIMEOUT = 10
ANTHROPIC_EVENTS = (
    ["message_start", "content_block_start", "ping"]
    + ["content_block_delta"] * len(OUTPUT_DELTAS)
    + ["content_block_stop", "message_delta", "message_stop"]
)
RESPONSES_EVENTS = (
    ["response.created", "response.in_progress", "response.output_item.added",
     "response.content_part.added"]
    + ["response.output_text.delta"] * len(OUTPUT_DELTAS)
    + ["response.output_text.done", "response.content_part.done",
       "response.output_item.done", "response.completed"]
)
NAMED_FRAME = re.compile(rb"event: ([a-z_.]+)\ndata: (\{.*\})\n\n", re.DOTALL)
DATA_FRAME = re.compile(rb"data: (\{.*\}|\[DONE\])\n\n", re.DOTALL)


@pytest.fixture
def sdk_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0.05)


def anthropic_client(mock: MockUpstream) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=mock.url, api_key="test", max_retries=0)


def openai_client(mock: MockUpstream) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=mock.url + "/v1", api_key="test", max_retries=0)


async def raw_frames(response: httpx.Response) -> list[bytes]:
    return [chunk async for chunk in response.aiter_raw()]


# -- Anthropic through the official SDK ------------------------------------------------


async def test_anthropic_create(mock: MockUpstream) -> None:
    with trio.fail_after(TIMEOUT):
        async with anthropic_client(mock) as client:
            message = await client.messages.create(**ANTHROPIC_ARGS)
    assert message.id.startswith("msg_")
    assert message.type == "message"
    assert message.role == "assistant"
    assert message.model == "claude-sonnet-4-6"
    assert message.content[0].type == "text"
    assert message.content[0].text == OUTPUT_TEXT
    assert message.stop_reason == "end_turn"
    assert message.stop_sequence is None
    usage = message.usage
    assert usage.input_tokens == ANTHROPIC_USAGE["input_tokens"] == 25
    assert usage.output_tokens == ANTHROPIC_USAGE["output_tokens"]
    assert usage.cache_read_input_tokens == ANTHROPIC_USAGE["cache_read_input_tokens"]
    assert usage.cache_creation_input_tokens == ANTHROPIC_USAGE["cache_creation_input_tokens"]
    assert usage.cache_creation is not None
    assert usage.cache_creation.ephemeral_5m_input_tokens == usage.cache_creation_input_tokens
    assert usage.cache_creation.ephemeral_1h_input_tokens == 0
    assert usage.service_tier == "standard"
    assert message._request_id is not None
    assert message._request_id.startswith("req_")

    [received] = mock.requests
    assert (received.method, received.target) == ("POST", "/v1/messages")
    # anthropic 2.x sends the API key as a bearer token, not as x-api-key.
    assert received.header("Authorization") == "Bearer test"
    assert received.header("anthropic-version") is not None
    assert received.json is not None
    assert received.json["messages"] == ANTHROPIC_ARGS["messages"]
    assert json.loads(received.body) == received.json
    assert received.connection_id == 1
    assert received.completed
    assert not received.disconnected


async def test_anthropic_stream(mock: MockUpstream) -> None:
    with trio.fail_after(TIMEOUT):
        async with anthropic_client(mock) as client:
            async with client.messages.stream(**ANTHROPIC_ARGS) as stream:
                texts = [text async for text in stream.text_stream]
                message = await stream.get_final_message()
    assert texts == list(OUTPUT_DELTAS)
    assert message.content[0].type == "text"
    assert message.content[0].text == OUTPUT_TEXT
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens == ANTHROPIC_USAGE["input_tokens"]
    assert message.usage.output_tokens == ANTHROPIC_USAGE["output_tokens"]
    assert message.usage.cache_read_input_tokens == ANTHROPIC_USAGE["cache_read_input_tokens"]
    assert (message.usage.cache_creation_input_tokens
            == ANTHROPIC_USAGE["cache_creation_input_tokens"])
    assert mock.requests[0].json == {**ANTHROPIC_ARGS, "stream": True}
    assert mock.requests[0].completed


async def test_anthropic_stream_events_in_order(mock: MockUpstream) -> None:
    with trio.fail_after(TIMEOUT):
        async with anthropic_client(mock) as client:
            stream = await client.messages.create(**ANTHROPIC_ARGS, stream=True)
            events = [event async for event in stream]
    # The SDK drops `ping` events; the raw wire test below sees them.
    assert [event.type for event in events] == [e for e in ANTHROPIC_EVENTS if e != "ping"]
    start, delta = events[0], events[-2]
    assert start.type == "message_start"
    assert delta.type == "message_delta"
    assert start.message.usage.output_tokens == 1  # a running count, as the real API sends
    assert start.message.usage.input_tokens == ANTHROPIC_USAGE["input_tokens"]
    assert delta.usage.output_tokens == ANTHROPIC_USAGE["output_tokens"]  # cumulative
    assert delta.delta.stop_reason == "end_turn"


async def test_anthropic_usage_override(mock: MockUpstream) -> None:
    headers = {"x-mock-usage": "in=123,out=45,cr=6,cw=7"}
    with trio.fail_after(TIMEOUT):
        async with anthropic_client(mock) as client:
            plain = await client.messages.create(**ANTHROPIC_ARGS, extra_headers=headers)
            async with client.messages.stream(**ANTHROPIC_ARGS, extra_headers=headers) as stream:
                streamed = await stream.get_final_message()
    for usage in (plain.usage, streamed.usage):
        assert (usage.input_tokens, usage.output_tokens) == (123, 45)
        assert (usage.cache_read_input_tokens, usage.cache_creation_input_tokens) == (6, 7)
    assert mock.requests[0].header("x-mock-usage") == "in=123,out=45,cr=6,cw=7"


async def test_anthropic_count_tokens_and_models(mock: MockUpstream) -> None:
    with trio.fail_after(TIMEOUT):
        async with anthropic_client(mock) as client:
            count = await client.messages.count_tokens(
                model="claude-sonnet-4-6", messages=ANTHROPIC_ARGS["messages"])
            page = await client.models.list()
            ids = [model.id async for model in page]
    assert count.input_tokens == ANTHROPIC_USAGE["input_tokens"]
    assert ids == ["claude-sonnet-4-6", "claude-haiku-4-5"]
    assert page.has_more is False
    assert page.first_id == "claude-sonnet-4-6"
    assert mock.requests[0].target == "/v1/messages/count_tokens"
    assert mock.requests[1].target.startswith("/v1/models")


@pytest.mark.parametrize(
    ("status", "error_class", "error_type"),
    [
        (400, anthropic.BadRequestError, "invalid_request_error"),
        (401, anthropic.AuthenticationError, "authentication_error"),
        (403, anthropic.PermissionDeniedError, "permission_error"),
        (404, anthropic.NotFoundError, "not_found_error"),
        (413, anthropic.ContentTooLargeError, "request_too_large"),
        (429, anthropic.RateLimitError, "rate_limit_error"),
        (500, anthropic.InternalServerError, "api_error"),
        (529, anthropic.OverloadedError, "overloaded_error"),
    ],
)
async def test_anthropic_errors(mock: MockUpstream, status: int,
                                error_class: type[anthropic.APIStatusError],
                                error_type: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with anthropic_client(mock) as client:
            with pytest.raises(error_class) as info:
                await client.messages.create(
                    **ANTHROPIC_ARGS, stream=True, extra_headers={"x-mock-status": str(status)})
    error = info.value
    assert error.status_code == status
    assert isinstance(error.body, dict)
    assert error.body["type"] == "error"
    assert error.body["error"]["type"] == error_type
    assert error.body["error"]["message"]
    assert error.body["request_id"] == error.request_id == error.response.headers["request-id"]
    assert error.response.headers["content-type"] == "application/json"
    if status in (429, 529):
        assert error.response.headers["retry-after"] == RETRY_AFTER
    else:
        assert "retry-after" not in error.response.headers


# -- OpenAI through the official SDK ---------------------------------------------------


def check_chat_usage(usage: Any) -> None:
    assert usage.prompt_tokens == OPENAI_USAGE["prompt_tokens"]
    assert usage.completion_tokens == OPENAI_USAGE["completion_tokens"]
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens == 50
    assert usage.prompt_tokens_details.cached_tokens == OPENAI_USAGE["cached_tokens"]
    assert usage.completion_tokens_details.reasoning_tokens == OPENAI_USAGE["reasoning_tokens"]


async def test_openai_chat(mock: MockUpstream) -> None:
    with trio.fail_after(TIMEOUT):
        async with openai_client(mock) as client:
            completion = await client.chat.completions.create(**CHAT_ARGS)
    assert completion.id.startswith("chatcmpl-")
    assert completion.object == "chat.completion"
    assert completion.model == "gpt-4o-mini"
    [choice] = completion.choices
    assert choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    assert choice.message.content == OUTPUT_TEXT
    assert choice.message.refusal is None
    assert choice.message.annotations == []
    assert completion.usage is not None
    check_chat_usage(completion.usage)
    [received] = mock.requests
    assert received.target == "/v1/chat/completions"
    assert received.header("authorization") == "Bearer test"


async def test_openai_chat_stream_with_usage(mock: MockUpstream) -> None:
    with trio.fail_after(TIMEOUT):
        async with openai_client(mock) as client:
            stream = await client.chat.completions.create(
                **CHAT_ARGS, stream=True, stream_options={"include_usage": True})
            chunks = [chunk async for chunk in stream]
    assert all(chunk.object == "chat.completion.chunk" for chunk in chunks)
    assert len({chunk.id for chunk in chunks}) == 1
    first, *middle, last_choice, usage_chunk = chunks
    assert first.choices[0].delta.role == "assistant"
    assert first.choices[0].delta.content == ""
    assert "".join(c.choices[0].delta.content or "" for c in middle) == OUTPUT_TEXT
    assert last_choice.choices[0].finish_reason == "stop"
    assert all(chunk.usage is None for chunk in chunks[:-1])
    assert usage_chunk.choices == []
    assert usage_chunk.usage is not None
    check_chat_usage(usage_chunk.usage)


async def test_openai_chat_stream_wire_without_usage(mock: MockUpstream) -> None:
    with trio.fail_after(TIMEOUT):
        async with httpx.AsyncClient() as client:
            async with client.stream("POST", mock.url + "/v1/chat/completions",
                                     json={**CHAT_ARGS, "stream": True}) as response:
                frames = await raw_frames(response)
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert frames[-1] == b"data: [DONE]\n\n"
    chunks = []
    for frame in frames[:-1]:
        match = DATA_FRAME.fullmatch(frame)
        assert match, frame
        chunks.append(json.loads(match[1]))
    # Without stream_options.include_usage there is no usage key and no usage chunk.
    assert all("usage" not in chunk for chunk in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "",
                                                "refusal": None}
    assert chunks[-1]["choices"] == [{"index": 0, "delta": {}, "logprobs": None,
                                      "finish_reason": "stop"}]


async def test_openai_completions(mock: MockUpstream) -> None:
    args = {"model": "gpt-3.5-turbo-instruct", "prompt": "Say hi"}
    with trio.fail_after(TIMEOUT):
        async with openai_client(mock) as client:
            completion = await client.completions.create(**args)
            stream = await client.completions.create(
                **args, stream=True, stream_options={"include_usage": True})
            chunks = [chunk async for chunk in stream]
    assert completion.object == "text_completion"
    assert completion.choices[0].text == OUTPUT_TEXT
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == OPENAI_USAGE["prompt_tokens"]
    assert completion.usage.completion_tokens == OPENAI_USAGE["completion_tokens"]
    assert "".join(c.choices[0].text for c in chunks if c.choices) == OUTPUT_TEXT
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == 50


async def test_openai_embeddings(mock: MockUpstream) -> None:
    inputs = ["first", "second"]
    with trio.fail_after(TIMEOUT):
        async with openai_client(mock) as client:
            # The SDK asks for base64 unless told otherwise, and decodes it.
            default = await client.embeddings.create(model="text-embedding-3-small",
                                                     input=inputs)
            floats = await client.embeddings.create(model="text-embedding-3-small",
                                                    input=inputs, encoding_format="float")
    assert mock.requests[0].json is not None
    assert mock.requests[0].json["encoding_format"] == "base64"
    for result in (default, floats):
        assert result.object == "list"
        assert [e.index for e in result.data] == [0, 1]
        assert [e.embedding for e in result.data] == [embedding_vector(t) for t in inputs]
        assert all(len(e.embedding) == EMBEDDING_DIMENSIONS for e in result.data)
        assert result.usage.prompt_tokens == EMBEDDINGS_USAGE["prompt_tokens"]
        assert result.usage.total_tokens == EMBEDDINGS_USAGE["prompt_tokens"]
    assert embedding_vector("first") != embedding_vector("second")


async def test_openai_embeddings_base64_wire(mock: MockUpstream) -> None:
    with trio.fail_after(TIMEOUT):
        async with httpx.AsyncClient() as client:
            response = await client.post(mock.url + "/v1/embeddings", json={
                "model": "text-embedding-3-small", "input": "x", "encoding_format": "base64"})
    encoded = response.json()["data"][0]["embedding"]
    assert list(struct.unpack("<8f", base64.b64decode(encoded))) == embedding_vector("x")


def check_responses_usage(usage: Any) -> None:
    assert usage.input_tokens == RESPONSES_USAGE["input_tokens"]
    assert usage.output_tokens == RESPONSES_USAGE["output_tokens"]
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens == 66
    assert usage.input_tokens_details.cached_tokens == RESPONSES_USAGE["cached_tokens"]
    assert usage.input_tokens_details.cache_write_tokens == RESPONSES_USAGE["cache_write_tokens"]
    assert usage.output_tokens_details.reasoning_tokens == RESPONSES_USAGE["reasoning_tokens"]


async def test_openai_responses(mock: MockUpstream) -> None:
    with trio.fail_after(TIMEOUT):
        async with openai_client(mock) as client:
            response = await client.responses.create(model="gpt-4o-mini", input="Hi")
    assert response.id.startswith("resp_")
    assert response.object == "response"
    assert response.status == "completed"
    assert response.model == "gpt-4o-mini"
    assert response.output_text == OUTPUT_TEXT
    assert response.usage is not None
    check_responses_usage(response.usage)
    assert mock.requests[0].target == "/v1/responses"


async def test_openai_responses_stream(mock: MockUpstream) -> None:
    with trio.fail_after(TIMEOUT):
        async with openai_client(mock) as client:
            stream = await client.responses.create(model="gpt-4o-mini", input="Hi", stream=True)
            events = [event async for event in stream]
            async with client.responses.stream(model="gpt-4o-mini", input="Hi") as helper:
                deltas = [e.delta async for e in helper if e.type == "response.output_text.delta"]
                final = await helper.get_final_response()
    assert [event.type for event in events] == RESPONSES_EVENTS
    assert [event.sequence_number for event in events] == list(range(len(events)))
    assert events[0].type == "response.created"
    assert events[0].response.status == "in_progress"
    assert events[0].response.usage is None
    completed = events[-1]
    assert completed.type == "response.completed"
    assert completed.response.output_text == OUTPUT_TEXT
    assert completed.response.usage is not None
    check_responses_usage(completed.response.usage)
    assert deltas == list(OUTPUT_DELTAS)
    assert final.output_text == OUTPUT_TEXT
    assert final.usage is not None
    check_responses_usage(final.usage)


async def test_openai_usage_override(mock: MockUpstream) -> None:
    headers = {"x-mock-usage": "in=100,out=20,cr=30,rs=4"}
    with trio.fail_after(TIMEOUT):
        async with openai_client(mock) as client:
            chat = await client.chat.completions.create(**CHAT_ARGS, extra_headers=headers)
            response = await client.responses.create(model="gpt-4o-mini", input="Hi",
                                                     extra_headers=headers)
    assert chat.usage is not None
    assert (chat.usage.prompt_tokens, chat.usage.completion_tokens) == (100, 20)
    assert chat.usage.total_tokens == 120
    assert chat.usage.prompt_tokens_details is not None
    assert chat.usage.prompt_tokens_details.cached_tokens == 30
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens) == (100, 20)
    assert response.usage.output_tokens_details.reasoning_tokens == 4


@pytest.mark.parametrize(
    ("status", "error_class", "error_type", "code"),
    [
        (401, openai.AuthenticationError, "invalid_request_error", "invalid_api_key"),
        (404, openai.NotFoundError, "invalid_request_error", "model_not_found"),
        (429, openai.RateLimitError, "requests", "rate_limit_exceeded"),
        (500, openai.InternalServerError, "server_error", None),
    ],
)
async def test_openai_errors(mock: MockUpstream, status: int,
                             error_class: type[openai.APIStatusError], error_type: str,
                             code: str | None) -> None:
    with trio.fail_after(TIMEOUT):
        async with openai_client(mock) as client:
            with pytest.raises(error_class) as info:
                await client.chat.completions.create(
                    **CHAT_ARGS, extra_headers={"x-mock-status": str(status)})
    error = info.value
    assert error.status_code == status
    # The SDK hands over body["error"]; the wire has {"error": {message, type, param, code}}.
    assert isinstance(error.body, dict)
    assert set(error.body) == {"message", "type", "param", "code"}
    assert error.body["message"]
    assert (error.body["type"], error.body["param"], error.body["code"]) == (error_type, None,
                                                                             code)
    assert error.type == error_type
    assert error.code == code
    assert error.request_id == error.response.headers["x-request-id"]
    assert (error.response.headers.get("retry-after") == RETRY_AFTER) == (status == 429)


# -- Raw wire checks -------------------------------------------------------------------


async def test_error_shapes_follow_the_path(mock: MockUpstream) -> None:
    with trio.fail_after(TIMEOUT):
        async with httpx.AsyncClient(base_url=mock.url) as client:
            openai_404 = await client.post("/v1/nope", json={})
            anthropic_404 = await client.post("/v1/messages/nope", json={})
            openai_400 = await client.post("/v1/chat/completions", content=b"{not json")
            anthropic_400 = await client.post("/v1/messages", content=b"{not json")
            bad_header = await client.post("/v1/messages", json=ANTHROPIC_ARGS,
                                           headers={"x-mock-die-after": "soon"})
    assert openai_404.status_code == 404
    assert openai_404.json() == {"error": {"message": "Invalid URL (POST /v1/nope)",
                                           "type": "invalid_request_error", "param": None,
                                           "code": None}}
    assert anthropic_404.status_code == 404
    body = anthropic_404.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == "not_found_error"
    assert body["request_id"] == anthropic_404.headers["request-id"]
    assert openai_400.status_code == 400
    assert openai_400.json()["error"]["type"] == "invalid_request_error"
    assert anthropic_400.status_code == 400
    assert anthropic_400.json()["error"]["type"] == "invalid_request_error"
    assert bad_header.status_code == 400
    assert "x-mock-die-after" in bad_header.json()["error"]["message"]
    assert [r.json for r in mock.requests[2:4]] == [None, None]
    assert mock.requests[2].body == b"{not json"


@pytest.mark.parametrize(
    ("path", "body", "names"),
    [
        ("/v1/messages", {**ANTHROPIC_ARGS, "stream": True}, ANTHROPIC_EVENTS),
        ("/v1/responses", {"model": "gpt-4o-mini", "input": "Hi", "stream": True},
         RESPONSES_EVENTS),
    ],
)
async def test_named_sse_one_event_per_chunk(mock: MockUpstream, path: str,
                                             body: dict[str, Any], names: list[str]) -> None:
    with trio.fail_after(TIMEOUT):
        async with httpx.AsyncClient() as client:
            async with client.stream("POST", mock.url + path, json=body) as response:
                frames = await raw_frames(response)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert response.headers["transfer-encoding"] == "chunked"
    assert "content-length" not in response.headers
    seen = []
    for number, frame in enumerate(frames):  # aiter_raw: one chunk per h11 Data event
        match = NAMED_FRAME.fullmatch(frame)
        assert match, frame
        data = json.loads(match[2])
        assert data["type"] == match[1].decode()
        if path == "/v1/responses":
            assert data["sequence_number"] == number
        seen.append(data["type"])
    assert seen == names
    assert b"".join(frames).decode().count(OUTPUT_DELTAS[-1]) >= 1  # raw UTF-8, not \u escapes


async def test_gzip_stream_flushes_each_event(mock: MockUpstream) -> None:
    with trio.fail_after(TIMEOUT):
        async with httpx.AsyncClient() as client:
            async with client.stream("POST", mock.url + "/v1/messages",
                                     json={**ANTHROPIC_ARGS, "stream": True},
                                     headers={"x-mock-gzip": "1"}) as response:
                chunks = await raw_frames(response)
    assert response.headers["content-encoding"] == "gzip"
    assert chunks[0][:2] == b"\x1f\x8b"
    decompressor = zlib.decompressobj(wbits=31)
    events = [decompressor.decompress(chunk) for chunk in chunks]
    # Each event chunk decodes, on arrival, to exactly one whole event; the last chunk
    # is the gzip trailer alone.
    assert [NAMED_FRAME.fullmatch(e)[1].decode() for e in events[:-1]] == ANTHROPIC_EVENTS
    assert events[-1] == b""
    assert decompressor.eof
    assert gzip.decompress(b"".join(chunks)) == b"".join(events)


async def test_gzip_non_stream(mock: MockUpstream) -> None:
    with trio.fail_after(TIMEOUT):
        async with httpx.AsyncClient() as client:
            async with client.stream("POST", mock.url + "/v1/chat/completions", json=CHAT_ARGS,
                                     headers={"x-mock-gzip": "1"}) as response:
                raw = b"".join(await raw_frames(response))
    assert response.headers["content-encoding"] == "gzip"
    assert int(response.headers["content-length"]) == len(raw)
    assert json.loads(gzip.decompress(raw))["choices"][0]["message"]["content"] == OUTPUT_TEXT


async def test_die_after_stream(mock: MockUpstream) -> None:
    frames: list[bytes] = []

    async def read_all(client: httpx.AsyncClient) -> None:
        async with client.stream("POST", mock.url + "/v1/messages",
                                 json={**ANTHROPIC_ARGS, "stream": True},
                                 headers={"x-mock-die-after": "4"}) as response:
            async for chunk in response.aiter_raw():
                frames.append(chunk)

    with trio.fail_after(TIMEOUT):
        async with httpx.AsyncClient() as client:
            with pytest.raises(httpx.RemoteProtocolError):
                await read_all(client)
    assert [NAMED_FRAME.fullmatch(f)[1].decode() for f in frames] == ANTHROPIC_EVENTS[:4]
    [received] = mock.requests
    assert not received.completed
    assert not received.disconnected  # the mock dropped it; the peer did not go away


async def test_die_after_non_stream(mock: MockUpstream) -> None:
    with trio.fail_after(TIMEOUT):
        async with httpx.AsyncClient() as client:
            with pytest.raises(httpx.RemoteProtocolError):
                await client.post(mock.url + "/v1/chat/completions", json=CHAT_ARGS,
                                  headers={"x-mock-die-after": "0"})
    assert not mock.requests[0].completed


async def test_die_after_through_sdks(mock: MockUpstream) -> None:
    async def anthropic_stream(client: anthropic.AsyncAnthropic) -> None:
        async with client.messages.stream(
                **ANTHROPIC_ARGS, extra_headers={"x-mock-die-after": "5"}) as stream:
            await stream.get_final_message()

    async def openai_stream(client: openai.AsyncOpenAI) -> None:
        stream = await client.chat.completions.create(
            **CHAT_ARGS, stream=True, extra_headers={"x-mock-die-after": "3"})
        async for _ in stream:
            pass

    with trio.fail_after(TIMEOUT):
        # The anthropic SDK used to let httpx2's error through mid-stream; 2.17.0 wraps it
        # in APIConnectionError, as openai does. Either way the SDK sees the stream break.
        async with anthropic_client(mock) as client:
            with pytest.raises((httpx2.RemoteProtocolError, anthropic.APIConnectionError)):
                await anthropic_stream(client)
        async with openai_client(mock) as client:
            with pytest.raises(openai.APIConnectionError):
                await openai_stream(client)


async def test_keep_alive_and_close(mock: MockUpstream) -> None:
    with trio.fail_after(TIMEOUT):
        async with httpx.AsyncClient(base_url=mock.url) as client:
            first = await client.post("/v1/messages", json=ANTHROPIC_ARGS)
            async with client.stream("POST", "/v1/messages",
                                     json={**ANTHROPIC_ARGS, "stream": True}) as response:
                await response.aread()
            closing = await client.post("/v1/chat/completions", json=CHAT_ARGS,
                                        headers={"x-mock-close": "1"})
            after = await client.get("/v1/models")
    assert first.status_code == closing.status_code == after.status_code == 200
    assert "connection" not in first.headers
    assert closing.headers["connection"] == "close"
    assert [r.connection_id for r in mock.requests] == [1, 1, 1, 2]
    assert mock.connections == 2
    assert all(r.completed for r in mock.requests)
    assert after.json()["object"] == "list"  # no anthropic-version: OpenAI's models list


async def test_hold_until_release(mock: MockUpstream) -> None:
    with trio.fail_after(TIMEOUT):
        async with httpx.AsyncClient() as client:
            async with client.stream("POST", mock.url + "/v1/chat/completions",
                                     json={**CHAT_ARGS, "stream": True},
                                     headers={"x-mock-hold": "1"}) as response:
                chunks = response.aiter_raw()
                first = [await anext(chunks), await anext(chunks)]
                await trio.testing.wait_all_tasks_blocked()
                [received] = mock.requests  # recorded before the response finished
                assert not received.completed
                assert json.loads(first[1][len(b"data: "):])["choices"][0]["delta"] == {
                    "content": OUTPUT_DELTAS[0]}
                mock.release.set()
                rest = [chunk async for chunk in chunks]
    assert rest[-1] == b"data: [DONE]\n\n"
    assert len(first) + len(rest) == 1 + len(OUTPUT_DELTAS) + 1 + 1
    assert received.completed
    assert not received.disconnected
    assert not mock.disconnect_seen.is_set()


async def test_hold_sees_client_disconnect(mock: MockUpstream) -> None:
    with trio.fail_after(TIMEOUT):
        async with httpx.AsyncClient() as client:
            async with client.stream("POST", mock.url + "/v1/responses",
                                     json={"model": "gpt-4o-mini", "input": "Hi",
                                           "stream": True},
                                     headers={"x-mock-hold": "1"}) as response:
                async with aclosing(response.aiter_raw()) as chunks:
                    frames = [await anext(chunks) for _ in range(5)]
            # Leaving the block mid-body closes the connection.
        await mock.disconnect_seen.wait()
    assert NAMED_FRAME.fullmatch(frames[-1])[1] == b"response.output_text.delta"
    [received] = mock.requests
    assert received.disconnected
    assert not received.completed


async def test_hold_non_stream_waits_before_head(mock: MockUpstream) -> None:
    result: list[httpx.Response] = []

    async def call(client: httpx.AsyncClient) -> None:
        result.append(await client.post(mock.url + "/v1/messages", json=ANTHROPIC_ARGS,
                                        headers={"x-mock-hold": "1"}))

    with trio.fail_after(TIMEOUT):
        async with httpx.AsyncClient() as client, trio.open_nursery() as nursery:
            nursery.start_soon(call, client)
            await trio.testing.wait_all_tasks_blocked()
            assert len(mock.requests) == 1
            assert not result
            mock.release.set()
    assert result[0].json()["content"][0]["text"] == OUTPUT_TEXT


async def test_sleeps_take_virtual_time(mock: MockUpstream,
                                        autojump_clock: trio.testing.MockClock) -> None:
    with trio.fail_after(TIMEOUT):
        async with httpx.AsyncClient(timeout=60) as client:
            start = trio.current_time()
            async with client.stream("POST", mock.url + "/v1/messages",
                                     json={**ANTHROPIC_ARGS, "stream": True},
                                     headers={"x-mock-sleep-head": "3",
                                              "x-mock-sleep-between": "0.5"}) as response:
                head_at = trio.current_time() - start
                arrivals = [trio.current_time() - start async for _ in response.aiter_raw()]
    assert head_at == 3.0
    assert arrivals == [3.0 + 0.5 * i for i in range(len(ANTHROPIC_EVENTS))]


async def test_sdk_under_mock_clock(mock: MockUpstream,
                                    sdk_clock: trio.testing.MockClock) -> None:
    with trio.fail_after(TIMEOUT):
        async with anthropic_client(mock) as client:
            start = trio.current_time()
            message = await client.messages.create(
                **ANTHROPIC_ARGS, extra_headers={"x-mock-sleep-head": "8"})
            assert trio.current_time() - start == 8.0
    assert message.content[0].type == "text"


async def test_request_framing_is_recorded(mock: MockUpstream) -> None:
    """Chunked request body, Expect: 100-continue, query and duplicate headers, raw."""
    body = json.dumps(ANTHROPIC_ARGS).encode()
    head = (
        b"POST /v1/messages?beta=true HTTP/1.1\r\n"
        b"Host: mock\r\n"
        b"X-Api-Key: test\r\n"
        b"Anthropic-Beta: a-1\r\n"
        b"anthropic-beta: b-2\r\n"
        b"Content-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n"
        b"Expect: 100-continue\r\n"
        b"\r\n"
    )
    with trio.fail_after(TIMEOUT):
        stream = await trio.open_tcp_stream("127.0.0.1", mock.port)
        async with stream:
            await stream.send_all(head)
            interim = await stream.receive_some()
            assert interim.startswith(b"HTTP/1.1 100 ")
            half = len(body) // 2
            for piece in (body[:half], body[half:]):
                await stream.send_all(b"%x\r\n%s\r\n" % (len(piece), piece))
            await stream.send_all(b"0\r\n\r\n")
            reply = b""
            while not reply.endswith(b"}"):
                reply += await stream.receive_some()
    assert reply.startswith(b"HTTP/1.1 200 OK\r\n")
    assert json.loads(reply.split(b"\r\n\r\n", 1)[1])["content"][0]["text"] == OUTPUT_TEXT
    [received] = mock.requests
    assert received.target == "/v1/messages?beta=true"
    assert received.path == "/v1/messages"
    assert received.body == body
    assert received.json == ANTHROPIC_ARGS
    assert [v for k, v in received.headers if k == "anthropic-beta"] == ["a-1", "b-2"]
    assert [k for k, _ in received.headers][:3] == ["host", "x-api-key", "anthropic-beta"]


@pytest.fixture
def tls() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server context with a trustme cert for "localhost", client context trusting it)."""
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    return server_context, client_context


async def test_tls(nursery: trio.Nursery, tls: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    mock = MockUpstream(ssl_context=tls[0])
    with trio.fail_after(TIMEOUT):
        await nursery.start(mock.run)
        assert mock.url == f"https://localhost:{mock.port}"
        async with httpx.AsyncClient(verify=tls[1]) as client:
            async with client.stream("POST", mock.url + "/v1/messages",
                                     json={**ANTHROPIC_ARGS, "stream": True}) as response:
                frames = await raw_frames(response)
            again = await client.post(mock.url + "/v1/embeddings",
                                      json={"model": "m", "input": "x"})
    assert [NAMED_FRAME.fullmatch(f)[1].decode() for f in frames] == ANTHROPIC_EVENTS
    assert again.json()["data"][0]["embedding"] == embedding_vector("x")
    assert mock.connections == 1


async def test_tls_hold_sees_client_disconnect(
        nursery: trio.Nursery, tls: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    mock = MockUpstream(ssl_context=tls[0])
    with trio.fail_after(TIMEOUT):
        await nursery.start(mock.run)
        async with anthropic.AsyncAnthropic(
                base_url=mock.url, api_key="test", max_retries=0,
                http_client=anthropic.DefaultAsyncHttpxClient(verify=tls[1])) as client:
            async with client.messages.stream(**ANTHROPIC_ARGS,
                                              extra_headers={"x-mock-hold": "1"}) as stream:
                async for text in stream.text_stream:
                    assert text == OUTPUT_DELTAS[0]
                    break
        await mock.disconnect_seen.wait()
    [received] = mock.requests
    assert received.disconnected
    assert not received.completed


async def test_pipelined_request_survives_a_waiting_response(
        mock: MockUpstream, autojump_clock: trio.testing.MockClock) -> None:
    """While a response waits, the mock watches the socket; a pipelined request it reads
    meanwhile is kept for the next cycle, not taken for a disconnect."""
    body = json.dumps(CHAT_ARGS).encode()

    def request(extra: bytes) -> bytes:
        return (b"POST /v1/chat/completions HTTP/1.1\r\nHost: mock\r\n"
                b"Content-Type: application/json\r\nContent-Length: %d\r\n%s\r\n%s"
                % (len(body), extra, body))

    with trio.fail_after(TIMEOUT):
        stream = await trio.open_tcp_stream("127.0.0.1", mock.port)
        async with stream:
            await stream.send_all(request(b"X-Mock-Sleep-Head: 2\r\n") + request(b""))
            replies = b""
            while replies.count(b"HTTP/1.1 200 OK\r\n") < 2 or not replies.endswith(b"}"):
                replies += await stream.receive_some()
    assert trio.current_time() == 2.0
    assert [r.connection_id for r in mock.requests] == [1, 1]
    assert all(r.completed for r in mock.requests)
    assert not mock.disconnect_seen.is_set()
    assert replies.count(OUTPUT_TEXT.encode()) == 2


# -- Tool calls (x-mock-tools) and request validation ----------------------------------

ANTHROPIC_TOOLS = [
    {"name": "get_weather", "description": "Weather in a city",
     "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}},
    {"name": "get_time", "input_schema": {"type": "object"}},
]
OPENAI_TOOLS = [
    {"type": "function", "function": {"name": t["name"], "parameters": t["input_schema"]}}
    for t in ANTHROPIC_TOOLS
]
TWO_TOOLS = {"x-mock-tools": "get_weather,get_time"}


def fragments_per_block(frames: list[bytes]) -> dict[int, list[str]]:
    """Anthropic input_json_delta fragments per content block index, from raw frames."""
    pieces: dict[int, list[str]] = {}
    for frame in frames:
        match = NAMED_FRAME.fullmatch(frame)
        assert match, frame
        event = json.loads(match[2])
        if event["type"] == "content_block_delta" and \
                event["delta"]["type"] == "input_json_delta":
            pieces.setdefault(event["index"], []).append(event["delta"]["partial_json"])
    return pieces


async def test_anthropic_tool_calls(mock: MockUpstream) -> None:
    args = {**ANTHROPIC_ARGS, "tools": ANTHROPIC_TOOLS}
    with trio.fail_after(TIMEOUT):
        async with anthropic_client(mock) as client:
            plain = await client.messages.create(**args, extra_headers=TWO_TOOLS)
            async with client.messages.stream(
                    **args, extra_headers={**TWO_TOOLS, "x-mock-tools-text": "1"}) as stream:
                streamed = await stream.get_final_message()
    assert plain.stop_reason == streamed.stop_reason == "tool_use"
    assert [b.type for b in plain.content] == ["tool_use", "tool_use"]
    assert [b.type for b in streamed.content] == ["text", "tool_use", "tool_use"]
    assert streamed.content[0].text == OUTPUT_TEXT
    for n, message in ((1, plain), (2, streamed)):
        blocks = [b for b in message.content if b.type == "tool_use"]
        assert [(b.id, b.name, b.input) for b in blocks] == [
            (f"toolu_01Mock{n:016d}00", "get_weather", {"city": "Paris", "unit": "celsius"}),
            (tool_call_id("anthropic", n, 1), "get_time", TOOL_INPUTS[1]),
        ]
        assert mock.requests[n - 1].tool_calls == [
            ToolCall(b.id, b.name, b.input) for b in blocks]
    assert streamed.usage.output_tokens == ANTHROPIC_USAGE["output_tokens"]


async def test_anthropic_tool_stream_wire(mock: MockUpstream) -> None:
    body = {**ANTHROPIC_ARGS, "stream": True, "tools": ANTHROPIC_TOOLS}
    with trio.fail_after(TIMEOUT):
        async with httpx.AsyncClient() as client:
            async with client.stream("POST", mock.url + "/v1/messages", json=body,
                                     headers={"x-mock-tools": "get_time,get_weather,get_time"}
                                     ) as response:
                frames = await raw_frames(response)
    kinds = [NAMED_FRAME.fullmatch(f)[1].decode() for f in frames]
    assert kinds[:3] == ["message_start", "content_block_start", "ping"]
    assert kinds[-2:] == ["message_delta", "message_stop"]
    assert kinds.count("content_block_start") == kinds.count("content_block_stop") == 3
    start = json.loads(NAMED_FRAME.fullmatch(frames[1])[2])
    assert start["content_block"] == {"type": "tool_use", "id": tool_call_id("anthropic", 1, 0),
                                      "name": "get_time", "input": {}}
    pieces = fragments_per_block(frames)
    for index, expected in enumerate([TOOL_INPUTS[0], TOOL_INPUTS[1], TOOL_INPUTS[2]]):
        assert pieces[index][0] == ""  # the API opens each tool block with an empty delta
        assert len(pieces[index]) > 4
        assert "".join(pieces[index]) == json.dumps(expected, ensure_ascii=False)
        assert json.loads("".join(pieces[index])) == expected
    # Cut mid-key: no fragment after the empty one is a whole JSON token sequence.
    assert pieces[0][1:3] == ['{"', "city\""]
    delta = json.loads(NAMED_FRAME.fullmatch(frames[-2])[2])
    assert delta["delta"]["stop_reason"] == "tool_use"


async def test_openai_tool_calls(mock: MockUpstream) -> None:
    args = {**CHAT_ARGS, "tools": OPENAI_TOOLS}
    with trio.fail_after(TIMEOUT):
        async with openai_client(mock) as client:
            plain = await client.chat.completions.create(**args, extra_headers=TWO_TOOLS)
            stream = await client.chat.completions.create(
                **args, stream=True, stream_options={"include_usage": True},
                extra_headers={**TWO_TOOLS, "x-mock-tools-text": "1"})
            chunks = [chunk async for chunk in stream]
    [choice] = plain.choices
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls or []
    assert [(c.id, c.type, c.function.name, json.loads(c.function.arguments))
            for c in calls] == [
        (f"call_Mock{1:018d}00", "function", "get_weather", TOOL_INPUTS[0]),
        (tool_call_id("openai", 1, 1), "function", "get_time", TOOL_INPUTS[1]),
    ]
    assert calls[0].function.arguments == '{"city":"Paris","unit":"celsius"}'  # compact
    # The stream: role, text, then per call one head chunk and several fragments.
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == OUTPUT_TEXT
    heads: list[tuple[int, str | None, str | None]] = []
    arguments: dict[int, str] = {}
    fragments: dict[int, int] = {}
    for chunk in chunks:
        for call in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            if call.id is not None:
                heads.append((call.index, call.id, call.function.name))
                assert call.function.arguments == ""
            else:
                fragments[call.index] = fragments.get(call.index, 0) + 1
            arguments[call.index] = arguments.get(call.index, "") + call.function.arguments
    assert heads == [(0, tool_call_id("openai", 2, 0), "get_weather"),
                     (1, tool_call_id("openai", 2, 1), "get_time")]
    assert [json.loads(arguments[i]) for i in (0, 1)] == [TOOL_INPUTS[0], TOOL_INPUTS[1]]
    assert fragments[0] > 4
    assert fragments[1] > 4
    assert chunks[-2].choices[0].finish_reason == "tool_calls"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    check_chat_usage(chunks[-1].usage)
    assert [c.id for c in mock.requests[1].tool_calls] == [h[1] for h in heads]


async def test_tools_must_be_declared(mock: MockUpstream) -> None:
    with trio.fail_after(TIMEOUT):
        async with httpx.AsyncClient(base_url=mock.url) as client:
            anthropic_reply = await client.post(
                "/v1/messages", json={**ANTHROPIC_ARGS, "tools": ANTHROPIC_TOOLS[:1]},
                headers=TWO_TOOLS)
            openai_reply = await client.post("/v1/chat/completions", json=CHAT_ARGS,
                                             headers=TWO_TOOLS)
            bad_name = await client.post("/v1/chat/completions", json=CHAT_ARGS,
                                         headers={"x-mock-tools": "get weather"})
    assert anthropic_reply.status_code == openai_reply.status_code == bad_name.status_code == 400
    assert anthropic_reply.json()["error"] == {
        "type": "invalid_request_error",
        "message": "x-mock-tools names tools the request does not declare in `tools`: get_time"}
    assert openai_reply.json()["error"]["message"].endswith(": get_weather, get_time")
    assert "x-mock-tools" in bad_name.json()["error"]["message"]
    assert [r.tool_calls for r in mock.requests] == [[], [], []]


def tool_turns(first_id: str, second_id: str) -> list[dict[str, Any]]:
    """An Anthropic conversation: a user turn, two tool calls, their two results."""
    return [
        {"role": "user", "content": "Weather and time in Paris?"},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "toolu_01A", "name": "get_weather", "input": {}},
            {"type": "tool_use", "id": "toolu_01B", "name": "get_time", "input": {}},
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": first_id, "content": "18 C"},
            {"type": "tool_result", "tool_use_id": second_id, "content": "12:00"},
        ]},
    ]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"model": "m", "messages": [{"role": "user", "content": "Hi"}]},
         "max_tokens: Field required"),
        ({"model": "m", "max_tokens": 5}, "messages: Field required"),
        ({"model": "m", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]},
         "messages.0.role: Input should be 'user' or 'assistant'"),
        ({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": []}]},
         "messages.0: all messages must have non-empty content except for the optional "
         "final assistant message"),
        ({"model": "m", "max_tokens": 5, "messages": tool_turns("toolu_01A", "toolu_01X")},
         "messages.2.content.1: unexpected `tool_use_id` found in `tool_result` blocks: "
         "toolu_01X. Each `tool_result` block must have a corresponding `tool_use` block in "
         "the previous message."),
        ({"model": "m", "max_tokens": 5,
          "messages": [*tool_turns("toolu_01A", "toolu_01B")[:2],
                       {"role": "user", "content": "never mind"}]},
         "messages.1: `tool_use` ids were found without `tool_result` blocks immediately "
         "after: toolu_01A, toolu_01B. Each `tool_use` block must have a corresponding "
         "`tool_result` block in the next message."),
        ({"model": "m", "max_tokens": 5, "cache_control": {"type": "ephemeral"},
          "system": [{"type": "text", "text": "s", "cache_control": {"type": "ephemeral"}}],
          "tools": [{"name": "t", "input_schema": {"type": "object"},
                     "cache_control": {"type": "ephemeral"}}],
          "messages": [{"role": "user", "content": [
              {"type": "text", "text": "a", "cache_control": {"type": "ephemeral"}},
              {"type": "text", "text": "b", "cache_control": {"type": "ephemeral"}}]}]},
         "A maximum of 4 blocks with cache_control may be provided. Found 5."),
    ],
    ids=["max_tokens", "messages", "role", "empty", "unknown-result", "unanswered",
         "breakpoints"],
)
async def test_anthropic_requests_are_validated(mock: MockUpstream, body: dict[str, Any],
                                                message: str) -> None:
    # Over httpx: the SDK itself refuses a call without max_tokens or messages.
    with trio.fail_after(TIMEOUT):
        async with httpx.AsyncClient(base_url=mock.url) as client:
            response = await client.post("/v1/messages", json={**body, "stream": True})
    assert response.status_code == 400
    assert response.json() == {
        "type": "error", "error": {"type": "invalid_request_error", "message": message},
        "request_id": response.headers["request-id"],
    }


async def test_anthropic_valid_tool_turns_pass(mock: MockUpstream) -> None:
    turns = tool_turns("toolu_01B", "toolu_01A")  # any order
    # Consecutive user turns count as one turn, as the API combines them.
    turns[2:] = [{"role": "user", "content": [turns[2]["content"][0]]},
                 {"role": "user", "content": [turns[2]["content"][1],
                                              {"type": "text", "text": "thanks"}]}]
    with trio.fail_after(TIMEOUT):
        async with anthropic_client(mock) as client:
            message = await client.messages.create(model="m", max_tokens=5, messages=turns)
            count = await client.messages.count_tokens(model="m", messages=turns)
    assert message.content[0].type == "text"
    assert count.input_tokens == ANTHROPIC_USAGE["input_tokens"]


def chat_tool_turns(*answers: str) -> list[dict[str, Any]]:
    call = {"type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
    return [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": None,
         "tool_calls": [{**call, "id": "call_A"}, {**call, "id": "call_B"}]},
        *({"role": "tool", "tool_call_id": answer, "content": "18 C"} for answer in answers),
    ]


@pytest.mark.parametrize(
    ("messages", "message", "param"),
    [
        (chat_tool_turns("call_B", "call_A")[2:],
         "Invalid parameter: messages with role 'tool' must be a response to a preceeding "
         "message with 'tool_calls'.", "messages.[0].role"),
        (chat_tool_turns("call_A", "call_X"),
         "Invalid parameter: 'tool_call_id' of 'call_X' not found in 'tool_calls' of previous "
         "message.", "messages.[3].tool_call_id"),
        ([*chat_tool_turns("call_B"), {"role": "user", "content": "and?"}],
         "An assistant message with 'tool_calls' must be followed by tool messages responding "
         "to each 'tool_call_id'. The following tool_call_ids did not have response "
         "messages: call_A", "messages.[1].role"),
        (chat_tool_turns(),
         "An assistant message with 'tool_calls' must be followed by tool messages responding "
         "to each 'tool_call_id'. The following tool_call_ids did not have response "
         "messages: call_A, call_B", "messages.[1].role"),
    ],
    ids=["orphan-tool", "unknown-id", "one-unanswered", "none-answered"],
)
async def test_openai_requests_are_validated(mock: MockUpstream, messages: list[Any],
                                             message: str, param: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with openai_client(mock) as client:
            with pytest.raises(openai.BadRequestError) as info:
                await client.chat.completions.create(model="gpt-4o", messages=messages)
            ok = await client.chat.completions.create(
                model="gpt-4o", messages=chat_tool_turns("call_B", "call_A"))
    assert info.value.body == {"message": message, "type": "invalid_request_error",
                               "param": param, "code": None}
    assert ok.choices[0].message.content == OUTPUT_TEXT
