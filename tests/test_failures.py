"""Failure modes end to end: real sockets on 127.0.0.1, the real proxy, real clients.

Rules: every test is bounded by ``trio.fail_after``; anything about a deadline runs under
the ``clock`` fixture (a ``MockClock`` that jumps after 50 ms of real idleness; with it
the bounds are virtual seconds) and asserts virtual time; nothing sleeps in real time.
Tests where the upstream is involved run over both upstream transports (``transport``).
Malformed or slow input goes over raw trio sockets, parsed back with h11.
"""

from __future__ import annotations

import functools
import json
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anthropic
import h11
import httpx
import openai
import pytest
import trio
import trio.testing

from tests.conftest import (
    ANTHROPIC_ARGS,
    CHAT_ARGS,
    RunningProxy,
    post_plain_and_streamed,
    proxy_config,
)
from tests.mock_upstream import ANTHROPIC_USAGE, OUTPUT_DELTAS, MockUpstream, answer_on_head

TIMEOUT = 10  # bound on each test (virtual seconds under the clock fixture)
MESSAGES_BODY = json.dumps(ANTHROPIC_ARGS).encode()
ANTHROPIC_TOKENS = (
    ANTHROPIC_USAGE["input_tokens"],
    ANTHROPIC_USAGE["output_tokens"],
    ANTHROPIC_USAGE["cache_read_input_tokens"],
    ANTHROPIC_USAGE["cache_creation_input_tokens"],
)
SSE_ERROR_PREFIX = {"anthropic": b"event: error\ndata: ", "openai": b"data: "}
# (client path, request body, API flavour) for one streaming call of each API.
STREAMS = {
    "anthropic": ("/v1/messages", {**ANTHROPIC_ARGS, "stream": True}),
    "openai": ("/openai/v1/chat/completions", {**CHAT_ARGS, "stream": True}),
}


@pytest.fixture
def clock() -> trio.testing.MockClock:
    """Virtual time; it jumps only after 50 ms of real idleness, so that the ledger's
    SQLite thread and the kernel's loopback delivery never make it skip a deadline."""
    return trio.testing.MockClock(autojump_threshold=0.05)


# -- helpers ---------------------------------------------------------------------------


async def start_proxy(
    nursery: trio.Nursery, tmp_path: Path, upstream_url: str, *, transport: str = "h11",
    **sections: Any,
) -> RunningProxy:
    config = proxy_config(tmp_path, upstream_url, transport=transport, **sections)
    return await RunningProxy(config).start(nursery)


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def unanswered_port() -> Iterator[int]:
    """A port on 127.0.0.1 whose listen queue is full: a connect to it hangs (SYN dropped)."""
    with socket.socket() as listener, ExitStack() as fillers:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        for _ in range(4):
            filler = fillers.enter_context(socket.socket())
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
        yield port


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes
    informational: list[int] = field(default_factory=list)

    def json(self) -> Any:
        return json.loads(self.body)


async def receive_response(stream: trio.SocketStream) -> RawResponse:
    """Read one whole response from a raw socket (h11 as a client does the parsing)."""
    conn = h11.Connection(h11.CLIENT)
    # Put the parser in the state of "request sent"; the real request went out raw.
    conn.send(h11.Request(method="GET", target="/", headers=[("host", "proxy")]))
    conn.send(h11.EndOfMessage())
    informational: list[int] = []
    response: h11.Response | None = None
    body = b""
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await stream.receive_some(65536))
        elif isinstance(event, h11.InformationalResponse):
            informational.append(event.status_code)
        elif isinstance(event, h11.Response):
            response = event
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            break
        else:  # pragma: no cover - h11 raises on a cut response
            raise AssertionError(f"unexpected event {event!r}")
    assert response is not None
    headers = {k.decode().lower(): v.decode() for k, v in response.headers}
    return RawResponse(response.status_code, headers, body, informational)


async def receive_rest(stream: trio.SocketStream) -> bytes:
    """Everything until the peer closes its side."""
    data = b""
    while chunk := await stream.receive_some(65536):
        data += chunk
    return data


def request_bytes(
    target: str = "/v1/messages", body: bytes = MESSAGES_BODY, *extra: str,
    method: str = "POST",
) -> bytes:
    head = [f"{method} {target} HTTP/1.1", "Host: proxy", "Content-Type: application/json",
            f"Content-Length: {len(body)}", *extra]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def assert_error_shape(flavour: str, obj: Any, kind: str) -> str:
    """Check `obj` is the error JSON of `flavour` with error type `kind`; its message."""
    if flavour == "anthropic":
        assert obj["type"] == "error"
        assert set(obj) == {"type", "error"}
        assert obj["error"]["type"] == kind
    else:
        assert set(obj) == {"error"}
        assert obj["error"]["type"] == kind
        assert set(obj["error"]) == {"message", "type", "param", "code"}
    message = obj["error"]["message"]
    assert isinstance(message, str)
    assert message
    return message


def split_sse_error(flavour: str, tail: bytes) -> dict[str, Any]:
    """`tail` must be exactly one SSE error event of `flavour`; its JSON."""
    prefix = SSE_ERROR_PREFIX[flavour]
    assert tail.startswith(prefix), tail
    assert tail.endswith(b"\n\n")
    assert tail.count(b"\n\n") == 1, tail  # exactly one event
    return json.loads(tail[len(prefix):-2])


def tokens(row: dict[str, Any]) -> tuple[int | None, ...]:
    return (row["input_tokens"], row["output_tokens"], row["cache_read_tokens"],
            row["cache_write_tokens"])


# -- 1. body cap: 413 before the body is read, or as soon as a chunked body passes it ----


async def test_413_content_length_over_cap_before_the_body_is_read(
    nursery: trio.Nursery, mock: MockUpstream, tmp_path: Path
) -> None:
    proxy = await start_proxy(nursery, tmp_path, mock.url, limits={"max_body_size": "1KiB"})
    with trio.fail_after(TIMEOUT):
        async with await trio.open_tcp_stream("127.0.0.1", proxy.server.port) as stream:
            # Only the head: a client that waits for 100 Continue before sending 4 KiB.
            await stream.send_all(
                b"POST /v1/messages HTTP/1.1\r\nHost: proxy\r\n"
                b"Content-Type: application/json\r\nContent-Length: 4096\r\n"
                b"Expect: 100-continue\r\n\r\n"
            )
            response = await receive_response(stream)
            rest = await receive_rest(stream)
        await proxy.stop()
    assert response.informational == []  # no 100 Continue: the body is never asked for
    assert response.status == 413
    assert response.headers["connection"] == "close"
    assert response.headers["content-type"] == "application/json"
    message = assert_error_shape("anthropic", response.json(), "request_too_large")
    assert "4096" in message
    assert "limits.max_body_size" in message
    assert rest == b""  # and then the connection is closed
    assert mock.requests == []
    [row] = proxy.rows()
    assert (row["status"], row["outcome"], row["path"]) == (413, "client_error", "/v1/messages")
    assert row["bytes_in"] == 0


async def test_413_chunked_body_as_it_passes_the_cap(
    nursery: trio.Nursery, mock: MockUpstream, tmp_path: Path
) -> None:
    proxy = await start_proxy(nursery, tmp_path, mock.url, limits={"max_body_size": "1KiB"})
    sent_pieces: list[int] = []

    async def body() -> AsyncIterator[bytes]:  # no length: httpx sends it chunked
        for _ in range(8):
            sent_pieces.append(512)
            yield b"x" * 512

    with trio.fail_after(TIMEOUT):
        async with httpx.AsyncClient(base_url=proxy.url) as client:
            response = await client.post("/openai/v1/chat/completions", content=body())
        await proxy.stop()
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert sum(sent_pieces) > 1024  # the body did pass the cap
    assert response.status_code == 413
    assert response.headers["connection"] == "close"
    message = assert_error_shape("openai", response.json(), "invalid_request_error")
    assert response.json()["error"]["code"] == "proxy_413"
    assert "1024 byte limit" in message
    assert mock.requests == []
    [row] = proxy.rows()
    assert (row["status"], row["outcome"]) == (413, "client_error")
    assert row["path"] == "/openai/v1/chat/completions"


# -- 2. slow request heads -----------------------------------------------------------


async def test_408_for_a_slow_head_at_the_deadline(
    nursery: trio.Nursery, mock: MockUpstream, tmp_path: Path, clock: trio.testing.MockClock
) -> None:
    proxy = await start_proxy(nursery, tmp_path, mock.url, timeouts={"request_head": "5s"})
    with trio.fail_after(60):
        async with await trio.open_tcp_stream("127.0.0.1", proxy.server.port) as stream:
            start = trio.current_time()
            # Slow loris: part of a head, then nothing.
            await stream.send_all(b"POST /v1/messages HTTP/1.1\r\nHost: proxy\r\nX-Slow: ")
            first = await stream.receive_some(65536)
            arrived = trio.current_time() - start
            rest = await receive_rest(stream)
    assert arrived == 5.0
    data = first + rest
    assert data.startswith(b"HTTP/1.1 408 ")
    assert b"\r\nconnection: close\r\n" in data.lower()
    obj = json.loads(data.split(b"\r\n\r\n", 1)[1])
    assert "5s" in assert_error_shape("anthropic", obj, "timeout_error")
    assert mock.requests == []


async def test_idle_keep_alive_connection_is_closed_silently_after_head_timeout(
    nursery: trio.Nursery, mock: MockUpstream, tmp_path: Path, transport: str,
    clock: trio.testing.MockClock,
) -> None:
    proxy = await start_proxy(nursery, tmp_path, mock.url, transport=transport,
                              timeouts={"request_head": "5s"})
    with trio.fail_after(60):
        async with await trio.open_tcp_stream("127.0.0.1", proxy.server.port) as stream:
            await stream.send_all(request_bytes())
            response = await receive_response(stream)
            idle_from = trio.current_time()
            after = await stream.receive_some(65536)  # b"" once the proxy closes
            closed_after = trio.current_time() - idle_from
    assert response.status == 200
    assert "connection" not in response.headers  # kept alive
    assert after == b""  # closed without a 408 (RFC 9112 §9.6: a quiet idle close)
    assert closed_after == 5.0


async def test_each_idle_period_gets_the_whole_head_timeout(
    nursery: trio.Nursery, mock: MockUpstream, tmp_path: Path, clock: trio.testing.MockClock
) -> None:
    """A request in the middle of a wait ends it: the next idle period starts a new one
    (the timer skips the old deadline); two connections keep their own deadlines."""
    proxy = await start_proxy(nursery, tmp_path, mock.url, timeouts={"request_head": "5s"})
    closed_at: dict[str, float] = {}

    async def client(name: str, requests_at: list[float]) -> None:
        async with await trio.open_tcp_stream("127.0.0.1", proxy.server.port) as stream:
            for at in requests_at:
                await trio.sleep_until(start + at)
                await stream.send_all(request_bytes())
                assert (await receive_response(stream)).status == 200
            assert await stream.receive_some(65536) == b""
            closed_at[name] = trio.current_time() - start

    start = trio.current_time()
    with trio.fail_after(60):
        async with trio.open_nursery() as clients:
            clients.start_soon(client, "a", [0.0, 3.0, 7.0])
            clients.start_soon(client, "b", [1.0])
    assert closed_at == {"a": 12.0, "b": 6.0}


async def test_408_for_a_slow_body_at_the_deadline_with_a_ledger_row(
    nursery: trio.Nursery, mock: MockUpstream, tmp_path: Path, clock: trio.testing.MockClock
) -> None:
    proxy = await start_proxy(nursery, tmp_path, mock.url, timeouts={"request_body": "3s"})
    with trio.fail_after(60):
        async with await trio.open_tcp_stream("127.0.0.1", proxy.server.port) as stream:
            # The whole head, then 10 of the 100 bytes it announced.
            await stream.send_all(request_bytes("/v1/messages", b"x" * 100)[:-90])
            start = trio.current_time()
            response = await receive_response(stream)
            took = trio.current_time() - start
        await proxy.stop()
    assert took == 3.0
    assert response.status == 408
    assert response.headers["connection"] == "close"
    message = assert_error_shape("anthropic", response.json(), "timeout_error")
    assert "request body not received within 3s" in message
    assert mock.requests == []
    [row] = proxy.rows()
    assert (row["status"], row["outcome"]) == (408, "client_error")


# -- 3. malformed requests -----------------------------------------------------------


async def test_400_for_a_garbage_request_line_then_close(
    nursery: trio.Nursery, mock: MockUpstream, tmp_path: Path
) -> None:
    proxy = await start_proxy(nursery, tmp_path, mock.url)
    with trio.fail_after(TIMEOUT):
        async with await trio.open_tcp_stream("127.0.0.1", proxy.server.port) as stream:
            await stream.send_all(b"\x16\x03\x01 this is not HTTP\r\n\r\n")
            response = await receive_response(stream)
            rest = await receive_rest(stream)
    assert response.status == 400
    assert response.headers["connection"] == "close"
    assert "malformed HTTP request" in assert_error_shape(
        "anthropic", response.json(), "invalid_request_error")
    assert rest == b""
    assert mock.requests == []


async def test_431_for_headers_over_the_cap_sent_slowly(
    nursery: trio.Nursery, mock: MockUpstream, tmp_path: Path
) -> None:
    proxy = await start_proxy(nursery, tmp_path, mock.url, limits={"max_header_size": "1KiB"})
    with trio.fail_after(TIMEOUT):
        async with await trio.open_tcp_stream("127.0.0.1", proxy.server.port) as stream:
            # A head that keeps growing and never ends.
            await stream.send_all(b"POST /v1/messages HTTP/1.1\r\nHost: proxy\r\n")
            for i in range(8):
                await stream.send_all(b"X-Filler-%d: %s\r\n" % (i, b"a" * 256))
            response = await receive_response(stream)
            rest = await receive_rest(stream)
    assert response.status == 431
    assert response.headers["connection"] == "close"
    assert "limits.max_header_size" in assert_error_shape(
        "anthropic", response.json(), "invalid_request_error")
    assert rest == b""
    assert mock.requests == []


async def test_431_for_a_complete_head_over_the_cap_in_one_packet(
    nursery: trio.Nursery, mock: MockUpstream, tmp_path: Path
) -> None:
    """The cap holds however the head is split into reads: 4 KiB of headers against a
    1 KiB cap, all in one write (one read on loopback)."""
    proxy = await start_proxy(nursery, tmp_path, mock.url, limits={"max_header_size": "1KiB"})
    with trio.fail_after(TIMEOUT):
        async with await trio.open_tcp_stream("127.0.0.1", proxy.server.port) as stream:
            await stream.send_all(request_bytes("/v1/messages", MESSAGES_BODY,
                                                "X-Big: " + "a" * 4096))
            response = await receive_response(stream)
    assert response.status == 431
    assert mock.requests == []


# -- 4. upstream unreachable ---------------------------------------------------------


@pytest.mark.parametrize(("flavour", "path", "body"), [
    ("anthropic", "/v1/messages", ANTHROPIC_ARGS),
    ("openai", "/openai/v1/chat/completions", CHAT_ARGS),
])
async def test_502_when_upstream_is_unreachable(
    nursery: trio.Nursery, tmp_path: Path, transport: str, flavour: str, path: str,
    body: dict[str, Any],
) -> None:
    port = closed_port()
    proxy = await start_proxy(nursery, tmp_path, f"http://127.0.0.1:{port}",
                              transport=transport)
    with trio.fail_after(TIMEOUT):
        async with httpx.AsyncClient(base_url=proxy.url) as client:
            response = await client.post(path, json=body)
        await proxy.stop()
    assert response.status_code == 502
    assert response.headers["content-type"] == "application/json"
    kind = "api_error" if flavour == "anthropic" else "server_error"
    message = assert_error_shape(flavour, response.json(), kind)
    assert f"upstream 127.0.0.1:{port}" in message
    [row] = proxy.rows()
    assert (row["status"], row["outcome"], row["path"]) == (502, "upstream_error", path)
    assert f"127.0.0.1:{port}" in row["error"]


# -- 5. upstream too slow ------------------------------------------------------------


async def test_504_when_upstream_connect_times_out(
    nursery: trio.Nursery, tmp_path: Path, transport: str, clock: trio.testing.MockClock
) -> None:
    with unanswered_port() as port:
        proxy = await start_proxy(nursery, tmp_path, f"http://127.0.0.1:{port}",
                                  transport=transport, timeouts={"upstream_connect": "3s"})
        with trio.fail_after(60):
            async with httpx.AsyncClient(base_url=proxy.url, timeout=60) as client:
                start = trio.current_time()
                response = await client.post("/openai/v1/chat/completions", json=CHAT_ARGS)
                took = trio.current_time() - start
            await proxy.stop()
    assert response.status_code == 504
    assert took == 3.0
    message = assert_error_shape("openai", response.json(), "timeout")
    assert f"upstream 127.0.0.1:{port} within 3s (timeouts.upstream_connect)" in message
    [row] = proxy.rows()
    assert (row["status"], row["outcome"]) == (504, "timeout")


async def test_504_when_upstream_sends_no_head_in_time(
    nursery: trio.Nursery, mock: MockUpstream, tmp_path: Path, transport: str,
    clock: trio.testing.MockClock,
) -> None:
    proxy = await start_proxy(nursery, tmp_path, mock.url, transport=transport,
                              timeouts={"first_byte": "10s"})
    with trio.fail_after(60):
        async with httpx.AsyncClient(base_url=proxy.url, timeout=60) as client:
            start = trio.current_time()
            response = await client.post("/v1/messages", json=ANTHROPIC_ARGS,
                                         headers={"x-mock-sleep-head": "100"})
            took = trio.current_time() - start
        await proxy.stop()
    assert response.status_code == 504
    assert took == 10.0
    message = assert_error_shape("anthropic", response.json(), "timeout_error")
    assert "timeouts.first_byte" in message
    assert len(mock.requests) == 1
    assert not mock.requests[0].completed
    [row] = proxy.rows()
    assert (row["status"], row["outcome"]) == (504, "timeout")


async def early_413_then_silence(stream: trio.SocketStream) -> None:
    """Answers 413 as soon as the head arrives, then neither reads the body nor closes."""
    body = b'{"type":"error","error":{"type":"request_too_large","message":"too big"}}'
    await answer_on_head(stream, b"413 Payload Too Large", body)
    await trio.sleep_forever()


async def test_an_early_answer_to_a_large_body_is_relayed_without_waiting(
    nursery: trio.Nursery, tmp_path: Path, clock: trio.testing.MockClock
) -> None:
    """The body is sent by a child task while the head is awaited, so an upstream that
    answers without reading it does not hold the request until timeouts.first_byte."""
    listeners = await nursery.start(
        functools.partial(trio.serve_tcp, early_413_then_silence, 0, host="127.0.0.1")
    )
    port = listeners[0].socket.getsockname()[1]
    proxy = await start_proxy(nursery, tmp_path, f"http://127.0.0.1:{port}")
    with trio.fail_after(60):
        async with httpx.AsyncClient(base_url=proxy.url, timeout=None) as client:
            start = trio.current_time()
            response = await client.post("/v1/messages", content=b"x" * (32 << 20))
            took = trio.current_time() - start
        await proxy.stop()
    assert response.status_code == 413
    assert response.json()["error"]["message"] == "too big"
    assert took < 1.0  # virtual seconds; first_byte is 10 minutes
    [row] = proxy.rows()
    assert (row["status"], row["outcome"]) == (413, "upstream_error")


@pytest.mark.parametrize("flavour", ["anthropic", "openai"])
async def test_idle_gap_mid_stream_ends_with_an_sse_error_event(
    nursery: trio.Nursery, mock: MockUpstream, tmp_path: Path, transport: str, flavour: str,
    clock: trio.testing.MockClock,
) -> None:
    proxy = await start_proxy(nursery, tmp_path, mock.url, transport=transport,
                              timeouts={"idle": "5s"})
    path, body = STREAMS[flavour]
    arrivals: list[tuple[float, bytes]] = []
    with trio.fail_after(60):
        async with httpx.AsyncClient(base_url=proxy.url, timeout=60) as client:
            start = trio.current_time()
            async with client.stream("POST", path, json=body,
                                     headers={"x-mock-sleep-between": "20"}) as response:
                # Reads to the end of the chunked body: no protocol error.
                async for chunk in response.aiter_raw():
                    arrivals.append((trio.current_time() - start, chunk))
        await proxy.stop()
    assert response.status_code == 200
    sent = mock.requests[0].sent
    assert len(sent) == 1  # the first event; the second was 20 s away
    received = b"".join(chunk for _, chunk in arrivals)
    assert received.startswith(sent[0])
    error = split_sse_error(flavour, received[len(sent[0]):])
    kind = "api_error" if flavour == "anthropic" else "server_error"
    assert "timeouts.idle" in assert_error_shape(flavour, error, kind)
    assert arrivals[0][0] == 0.0
    assert arrivals[-1][0] == 5.0  # the error event comes when the idle deadline passes
    [row] = proxy.rows()
    assert (row["status"], row["outcome"], row["stream"]) == (200, "timeout", 1)
    assert "timeouts.idle" in row["error"]


async def test_idle_limit_after_rapid_events_expires_within_its_slack(
    nursery: trio.Nursery, mock: MockUpstream, tmp_path: Path, transport: str,
    clock: trio.testing.MockClock,
) -> None:
    """Events 3 ms apart, then silence: the idle deadline is not moved for each event
    (it moves once it is more than 1% of timeouts.idle behind), so the stream is cut
    between idle - 1% and idle after the last event, never later."""
    proxy = await start_proxy(nursery, tmp_path, mock.url, transport=transport,
                              timeouts={"idle": "1s"})
    arrivals: list[float] = []
    with trio.fail_after(60):
        async with httpx.AsyncClient(base_url=proxy.url, timeout=60) as client:
            start = trio.current_time()
            async with client.stream(
                "POST", "/v1/messages", json={**ANTHROPIC_ARGS, "stream": True},
                headers={"x-mock-sleep-between": "0.003", "x-mock-hold": "1"},
            ) as response:
                async for _chunk in response.aiter_raw():
                    arrivals.append(trio.current_time() - start)
        await proxy.stop()
    sent = mock.requests[0].sent
    assert len(sent) >= 3  # several events, then the hold
    last_event = arrivals[len(sent) - 1]
    cut = arrivals[-1]
    assert last_event + 1.0 - 0.01 <= cut <= last_event + 1.0
    [row] = proxy.rows()
    assert (row["outcome"], row["stream"]) == ("timeout", 1)
    assert "timeouts.idle" in row["error"]


async def test_total_deadline_ends_a_slow_stream_with_an_sse_error_event(
    nursery: trio.Nursery, mock: MockUpstream, tmp_path: Path, transport: str,
    clock: trio.testing.MockClock,
) -> None:
    """Events every 1 s never trip timeouts.idle (5 s), but timeouts.total (4.5 s) ends it."""
    proxy = await start_proxy(nursery, tmp_path, mock.url, transport=transport,
                              timeouts={"idle": "5s", "total": "4500ms"})
    arrivals: list[float] = []
    chunks: list[bytes] = []
    with trio.fail_after(60):
        async with httpx.AsyncClient(base_url=proxy.url, timeout=60) as client:
            start = trio.current_time()
            async with client.stream("POST", "/v1/messages",
                                     json={**ANTHROPIC_ARGS, "stream": True},
                                     headers={"x-mock-sleep-between": "1"}) as response:
                async for chunk in response.aiter_raw():
                    arrivals.append(trio.current_time() - start)
                    chunks.append(chunk)
        await proxy.stop()
    sent = mock.requests[0].sent
    assert len(sent) == 5  # events at 0, 1, 2, 3, 4 s
    received = b"".join(chunks)
    assert received.startswith(b"".join(sent))
    error = split_sse_error("anthropic", received[len(b"".join(sent)):])
    assert "timeouts.total" in assert_error_shape("anthropic", error, "api_error")
    assert arrivals[-1] == 4.5
    [row] = proxy.rows()
    assert (row["status"], row["outcome"]) == (200, "timeout")


# -- 6. upstream dies mid-response ---------------------------------------------------


@pytest.mark.parametrize("flavour", ["anthropic", "openai"])
async def test_upstream_dying_mid_stream_ends_with_one_error_event(
    proxy: RunningProxy, mock: MockUpstream, flavour: str
) -> None:
    path, body = STREAMS[flavour]
    with trio.fail_after(TIMEOUT):
        async with httpx.AsyncClient(base_url=proxy.url) as client:
            async with client.stream("POST", path, json=body,
                                     headers={"x-mock-die-after": "3"}) as response:
                chunks = [chunk async for chunk in response.aiter_raw()]
            # The response ended cleanly, so the client connection serves the next one.
            after = await client.post(path, json={**body, "stream": False})
        await proxy.stop()
    assert after.status_code == 200
    assert response.status_code == 200
    sent = mock.requests[0].sent
    assert len(sent) == 3
    received = b"".join(chunks)
    first_three = b"".join(sent)
    assert received[: len(first_three)] == first_three  # byte for byte
    error = split_sse_error(flavour, received[len(first_three):])
    kind = "api_error" if flavour == "anthropic" else "server_error"
    assert "upstream" in assert_error_shape(flavour, error, kind)
    row = proxy.rows()[0]
    assert (row["status"], row["outcome"], row["stream"]) == (200, "upstream_error", 1)
    assert row["bytes_out"] == len(first_three)  # what upstream sent; the event is ours


async def test_anthropic_sdk_raises_when_upstream_dies_mid_stream(
    proxy: RunningProxy, mock: MockUpstream
) -> None:
    texts: list[str] = []

    async def consume(client: anthropic.AsyncAnthropic) -> None:
        async with client.messages.stream(
                **ANTHROPIC_ARGS, extra_headers={"x-mock-die-after": "4"}) as stream:
            async for text in stream.text_stream:
                texts.append(text)

    with trio.fail_after(TIMEOUT):
        async with anthropic.AsyncAnthropic(base_url=proxy.url, api_key="k",
                                            max_retries=0) as client:
            with pytest.raises(anthropic.APIStatusError) as info:
                await consume(client)
    assert texts == [OUTPUT_DELTAS[0]]  # the 4th event was the first text delta
    assert info.value.body["type"] == "error"
    assert info.value.body["error"]["type"] == "api_error"
    assert "upstream" in info.value.body["error"]["message"]


async def test_openai_sdk_raises_when_upstream_dies_mid_stream(
    proxy: RunningProxy, mock: MockUpstream
) -> None:
    deltas: list[str | None] = []

    async def consume(client: openai.AsyncOpenAI) -> None:
        stream = await client.chat.completions.create(
            **CHAT_ARGS, stream=True, extra_headers={"x-mock-die-after": "2"})
        async for chunk in stream:
            deltas.append(chunk.choices[0].delta.content)

    with trio.fail_after(TIMEOUT):
        async with openai.AsyncOpenAI(base_url=proxy.url + "/openai/v1", api_key="k",
                                      max_retries=0) as client:
            with pytest.raises(openai.APIError) as info:
                await consume(client)
    assert deltas == ["", OUTPUT_DELTAS[0]]
    assert not isinstance(info.value, openai.APIConnectionError)  # the proxy's event
    assert info.value.body["type"] == "server_error"
    assert "upstream" in info.value.message


async def test_openai_sdk_raises_when_upstream_dies_mid_responses_stream(
    proxy: RunningProxy, mock: MockUpstream
) -> None:
    kinds: list[str] = []

    async def consume(client: openai.AsyncOpenAI) -> None:
        stream = await client.responses.create(
            model="gpt-4o-mini", input="Hi", stream=True,
            extra_headers={"x-mock-die-after": "5"})
        async for event in stream:
            kinds.append(event.type)

    with trio.fail_after(TIMEOUT):
        async with openai.AsyncOpenAI(base_url=proxy.url + "/openai/v1", api_key="k",
                                      max_retries=0) as client:
            with pytest.raises(openai.APIError) as info:
                await consume(client)
    assert kinds[-1] == "response.output_text.delta"
    assert len(kinds) == 5
    assert not isinstance(info.value, openai.APIConnectionError)
    assert "upstream" in info.value.message


async def test_upstream_dying_mid_json_body_cuts_the_client_connection(
    proxy: RunningProxy, mock: MockUpstream
) -> None:
    with trio.fail_after(TIMEOUT):
        async with httpx.AsyncClient(base_url=proxy.url) as client:
            with pytest.raises(httpx.RemoteProtocolError):
                await client.post("/v1/messages", json=ANTHROPIC_ARGS,
                                  headers={"x-mock-die-after": "1"})
        await proxy.stop()
    [row] = proxy.rows()
    assert (row["status"], row["outcome"], row["stream"]) == (200, "upstream_error", 0)


# -- 7. the client leaves: upstream is cancelled -------------------------------------


async def test_client_disconnect_mid_stream_cancels_upstream(
    proxy: RunningProxy, mock: MockUpstream
) -> None:
    with trio.fail_after(TIMEOUT):
        async with httpx.AsyncClient(base_url=proxy.url) as client:
            async with client.stream("POST", "/v1/messages",
                                     json={**ANTHROPIC_ARGS, "stream": True},
                                     headers={"x-mock-hold": "1"}) as response:
                first = await anext(response.aiter_raw())
        # Leaving the block mid-body closed the client's connection.
        await mock.disconnect_seen.wait()
        await proxy.stop()
    assert first.startswith(b"event: message_start\n")
    [received] = mock.requests
    assert received.disconnected
    assert not received.completed
    [row] = proxy.rows()
    assert (row["outcome"], row["stream"], row["status"]) == ("cancelled", 1, 200)
    assert row["model"] == ANTHROPIC_ARGS["model"]
    assert row["input_tokens"] == ANTHROPIC_USAGE["input_tokens"]
    assert row["cache_read_tokens"] == ANTHROPIC_USAGE["cache_read_input_tokens"]


async def test_client_disconnect_before_the_response_head_cancels_upstream(
    proxy: RunningProxy, mock: MockUpstream
) -> None:
    with trio.fail_after(TIMEOUT):
        stream = await trio.open_tcp_stream("127.0.0.1", proxy.server.port)
        # A non-stream request that upstream holds before its head.
        await stream.send_all(request_bytes("/v1/messages", MESSAGES_BODY, "X-Mock-Hold: 1"))
        await trio.testing.wait_all_tasks_blocked()
        assert len(mock.requests) == 1
        await stream.aclose()
        await mock.disconnect_seen.wait()
        await proxy.stop()
    [received] = mock.requests
    assert received.disconnected
    assert received.sent == []
    [row] = proxy.rows()
    assert row["outcome"] == "cancelled"
    assert row["status"] is None  # nothing was sent to the client
    assert row["ttfb_ms"] is None


# -- 8. compressed responses pass as sent ------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
async def test_gzip_bytes_pass_untouched_and_are_still_counted(
    proxy: RunningProxy, mock: MockUpstream, stream: bool
) -> None:
    with trio.fail_after(TIMEOUT):
        async with httpx.AsyncClient(base_url=proxy.url) as client:
            async with client.stream(
                    "POST", "/v1/messages", json={**ANTHROPIC_ARGS, "stream": stream},
                    headers={"x-mock-gzip": "1", "accept-encoding": "gzip"}) as response:
                raw = b"".join([chunk async for chunk in response.aiter_raw()])
        await proxy.stop()
    assert response.headers["content-encoding"] == "gzip"
    assert mock.requests[0].header("accept-encoding") == "gzip"
    assert raw == b"".join(mock.requests[0].sent)
    assert raw[:2] == b"\x1f\x8b"  # still compressed
    [row] = proxy.rows()
    assert tokens(row) == ANTHROPIC_TOKENS
    assert (row["outcome"], row["stream"], row["scan_complete"]) == ("ok", int(stream), 1)


# -- 9. the ledger cannot be opened: traffic flows anyway --------------------------


async def test_requests_flow_when_the_ledger_is_unavailable(
    nursery: trio.Nursery, mock: MockUpstream, tmp_path: Path, transport: str
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a regular file")
    proxy = await start_proxy(nursery, tmp_path, mock.url, transport=transport,
                              ledger={"path": str(blocker / "ledger.db")})
    with trio.fail_after(TIMEOUT):
        plain, response, streamed = await post_plain_and_streamed(proxy.url)
        await proxy.stop()
    assert plain.status_code == response.status_code == 200
    assert plain.content == b"".join(mock.requests[0].sent)
    assert streamed == b"".join(mock.requests[1].sent)
    assert proxy.server.ledger is not None
    assert proxy.server.ledger.lost == 2  # each row counted as lost
    assert proxy.server.ledger.written == 0
    assert blocker.read_text() == "a regular file"


# -- 10. graceful shutdown ---------------------------------------------------------


async def test_shutdown_refuses_new_connections_and_lets_a_stream_finish(
    nursery: trio.Nursery, proxy: RunningProxy, mock: MockUpstream
) -> None:
    stopped = trio.Event()

    async def stop() -> None:
        await proxy.stop()
        stopped.set()

    port = proxy.server.port
    with trio.fail_after(TIMEOUT):
        async with httpx.AsyncClient(base_url=proxy.url) as client:
            async with client.stream("POST", "/v1/messages",
                                     json={**ANTHROPIC_ARGS, "stream": True},
                                     headers={"x-mock-hold": "1"}) as response:
                chunks = response.aiter_raw()
                received = [await anext(chunks)]
                nursery.start_soon(stop)
                await trio.testing.wait_all_tasks_blocked()
                with pytest.raises(OSError):
                    await trio.open_tcp_stream("127.0.0.1", port)
                assert not stopped.is_set()
                mock.release.set()
                received += [chunk async for chunk in chunks]
        await stopped.wait()
    assert b"".join(received) == b"".join(mock.requests[0].sent)
    assert mock.requests[0].completed
    [row] = proxy.rows()
    assert (row["outcome"], row["status"], row["stream"]) == ("ok", 200, 1)
    assert tokens(row) == ANTHROPIC_TOKENS


async def _held_stream_cut_by_shutdown(
    nursery: trio.Nursery, proxy: RunningProxy, mock: MockUpstream, *, abort: bool
) -> float:
    """Start a held stream, shut the proxy down (then abort it, if `abort`), and return
    how long after shutdown began the client saw the stream cut."""
    stopped = trio.Event()

    async def stop() -> None:
        await proxy.stop()
        stopped.set()

    with trio.fail_after(60):
        async with httpx.AsyncClient(base_url=proxy.url, timeout=60) as client:
            async with client.stream("POST", "/v1/messages",
                                     json={**ANTHROPIC_ARGS, "stream": True},
                                     headers={"x-mock-hold": "1"}) as response:
                chunks = response.aiter_raw()
                await anext(chunks)
                start = trio.current_time()
                nursery.start_soon(stop)
                if abort:
                    await trio.testing.wait_all_tasks_blocked()
                    assert not stopped.is_set()  # draining: the stream may still finish
                    proxy.server.abort()
                with pytest.raises(httpx.RemoteProtocolError):
                    async for _ in chunks:
                        pass
                cut_after = trio.current_time() - start
        await stopped.wait()
        await mock.disconnect_seen.wait()  # and the upstream request was closed
    return cut_after


async def test_shutdown_cuts_a_stream_still_running_at_the_end_of_grace(
    nursery: trio.Nursery, mock: MockUpstream, tmp_path: Path, transport: str,
    clock: trio.testing.MockClock,
) -> None:
    proxy = await start_proxy(nursery, tmp_path, mock.url, transport=transport,
                              server={"grace_period": "2s"})
    cut_after = await _held_stream_cut_by_shutdown(nursery, proxy, mock, abort=False)
    assert cut_after == 2.0
    [row] = proxy.rows()
    assert (row["outcome"], row["status"], row["stream"]) == ("cancelled", 200, 1)
    assert row["model"] == ANTHROPIC_ARGS["model"]


async def test_abort_during_a_drain_cuts_the_stream_at_once_and_keeps_its_row(
    nursery: trio.Nursery, mock: MockUpstream, tmp_path: Path, clock: trio.testing.MockClock
) -> None:
    """A second signal (server.abort) does not wait out the grace period."""
    proxy = await start_proxy(nursery, tmp_path, mock.url, server={"grace_period": "30s"})
    took = await _held_stream_cut_by_shutdown(nursery, proxy, mock, abort=True)
    assert took < 1  # not the 30 s grace period
    [row] = proxy.rows()
    assert (row["outcome"], row["status"], row["stream"]) == ("cancelled", 200, 1)


async def test_shutdown_closes_idle_keep_alive_connections_at_once(
    nursery: trio.Nursery, mock: MockUpstream, tmp_path: Path, clock: trio.testing.MockClock
) -> None:
    proxy = await start_proxy(nursery, tmp_path, mock.url, server={"grace_period": "30s"})
    with trio.fail_after(60):
        async with await trio.open_tcp_stream("127.0.0.1", proxy.server.port) as stream:
            await stream.send_all(request_bytes())
            assert (await receive_response(stream)).status == 200
            start = trio.current_time()
            await proxy.stop()  # the idle connection does not hold shutdown for 30 s
            took = trio.current_time() - start
            assert await stream.receive_some(65536) == b""  # closed, without an answer
    assert took < 1
    [row] = proxy.rows()
    assert row["outcome"] == "ok"


# -- 11. connection cap ------------------------------------------------------------


async def test_connection_cap_holds_the_third_client_in_the_backlog(
    nursery: trio.Nursery, mock: MockUpstream, tmp_path: Path
) -> None:
    proxy = await start_proxy(nursery, tmp_path, mock.url, server={"max_connections": 2})
    port = proxy.server.port
    third: list[RawResponse] = []

    async def read_third(stream: trio.SocketStream) -> None:
        third.append(await receive_response(stream))

    with trio.fail_after(TIMEOUT):
        first = await trio.open_tcp_stream("127.0.0.1", port)
        second = await trio.open_tcp_stream("127.0.0.1", port)
        for stream in (first, second):
            await stream.send_all(request_bytes())
            assert (await receive_response(stream)).status == 200
        # Both stay open and idle (keep-alive). The kernel accepts a third one...
        late = await trio.open_tcp_stream("127.0.0.1", port)
        await late.send_all(request_bytes())
        async with trio.open_nursery() as inner:
            inner.start_soon(read_third, late)
            await trio.testing.wait_all_tasks_blocked()
            # ...but the proxy does not serve it while two are open.
            assert third == []
            assert proxy.server.open_connections == 2
            assert len(mock.requests) == 2
            await first.aclose()
        assert third[0].status == 200
        assert len(mock.requests) == 3
        # The second connection was never disturbed.
        await second.send_all(request_bytes())
        assert (await receive_response(second)).status == 200
        await second.aclose()
        await late.aclose()


# -- 12. the connection after an error ---------------------------------------------


async def test_connection_is_kept_alive_after_a_502(
    nursery: trio.Nursery, mock: MockUpstream, tmp_path: Path, transport: str
) -> None:
    routes = [
        {"prefix": "/", "upstream": f"http://127.0.0.1:{closed_port()}",
         "flavour": "anthropic"},
        {"prefix": "/openai", "upstream": mock.url, "flavour": "openai"},
    ]
    proxy = await start_proxy(nursery, tmp_path, mock.url, transport=transport, routes=routes)
    chat = json.dumps(CHAT_ARGS).encode()
    with trio.fail_after(TIMEOUT):
        async with await trio.open_tcp_stream("127.0.0.1", proxy.server.port) as stream:
            await stream.send_all(request_bytes("/v1/messages"))
            failed = await receive_response(stream)
            await stream.send_all(request_bytes("/openai/v1/chat/completions", chat))
            served = await receive_response(stream)
    assert failed.status == 502
    assert "connection" not in failed.headers  # the request was read whole: keep-alive
    assert served.status == 200
    assert served.body == b"".join(mock.requests[0].sent)


async def test_connection_is_closed_after_a_413_cut_mid_body(
    nursery: trio.Nursery, mock: MockUpstream, tmp_path: Path
) -> None:
    proxy = await start_proxy(nursery, tmp_path, mock.url, limits={"max_body_size": "1KiB"})
    with trio.fail_after(TIMEOUT):
        async with await trio.open_tcp_stream("127.0.0.1", proxy.server.port) as stream:
            await stream.send_all(
                b"POST /v1/messages HTTP/1.1\r\nHost: proxy\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n"
                + b"400\r\n" + b"y" * 1024 + b"\r\n" + b"1\r\nz\r\n0\r\n\r\n"
            )
            # Whatever the client sends next is not read as a request.
            await stream.send_all(request_bytes())
            response = await receive_response(stream)
            rest = await receive_rest(stream)
    assert response.status == 413
    assert response.headers["connection"] == "close"
    assert rest == b""
    assert mock.requests == []
