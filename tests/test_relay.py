"""Through the real proxy, with real clients: bodies byte for byte, headers, ledger counts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
import trio

from tests.conftest import RunningProxy, proxy_config
from tests.mock_upstream import (
    ANTHROPIC_USAGE,
    EMBEDDINGS_USAGE,
    OPENAI_USAGE,
    OUTPUT_TEXT,
    RESPONSES_USAGE,
    MockUpstream,
)

ANTHROPIC_TOKENS = (
    ANTHROPIC_USAGE["input_tokens"],
    ANTHROPIC_USAGE["output_tokens"],
    ANTHROPIC_USAGE["cache_read_input_tokens"],
    ANTHROPIC_USAGE["cache_creation_input_tokens"],
)
CHAT_TOKENS = (
    OPENAI_USAGE["prompt_tokens"], OPENAI_USAGE["completion_tokens"],
    OPENAI_USAGE["cached_tokens"], None,
)
# Legacy completions report no prompt_tokens_details.
COMPLETION_TOKENS = (OPENAI_USAGE["prompt_tokens"], OPENAI_USAGE["completion_tokens"], None, None)
RESPONSES_TOKENS = (
    RESPONSES_USAGE["input_tokens"], RESPONSES_USAGE["output_tokens"],
    RESPONSES_USAGE["cached_tokens"], None,
)
EMBEDDING_TOKENS = (EMBEDDINGS_USAGE["prompt_tokens"], None, None, None)

MESSAGES = {"model": "claude-sonnet-4-6", "max_tokens": 64,
            "messages": [{"role": "user", "content": "hi"}]}
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}

# (client path, upstream path, body, stream body extras, expected tokens)
ENDPOINTS = [
    ("/v1/messages?beta=true", "/v1/messages?beta=true", MESSAGES, {"stream": True},
     ANTHROPIC_TOKENS),
    ("/openai/v1/chat/completions", "/v1/chat/completions", CHAT,
     {"stream": True, "stream_options": {"include_usage": True}}, CHAT_TOKENS),
    ("/openai/v1/completions", "/v1/completions", {"model": "gpt-3.5-turbo-instruct",
     "prompt": "hi"}, {"stream": True, "stream_options": {"include_usage": True}},
     COMPLETION_TOKENS),
    ("/openai/v1/responses", "/v1/responses", {"model": "gpt-4o-mini", "input": "hi"},
     {"stream": True}, RESPONSES_TOKENS),
]


def tokens(row: dict[str, Any]) -> tuple[int | None, ...]:
    return (row["input_tokens"], row["output_tokens"], row["cache_read_tokens"],
            row["cache_write_tokens"])


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize(("path", "upstream_path", "body", "extra", "expected"), ENDPOINTS)
async def test_bodies_are_relayed_byte_for_byte_and_counted(
    proxy: RunningProxy, mock: MockUpstream, stream: bool, path: str, upstream_path: str,
    body: dict, extra: dict, expected: tuple,
) -> None:
    payload = {**body, **extra} if stream else body
    async with httpx.AsyncClient(base_url=proxy.url) as client:
        async with client.stream("POST", path, json=payload) as response:
            received = b"".join([chunk async for chunk in response.aiter_raw()])
    sent = mock.requests[-1]
    assert response.status_code == 200
    assert sent.target == upstream_path
    assert received == b"".join(sent.sent)
    assert response.headers["content-type"].startswith(
        "text/event-stream" if stream else "application/json"
    )
    await proxy.stop()
    [row] = proxy.rows()
    assert tokens(row) == expected
    assert (row["status"], row["outcome"], row["stream"]) == (200, "ok", int(stream))
    assert row["model"] == payload["model"]
    assert row["bytes_out"] == len(received)
    assert row["bytes_in"] == len(sent.body)
    assert row["scan_complete"] == 1


async def test_embeddings_are_relayed_and_counted(proxy: RunningProxy, mock: MockUpstream):
    async with httpx.AsyncClient(base_url=proxy.url) as client:
        response = await client.post(
            "/openai/v1/embeddings", json={"model": "text-embedding-3-small", "input": "hi"}
        )
    assert response.status_code == 200
    assert response.content == b"".join(mock.requests[-1].sent)
    await proxy.stop()
    [row] = proxy.rows()
    assert tokens(row) == EMBEDDING_TOKENS
    assert row["model"] == "text-embedding-3-small"


async def test_stream_chunks_reach_the_client_before_upstream_finishes(
    proxy: RunningProxy, mock: MockUpstream
) -> None:
    """The mock sends events up to the first delta, then holds: those events must arrive."""
    async with httpx.AsyncClient(base_url=proxy.url) as client:
        async with client.stream(
            "POST", "/v1/messages", json={**MESSAGES, "stream": True},
            headers={"x-mock-hold": "1"},
        ) as response:
            seen = b""
            chunks = response.aiter_raw()
            while b"content_block_delta" not in seen:
                seen += await anext(chunks)
            sent_so_far = b"".join(mock.requests[-1].sent)
            assert seen == sent_so_far
            assert not mock.requests[-1].completed
            mock.release.set()
            rest = b"".join([chunk async for chunk in chunks])
    assert seen + rest == b"".join(mock.requests[-1].sent)


async def test_anthropic_sdk_through_the_proxy(proxy: RunningProxy, mock: MockUpstream):
    client = anthropic.AsyncAnthropic(base_url=proxy.url, api_key="sk-ant-test", max_retries=0)
    message = await client.messages.create(**MESSAGES)
    assert message.content[0].text == OUTPUT_TEXT
    assert message.usage.input_tokens == ANTHROPIC_USAGE["input_tokens"]
    async with client.messages.stream(**MESSAGES) as stream:
        text = "".join([piece async for piece in stream.text_stream])
        final = await stream.get_final_message()
    assert text == OUTPUT_TEXT
    assert final.usage.output_tokens == ANTHROPIC_USAGE["output_tokens"]
    await client.close()
    await proxy.stop()
    rows = proxy.rows()
    assert [r["stream"] for r in rows] == [0, 1]
    assert [tokens(r) for r in rows] == [ANTHROPIC_TOKENS, ANTHROPIC_TOKENS]
    assert all(r["stop_reason"] == "end_turn" for r in rows)


async def test_openai_sdk_through_the_proxy(proxy: RunningProxy, mock: MockUpstream):
    client = openai.AsyncOpenAI(base_url=proxy.url + "/openai/v1", api_key="sk-test",
                                max_retries=0)
    chat = await client.chat.completions.create(**CHAT)
    assert chat.choices[0].message.content == OUTPUT_TEXT
    stream = await client.chat.completions.create(
        **CHAT, stream=True, stream_options={"include_usage": True}
    )
    pieces = [c.choices[0].delta.content or "" async for c in stream if c.choices]
    assert "".join(pieces) == OUTPUT_TEXT
    embedding = await client.embeddings.create(model="text-embedding-3-small", input="hi")
    assert len(embedding.data[0].embedding) == 8
    response = await client.responses.create(model="gpt-4o-mini", input="hi")
    assert response.output_text == OUTPUT_TEXT
    events = await client.responses.create(model="gpt-4o-mini", input="hi", stream=True)
    kinds = [event.type async for event in events]
    assert kinds[-1] == "response.completed"
    await client.close()
    await proxy.stop()
    rows = proxy.rows()
    assert [tokens(r) for r in rows] == [
        CHAT_TOKENS, CHAT_TOKENS, EMBEDDING_TOKENS, RESPONSES_TOKENS, RESPONSES_TOKENS
    ]
    assert [r["path"] for r in rows] == [
        "/openai/v1/chat/completions", "/openai/v1/chat/completions", "/openai/v1/embeddings",
        "/openai/v1/responses", "/openai/v1/responses",
    ]


async def test_keep_alive_serves_many_requests_on_one_connection_each_side(
    proxy: RunningProxy, mock: MockUpstream, transport: str
) -> None:
    async with httpx.AsyncClient(base_url=proxy.url) as client:
        for _ in range(5):
            response = await client.post("/v1/messages", json=MESSAGES)
            assert response.status_code == 200
            streamed = {**MESSAGES, "stream": True}
            async with client.stream("POST", "/v1/messages", json=streamed) as r:
                await r.aread()
    assert len(mock.requests) == 10
    # The proxy reused one upstream connection for all of them.
    assert {r.connection_id for r in mock.requests} == {1}
    assert mock.connections == 1


async def test_headers_end_to_end_pass_and_hop_by_hop_stop(
    proxy: RunningProxy, mock: MockUpstream
) -> None:
    beta = ("claude-code-20250219,interleaved-thinking-2025-05-14,"
            "fine-grained-tool-streaming-2025-05-14")
    sent_headers = {
        "x-api-key": "sk-ant-api03-SECRET",
        "authorization": "Bearer sk-ant-oat01-SECRET",
        "anthropic-version": "2023-06-01",
        "anthropic-beta": beta,
        "x-custom": "kept",
        "connection": "keep-alive, x-hop",
        "x-hop": "dropped because Connection names it",
        "keep-alive": "timeout=5",
        "te": "trailers",
        "proxy-authorization": "Basic dropped",
        "upgrade": "h2c",
    }
    async with httpx.AsyncClient(base_url=proxy.url) as client:
        response = await client.post("/v1/messages?beta=true", json=MESSAGES,
                                     headers=sent_headers)
    assert response.status_code == 200
    got = mock.requests[-1]
    assert got.target == "/v1/messages?beta=true"
    for name in ("x-api-key", "authorization", "anthropic-version", "anthropic-beta", "x-custom"):
        assert got.header(name) == sent_headers[name]
    for name in ("x-hop", "keep-alive", "te", "proxy-authorization", "upgrade"):
        assert got.header(name) is None, name
    assert got.header("connection") in (None, "keep-alive")
    assert got.header("host") == mock.url.split("//")[1]
    # Response: upstream's own headers arrive, hop-by-hop ones do not.
    assert response.headers["request-id"]
    assert "keep-alive" not in response.headers
    await proxy.stop()
    [row] = proxy.rows()
    assert row["client_key_hash"].startswith("k_")
    assert "SECRET" not in json.dumps(row)


async def test_client_key_hash_is_stable_per_key(proxy: RunningProxy, mock: MockUpstream):
    async with httpx.AsyncClient(base_url=proxy.url) as client:
        for key in ("sk-one", "sk-two", "sk-one"):
            await client.post("/v1/messages", json=MESSAGES, headers={"x-api-key": key})
        await client.post("/v1/messages", json=MESSAGES)
    await proxy.stop()
    hashes = [row["client_key_hash"] for row in proxy.rows()]
    assert hashes[0] == hashes[2] != hashes[1]
    assert hashes[3] is None


async def test_a_refused_request_names_its_key_in_the_ledger(
    nursery: trio.Nursery, mock: MockUpstream, tmp_path: Path
) -> None:
    config = proxy_config(tmp_path, mock.url, limits={"max_body_size": 100})
    proxy = await RunningProxy(config).start(nursery)
    async with httpx.AsyncClient(base_url=proxy.url) as client:
        refused = await client.post(
            "/v1/messages", content=b"x" * 101, headers={"x-api-key": "sk-big"}
        )
        relayed = await client.post("/v1/messages", json=MESSAGES, headers={"x-api-key": "sk-big"})
    assert (refused.status_code, relayed.status_code) == (413, 200)
    assert len(mock.requests) == 1  # the refused request never went upstream
    await proxy.stop()
    refused_row, relayed_row = proxy.rows()
    assert refused_row["outcome"] == "client_error"
    assert refused_row["client_key_hash"] == relayed_row["client_key_hash"]
    assert refused_row["client_key_hash"].startswith("k_")


@pytest.mark.parametrize("method", ["GET", "DELETE", "PUT", "HEAD", "OPTIONS"])
async def test_any_method_and_path_is_forwarded(
    proxy: RunningProxy, mock: MockUpstream, method: str
) -> None:
    async with httpx.AsyncClient(base_url=proxy.url) as client:
        response = await client.request(method, "/v1/anything/else?x=1&y=%20")
    got = mock.requests[-1]
    assert (got.method, got.target) == (method, "/v1/anything/else?x=1&y=%20")
    assert response.status_code == 404
    if method != "HEAD":
        assert response.content == b"".join(got.sent)
    await proxy.stop()
    [row] = proxy.rows()
    assert (row["method"], row["status"], row["outcome"]) == (method, 404, "upstream_error")


async def test_upstream_error_status_and_body_pass_through(
    proxy: RunningProxy, mock: MockUpstream
) -> None:
    async with httpx.AsyncClient(base_url=proxy.url) as client:
        response = await client.post("/v1/messages", json=MESSAGES,
                                     headers={"x-mock-status": "429"})
    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    assert response.content == b"".join(mock.requests[-1].sent)
    assert response.json()["error"]["type"] == "rate_limit_error"
    await proxy.stop()
    [row] = proxy.rows()
    assert (row["status"], row["outcome"]) == (429, "upstream_error")
    assert "rate_limit_error" in row["error"]


async def test_large_request_body_is_forwarded_intact(proxy: RunningProxy, mock: MockUpstream):
    big = {**MESSAGES, "messages": [{"role": "user", "content": "x" * 3_000_000}]}
    raw = json.dumps(big).encode()

    async def chunked():
        for i in range(0, len(raw), 65536):
            yield raw[i:i + 65536]
            await trio.lowlevel.checkpoint()

    async with httpx.AsyncClient(base_url=proxy.url) as client:
        response = await client.post("/v1/messages", content=chunked(),
                                     headers={"content-type": "application/json"})
    assert response.status_code == 200
    assert mock.requests[-1].body == raw
    assert mock.requests[-1].header("content-length") == str(len(raw))
