"""Server behaviour over raw sockets: 100-continue, pipelining, failures kept to one connection."""

from __future__ import annotations

import json
import logging
import socket
import struct
from functools import partial

import httpx
import pytest
import trio
import trio.testing

from tests.conftest import RunningProxy, proxy_config
from tests.mock_upstream import MockUpstream, answer_on_head

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


async def test_a_request_sent_while_a_relay_waits_is_answered_after_it(
    proxy: RunningProxy, mock: MockUpstream
) -> None:
    # The first relay waits for upstream, so the connection's reader watches the client
    # meanwhile: it must keep the second request for later, not mistake it for anything.
    chat = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
    second = (
        f"POST /openai/v1/chat/completions HTTP/1.1\r\nhost: x\r\n"
        f"content-type: application/json\r\ncontent-length: {len(chat)}\r\n\r\n{chat}"
    ).encode()
    with trio.fail_after(10):
        stream = await connect(proxy)
        await stream.send_all(head("x-mock-hold: 1\r\n") + BODY)
        await trio.testing.wait_all_tasks_blocked()
        assert len(mock.requests) == 1  # held before its head
        await stream.send_all(second)
        await trio.testing.wait_all_tasks_blocked()
        assert len(mock.requests) == 1  # the second waits for the first's answer
        mock.release.set()
        data = await read_until(stream, b"chat.completion\"")
    first_at, second_at = data.find(b'"end_turn"'), data.find(b"chat.completion")
    assert 0 < first_at < second_at
    assert data.count(b"HTTP/1.1 200 ") == 2
    assert [r.path for r in mock.requests] == ["/v1/messages", "/v1/chat/completions"]
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


BIG = 64 * 1024 * 1024


async def endless_upstream(stream: trio.SocketStream) -> None:
    """Answers any request with a 64 MiB body, written as fast as the peer takes it."""
    await stream.receive_some(65536)
    head = (
        "HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\n"
        f"content-length: {BIG}\r\n\r\n"
    )
    await stream.send_all(head.encode())
    block = b"x" * 65536
    try:
        for _ in range(BIG // len(block)):
            await stream.send_all(block)
    except trio.BrokenResourceError:
        pass


@pytest.fixture
def slow_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0.05)


async def test_a_client_that_stops_reading_is_cut_after_the_idle_timeout(
    nursery: trio.Nursery, tmp_path, slow_clock
) -> None:
    listeners = await nursery.start(partial(trio.serve_tcp, endless_upstream, 0, host="127.0.0.1"))
    port = listeners[0].socket.getsockname()[1]
    config = proxy_config(tmp_path, f"http://127.0.0.1:{port}", timeouts={"idle": "7s"})
    proxy = await RunningProxy(config).start(nursery)
    stream = await connect(proxy)
    await stream.send_all(b"GET /blob HTTP/1.1\r\nhost: x\r\n\r\n")
    # Read nothing for a while (virtual time): the proxy's writes block once the
    # socket buffers are full, and it gives up 7 s later.
    await trio.sleep(20)
    assert proxy.server is not None
    assert proxy.server.open_connections == 0
    await stream.aclose()
    await proxy.stop()
    [row] = proxy.rows()
    assert row["outcome"] == "client_error"
    assert "client read nothing for 7s" in row["error"]
    assert 0 < row["bytes_out"] < BIG
    assert 7000 <= row["duration_ms"] < 8000  # virtual time: the idle timeout, not more


async def test_a_malformed_head_never_echoes_the_bytes_that_hold_a_key(
    proxy: RunningProxy, caplog: pytest.LogCaptureFixture
) -> None:
    stream = await connect(proxy)
    await stream.send_all(
        b"POST /v1/messages HTTP/1.1\r\nhost: x\r\nX-Api-Key : sk-ant-api03-SECRET\r\n\r\n"
    )
    answer = await read_until(stream, b"}")
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert b"illegal header line" in answer
    assert b"SECRET" not in answer
    assert "SECRET" not in caplog.text
    await stream.aclose()


async def test_read_ahead_during_a_relay_is_bounded(
    proxy: RunningProxy, mock: MockUpstream
) -> None:
    """A client that keeps sending while its stream runs is not buffered without limit."""
    assert proxy.server is not None
    stream = await connect(proxy)
    body = json.dumps({"model": "m", "max_tokens": 5, "stream": True, "messages": []}).encode()
    await stream.send_all(head("x-mock-hold: 1\r\n", len(body)) + body)
    await read_until(stream, b"content_block_delta")
    flood = b"x" * 65536

    async def push() -> None:
        with trio.move_on_after(5):
            while True:
                await stream.send_all(flood)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(push)
        await trio.testing.wait_all_tasks_blocked(cushion=0.05)
        [client] = proxy.server._connections
        buffered = len(client.conn.trailing_data[0])
        assert buffered <= proxy.config.limits.max_header_size + 65536
        nursery.cancel_scope.cancel()
    mock.release.set()
    await stream.aclose()


async def early_401_upstream(stream: trio.SocketStream) -> None:
    """Answers 401 as soon as the head arrives, without reading the body, then closes."""
    body = b'{"type":"error","error":{"type":"authentication_error","message":"bad key"}}'
    await answer_on_head(stream, b"401 Unauthorized", body, b"connection: close\r\n")
    await stream.aclose()


async def test_an_early_upstream_answer_reaches_the_client(
    nursery: trio.Nursery, tmp_path, transport: str
) -> None:
    listeners = await nursery.start(
        partial(trio.serve_tcp, early_401_upstream, 0, host="127.0.0.1")
    )
    port = listeners[0].socket.getsockname()[1]
    config = proxy_config(tmp_path, f"http://127.0.0.1:{port}", transport=transport)
    proxy = await RunningProxy(config).start(nursery)
    async with httpx.AsyncClient(base_url=proxy.url) as client:
        response = await client.post("/v1/messages", content=b"x" * (8 << 20))
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"


async def head_with_body_upstream(stream: trio.SocketStream) -> None:
    """A buggy upstream: answers HEAD with a body, keeps the connection open."""
    try:
        while True:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = await stream.receive_some(65536)
                if not chunk:
                    return
                data += chunk
            await stream.send_all(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello")
    except trio.BrokenResourceError:
        pass


async def test_leftover_bytes_never_answer_the_next_request(
    nursery: trio.Nursery, tmp_path
) -> None:
    listeners = await nursery.start(
        partial(trio.serve_tcp, head_with_body_upstream, 0, host="127.0.0.1")
    )
    port = listeners[0].socket.getsockname()[1]
    proxy = await RunningProxy(proxy_config(tmp_path, f"http://127.0.0.1:{port}")).start(nursery)
    async with httpx.AsyncClient(base_url=proxy.url) as client:
        first = await client.head("/x")
        second = await client.post("/x", content=b"{}")  # a POST is never retried
    assert first.status_code == 200
    assert (second.status_code, second.content) == (200, b"hello")


async def test_no_task_outlives_its_connection(proxy: RunningProxy, mock: MockUpstream) -> None:
    """Connection tasks and their readers share the server's nursery: every way a
    connection ends (client close, client reset, a 400, "connection: close" with a
    parked reader, an early 413 with a lingering close) leaves no task behind."""
    assert proxy.server is not None
    nursery = proxy.server._nursery
    assert nursery is not None
    # client closes after one answer
    stream = await connect(proxy)
    await stream.send_all(head() + BODY)
    await read_until(stream, b'"end_turn"')
    await stream.aclose()
    # client resets mid-head
    stream = await connect(proxy)
    await stream.send_all(b"POST /v1/messages HTTP/1.1\r\nhost: x\r\n")
    await trio.testing.wait_all_tasks_blocked()
    await trio.aclose_forcefully(stream)
    # a 400, which the proxy closes
    stream = await connect(proxy)
    await stream.send_all(b"NOT HTTP\r\n\r\n")
    assert (await read_until(stream, b"}")).startswith(b"HTTP/1.1 400 ")
    await stream.aclose()
    # a good request, then more garbage than the read-ahead cap: the reader parks,
    # the garbage gets a 400, and the close wakes the parked reader
    stream = await connect(proxy)
    await stream.send_all(head() + BODY + b"X" * (proxy.config.limits.max_header_size * 2))
    answer = await read_until(stream, b"HTTP/1.1 400 ")
    assert answer.startswith(b"HTTP/1.1 200 ")
    await stream.aclose()
    # "connection: close", then more than the read-ahead cap: the reader parks, and the
    # close after the answer wakes it
    stream = await connect(proxy)
    flood = b"X" * (proxy.config.limits.max_header_size * 2)
    await stream.send_all(head("connection: close\r\n") + BODY + flood)
    assert (await read_until(stream, b'"end_turn"')).startswith(b"HTTP/1.1 200 ")
    await stream.aclose()
    # an early 413 while the client still sends: the proxy drains, then closes
    stream = await connect(proxy)
    await stream.send_all(head(length=100 * 1024 * 1024) + b"x" * 65536)
    answer = await read_until(stream, b"}")
    assert answer.startswith(b"HTTP/1.1 413 ")
    await stream.aclose()
    await trio.testing.wait_all_tasks_blocked(cushion=0.1)
    assert proxy.server.open_connections == 0
    assert nursery.child_tasks == set()


def connect_and_send(proxy: RunningProxy, data: bytes) -> socket.socket:
    """Connect and send without yielding to trio: `data` is there before the proxy even
    accepts the connection."""
    assert proxy.server is not None
    sock = socket.create_connection(("127.0.0.1", proxy.server.port))
    sock.sendall(data)
    return sock


def reset(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def as_stream(sock: socket.socket) -> trio.SocketStream:
    return trio.SocketStream(trio.socket.from_stdlib_socket(sock))


async def test_a_new_connections_first_bytes_however_they_come(
    proxy: RunningProxy, mock: MockUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    """A new connection's task reads what the client sent already before handing reads
    to its reader task: a close, a reset, a head in pieces or a whole request there at
    once all end as they would through the reader, and leave nothing behind."""
    assert proxy.server is not None
    first_line = b"POST /v1/messages HTTP/1.1\r\n"
    connect_and_send(proxy, b"").close()  # closed before sending anything
    reset(connect_and_send(proxy, b""))  # reset before sending anything
    reset(connect_and_send(proxy, first_line))  # reset mid-head
    # a head in two pieces: the first read by the connection task, the rest by the reader
    stream = as_stream(connect_and_send(proxy, first_line))
    await trio.testing.wait_all_tasks_blocked()
    await stream.send_all(head()[len(first_line):] + BODY)
    assert (await read_until(stream, b'"end_turn"')).startswith(b"HTTP/1.1 200 ")
    await stream.send_all(head() + BODY)  # the same connection goes on
    assert (await read_until(stream, b'"end_turn"')).startswith(b"HTTP/1.1 200 ")
    await stream.aclose()
    # a whole request there at once
    stream = as_stream(connect_and_send(proxy, head("connection: close\r\n") + BODY))
    answer = await read_until(stream, b"never in an answer")
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert answer.endswith(b"}")  # the whole answer, then the proxy closed
    await stream.aclose()
    # garbage there at once: a 400
    stream = as_stream(connect_and_send(proxy, b"NOT HTTP\r\n\r\n"))
    assert (await read_until(stream, b"}")).startswith(b"HTTP/1.1 400 ")
    await stream.aclose()
    await trio.testing.wait_all_tasks_blocked(cushion=0.1)
    assert proxy.server.open_connections == 0
    assert proxy.server._nursery is not None
    assert proxy.server._nursery.child_tasks == set()
    assert len(mock.requests) == 3
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_the_head_timer_holds_only_connections_that_wait(
    proxy: RunningProxy, mock: MockUpstream
) -> None:
    """Many requests leave no trace in the timer: a finished wait leaves it at once."""
    assert proxy.server is not None
    waiting = proxy.server._head_timer._waiting
    stream = await connect(proxy)
    for _ in range(20):
        await stream.send_all(head() + BODY)
        await read_until(stream, b'"end_turn"')
    await trio.testing.wait_all_tasks_blocked()
    assert len(waiting) == 1  # this idle connection, waiting for its next head
    await stream.aclose()
    await trio.testing.wait_all_tasks_blocked(cushion=0.1)
    assert waiting == {}
