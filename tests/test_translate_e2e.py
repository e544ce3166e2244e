"""Translate routes end to end: the official SDKs and httpx, the real proxy, the mock
upstream speaking the other API, all on 127.0.0.1.

Two routes: clients of ``/ant`` speak Anthropic Messages and the upstream OpenAI Chat
Completions (``anthropic-to-openai``); clients of ``/oai`` the reverse. Each test checks
what the client got (exact values from the mock's constants), what the mock received
(endpoint, auth header, translated body) and, where it matters, the ledger row.

Rules: every test is bounded by ``trio.fail_after``; SDK clients use ``max_retries=0``
and are closed by ``async with``; nothing sleeps.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
import trio

from tests.conftest import RunningProxy, proxy_config
from tests.mock_upstream import (
    ANTHROPIC_MODELS,
    ANTHROPIC_USAGE,
    OPENAI_USAGE,
    OUTPUT_DELTAS,
    OUTPUT_TEXT,
    RETRY_AFTER,
    TOOL_INPUTS,
    MockUpstream,
    anthropic_error,
    openai_error,
    openai_models,
)

TIMEOUT = 10
KEY = "sk-test-key-0001"
# Client model name -> upstream model name, per route.
CLAUDE, GPT = "claude-opus-4-6", "gpt-4o"  # /ant: a Claude name served by gpt-4o
GPT_CLIENT, CLAUDE_UPSTREAM = "gpt-4.1", "claude-sonnet-4-6"  # /oai: the reverse
ROUTES = [
    {"prefix": "/ant", "translate": "anthropic-to-openai", "models": {CLAUDE: GPT}},
    {"prefix": "/oai", "translate": "openai-to-anthropic", "models": {GPT_CLIENT: CLAUDE_UPSTREAM}},
]
ANTHROPIC_TOOLS = [
    {"name": "get_weather", "description": "Weather in a city",
     "input_schema": {"type": "object", "properties": {"city": {"type": "string"},
                                                       "unit": {"type": "string"}}}},
    {"name": "get_time", "description": "Local time",
     "input_schema": {"type": "object", "properties": {"timezone": {"type": "string"}}}},
]
OPENAI_TOOLS = [
    {"type": "function", "function": {"name": t["name"], "description": t["description"],
                                      "parameters": t["input_schema"]}}
    for t in ANTHROPIC_TOOLS
]
TWO_TOOLS = {"x-mock-tools": "get_weather,get_time"}
QUESTION = "Weather and time in Paris?"

# What the ledger should hold: the upstream's own counts, as it reported them.
OPENAI_UPSTREAM_TOKENS = (OPENAI_USAGE["prompt_tokens"], OPENAI_USAGE["completion_tokens"],
                          OPENAI_USAGE["cached_tokens"], None)
ANTHROPIC_UPSTREAM_TOKENS = (
    ANTHROPIC_USAGE["input_tokens"], ANTHROPIC_USAGE["output_tokens"],
    ANTHROPIC_USAGE["cache_read_input_tokens"], ANTHROPIC_USAGE["cache_creation_input_tokens"],
)


@pytest.fixture
async def proxy(
    nursery: trio.Nursery, mock: MockUpstream, tmp_path: Path, transport: str
) -> RunningProxy:
    routes = [{**route, "upstream": mock.url} for route in ROUTES]
    config = proxy_config(tmp_path, mock.url, transport=transport, routes=routes)
    return await RunningProxy(config).start(nursery)


def anthropic_client(proxy: RunningProxy) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=proxy.url + "/ant", api_key=KEY, max_retries=0)


def openai_client(proxy: RunningProxy) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=proxy.url + "/oai/v1", api_key=KEY, max_retries=0)


def tokens(row: dict[str, Any]) -> tuple[int | None, ...]:
    return (row["input_tokens"], row["output_tokens"], row["cache_read_tokens"],
            row["cache_write_tokens"])


def sse_frames(raw: bytes) -> list[tuple[str | None, Any]]:
    """(event name, parsed data) per SSE frame; data "[DONE]" stays a string."""
    frames: list[tuple[str | None, Any]] = []
    for frame in raw.decode().split("\n\n"):
        if not frame:
            continue
        event, data = None, None
        for line in frame.split("\n"):
            name, _, value = line.partition(": ")
            if name == "event":
                event = value
            elif name == "data":
                data = value if value == "[DONE]" else json.loads(value)
        frames.append((event, data))
    return frames


def assert_openai_upstream_request(mock: MockUpstream, index: int = 0) -> dict[str, Any]:
    """The mock got an OpenAI request for the mapped model, with the key as a bearer token
    and nothing that belongs to the Anthropic API; returns its body."""
    received = mock.requests[index]
    assert (received.method, received.target) == ("POST", "/v1/chat/completions")
    assert received.header("authorization") == f"Bearer {KEY}"
    assert received.header("x-api-key") is None
    assert received.header("anthropic-version") is None
    assert received.header("accept-encoding") == "identity"
    assert received.header("content-type") == "application/json"
    assert received.json is not None
    assert received.json["model"] == GPT
    return received.json


def assert_anthropic_upstream_request(mock: MockUpstream, index: int = 0) -> dict[str, Any]:
    received = mock.requests[index]
    assert (received.method, received.target) == ("POST", "/v1/messages")
    assert received.header("x-api-key") == KEY
    assert received.header("authorization") is None
    assert received.header("anthropic-version") == "2023-06-01"
    assert received.header("accept-encoding") == "identity"
    assert received.json is not None
    assert received.json["model"] == CLAUDE_UPSTREAM
    return received.json


# -- Anthropic clients, OpenAI upstream ------------------------------------------------


async def test_anthropic_sdk_create_text(proxy: RunningProxy, mock: MockUpstream) -> None:
    with trio.fail_after(TIMEOUT):
        async with anthropic_client(proxy) as client:
            message = await client.messages.create(
                model=CLAUDE, max_tokens=64, system="Be brief.",
                messages=[{"role": "user", "content": "Hi"}])
        await proxy.stop()
    assert message.id == "msg_Mock" + "1".zfill(20)  # chatcmpl-Mock<n> -> msg_Mock<n>
    assert message.model == CLAUDE  # the name the client asked for
    assert [(b.type, b.text) for b in message.content] == [("text", OUTPUT_TEXT)]
    assert message.stop_reason == "end_turn"
    # OpenAI's prompt_tokens includes the cached tokens; Anthropic's input_tokens does not.
    usage = message.usage
    assert usage.input_tokens == OPENAI_USAGE["prompt_tokens"] - OPENAI_USAGE["cached_tokens"]
    assert usage.input_tokens == 19
    assert usage.cache_read_input_tokens == OPENAI_USAGE["cached_tokens"]
    assert usage.cache_creation_input_tokens == 0
    assert usage.output_tokens == OPENAI_USAGE["completion_tokens"]
    body = assert_openai_upstream_request(mock)
    assert body == {"model": GPT, "max_tokens": 64, "messages": [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]}
    [row] = proxy.rows()
    assert (row["path"], row["status"], row["outcome"], row["stream"]) == (
        "/ant/v1/messages", 200, "ok", 0)
    assert row["model"] == GPT
    assert tokens(row) == OPENAI_UPSTREAM_TOKENS


async def test_anthropic_sdk_stream_text(proxy: RunningProxy, mock: MockUpstream) -> None:
    with trio.fail_after(TIMEOUT):
        async with anthropic_client(proxy) as client:
            async with client.messages.stream(
                    model=CLAUDE, max_tokens=64,
                    messages=[{"role": "user", "content": "Hi"}]) as stream:
                pieces = [text async for text in stream.text_stream]
                text = await stream.get_final_text()
                final = await stream.get_final_message()
        await proxy.stop()
    assert pieces == list(OUTPUT_DELTAS)
    assert text == OUTPUT_TEXT
    assert final.stop_reason == "end_turn"
    assert final.model == CLAUDE
    assert final.usage.output_tokens == OPENAI_USAGE["completion_tokens"]
    # Usage comes last in an OpenAI stream: message_delta carries the input counts.
    assert final.usage.input_tokens == 19
    assert final.usage.cache_read_input_tokens == OPENAI_USAGE["cached_tokens"]
    body = assert_openai_upstream_request(mock)
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}  # else no usage to translate
    [row] = proxy.rows()
    assert (row["path"], row["status"], row["outcome"], row["stream"]) == (
        "/ant/v1/messages", 200, "ok", 1)
    assert row["model"] == GPT
    assert tokens(row) == OPENAI_UPSTREAM_TOKENS
    assert row["scan_complete"] == 1


@pytest.mark.parametrize("with_text", [False, True], ids=["tools", "text+tools"])
async def test_anthropic_sdk_stream_tool_calls_and_their_results(
    proxy: RunningProxy, mock: MockUpstream, with_text: bool
) -> None:
    headers = {**TWO_TOOLS, "x-mock-tools-text": "1" if with_text else "0"}
    args: dict[str, Any] = {"model": CLAUDE, "max_tokens": 256, "tools": ANTHROPIC_TOOLS}
    question = {"role": "user", "content": QUESTION}
    with trio.fail_after(TIMEOUT):
        async with anthropic_client(proxy) as client:
            async with client.messages.stream(**args, messages=[question],
                                              extra_headers=headers) as stream:
                final = await stream.get_final_message()
            # The agent loop: the assistant turn as the SDK gave it, then the results.
            calls = [b for b in final.content if b.type == "tool_use"]
            results = [{"type": "tool_result", "tool_use_id": call.id, "content": answer}
                       for call, answer in zip(calls, ["18 C", "12:00"], strict=True)]
            follow_up = await client.messages.create(
                **args, messages=[question, {"role": "assistant", "content": final.content},
                                  {"role": "user", "content": results}])
        await proxy.stop()
    sent = mock.requests[0].tool_calls
    assert [c.name for c in sent] == ["get_weather", "get_time"]
    assert [(c.id, c.name, c.input) for c in calls] == [
        (sent[0].id, "get_weather", TOOL_INPUTS[0]), (sent[1].id, "get_time", TOOL_INPUTS[1])]
    assert sent[0].id.startswith("call_")  # tool-call ids pass unchanged
    assert [b.type for b in final.content] == (["text"] if with_text else []) + ["tool_use"] * 2
    if with_text:
        assert final.content[0].text == OUTPUT_TEXT
    assert final.stop_reason == "tool_use"
    assert final.usage.output_tokens == OPENAI_USAGE["completion_tokens"]
    assert final.usage.input_tokens == 19
    first = assert_openai_upstream_request(mock, 0)
    assert first["tools"] == OPENAI_TOOLS
    assert first["stream_options"] == {"include_usage": True}
    # The follow-up: tool_use -> assistant tool_calls, tool_result -> role "tool".
    second = assert_openai_upstream_request(mock, 1)
    assert second["messages"] == [
        {"role": "user", "content": QUESTION},
        {"role": "assistant", "content": OUTPUT_TEXT if with_text else None, "tool_calls": [
            {"id": c.id, "type": "function",
             "function": {"name": c.name, "arguments": json.dumps(
                 c.input, ensure_ascii=False, separators=(",", ":"))}}
            for c in sent]},
        {"role": "tool", "tool_call_id": sent[0].id, "content": "18 C"},
        {"role": "tool", "tool_call_id": sent[1].id, "content": "12:00"},
    ]
    assert [b.type for b in follow_up.content] == ["text"]  # the mock accepted the turns
    rows = proxy.rows()
    assert [(r["status"], r["stream"], r["model"]) for r in rows] == [(200, 1, GPT),
                                                                      (200, 0, GPT)]
    assert [tokens(r) for r in rows] == [OPENAI_UPSTREAM_TOKENS] * 2


async def test_anthropic_tool_stream_wire(proxy: RunningProxy, mock: MockUpstream) -> None:
    """The raw events of a translated tool-calling stream. (The SDK's partial-JSON parser
    would accept a tool input missing its last bytes, so the exact JSON is checked here.)"""
    body = {"model": CLAUDE, "max_tokens": 256, "stream": True, "tools": ANTHROPIC_TOOLS,
            "messages": [{"role": "user", "content": QUESTION}]}
    headers = {"x-api-key": KEY, "x-mock-tools": "get_time,get_weather,get_time",
               "x-mock-tools-text": "1"}
    with trio.fail_after(TIMEOUT):
        async with httpx.AsyncClient(base_url=proxy.url) as client:
            async with client.stream("POST", "/ant/v1/messages", json=body,
                                     headers=headers) as response:
                raw = b"".join([chunk async for chunk in response.aiter_raw()])
    assert response.status_code == 200
    sent = mock.requests[0].tool_calls
    frames = sse_frames(raw)
    assert all(name == data["type"] for name, data in frames)
    names = [name for name, _ in frames]
    n = len(OUTPUT_DELTAS)
    assert names[:n + 3] == ["message_start", "content_block_start",
                             *["content_block_delta"] * n, "content_block_stop"]
    assert names[-2:] == ["message_delta", "message_stop"]
    assert [d["content_block"] for _, d in frames if d["type"] == "content_block_start"] == [
        {"type": "text", "text": ""},
        *({"type": "tool_use", "id": c.id, "name": c.name, "input": {}} for c in sent)]
    assert [d["index"] for _, d in frames if d["type"] == "content_block_stop"] == [0, 1, 2, 3]
    pieces: dict[int, list[str]] = {}
    for _, data in frames:
        if data["type"] == "content_block_delta" and data["index"] > 0:
            assert data["delta"]["type"] == "input_json_delta"
            pieces.setdefault(data["index"], []).append(data["delta"]["partial_json"])
    assert sorted(pieces) == [1, 2, 3]
    # Each tool's input is passed on fragment by fragment as it arrives: the mock sends
    # calls one after another, so each block closes when the next call starts.
    assert all(len(pieces[k]) > 2 for k in (1, 2, 3))
    for k, call in enumerate(sent):
        assert "".join(pieces[k + 1]) == json.dumps(call.input, ensure_ascii=False,
                                                    separators=(",", ":"))
        assert json.loads("".join(pieces[k + 1])) == TOOL_INPUTS[k]
    delta = frames[-2][1]
    assert delta["delta"] == {"stop_reason": "tool_use", "stop_sequence": None}
    usage = delta["usage"]
    assert (usage["input_tokens"], usage["cache_read_input_tokens"],
            usage["cache_creation_input_tokens"], usage["output_tokens"]) == (
        19, OPENAI_USAGE["cached_tokens"], 0, OPENAI_USAGE["completion_tokens"])


async def test_anthropic_sdk_create_tool_calls(proxy: RunningProxy, mock: MockUpstream) -> None:
    with trio.fail_after(TIMEOUT):
        async with anthropic_client(proxy) as client:
            message = await client.messages.create(
                model=CLAUDE, max_tokens=64, tools=ANTHROPIC_TOOLS,
                messages=[{"role": "user", "content": QUESTION}], extra_headers=TWO_TOOLS)
    sent = mock.requests[0].tool_calls
    assert [(b.type, b.id, b.name, b.input) for b in message.content] == [
        ("tool_use", sent[0].id, "get_weather", TOOL_INPUTS[0]),
        ("tool_use", sent[1].id, "get_time", TOOL_INPUTS[1]),
    ]
    assert message.stop_reason == "tool_use"


async def test_claude_code_style_x_api_key_and_dropped_features(
    proxy: RunningProxy, mock: MockUpstream
) -> None:
    """x-api-key (as Claude Code sends it) becomes a bearer token; cache_control and
    anthropic-beta cannot cross, so they are dropped and named in x-trioproxy-dropped."""
    body = {
        "model": CLAUDE, "max_tokens": 64,
        "system": [{"type": "text", "text": "Be brief.",
                    "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "Hi", "cache_control": {"type": "ephemeral"}}]}],
    }
    with trio.fail_after(TIMEOUT):
        async with httpx.AsyncClient(base_url=proxy.url) as client:
            response = await client.post(
                "/ant/v1/messages?beta=true", json=body,
                headers={"x-api-key": KEY, "anthropic-version": "2023-06-01",
                         "anthropic-beta": "prompt-caching-2024-07-31"})
            plain = await client.post("/ant/v1/messages", json={**body, "system": "Be brief.",
                                                                "messages": [{"role": "user",
                                                                              "content": "Hi"}]},
                                      headers={"x-api-key": KEY})
    assert response.status_code == 200
    assert response.headers["x-trioproxy-dropped"] == "cache_control, anthropic-beta"
    assert response.json()["content"] == [{"type": "text", "text": OUTPUT_TEXT}]
    assert plain.status_code == 200
    assert "x-trioproxy-dropped" not in plain.headers
    upstream = assert_openai_upstream_request(mock)
    # The query is Anthropic's (Claude Code's ?beta=true): it does not cross either.
    assert mock.requests[0].target == "/v1/chat/completions"
    assert mock.requests[0].header("anthropic-beta") is None
    assert b"cache_control" not in mock.requests[0].body
    assert upstream["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
    ]


async def test_anthropic_sdk_cache_control_is_reported_dropped(
    proxy: RunningProxy, mock: MockUpstream
) -> None:
    with trio.fail_after(TIMEOUT):
        async with anthropic_client(proxy) as client:
            raw = await client.messages.with_raw_response.create(
                model=CLAUDE, max_tokens=64, messages=[{"role": "user", "content": [
                    {"type": "text", "text": "Hi", "cache_control": {"type": "ephemeral"}}]}])
            message = await raw.parse()
    assert raw.headers["x-trioproxy-dropped"] == "cache_control"
    assert message.content[0].text == OUTPUT_TEXT
    assert b"cache_control" not in mock.requests[0].body


async def test_count_tokens_is_answered_locally(proxy: RunningProxy, mock: MockUpstream) -> None:
    with trio.fail_after(TIMEOUT):
        async with anthropic_client(proxy) as client:
            count = await client.messages.count_tokens(
                model=CLAUDE, system="Be brief.",
                messages=[{"role": "user", "content": "What is the weather in Paris?"}])
        await proxy.stop()
    # The estimate: ceil((9 + 29 bytes of text) / 4) + 4 per message.
    assert count.input_tokens == 14
    assert mock.requests == []
    [row] = proxy.rows()
    assert (row["path"], row["status"]) == ("/ant/v1/messages/count_tokens", 200)


async def test_models_are_listed_in_the_clients_shape(
    proxy: RunningProxy, mock: MockUpstream
) -> None:
    before = int(time.time())
    with trio.fail_after(TIMEOUT):
        async with anthropic_client(proxy) as client:
            page = await client.models.list()
        async with openai_client(proxy) as oai:
            models = await oai.models.list()
    after = int(time.time())
    # /ant: the upstream's OpenAI list, each model under the client names mapped to it too.
    upstream_ids = [m["id"] for m in openai_models(0)["data"]]
    assert upstream_ids == ["gpt-4o-mini", GPT, "text-embedding-3-small"]
    assert [m.id for m in page.data] == ["gpt-4o-mini", CLAUDE, GPT, "text-embedding-3-small"]
    assert [m.display_name for m in page.data] == [m.id for m in page.data]
    assert all(m.type == "model" for m in page.data)
    assert all(before <= m.created_at.timestamp() <= after + 1 for m in page.data)
    assert (page.first_id, page.last_id, page.has_more) == ("gpt-4o-mini",
                                                            "text-embedding-3-small", False)
    assert mock.requests[0].target == "/v1/models"
    assert mock.requests[0].header("authorization") == f"Bearer {KEY}"
    assert mock.requests[0].header("anthropic-version") is None
    # /oai: the upstream's Anthropic list.
    created = int(datetime.fromisoformat(ANTHROPIC_MODELS[0]["created_at"]).timestamp())
    assert [(m.id, m.object, m.owned_by) for m in models.data] == [
        (GPT_CLIENT, "model", "anthropic"), (CLAUDE_UPSTREAM, "model", "anthropic"),
        ("claude-haiku-4-5", "model", "anthropic")]
    assert models.data[0].created == models.data[1].created == created
    assert datetime.fromtimestamp(created, UTC).isoformat() == "2026-02-17T00:00:00+00:00"
    assert mock.requests[1].header("x-api-key") == KEY
    assert mock.requests[1].header("anthropic-version") == "2023-06-01"


async def test_unserved_path_is_a_404_in_the_clients_shape(
    proxy: RunningProxy, mock: MockUpstream
) -> None:
    with trio.fail_after(TIMEOUT):
        async with httpx.AsyncClient(base_url=proxy.url) as client:
            ant = await client.post("/ant/v1/complete", json={"prompt": "x"})
            oai = await client.post("/oai/v1/embeddings", json={"input": "x"})
    assert ant.status_code == oai.status_code == 404
    assert ant.json()["type"] == "error"
    assert ant.json()["error"]["type"] == "not_found_error"
    assert oai.json()["error"]["type"] == "invalid_request_error"
    assert mock.requests == []


async def test_untranslatable_anthropic_request_is_refused(
    proxy: RunningProxy, mock: MockUpstream
) -> None:
    pdf = {"type": "document",
           "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0xLjQ="}}
    with trio.fail_after(TIMEOUT):
        async with anthropic_client(proxy) as client:
            with pytest.raises(anthropic.BadRequestError) as info:
                await client.messages.create(
                    model=CLAUDE, max_tokens=64, messages=[{"role": "user", "content": [
                        {"type": "text", "text": "Summarize:"}, pdf]}])
        await proxy.stop()
    assert info.value.status_code == 400
    body = info.value.body
    assert isinstance(body, dict)
    assert body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"
    field, _, problem = body["error"]["message"].partition(": ")
    assert field == "messages[0].content[1]"
    assert problem.startswith("document blocks cannot be sent")
    assert mock.requests == []
    [row] = proxy.rows()
    assert (row["path"], row["status"]) == ("/ant/v1/messages", 400)


async def test_untranslatable_openai_request_is_refused(
    proxy: RunningProxy, mock: MockUpstream
) -> None:
    with trio.fail_after(TIMEOUT):
        async with openai_client(proxy) as client:
            with pytest.raises(openai.BadRequestError) as info:
                await client.chat.completions.create(
                    model=GPT_CLIENT, n=2, messages=[{"role": "user", "content": "Hi"}])
    assert info.value.status_code == 400
    body = info.value.body  # the SDK hands over body["error"]
    assert isinstance(body, dict)
    assert body["type"] == "invalid_request_error"
    assert body["message"].partition(": ")[0] == "n"
    assert (body["param"], info.value.param) == ("n", "n")  # where OpenAI names the field
    assert mock.requests == []


async def test_upstream_error_keeps_its_status_in_the_clients_shape(
    proxy: RunningProxy, mock: MockUpstream
) -> None:
    status = {"x-mock-status": "429"}
    with trio.fail_after(TIMEOUT):
        async with anthropic_client(proxy) as client:
            with pytest.raises(anthropic.RateLimitError) as ant:
                await client.messages.create(model=CLAUDE, max_tokens=64, extra_headers=status,
                                             messages=[{"role": "user", "content": "Hi"}])
        async with openai_client(proxy) as oai:
            with pytest.raises(openai.RateLimitError) as opn:
                await oai.chat.completions.create(model=GPT_CLIENT, extra_headers=status,
                                                  messages=[{"role": "user", "content": "Hi"}])
        await proxy.stop()
    assert ant.value.status_code == opn.value.status_code == 429
    assert isinstance(ant.value.body, dict)
    assert ant.value.body["type"] == "error"
    assert ant.value.body["error"] == {"type": "rate_limit_error",
                                       "message": openai_error(429)["error"]["message"]}
    assert ant.value.response.headers["retry-after"] == RETRY_AFTER
    assert isinstance(opn.value.body, dict)
    assert opn.value.body["message"] == anthropic_error(429, "x")["error"]["message"]
    assert (opn.value.body["type"], opn.value.body["code"]) == ("requests",
                                                                "rate_limit_exceeded")
    assert opn.value.response.headers["retry-after"] == RETRY_AFTER
    assert [r.target for r in mock.requests] == ["/v1/chat/completions", "/v1/messages"]
    rows = proxy.rows()
    assert [(r["status"], r["outcome"]) for r in rows] == [(429, "upstream_error")] * 2


async def test_upstream_dying_mid_stream_ends_with_one_anthropic_error_event(
    proxy: RunningProxy, mock: MockUpstream
) -> None:
    body = {"model": CLAUDE, "max_tokens": 64, "stream": True,
            "messages": [{"role": "user", "content": "Hi"}]}
    with trio.fail_after(TIMEOUT):
        async with httpx.AsyncClient(base_url=proxy.url) as client:
            async with client.stream("POST", "/ant/v1/messages", json=body,
                                     headers={"x-mock-die-after": "3", "x-api-key": KEY}
                                     ) as response:
                raw = b"".join([chunk async for chunk in response.aiter_raw()])
        await proxy.stop()
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert len(mock.requests[0].sent) == 3  # role chunk and two text deltas
    frames = sse_frames(raw)
    assert [name for name, _ in frames] == [
        "message_start", "content_block_start", "content_block_delta",
        "content_block_delta", "error"]
    assert [d["delta"]["text"] for n, d in frames if n == "content_block_delta"] == list(
        OUTPUT_DELTAS[:2])
    _, error = frames[-1]
    assert error["type"] == "error"
    assert error["error"]["type"] == "api_error"
    assert "upstream" in error["error"]["message"]
    [row] = proxy.rows()
    assert (row["status"], row["outcome"], row["stream"]) == (200, "upstream_error", 1)


async def test_upstream_dying_mid_stream_ends_with_one_openai_error_chunk(
    proxy: RunningProxy, mock: MockUpstream
) -> None:
    body = {"model": GPT_CLIENT, "stream": True, "messages": [{"role": "user", "content": "Hi"}]}
    with trio.fail_after(TIMEOUT):
        async with httpx.AsyncClient(base_url=proxy.url) as client:
            async with client.stream("POST", "/oai/v1/chat/completions", json=body,
                                     headers={"x-mock-die-after": "4",
                                              "authorization": f"Bearer {KEY}"}) as response:
                raw = b"".join([chunk async for chunk in response.aiter_raw()])
    assert response.status_code == 200
    assert len(mock.requests[0].sent) == 4  # message_start, block start, ping, one delta
    frames = sse_frames(raw)
    assert all(name is None for name, _ in frames)
    chunks, (_, error) = [d for _, d in frames[:-1]], frames[-1]
    assert [c["choices"][0]["delta"] for c in chunks] == [
        {"role": "assistant", "content": ""}, {"content": OUTPUT_DELTAS[0]}]
    assert set(error) == {"error"}
    assert error["error"]["type"] == "server_error"
    assert "upstream" in error["error"]["message"]
    assert b"[DONE]" not in raw


async def test_anthropic_sdk_raises_when_upstream_dies_mid_stream(
    proxy: RunningProxy, mock: MockUpstream
) -> None:
    texts: list[str] = []

    async def consume(client: anthropic.AsyncAnthropic) -> None:
        async with client.messages.stream(
                model=CLAUDE, max_tokens=64, messages=[{"role": "user", "content": "Hi"}],
                extra_headers={"x-mock-die-after": "3"}) as stream:
            async for text in stream.text_stream:
                texts.append(text)

    with trio.fail_after(TIMEOUT):
        async with anthropic_client(proxy) as client:
            with pytest.raises(anthropic.APIStatusError) as info:
                await consume(client)
    assert texts == list(OUTPUT_DELTAS[:2])
    assert isinstance(info.value.body, dict)
    assert info.value.body["error"]["type"] == "api_error"


# -- OpenAI clients, Anthropic upstream ------------------------------------------------


async def test_openai_sdk_create_text(proxy: RunningProxy, mock: MockUpstream) -> None:
    with trio.fail_after(TIMEOUT):
        async with openai_client(proxy) as client:
            completion = await client.chat.completions.create(
                model=GPT_CLIENT, messages=[{"role": "system", "content": "Be brief."},
                                            {"role": "user", "content": "Hi"}])
        await proxy.stop()
    assert completion.id == "chatcmpl-01Mock" + "1".zfill(16)  # msg_01Mock<n>
    assert completion.model == GPT_CLIENT
    [choice] = completion.choices
    assert (choice.message.role, choice.message.content) == ("assistant", OUTPUT_TEXT)
    assert choice.finish_reason == "stop"
    usage = completion.usage
    assert usage is not None
    # OpenAI's prompt_tokens counts the cache reads and writes; Anthropic's input does not.
    assert usage.prompt_tokens == (ANTHROPIC_USAGE["input_tokens"]
                                   + ANTHROPIC_USAGE["cache_read_input_tokens"]
                                   + ANTHROPIC_USAGE["cache_creation_input_tokens"]) == 1565
    assert usage.completion_tokens == ANTHROPIC_USAGE["output_tokens"]
    assert usage.total_tokens == 1565 + 17
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == ANTHROPIC_USAGE["cache_read_input_tokens"]
    body = assert_anthropic_upstream_request(mock)
    assert body == {"model": CLAUDE_UPSTREAM, "max_tokens": 4096, "system": "Be brief.",
                    "messages": [{"role": "user", "content": "Hi"}]}
    [row] = proxy.rows()
    assert (row["path"], row["status"], row["outcome"], row["stream"]) == (
        "/oai/v1/chat/completions", 200, "ok", 0)
    assert row["model"] == CLAUDE_UPSTREAM
    assert tokens(row) == ANTHROPIC_UPSTREAM_TOKENS


async def test_openai_sdk_stream_text_with_usage(proxy: RunningProxy, mock: MockUpstream) -> None:
    with trio.fail_after(TIMEOUT):
        async with openai_client(proxy) as client:
            stream = await client.chat.completions.create(
                model=GPT_CLIENT, max_tokens=100, messages=[{"role": "user", "content": "Hi"}],
                stream=True, stream_options={"include_usage": True})
            chunks = [chunk async for chunk in stream]
        await proxy.stop()
    *choices, last = chunks
    assert "".join(c.choices[0].delta.content or "" for c in choices) == OUTPUT_TEXT
    assert choices[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in choices][-1] == "stop"
    assert all(c.usage is None for c in choices)
    assert all(c.model == GPT_CLIENT for c in chunks)
    assert last.choices == []
    assert last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (1565, 17)
    assert last.usage.prompt_tokens_details is not None
    assert last.usage.prompt_tokens_details.cached_tokens == 1200
    body = assert_anthropic_upstream_request(mock)
    assert (body["max_tokens"], body["stream"]) == (100, True)
    assert "stream_options" not in body
    [row] = proxy.rows()
    assert (row["status"], row["stream"], row["model"]) == (200, 1, CLAUDE_UPSTREAM)
    assert tokens(row) == ANTHROPIC_UPSTREAM_TOKENS


async def test_openai_sdk_stream_without_usage_has_no_usage_chunk(
    proxy: RunningProxy, mock: MockUpstream
) -> None:
    with trio.fail_after(TIMEOUT):
        async with openai_client(proxy) as client:
            stream = await client.chat.completions.create(
                model=GPT_CLIENT, messages=[{"role": "user", "content": "Hi"}], stream=True)
            chunks = [chunk async for chunk in stream]
    assert all(len(c.choices) == 1 for c in chunks)
    assert all(c.usage is None for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"


async def test_openai_sdk_stream_tool_calls_and_their_results(
    proxy: RunningProxy, mock: MockUpstream
) -> None:
    question = {"role": "user", "content": QUESTION}
    with trio.fail_after(TIMEOUT):
        async with openai_client(proxy) as client:
            stream = await client.chat.completions.create(
                model=GPT_CLIENT, messages=[question], tools=OPENAI_TOOLS,
                stream=True, stream_options={"include_usage": True},
                extra_headers={"x-mock-tools": "get_weather,get_time,get_weather"})
            chunks = [chunk async for chunk in stream]
            # Accumulate the tool calls as an OpenAI client does: by index.
            calls: dict[int, dict[str, Any]] = {}
            for chunk in chunks:
                for delta in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
                    call = calls.setdefault(delta.index, {"id": None, "name": None,
                                                          "arguments": ""})
                    if delta.id is not None:
                        call["id"] = delta.id
                    if delta.function is not None:
                        if delta.function.name is not None:
                            call["name"] = delta.function.name
                        call["arguments"] += delta.function.arguments or ""
            assistant = {"role": "assistant", "content": None, "tool_calls": [
                {"id": c["id"], "type": "function",
                 "function": {"name": c["name"], "arguments": c["arguments"]}}
                for _, c in sorted(calls.items())]}
            tool_messages = [{"role": "tool", "tool_call_id": c["id"], "content": f"result {k}"}
                             for k, c in sorted(calls.items())]
            follow_up = await client.chat.completions.create(
                model=GPT_CLIENT, tools=OPENAI_TOOLS,
                messages=[question, assistant, *tool_messages])
        await proxy.stop()
    sent = mock.requests[0].tool_calls
    assert [(k, c["id"], c["name"], json.loads(c["arguments"])) for k, c in sorted(calls.items())
            ] == [(0, sent[0].id, "get_weather", TOOL_INPUTS[0]),
                  (1, sent[1].id, "get_time", TOOL_INPUTS[1]),
                  (2, sent[2].id, "get_weather", TOOL_INPUTS[2])]
    assert sent[0].id.startswith("toolu_")
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "tool_calls"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == ANTHROPIC_USAGE["output_tokens"]
    first = assert_anthropic_upstream_request(mock, 0)
    assert first["tools"] == ANTHROPIC_TOOLS
    assert first["stream"] is True
    second = assert_anthropic_upstream_request(mock, 1)
    assert second["messages"] == [
        {"role": "user", "content": QUESTION},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": c.id, "name": c.name, "input": c.input} for c in sent]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": c.id, "content": f"result {k}"}
            for k, c in enumerate(sent)]},
    ]
    assert follow_up.choices[0].message.content == OUTPUT_TEXT  # the mock accepted the turns
    rows = proxy.rows()
    assert [(r["path"], r["status"], r["stream"]) for r in rows] == [
        ("/oai/v1/chat/completions", 200, 1), ("/oai/v1/chat/completions", 200, 0)]
    assert [tokens(r) for r in rows] == [ANTHROPIC_UPSTREAM_TOKENS] * 2


async def test_openai_sdk_create_tool_calls(proxy: RunningProxy, mock: MockUpstream) -> None:
    with trio.fail_after(TIMEOUT):
        async with openai_client(proxy) as client:
            completion = await client.chat.completions.create(
                model=GPT_CLIENT, tools=OPENAI_TOOLS,
                messages=[{"role": "user", "content": QUESTION}],
                extra_headers={**TWO_TOOLS, "x-mock-tools-text": "1"})
    sent = mock.requests[0].tool_calls
    [choice] = completion.choices
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == OUTPUT_TEXT
    calls = choice.message.tool_calls or []
    assert [(c.id, c.type, c.function.name, json.loads(c.function.arguments))
            for c in calls] == [(sent[0].id, "function", "get_weather", TOOL_INPUTS[0]),
                                (sent[1].id, "function", "get_time", TOOL_INPUTS[1])]


# -- JSON nested too deeply for the json module and the translators (about 1,000) -----

DEEP = "[" * 5000 + "]" * 5000


@pytest.mark.parametrize(("path", "body"), [
    ("/ant/v1/messages", json.dumps({
        "model": CLAUDE, "max_tokens": 5, "messages": [{"role": "user", "content": "x"}],
        "metadata": {"x": 0}}).replace("0", DEEP)),
    ("/ant/v1/messages/count_tokens", json.dumps({
        "model": CLAUDE, "messages": [{"role": "user", "content": "x"}],
        "tools": [{"name": "f", "input_schema": {"x": 0}}]}).replace("0", DEEP)),
    ("/oai/v1/chat/completions", json.dumps({
        "model": GPT_CLIENT, "messages": [{"role": "user", "content": "x"}],
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"x": 0}}}],
    }).replace("0", DEEP)),
], ids=["messages", "count_tokens", "chat"])
async def test_a_request_nested_too_deeply_is_a_400_not_a_lost_connection(
    proxy: RunningProxy, mock: MockUpstream, path: str, body: str
) -> None:
    with trio.fail_after(TIMEOUT):
        async with httpx.AsyncClient(base_url=proxy.url) as client:
            response = await client.post(path, content=body, headers={
                "content-type": "application/json", "x-api-key": KEY})
            # the connection still serves the next request
            models = await client.get("/ant/v1/models", headers={"x-api-key": KEY})
        await proxy.stop()
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert "nested too deeply" in message
    assert models.status_code == 200
    assert [r.target for r in mock.requests] == ["/v1/models"]
    assert [(r["path"], r["status"]) for r in proxy.rows()] == [
        (path, 400), ("/ant/v1/models", 200)]
