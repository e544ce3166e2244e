"""The h11 upstream pool against a scriptable raw HTTP/1.1 server on loopback."""

from __future__ import annotations

from dataclasses import dataclass, field

import h11
import pytest
import trio
import trio.testing

from trioproxy.config import Route
from trioproxy.errors import UpstreamError
from trioproxy.upstream.base import make_ssl_context
from trioproxy.upstream.h11pool import H11Pool

RAW_REPLIES = {
    "garbage": b"hello world\r\n\r\n",
    "bad-status": b"HTTP/1.1 abc\r\n\r\n",
    "half-head": b"HTTP/1.1 200 OK\r\n",  # then EOF, with part of a response received
}


@dataclass
class ScriptedServer:
    """Answers each request with 200 "ok"; `plan` says, per request number, what to do
    instead: "close-after" closes the socket right after answering (without saying
    Connection: close), "drop" closes without answering, "late" answers only once every
    other task is blocked (the client is waiting for it); a key of RAW_REPLIES sends those
    bytes and closes."""

    plan: dict[int, str] = field(default_factory=dict)
    requests: list[tuple[int, bytes, bytes]] = field(default_factory=list)  # (conn, method, body)
    connections: int = 0
    port: int = 0

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started(self)
        await trio.serve_listeners(self._serve, listeners)

    async def _serve(self, stream: trio.SocketStream) -> None:
        self.connections += 1
        conn_id = self.connections
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                request, body = None, b""
                while True:
                    event = conn.next_event()
                    if event is h11.NEED_DATA:
                        conn.receive_data(await stream.receive_some(65536))
                        continue
                    if isinstance(event, h11.Request):
                        request = event
                    elif isinstance(event, h11.Data):
                        body += event.data
                    elif isinstance(event, h11.EndOfMessage):
                        break
                    elif isinstance(event, h11.ConnectionClosed):
                        return
                assert request is not None
                self.requests.append((conn_id, request.method, body))
                action = self.plan.get(len(self.requests))
                if action == "drop":
                    return
                if action in RAW_REPLIES:
                    await stream.send_all(RAW_REPLIES[action])
                    return
                if action == "late":
                    await trio.testing.wait_all_tasks_blocked()
                data = conn.send(h11.Response(status_code=200, headers=[("content-length", "2")]))
                data += conn.send(h11.Data(data=b"ok")) + conn.send(h11.EndOfMessage())
                await stream.send_all(data)
                if action == "close-after":
                    return
                conn.start_next_cycle()
        except (trio.BrokenResourceError, h11.RemoteProtocolError):
            pass
        finally:
            await trio.aclose_forcefully(stream)


@pytest.fixture
async def upstream(nursery: trio.Nursery) -> ScriptedServer:
    return await nursery.start(ScriptedServer().run)


def origin(server: ScriptedServer) -> Route:
    return Route(prefix="/", upstream=f"http://127.0.0.1:{server.port}")


async def fetch(pool: H11Pool, server: ScriptedServer, method: bytes = b"POST") -> bytes:
    route = origin(server)
    body = b"{}" if method == b"POST" else b""
    headers = [(b"host", route.host_header.encode())]
    if body:
        headers.append((b"content-length", b"2"))
    response = await pool.request(route, method, b"/x", headers, body, connect_timeout=5)
    data = b""
    while chunk := await response.receive_some():
        data += chunk
    await response.aclose()
    return data


async def test_connections_are_reused(upstream: ScriptedServer) -> None:
    pool = H11Pool(make_ssl_context())
    for _ in range(3):
        assert await fetch(pool, upstream) == b"ok"
    assert upstream.connections == 1
    assert pool.connections_opened == 1


async def test_a_connection_closed_by_upstream_while_idle_is_not_reused(
    upstream: ScriptedServer,
) -> None:
    upstream.plan[1] = "close-after"
    pool = H11Pool(make_ssl_context())
    assert await fetch(pool, upstream) == b"ok"
    await trio.testing.wait_all_tasks_blocked()  # let the server's close reach our socket
    assert await fetch(pool, upstream) == b"ok"  # a POST: must not hit the dead socket
    assert upstream.connections == 2
    assert [r[1] for r in upstream.requests] == [b"POST", b"POST"]


async def test_a_post_that_may_have_reached_upstream_is_never_resent(
    upstream: ScriptedServer,
) -> None:
    upstream.plan[2] = "drop"  # the second request is read, then the socket closed
    pool = H11Pool(make_ssl_context())
    assert await fetch(pool, upstream) == b"ok"
    with pytest.raises(UpstreamError, match="closed the connection before answering"):
        await fetch(pool, upstream)
    assert len(upstream.requests) == 2  # sent once, not retried


async def test_an_idempotent_request_is_retried_once_on_a_stale_connection(
    upstream: ScriptedServer,
) -> None:
    upstream.plan[2] = "drop"
    pool = H11Pool(make_ssl_context())
    assert await fetch(pool, upstream, b"GET") == b"ok"
    assert await fetch(pool, upstream, b"GET") == b"ok"
    assert [r[0] for r in upstream.requests] == [1, 1, 2]  # dropped on 1, retried on 2


@pytest.mark.parametrize("reply", sorted(RAW_REPLIES))
async def test_a_broken_answer_is_reported_as_such_and_never_resent(
    upstream: ScriptedServer, reply: str
) -> None:
    # Upstream answered, with bytes h11 cannot read: the request reached it, so even a
    # GET on a reused connection is not sent again, and the error says what came back.
    upstream.plan[2] = reply
    pool = H11Pool(make_ssl_context())
    assert await fetch(pool, upstream, b"GET") == b"ok"
    with pytest.raises(UpstreamError, match="upstream sent an invalid response"):
        await fetch(pool, upstream, b"GET")
    assert [r[0] for r in upstream.requests] == [1, 1]


async def test_idle_connections_expire(upstream: ScriptedServer, autojump_clock) -> None:
    pool = H11Pool(make_ssl_context(), idle_timeout=60)
    await fetch(pool, upstream)
    await trio.sleep(59)
    await fetch(pool, upstream)
    assert upstream.connections == 1
    await trio.sleep(61)
    await fetch(pool, upstream)
    assert upstream.connections == 2


async def test_the_pool_keeps_at_most_max_idle_connections(upstream: ScriptedServer) -> None:
    pool = H11Pool(make_ssl_context(), max_idle=1)
    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(fetch, pool, upstream)
    assert upstream.connections == 3
    assert sum(len(idle) for idle in pool._idle.values()) == 1


async def test_unreachable_upstream_is_an_upstream_error() -> None:
    with trio.socket.socket() as sock:
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    pool = H11Pool(make_ssl_context())
    route = Route(prefix="/", upstream=f"http://127.0.0.1:{port}")
    with pytest.raises(UpstreamError, match=f"could not connect to upstream 127.0.0.1:{port}"):
        await pool.request(route, b"GET", b"/", [(b"host", b"x")], b"", connect_timeout=5)


async def test_on_wait_is_called_before_waiting_and_not_kept_by_the_pool(
    upstream: ScriptedServer,
) -> None:
    upstream.plan = {2: "late"}
    pool = H11Pool(make_ssl_context())
    route = origin(upstream)
    headers = [(b"host", route.host_header.encode()), (b"content-length", b"2")]
    waits: list[int] = []
    with trio.fail_after(10):
        for n in (1, 2):
            response = await pool.request(
                route, b"POST", b"/x", headers, b"{}", connect_timeout=5,
                on_wait=lambda n=n: waits.append(n),
            )
            while await response.receive_some():
                pass
            await response.aclose()
    # Request 1 opens the connection (a wait); request 2's answer comes only once the
    # pool waits for it. Either may wait more than once, never before it was sent.
    assert waits[0] == 1
    assert 2 in waits
    [[conn]] = pool._idle.values()
    assert conn.on_wait is None  # the pool keeps no reference to a finished exchange
    await pool.aclose()
