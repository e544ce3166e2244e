"""The optimize layer in the real proxy: what the upstream receives in "on" and "dry-run"
mode, what the client gets back, and the ledger's rewrite columns.

The rewriting itself is tested alone in tests/test_optimize.py; here the questions are
the glue's: which requests are looked at, which bytes are sent, what is recorded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest
import trio

from tests.cache_sim import validate
from tests.conftest import RunningProxy, proxy_config
from tests.mock_upstream import OUTPUT_TEXT, MockUpstream
from tests.transcripts import generate_session

TIMEOUT = 10
FILE = "def handler(event):\n    return event\n" * 120  # ~4.6 KB, read twice below
TOOLS = [
    {"name": name, "description": f"The {name} tool. " + "It does one thing well. " * 40,
     "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}}}
    for name in ("Read", "Grep", "Bash")
]
SYSTEM = "You are a careful coding agent. " * 400  # ~12.8 KB: over any minimum cacheable length


def agent_request(**extra: Any) -> dict[str, Any]:
    """A Claude Code style turn: tools, a long system prompt, the same file read twice."""
    read = [{"type": "tool_use", "id": "toolu_01", "name": "Read", "input": {"path": "a.py"}}]
    again = [{"type": "tool_use", "id": "toolu_02", "name": "Read", "input": {"path": "a.py"}}]
    return {
        "model": "claude-sonnet-4-6", "max_tokens": 512, "tools": TOOLS, "system": SYSTEM,
        "messages": [
            {"role": "user", "content": "Look at a.py"},
            {"role": "assistant", "content": read},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01", "content": FILE}]},
            {"role": "assistant", "content": again},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_02", "content": FILE}]},
        ],
        **extra,
    }


def count_breakpoints(value: Any) -> int:
    if isinstance(value, dict):
        return ("cache_control" in value) + sum(count_breakpoints(v) for v in value.values())
    if isinstance(value, list):
        return sum(count_breakpoints(v) for v in value)
    return 0


async def start(nursery: trio.Nursery, tmp_path: Path, mock: MockUpstream, mode: str
                ) -> RunningProxy:
    config = proxy_config(tmp_path, mock.url, routes=[
        {"prefix": "/", "upstream": mock.url, "flavour": "anthropic",
         "optimize": {"mode": mode}},
    ])
    return await RunningProxy(config).start(nursery)


async def test_on_mode_sends_breakpoints_and_one_copy_and_records_it(
    nursery: trio.Nursery, mock: MockUpstream, tmp_path: Path
) -> None:
    proxy = await start(nursery, tmp_path, mock, "on")
    sent = json.dumps(agent_request()).encode()
    with trio.fail_after(TIMEOUT):
        async with httpx.AsyncClient(base_url=proxy.url) as client:
            response = await client.post("/v1/messages", content=sent,
                                         headers={"content-type": "application/json"})
        await proxy.stop()
    assert response.status_code == 200
    assert response.json()["content"][0]["text"] == OUTPUT_TEXT
    received = mock.requests[0].json
    assert 1 <= count_breakpoints(received) <= 4  # Anthropic allows at most 4
    assert count_breakpoints(agent_request()) == 0
    text = json.dumps(received)
    assert text.count(json.dumps(FILE)[1:-1]) == 1  # the second read became a reference
    # The pairing the API checks is intact.
    assert received["messages"][4]["content"][0]["tool_use_id"] == "toolu_02"
    assert len(mock.requests[0].body) < len(sent)
    [row] = proxy.rows()
    assert row["rewrite"] == "on"
    assert row["breakpoints_added"] == count_breakpoints(received)
    assert row["blocks_deduped"] == 1
    assert row["bytes_removed"] > len(FILE) // 2
    assert row["tokens_removed_estimate"] > 0
    assert row["bytes_in"] == len(sent)  # what the client sent, not what went upstream


async def test_on_mode_keeps_integers_beyond_64_bits_exact(
    nursery: trio.Nursery, mock: MockUpstream, tmp_path: Path
) -> None:
    # A tool input may hold any JSON number (an amount in wei, a 128-bit id); the
    # rewrite re-encodes the whole body and must send each one as the client wrote it.
    request = agent_request()
    amount = 123456789012345678901234567890
    request["messages"][1]["content"][0]["input"] = {"path": "a.py", "amount": amount}
    sent = json.dumps(request).encode()
    with trio.fail_after(TIMEOUT):
        proxy = await start(nursery, tmp_path, mock, "on")
        async with httpx.AsyncClient(base_url=proxy.url) as client:
            response = await client.post("/v1/messages", content=sent,
                                         headers={"content-type": "application/json"})
        await proxy.stop()
    assert response.status_code == 200
    received = mock.requests[0]
    assert count_breakpoints(received.json) >= 1  # it was rewritten
    assert b'"amount":123456789012345678901234567890' in received.body
    assert received.json["messages"][1]["content"][0]["input"]["amount"] == amount


async def test_dry_run_forwards_the_clients_bytes_and_records_what_it_would_do(
    nursery: trio.Nursery, mock: MockUpstream, tmp_path: Path
) -> None:
    proxy = await start(nursery, tmp_path, mock, "dry-run")
    sent = json.dumps(agent_request(), indent=1).encode()  # odd formatting kept byte for byte
    with trio.fail_after(TIMEOUT):
        async with httpx.AsyncClient(base_url=proxy.url) as client:
            response = await client.post("/v1/messages", content=sent,
                                         headers={"content-type": "application/json"})
        await proxy.stop()
    assert response.status_code == 200
    assert mock.requests[0].body == sent
    [row] = proxy.rows()
    assert row["rewrite"] == "dry-run"
    assert row["breakpoints_added"] >= 1
    assert row["blocks_deduped"] == 1


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/messages/count_tokens", json.dumps(agent_request()).encode()),  # not billed
        ("/v1/messages", b"{not json"),  # left for the upstream to refuse
    ],
)
async def test_requests_the_layer_does_not_touch(
    nursery: trio.Nursery, mock: MockUpstream, tmp_path: Path, path: str, body: bytes
) -> None:
    proxy = await start(nursery, tmp_path, mock, "on")
    with trio.fail_after(TIMEOUT):
        async with httpx.AsyncClient(base_url=proxy.url) as client:
            await client.post(path, content=body, headers={"content-type": "application/json"})
        await proxy.stop()
    assert mock.requests[0].body == body
    [row] = proxy.rows()
    assert row["rewrite"] is None


async def test_a_clients_own_breakpoints_are_kept_and_the_sdk_gets_its_answer(
    nursery: trio.Nursery, mock: MockUpstream, tmp_path: Path
) -> None:
    proxy = await start(nursery, tmp_path, mock, "on")
    request = agent_request()
    request["system"] = [{"type": "text", "text": SYSTEM,
                          "cache_control": {"type": "ephemeral", "ttl": "1h"}}]
    with trio.fail_after(TIMEOUT):
        async with anthropic.AsyncAnthropic(base_url=proxy.url, api_key="sk-test",
                                            max_retries=0) as client:
            message = await client.messages.create(**request)
        await proxy.stop()
    assert message.content[0].text == OUTPUT_TEXT
    received = mock.requests[0].json
    assert received["system"][0]["cache_control"] == {"type": "ephemeral", "ttl": "1h"}
    assert count_breakpoints(received) <= 4
    [row] = proxy.rows()
    assert row["breakpoints_added"] == count_breakpoints(received) - 1


@pytest.mark.parametrize("style", ["none", "claude_code"])
async def test_a_whole_agent_session_stays_valid_and_answers_the_same(
    nursery: trio.Nursery, mock: MockUpstream, tmp_path: Path, style: str
) -> None:
    """A generated 24-turn Claude Code session through two routes, layer off and on: the
    mock upstream (which refuses what the Messages API refuses, >4 breakpoints included)
    accepts every rewritten turn, and the answers are the ones the plain route gets."""
    config = proxy_config(tmp_path, mock.url, routes=[
        {"prefix": "/off", "upstream": mock.url, "flavour": "anthropic"},
        {"prefix": "/on", "upstream": mock.url, "flavour": "anthropic",
         "optimize": {"mode": "on"}},
    ])
    proxy = await RunningProxy(config).start(nursery)
    session = generate_session(24, seed=3, cache=style)
    answers: dict[str, list[Any]] = {"/off": [], "/on": []}
    with trio.fail_after(60):
        async with httpx.AsyncClient(base_url=proxy.url, timeout=30) as client:
            for streamed in session.requests:
                request = {**streamed, "stream": False}  # Claude Code streams; JSON is simpler
                for route in answers:
                    response = await client.post(f"{route}/v1/messages", json=request)
                    assert response.status_code == 200, response.text
                    body = response.json()
                    answers[route].append((body["content"], body["stop_reason"]))
        await proxy.stop()
    assert answers["/on"] == answers["/off"]
    rewritten = [r.json for r in mock.requests[1::2]]
    assert all(validate(r) == [] for r in rewritten)
    assert sum(count_breakpoints(r) for r in rewritten) > len(rewritten)  # more than 1 each
    rows = proxy.rows()
    assert [r["rewrite"] for r in rows] == [None, "on"] * len(session.requests)
    assert sum(r["blocks_deduped"] or 0 for r in rows) > 0
