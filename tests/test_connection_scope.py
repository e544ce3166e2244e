"""The connection's cancel scope: one for a run of requests, renewed after a deadline.

Requests that a client sends back to back share one cancel scope (server._run_connection);
a relay's deadline that expires cancels it for good, so the relay answers the timeout in
a shielded scope and the connection goes on in a new one. These tests check that the
next requests still work and get their own limits, and that a server abort still cuts
a shielded answer at once.
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import h11
import pytest
import trio
import trio.testing

from tests.conftest import ANTHROPIC_ARGS
from tests.mock_upstream import MockUpstream
from tests.test_failures import (
    MESSAGES_BODY,
    RawResponse,
    assert_error_shape,
    receive_response,
    request_bytes,
    start_proxy,
)
from tests.test_rawio import pair
from trioproxy.http1 import ClientConnection
from trioproxy.upstream.h11pool import SEND_INLINE_MAX
from trioproxy.upstream.httpx_transport import HttpxResponse

SLOW_HEAD = "x-mock-sleep-head: 100"
REQUEST = ("/v1/messages", MESSAGES_BODY)


@pytest.fixture
def clock() -> trio.testing.MockClock:
    """Virtual time that jumps only after 50 ms of real idleness (see test_failures)."""
    return trio.testing.MockClock(autojump_threshold=0.05)


async def test_after_a_504_the_connection_answers_its_next_requests_each_with_its_own_limit(
    nursery: trio.Nursery, mock: MockUpstream, tmp_path: Path, clock: trio.testing.MockClock
) -> None:
    proxy = await start_proxy(nursery, tmp_path, mock.url, timeouts={"first_byte": "10s"})
    assert proxy.server is not None
    statuses, took = [], []
    with trio.fail_after(120):
        async with await trio.open_tcp_stream("127.0.0.1", proxy.server.port) as stream:
            for slow in (True, False, True, False):
                start = trio.current_time()
                await stream.send_all(request_bytes(*REQUEST, *([SLOW_HEAD] if slow else [])))
                response = await receive_response(stream)  # fails if the proxy closed
                statuses.append(response.status)
                took.append(trio.current_time() - start)
                if response.status == 504:
                    assert "connection" not in response.headers  # kept alive
                    assert "timeouts.first_byte" in assert_error_shape(
                        "anthropic", response.json(), "timeout_error"
                    )
        await proxy.stop()
    assert statuses == [504, 200, 504, 200]
    assert took[0] == pytest.approx(10.0)
    assert took[2] == pytest.approx(10.0)  # the second slow request had its own 10 s
    assert [(r["status"], r["outcome"]) for r in proxy.rows()] == [
        (504, "timeout"), (200, "ok"), (504, "timeout"), (200, "ok")
    ]


async def receive_responses(stream: trio.SocketStream, count: int) -> list[RawResponse]:
    """Read `count` pipelined responses from a raw socket, in order."""
    conn = h11.Connection(h11.CLIENT)
    responses: list[RawResponse] = []
    while len(responses) < count:
        conn.send(h11.Request(method="POST", target="/", headers=[("host", "proxy")]))
        conn.send(h11.EndOfMessage())
        response: h11.Response | None = None
        body = b""
        while not isinstance(event := conn.next_event(), h11.EndOfMessage):
            if event is h11.NEED_DATA:
                conn.receive_data(await stream.receive_some(65536))
            elif isinstance(event, h11.Response):
                response = event
            elif isinstance(event, h11.Data):
                body += event.data
        assert response is not None
        headers = {k.decode().lower(): v.decode() for k, v in response.headers}
        responses.append(RawResponse(response.status_code, headers, body))
        conn.start_next_cycle()
    return responses


async def test_a_request_pipelined_behind_a_504_is_answered_in_a_new_scope(
    nursery: trio.Nursery, mock: MockUpstream, tmp_path: Path, clock: trio.testing.MockClock
) -> None:
    proxy = await start_proxy(nursery, tmp_path, mock.url, timeouts={"first_byte": "10s"})
    assert proxy.server is not None
    with trio.fail_after(120):
        async with await trio.open_tcp_stream("127.0.0.1", proxy.server.port) as stream:
            # Both in one write: the second is read ahead while the first waits.
            await stream.send_all(request_bytes(*REQUEST, SLOW_HEAD) + request_bytes(*REQUEST))
            first, second = await receive_responses(stream, 2)
        await proxy.stop()
    assert (first.status, second.status) == (504, 200)
    assert second.json()["type"] == "message"
    assert [r["outcome"] for r in proxy.rows()] == ["timeout", "ok"]


async def test_an_abort_cuts_a_timeout_answer_that_is_shielded_from_the_timeout(
    nursery: trio.Nursery, mock: MockUpstream, tmp_path: Path, clock: trio.testing.MockClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The 504 is answered in a scope shielded from the expired deadline. Its write can
    # wait (a client that reads nothing, with full socket buffers: here, a write that
    # never ends) for up to timeouts.idle; a server abort must not wait for it.
    writing = trio.Event()

    async def send_error_that_never_ends(self, error, body) -> None:
        writing.set()
        await trio.sleep_forever()

    monkeypatch.setattr(ClientConnection, "send_error", send_error_that_never_ends)
    proxy = await start_proxy(nursery, tmp_path, mock.url, timeouts={"first_byte": "10s"},
                              server={"grace_period": "60s"})
    assert proxy.server is not None
    stopped = trio.Event()

    async def stop() -> None:
        await proxy.stop()
        stopped.set()

    with trio.fail_after(600):
        stream = await trio.open_tcp_stream("127.0.0.1", proxy.server.port)
        await stream.send_all(request_bytes(*REQUEST, SLOW_HEAD))
        await writing.wait()
        nursery.start_soon(stop)
        await trio.sleep(5)
        assert not stopped.is_set()  # draining: the answer may still go out
        start = trio.current_time()
        proxy.server.abort()
        await stopped.wait()
        took = trio.current_time() - start
        await stream.aclose()
    assert took < 1  # not the answer's 300 s (timeouts.idle), nor the 55 s of grace left
    [row] = proxy.rows()
    assert (row["status"], row["outcome"]) == (504, "timeout")


async def test_an_answer_scope_is_shielded_only_from_an_expired_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    _, sock = await pair()
    client = ClientConnection(trio.SocketStream(sock), max_header_size=65536)
    client.scope = trio.CancelScope()  # the scope of the requests being answered
    plain = client.answer_scope(5.0)
    assert not plain.shield
    assert plain.deadline == trio.current_time() + 5.0
    client.scope.cancel()  # as an expired deadline does
    shielded = client.answer_scope(5.0)
    assert shielded.shield
    assert not shielded.cancel_called
    client.cut()  # the server's abort
    assert shielded.cancel_called
    assert client.answer_scope(5.0).cancel_called  # and any answer after it
    await client.aclose()


async def test_a_504_for_a_large_request_whose_body_is_sent_by_a_child_task(
    nursery: trio.Nursery, mock: MockUpstream, tmp_path: Path, clock: trio.testing.MockClock
) -> None:
    # A request over SEND_INLINE_MAX is sent from a child task while the head is awaited:
    # the expired deadline reaches the relay through that nursery, as a group.
    proxy = await start_proxy(nursery, tmp_path, mock.url, timeouts={"first_byte": "10s"})
    assert proxy.server is not None
    body = json.dumps({**ANTHROPIC_ARGS, "metadata": {"user_id": "x" * SEND_INLINE_MAX}})
    with trio.fail_after(120):
        async with await trio.open_tcp_stream("127.0.0.1", proxy.server.port) as stream:
            for slow in (True, False):
                extra = [SLOW_HEAD] if slow else []
                await stream.send_all(request_bytes("/v1/messages", body.encode(), *extra))
                assert (await receive_response(stream)).status == (504 if slow else 200)
        await proxy.stop()
    assert [r["outcome"] for r in proxy.rows()] == ["timeout", "ok"]


async def one_event_then_close(stream: trio.SocketStream) -> None:
    """Answers with an event stream: one event, then 8 s later a close mid-body."""
    await stream.receive_some(65536)
    event = b'event: ping\ndata: {"type": "ping"}\n\n'
    await stream.send_all(
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
        b"transfer-encoding: chunked\r\n\r\n%x\r\n%s\r\n" % (len(event), event)
    )
    await trio.sleep(8)
    await stream.aclose()


async def test_an_error_event_after_upstream_dies_has_its_own_time_to_go_out(
    nursery: trio.Nursery, tmp_path: Path, clock: trio.testing.MockClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # idle = 10 s: the wait for the next event started at 0 s with a limit at 10 s, and
    # upstream broke off at 8 s. The error event's write takes 5 s (a slow client): it
    # has its own limit (18 s), not what was left of the wait's.
    real_send_data = ClientConnection.send_data

    async def slow_error_event(self, data: bytes) -> None:
        if data.startswith(b"event: error"):
            await trio.sleep(5)
        await real_send_data(self, data)

    monkeypatch.setattr(ClientConnection, "send_data", slow_error_event)
    listeners = await nursery.start(
        partial(trio.serve_tcp, one_event_then_close, 0, host="127.0.0.1")
    )
    port = listeners[0].socket.getsockname()[1]
    proxy = await start_proxy(nursery, tmp_path, f"http://127.0.0.1:{port}",
                              timeouts={"idle": "10s"})
    with trio.fail_after(120):
        async with await trio.open_tcp_stream("127.0.0.1", proxy.server.port) as stream:
            await stream.send_all(request_bytes(*REQUEST))
            response = await receive_response(stream)
        await proxy.stop()
    assert response.status == 200
    assert response.body.endswith(b"\n\n")
    assert b"event: error" in response.body  # the stream ended with the error, in full
    [row] = proxy.rows()
    assert (row["status"], row["outcome"]) == (200, "upstream_error")


async def test_the_next_request_in_the_same_scope_is_not_held_to_the_last_ones_limit(
    nursery: trio.Nursery, mock: MockUpstream, tmp_path: Path, clock: trio.testing.MockClock
) -> None:
    # Request 1 waits 5 s for its head, so its first-byte limit (30 s) goes to the scope.
    # Request 2 is pipelined behind it, so it is answered in the same scope, and the end
    # of its body arrives at 32 s: request 1's limit must be gone by then. (Request 2's
    # own first-byte limit counts from its head, read at 5 s: 35 s.)
    proxy = await start_proxy(nursery, tmp_path, mock.url,
                              timeouts={"first_byte": "30s", "idle": "10s"})
    second = request_bytes(*REQUEST)
    cut = len(second) - 10
    with trio.fail_after(120):
        async with await trio.open_tcp_stream("127.0.0.1", proxy.server.port) as stream:
            await stream.send_all(request_bytes(*REQUEST, "x-mock-sleep-head: 5")
                                  + second[:cut])
            await trio.sleep(32)
            await stream.send_all(second[cut:])
            first, later = await receive_responses(stream, 2)
        await proxy.stop()
    assert (first.status, later.status) == (200, 200)
    assert [r["outcome"] for r in proxy.rows()] == ["ok", "ok"]


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (b"NOT HTTP AT ALL\r\n\r\n", 400),  # unreadable
        (b"POST /v1/messages HTTP/1.1\r\nhost: x\r\n", 408),  # not finished in time
        (b"GET / HTTP/1.1\r\nhost: x\r\nx-big: " + b"a" * 4096 + b"\r\n\r\n", 431),  # over 1 KiB
    ],
)
async def test_the_answer_to_a_head_that_cannot_be_read_gives_up_after_timeouts_idle(
    nursery: trio.Nursery, mock: MockUpstream, tmp_path: Path, clock: trio.testing.MockClock,
    monkeypatch: pytest.MonkeyPatch, head: bytes, status: int,
) -> None:
    # A client that reads nothing, with full socket buffers: here, a write that never
    # ends. Before, such an answer held its connection until the server stopped.
    answering: list[int] = []

    async def send_simple_that_never_ends(self, status, body, **kwargs) -> None:
        answering.append(status)
        await trio.sleep_forever()

    monkeypatch.setattr(ClientConnection, "send_simple", send_simple_that_never_ends)
    proxy = await start_proxy(nursery, tmp_path, mock.url,
                              timeouts={"idle": "30s", "request_head": "10s"},
                              limits={"max_header_size": "1KiB"})
    assert proxy.server is not None
    with trio.fail_after(600):
        async with await trio.open_tcp_stream("127.0.0.1", proxy.server.port) as stream:
            await stream.send_all(head)
            start = trio.current_time()
            assert await stream.receive_some() == b""  # closed, having sent nothing
            took = trio.current_time() - start
    assert answering == [status]
    waited_for_head = 10 if status == 408 else 0
    assert waited_for_head + 30 <= took < waited_for_head + 31
    assert proxy.rows() == []  # no request ran


async def test_a_deadline_that_expires_after_the_response_is_complete_is_no_timeout(
    nursery: trio.Nursery, mock: MockUpstream, tmp_path: Path, clock: trio.testing.MockClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # httpx's response.aclose() is a checkpoint after the client has the whole response;
    # here it takes longer than the idle limit that the last read set on the scope.
    real_aclose = HttpxResponse.aclose

    async def slow_aclose(self) -> None:
        await real_aclose(self)
        await trio.sleep(20)

    monkeypatch.setattr(HttpxResponse, "aclose", slow_aclose)
    proxy = await start_proxy(nursery, tmp_path, mock.url, transport="httpx",
                              timeouts={"idle": "10s"})
    with trio.fail_after(120):
        async with await trio.open_tcp_stream("127.0.0.1", proxy.server.port) as stream:
            for _ in range(2):  # the same connection serves the next request
                await stream.send_all(request_bytes(*REQUEST))
                response = await receive_response(stream)
                assert response.status == 200
                assert response.json()["type"] == "message"
        await proxy.stop()
    assert [(r["status"], r["outcome"]) for r in proxy.rows()] == [(200, "ok"), (200, "ok")]
