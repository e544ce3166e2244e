"""Server behaviour over raw sockets: 100-continue, pipelining, failures kept to one connection."""

from __future__ import annotations

import json

import httpx
import pytest
import trio

from tests.conftest import RunningProxy
from tests.mock_upstream import MockUpstream

BODY = json.dumps({"model": "claude-sonnet-4-6", "max_tokens": 5,
                   "messages": [{"role": "user", "content": "hi"}]}).encode()


async def read_until(stream: trio.SocketStream, marker: bytes, data: bytes = b"") -> bytes:
    while marker not in data:
        chunk = await stream.receive_some(65536)
        if not chunk:
            break
        data += chunk
    return data


async def connect(proxy: RunningProxy) -> trio.SocketStream:
    assert proxy.server is not None
    return await trio.open_tcp_stream("127.0.0.1", proxy.server.port)


def head(extra: str = "", length: int = len(BODY)) -> bytes:
    return (
        f"POST /v1/messages HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        f"content-length: {length}\r\n{extra}\r\n"
    ).encode()


async def test_expect_100_continue_gets_100_then_the_answer(
    proxy: RunningProxy, mock: MockUpstream
) -> None:
    stream = await connect(proxy)
    await stream.send_all(head("expect: 100-continue\r\n"))
    interim = await read_until(stream, b"\r\n\r\n")
    assert interim.startswith(b"HTTP/1.1 100 ")
    await stream.send_all(BODY)
    answer = await read_until(stream, b'"end_turn"')
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert mock.requests[-1].body == BODY
    assert mock.requests[-1].header("expect") is None  # the proxy sends the body at once
    await stream.aclose()


async def test_pipelined_requests_are_answered_in_order(
    proxy: RunningProxy, mock: MockUpstream
) -> None:
    stream = await connect(proxy)
    await stream.send_all((head() + BODY) * 3)
    data = b""
    while data.count(b"HTTP/1.1 200 ") < 3 or data.count(b"end_turn") < 3:
        chunk = await stream.receive_some(65536)
        assert chunk, "connection closed early"
        data += chunk
    assert len(mock.requests) == 3
    await stream.aclose()


async def test_a_failing_connection_does_not_take_the_server_down(
    proxy: RunningProxy, mock: MockUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert proxy.server is not None
    relay = proxy.server.proxy.relay
    real_run = relay.run

    async def run(client, exchange, record):
        if exchange.target.startswith(b"/boom"):
            async with trio.open_nursery() as nursery:  # an ExceptionGroup, as from a child
                nursery.start_soon(trio.sleep, 0)
                raise RuntimeError("bug")
        return await real_run(client, exchange, record)

    monkeypatch.setattr(relay, "run", run)
    async with httpx.AsyncClient(base_url=proxy.url) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.post("/boom", content=b"{}")
        response = await client.post("/v1/messages", content=BODY)
    assert response.status_code == 200
    await proxy.stop()
    rows = proxy.rows()
    assert [r["path"] for r in rows] == ["/boom", "/v1/messages"]


async def test_serve_reports_the_bound_port(proxy: RunningProxy) -> None:
    assert proxy.server is not None
    assert proxy.server.port > 0
    assert proxy.url == f"http://127.0.0.1:{proxy.server.port}"
