"""The default upstream transport: HTTP/1.1 on h11 over trio streams, with keep-alive pools.

One pool of idle connections per origin, most recently used first. A connection goes
back to its pool only after a response was read to its end; it is checked before reuse
(idle expiry, and the socket must not be readable: an idle HTTP/1.1 connection that has
something to read was closed by the server or is out of step). A request that may have
reached upstream is never sent twice, except an idempotent one whose reused connection
failed before any response byte arrived.
"""

from __future__ import annotations

import math
import ssl
from collections.abc import Callable

import h11
import trio

from .. import rawio
from ..errors import UpstreamError, UpstreamTimeout, UpstreamTLSError
from ..headers import Headers
from .base import Origin, tls_failure_message

RECEIVE_SIZE = 65536
# A request larger than this is sent by a child task while the response head is awaited:
# an upstream may answer early (401, 413) without reading the body and without closing,
# and a send into its full socket buffer would otherwise block until timeouts.first_byte.
# Smaller requests fit the kernel's buffers and are sent inline (no task per request).
SEND_INLINE_MAX = 64 * 1024
_IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"PUT", b"DELETE", b"TRACE"})
_NETWORK_ERRORS = (trio.BrokenResourceError, trio.ClosedResourceError, OSError)


class _Connection:
    __slots__ = ("stream", "socket", "plain", "h11", "idle_since", "on_wait")

    def __init__(self, stream: trio.abc.Stream, socket: trio.socket.SocketType) -> None:
        self.stream = stream
        self.socket = socket
        self.plain = isinstance(stream, trio.SocketStream)  # not TLS: rawio applies
        self.h11 = h11.Connection(h11.CLIENT)
        self.idle_since = 0.0
        self.on_wait: Callable[[], None] | None = None  # the exchange's (Transport.request)

    def close(self) -> None:
        # Closing the socket directly is immediate and never blocks; TLS close_notify
        # is not needed for HTTP/1.1 with explicit framing (RFC 8446 §6.1 permits this).
        self.socket.close()

    async def receive_event(self, *, soon: bool = False) -> h11.Event | type[h11.PAUSED]:
        """The next h11 event. `soon`: the answer to a request just sent, which is
        usually there once the other tasks had their turn (see receive_some)."""
        while True:
            event = self.h11.next_event()
            if event is h11.NEED_DATA:
                self.h11.receive_data(await self.receive_some(soon=soon))
                continue
            return event

    async def receive_some(self, *, soon: bool = False) -> bytes:
        if self.plain:
            if soon:
                # Under load this read finds the answer and needs no epoll registration:
                # 5% more requests per second at 50 connections, 10 us less at one.
                return await rawio.receive_some_after_yield(
                    self.socket, RECEIVE_SIZE, self.on_wait
                )
            return await rawio.receive_some(self.socket, RECEIVE_SIZE, self.on_wait)
        if self.on_wait is not None:
            self.on_wait()  # TLS does not say whether it will wait
        return await self.stream.receive_some(RECEIVE_SIZE)

    async def send_all(self, data: bytes) -> None:
        if self.plain:
            await rawio.send_all(self.socket, data, self.on_wait)
        else:
            if self.on_wait is not None:
                self.on_wait()
            await self.stream.send_all(data)


class H11Response:
    """A response from one pooled connection, its body read on demand."""

    __slots__ = ("status", "reason", "headers", "_conn", "_pool", "_key", "_done")

    headers_checked = True  # h11's parser checked every name and value

    def __init__(
        self, response: h11.Response, conn: _Connection, pool: H11Pool, key: tuple
    ) -> None:
        self.status = response.status_code
        self.reason = response.reason
        self.headers: Headers = list(response.headers)
        self._conn: _Connection | None = conn
        self._pool = pool
        self._key = key
        self._done = False

    def receive_nowait(self) -> bytes | None:
        """A body chunk (or b"" for the end) that has already arrived; None if none has."""
        conn = self._conn
        if conn is None:
            return b""
        try:
            event = conn.h11.next_event()
        except h11.RemoteProtocolError as exc:
            self._discard()
            raise UpstreamError(f"upstream broke off the response: {exc}") from exc
        if event is h11.NEED_DATA:
            return None
        return self._consume(event)

    async def receive_some(self) -> bytes:
        """The next body chunk as upstream framed it; b"" at the end of the body."""
        conn = self._conn
        if conn is None:
            return b""
        try:
            event = await conn.receive_event()
        except h11.RemoteProtocolError as exc:
            self._discard()
            raise UpstreamError(f"upstream broke off the response: {exc}") from exc
        except _NETWORK_ERRORS as exc:
            self._discard()
            raise UpstreamError(f"upstream connection failed mid-response: {exc}") from exc
        return self._consume(event)

    def _consume(self, event: object) -> bytes:
        if type(event) is h11.Data:
            return bytes(event.data)  # h11 hands out bytearrays; consumers get immutable bytes
        if type(event) is h11.EndOfMessage:
            self._done = True
            self._release()
            return b""
        self._discard()  # pragma: no cover - h11 yields only Data/EndOfMessage here
        raise UpstreamError(f"unexpected upstream event {event!r}")

    def _release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self._pool._put(self._key, conn)

    def _discard(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    async def aclose(self) -> None:
        """Close the connection unless the body was read to its end (then it was pooled)."""
        self._discard()


async def _response_head(conn: _Connection) -> h11.Response:
    """Read events until the final response head (skipping 1xx)."""
    while True:
        event = await conn.receive_event()
        if type(event) is h11.ConnectionClosed:
            raise trio.BrokenResourceError("connection closed before a response")
        if type(event) is h11.Response:
            return event
        # InformationalResponse (100 Continue and the like): wait for the real one.


async def _send_while_awaiting_head(conn: _Connection, data: bytes) -> h11.Response:
    """Send a large request from a child task while reading the response head.

    If the head arrives first, the rest of the request is not sent (and the connection
    is never pooled): that early answer is the one to relay.
    """
    sent = False
    failed: BaseException | None = None

    async def send() -> None:
        nonlocal sent, failed
        try:
            await conn.send_all(data)
            sent = True
        except _NETWORK_ERRORS as exc:
            failed = exc  # upstream may still have answered: the head decides

    async with trio.open_nursery() as nursery:
        nursery.start_soon(send)
        try:
            response = await _response_head(conn)
        except BaseException:
            nursery.cancel_scope.cancel()
            if failed is not None:
                conn.h11.send_failed()
            raise
        if not sent:
            nursery.cancel_scope.cancel()
    if not sent:
        conn.h11.send_failed()  # the request was cut short: never reuse the connection
    return response


async def _response_is_readable(conn: _Connection) -> bool:
    """After a failed send: has upstream sent (the start of) a response we can still read?"""
    if conn.h11.trailing_data[0]:
        return True
    try:
        data = await conn.receive_some()
    except _NETWORK_ERRORS:
        return False
    if not data:
        return False
    conn.h11.receive_data(data)
    return True


class H11Pool:
    """Keep-alive HTTP/1.1 connections per origin, bounded, with idle expiry."""

    def __init__(
        self, ssl_context: ssl.SSLContext, *, max_idle: int = 64, idle_timeout: float = 60.0
    ) -> None:
        self._ssl_context = ssl_context
        self._max_idle = max_idle
        self._idle_timeout = idle_timeout
        self._idle: dict[tuple, list[_Connection]] = {}
        self._closed = False
        self.connections_opened = 0

    def _take(self, key: tuple) -> _Connection | None:
        idle = self._idle.get(key)
        now = trio.current_time()
        while idle:
            conn = idle.pop()
            if now - conn.idle_since <= self._idle_timeout and not conn.socket.is_readable():
                return conn
            conn.close()
        return None

    def _put(self, key: tuple, conn: _Connection) -> None:
        h = conn.h11
        if (
            self._closed
            or h.our_state is not h11.DONE
            or h.their_state is not h11.DONE
            # Bytes past the response (a HEAD answered with a body, a body longer than
            # its Content-Length) would be read as the next request's answer.
            or h.trailing_data[0]
        ):
            conn.close()
            return
        h.start_next_cycle()
        conn.on_wait = None  # it holds the client connection: not kept while idle
        now = trio.current_time()
        conn.idle_since = now
        idle = self._idle.setdefault(key, [])
        # Oldest first: close the expired ones, and the oldest if the pool is full.
        while idle and (
            now - idle[0].idle_since > self._idle_timeout or len(idle) >= self._max_idle
        ):
            idle.pop(0).close()
        if self._max_idle > 0:
            idle.append(conn)
        else:
            conn.close()

    async def _connect(self, origin: Origin, timeout: float) -> _Connection:
        where = f"{origin.host}:{origin.port}"
        try:
            with trio.fail_after(timeout if math.isfinite(timeout) else math.inf):
                # trio's SocketStream sets TCP_NODELAY itself.
                tcp = await trio.open_tcp_stream(origin.host, origin.port)
                stream: trio.abc.Stream = tcp
                if origin.scheme == "https":
                    tls = trio.SSLStream(
                        tcp, self._ssl_context, server_hostname=origin.host,
                        https_compatible=True,
                    )
                    try:
                        await tls.do_handshake()
                    except BaseException:
                        tcp.socket.close()
                        raise
                    stream = tls
        except trio.TooSlowError:
            raise UpstreamTimeout(
                f"could not connect to upstream {where} within {timeout:g}s"
                " (timeouts.upstream_connect)"
            ) from None
        except trio.BrokenResourceError as exc:
            raise UpstreamTLSError(tls_failure_message(origin.host, exc)) from exc
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise UpstreamError(f"could not connect to upstream {where}: {reason}") from exc
        self.connections_opened += 1
        return _Connection(stream, tcp.socket)

    async def request(
        self, origin: Origin, method: bytes, target: bytes, headers: Headers, body: bytes,
        *, connect_timeout: float, on_wait: Callable[[], None] | None = None,
    ) -> H11Response:
        """Send one request and return once the response head arrived."""
        key = (origin.scheme, origin.host, origin.port)
        # _parsed skips h11's per-header regex checks, 4% of a small request's
        # instructions; the Transport contract says the headers are valid already.
        request = h11.Request(method=method, target=target, headers=headers, _parsed=True)
        while True:
            conn = self._take(key)
            reused = conn is not None
            if conn is None:
                if on_wait is not None:
                    on_wait()
                conn = await self._connect(origin, connect_timeout)
            conn.on_wait = on_wait
            got_bytes = False
            try:
                h = conn.h11
                data = h.send(request)
                if body:
                    data += h.send(h11.Data(data=body))
                data += h.send(h11.EndOfMessage())
                if len(data) > SEND_INLINE_MAX:
                    response = await _send_while_awaiting_head(conn, data)
                    return H11Response(response, conn, self, key)
                try:
                    await conn.send_all(data)
                except _NETWORK_ERRORS:
                    # Upstream may have answered before reading the whole body (a 401 or
                    # 413, then close): that answer is the one to relay, if it is there.
                    h.send_failed()  # never pool this connection
                    got_bytes = bool(h.trailing_data[0])
                    if not await _response_is_readable(conn):
                        raise
                while True:
                    event = h.next_event()
                    if event is h11.NEED_DATA:
                        data = await conn.receive_some(soon=True)
                        got_bytes = got_bytes or bool(data)
                        h.receive_data(data)
                        continue
                    if type(event) is h11.ConnectionClosed:
                        raise trio.BrokenResourceError("connection closed before a response")
                    got_bytes = True
                    if type(event) is h11.Response:
                        return H11Response(event, conn, self, key)
                    # InformationalResponse (100 Continue and the like): wait for the real one.
            except BaseException as exc:
                conn.close()
                if isinstance(exc, h11.RemoteProtocolError) and not got_bytes:
                    # EOF before any response on a reused connection reads as a protocol
                    # error in h11; treat it like a network error. (Bytes h11 could not
                    # read are an answer: upstream had the request, never resend it.)
                    exc_is_network = True
                else:
                    exc_is_network = isinstance(exc, _NETWORK_ERRORS)
                if exc_is_network and reused and not got_bytes and method in _IDEMPOTENT:
                    continue  # stale keep-alive connection: safe to retry once more fresh
                if exc_is_network:
                    raise UpstreamError(
                        f"upstream {origin.host}:{origin.port} closed the connection"
                        " before answering"
                    ) from exc
                if isinstance(exc, h11.RemoteProtocolError):
                    raise UpstreamError(f"upstream sent an invalid response: {exc}") from exc
                raise

    async def aclose(self) -> None:
        """Close every idle connection; connections released later are closed too."""
        self._closed = True
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()
