"""The relay's deadline: the limit it keeps, and when it gives it to its cancel scope."""

from __future__ import annotations

import math

import h11
import pytest
import trio
import trio.testing

from tests.test_rawio import pair
from trioproxy.config import Route, TimeoutsConfig
from trioproxy.http1 import ClientConnection
from trioproxy.relay import Exchange, Relay, _Deadline
from trioproxy.usage.record import UsageRecord


class FakeClient:
    """The connection's cancel scope, and a count of watch() calls (on_wait calls it)."""

    def __init__(self) -> None:
        self.scope = trio.CancelScope()
        self.watched = 0

    def watch(self) -> None:
        self.watched += 1


TIMEOUTS = TimeoutsConfig(first_byte=600.0, idle=300.0, total=3600.0)


async def test_the_scope_gets_a_limit_only_before_a_wait(autojump_clock) -> None:
    client = FakeClient()
    started = trio.current_time()
    deadline = _Deadline(started, TIMEOUTS, client)  # type: ignore[arg-type]
    assert deadline.scope.deadline == math.inf  # nothing waits yet: no deadline in trio
    deadline.on_wait()  # the response head is awaited
    assert deadline.scope.deadline == started + 600
    assert client.watched == 1
    await trio.sleep(10)
    deadline.wait_client()  # the head arrived: the idle limit replaces first_byte...
    assert deadline.scope.deadline == started + 600  # ...but only when a wait comes
    deadline.apply()  # a write to the client is about to wait
    assert deadline.scope.deadline == started + 10 + 300
    assert "client read nothing for 300s" in deadline.expired().message
    deadline.release()  # the exchange ended: the connection's next request has no limit
    assert deadline.scope.deadline == math.inf


async def test_a_scope_that_expires_names_the_wait_it_was_in(autojump_clock) -> None:
    client = FakeClient()
    deadline = _Deadline(trio.current_time(), TIMEOUTS, client)  # type: ignore[arg-type]
    with deadline.scope:
        deadline.wait_upstream()
        deadline.on_wait()
        await trio.sleep_forever()
    assert deadline.scope.cancelled_caught
    assert trio.current_time() == 300
    assert "upstream sent nothing for 300s" in deadline.expired().message


async def test_the_total_limit_wins_when_it_is_nearer(autojump_clock) -> None:
    timeouts = TimeoutsConfig(first_byte=600.0, idle=300.0, total=100.0)
    deadline = _Deadline(trio.current_time(), timeouts, FakeClient())  # type: ignore[arg-type]
    with deadline.scope:
        deadline.on_wait()
        await trio.sleep_forever()
    assert trio.current_time() == 100
    assert "timeouts.total" in deadline.expired().message


BIG = 64 * 1024 * 1024  # more than the socket buffers hold: the write to the client waits


class InstantResponse:
    """A whole response that has arrived already: nothing of it ever waits."""

    status, reason, headers_checked = 200, b"OK", True
    headers = [(b"content-type", b"application/octet-stream"), (b"content-length", b"%d" % BIG)]

    def __init__(self) -> None:
        self._body: bytes | None = b"x" * BIG

    def receive_nowait(self) -> bytes | None:
        body, self._body = self._body, None
        return body if body is not None else b""

    async def receive_some(self) -> bytes:
        await trio.lowlevel.checkpoint()
        return self.receive_nowait() or b""

    async def aclose(self) -> None:
        pass


class InstantTransport:
    """Answers at once and so never calls on_wait."""

    async def request(self, origin, method, target, headers, body, *, connect_timeout,
                      on_wait=None):
        await trio.lowlevel.checkpoint()
        return InstantResponse()

    async def aclose(self) -> None:
        pass


async def test_a_write_to_the_client_that_waits_gets_the_idle_limit(autojump_clock) -> None:
    # Upstream never made the relay wait, so only the blocked write can give the scope
    # its limit: without it, this relay would wait for the client forever.
    route = Route(prefix="/", upstream="http://127.0.0.1:9")
    timeouts = TimeoutsConfig(first_byte=600.0, idle=7.0, total=3600.0)
    relay = Relay({"h11": InstantTransport()}, "h11", timeouts)  # type: ignore[dict-item]
    peer, sock = await pair()
    client = ClientConnection(trio.SocketStream(sock), max_header_size=65536)
    # The request was read (as next_request would have), and then nothing is read back.
    client.conn.receive_data(b"GET /blob HTTP/1.1\r\nhost: x\r\n\r\n")
    assert type(client.conn.next_event()) is h11.Request
    assert type(client.conn.next_event()) is h11.EndOfMessage
    record = UsageRecord(ts=0.0, route="/", method="GET", path="/blob")
    exchange = Exchange(route=route, method=b"GET", target=b"/blob", headers=[(b"host", b"x")],
                        body=b"", flavour="openai", started=trio.current_time())
    with trio.fail_after(60), trio.CancelScope() as client.scope:
        await relay.run(client, exchange, record)
    assert record.outcome == "client_error"
    assert "client read nothing for 7s" in (record.error or "")
    assert trio.current_time() == pytest.approx(7, abs=0.1)
    peer.close()
    await client.aclose()
