"""h11 glue for the client side: read requests under caps and deadlines, write responses.

One `ClientConnection` wraps one accepted stream. One reader task per connection
(`run_reader`) does the reads that wait: it feeds h11 and wakes whoever waits for the
next event, and while a relay waits for upstream it cancels the relay if the client
leaves. It reads only when asked: by the connection task waiting for more of a request,
or by a relay about to wait (`watch`). The connection task reads what has already
arrived itself, without a wait (`_feed_now`): under load the next request is usually
there, and a reader that waited for it after every request cost an epoll registration
and a hand-off per request. Read-ahead is capped, so a client that keeps sending is
pushed back by the kernel. The reader ends when the client leaves or `aclose` closes
the socket, so the server may run it beside the connection task rather than in a
nursery of its own. Waits for a request head end at their deadline through one
`HeadTimer` per server.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import h11
import trio

from . import rawio
from .errors import BadRequest, BodyTooLarge, HeadersTooLarge, ProxyError, RequestTimeout

RECEIVE_SIZE = 65536
CLOSE_TIMEOUT = 1.0
LINGER_MAX_BYTES = 1 << 20

log = logging.getLogger("trioproxy")


def _raise_protocol_error(exc: h11.RemoteProtocolError) -> None:
    if exc.error_status_hint == 431:
        raise HeadersTooLarge("request headers are larger than limits.max_header_size") from exc
    # h11's message quotes the offending bytes, which may hold an API key: keep only
    # its first words ("illegal header line", "illegal chunk header", ...).
    what = str(exc).split(":", 1)[0][:80]
    raise BadRequest(f"malformed HTTP request ({what})") from exc


@dataclass(slots=True)
class RequestHead:
    """A request head as the client sent it, its header names lowercased."""

    method: bytes
    target: bytes
    headers: list[tuple[bytes, bytes]]  # a plain list: read several times per request
    content_length: int | None  # None when the body is chunked or absent


class ClientConnection:
    """A client's HTTP/1.1 connection: h11 state plus the stream it runs over."""

    # Slots and bare task handoffs (no trio.Event) keep an idle connection small.
    __slots__ = (
        "stream", "max_header_size", "conn", "closing", "response_started", "gone", "broken",
        "linger", "on_gone", "on_wait", "watching", "_consumer", "_reader", "_closed", "_discard",
        "_head_deadline", "_head_stop", "scope", "_answering", "_cut",
    )

    def __init__(self, stream: trio.SocketStream, *, max_header_size: int) -> None:
        self.stream = stream
        self.max_header_size = max_header_size
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=max_header_size)
        self.closing = False  # the server is draining: the next response says Connection: close
        self.response_started = False
        self.gone = False  # the client closed or reset its side
        self.broken = False  # a send failed or a response was cut: never reuse
        self.linger = False  # we answered before reading the whole body: drain before close
        # The cancel scope of the requests being answered (see server._run_connection):
        # a relay's deadline is set on it, and the reader cancels it if the client leaves.
        self.scope: trio.CancelScope | None = None
        self.on_gone: trio.CancelScope | None = None  # cancelled if the client leaves
        self.watching = False  # a relay waits: the reader watches for the client leaving
        # Called before a write to the client waits (the relay sets its deadline then).
        self.on_wait: Callable[[], None] | None = None
        self._head_deadline: float | None = None  # while waiting for a request head
        self._head_stop: str | None = None  # why that wait was stopped: "timeout" or "drain"
        self._consumer: trio.lowlevel.Task | None = None  # parked until the reader feeds h11
        self._reader: trio.lowlevel.Task | None = None  # parked: enough is read ahead
        self._closed = False  # aclose() ran: the reader stops
        self._discard = False  # lingering close: the reader drops what it reads
        self._answering: trio.CancelScope | None = None  # a shielded error answer (answer_scope)
        self._cut = False  # the server cut its connections (cut)

    async def run_reader(self) -> None:
        """Read the client until it leaves or the connection is closed; never raises."""
        sock = self.stream.socket
        discarded = 0
        try:
            while not self.gone and not self._closed:
                if not self._discard and (
                    (self._consumer is None and not self.watching)
                    or len(self.conn.trailing_data[0]) > self.max_header_size
                ):
                    # Nobody waits for the client (the connection task is busy and no
                    # relay waits), or enough is read ahead (a pipelined request, or a
                    # client that keeps sending): wait until someone does.
                    await self._park_reader()
                    continue
                try:
                    data = await rawio.receive_some(sock, RECEIVE_SIZE)
                except trio.ClosedResourceError:
                    break  # aclose() closed the socket
                except trio.BrokenResourceError:
                    data = b""  # reset by the peer
                if self._discard:
                    discarded += len(data)
                    if data and discarded < LINGER_MAX_BYTES:
                        continue
                    self.gone = True
                else:
                    if not data:
                        self.gone = True
                    try:
                        self.conn.receive_data(data)
                    except RuntimeError:
                        pass  # receive_data after EOF: the peer had already closed
                self._wake(self._consumer)
        except Exception:
            log.exception("reading from the client failed")
            self.gone = True
            self._wake(self._consumer)
        if self.on_gone is not None:
            self.on_gone.cancel()

    # The two park methods return the awaitable instead of awaiting it: one coroutine
    # frame fewer under each parked task.
    def _park_consumer(self) -> Awaitable[object]:
        """Sleep until the reader calls `_wake(self._consumer)`, or a cancellation."""
        self._consumer = trio.lowlevel.current_task()
        return trio.lowlevel.wait_task_rescheduled(self._abort_consumer)  # noqa: ASYNC105

    def _abort_consumer(self, _: object) -> trio.lowlevel.Abort:
        self._consumer = None
        return trio.lowlevel.Abort.SUCCEEDED

    def _park_reader(self) -> Awaitable[object]:
        """Sleep until a consumer calls `_wake(self._reader)`, or a cancellation."""
        self._reader = trio.lowlevel.current_task()
        return trio.lowlevel.wait_task_rescheduled(self._abort_reader)  # noqa: ASYNC105

    def _abort_reader(self, _: object) -> trio.lowlevel.Abort:
        self._reader = None
        return trio.lowlevel.Abort.SUCCEEDED

    def _wake(self, task: trio.lowlevel.Task | None) -> None:
        if task is None:
            return
        if task is self._consumer:
            self._consumer = None
        else:
            self._reader = None
        trio.lowlevel.reschedule(task)

    def _event_now(self) -> h11.Event | type[h11.NEED_DATA] | type[h11.PAUSED]:
        """The next event h11 can give from what the reader fed it, without waiting."""
        try:
            event = self.conn.next_event()
        except h11.RemoteProtocolError as exc:
            _raise_protocol_error(exc)
        if event is h11.NEED_DATA and self.gone:
            raise trio.BrokenResourceError("client closed the connection")
        return event

    def _feed_now(self) -> None:
        """Feed h11 what the client has sent already, without the reader.

        A new client has usually sent its request by the time its connection task first
        runs: reading it here saves an epoll wait and a hand-off from the reader, about
        70 us from accept to the upstream request (see also next_request_sent).
        """
        # A reset raises BrokenResourceError, which next_request takes as the client gone.
        data = rawio.read_now(self.stream.socket, RECEIVE_SIZE)
        if data is not None:
            self.gone = not data
            self.conn.receive_data(data)

    def _wait_for_data(self) -> Awaitable[object]:
        """Wait until the reader fed h11 more bytes (or EOF)."""
        self._wake(self._reader)
        return self._park_consumer()

    def watch(self) -> None:
        """A relay is about to wait: from now on, a client that leaves cancels `on_gone`.
        The relay sets `watching` back to False when it ends."""
        if not self.watching:
            self.watching = True
            self._wake(self._reader)

    def stop_head_wait(self, why: str) -> None:
        """End the wait for a head: "timeout" (HeadTimer) or "drain" (shutdown)."""
        if self._head_deadline is not None:
            self._head_stop = why
            self._wake(self._consumer)

    async def next_request(self, timer: HeadTimer, *, first: bool) -> RequestHead | None:
        """The next request head, or None if the client closed cleanly between requests.

        A head that does not arrive within `timer.timeout` raises RequestTimeout when part
        of it (or, on a new connection, none of it) was sent; an idle keep-alive
        connection that simply stays quiet is closed without an answer (returns None),
        and so is one stopped by a drain.
        """
        self._head_stop = None
        self._head_deadline = timer.watch(self)
        try:
            if first:
                self._feed_now()
            while (event := self._event_now()) is h11.NEED_DATA:
                if self._head_stop is not None:
                    break
                await self._wait_for_data()
        except trio.BrokenResourceError:
            return None
        finally:
            self._head_deadline = None
            timer.unwatch(self)
        if event is h11.NEED_DATA:
            if self._head_stop == "drain":
                return None
            if first or self.conn.trailing_data[0]:
                raise RequestTimeout(f"request head not received within {timer.timeout:g}s")
            return None
        if isinstance(event, h11.ConnectionClosed):
            return None
        if not isinstance(event, h11.Request):  # pragma: no cover - h11 guarantees Request first
            raise BadRequest(f"expected a request, got {type(event).__name__}")
        # h11's Headers is a Sequence whose items are built per access: one copy to a
        # plain list (raw_items is a list already) serves every later look-up.
        headers = [(name.lower(), value) for name, value in event.headers.raw_items()]
        # h11 caps only a head still incomplete; one that arrived whole is measured here.
        size = len(event.method) + len(event.target) + 12
        content_length = None
        for name, value in headers:
            size += len(name) + len(value) + 4
            if name == b"content-length":
                content_length = int(value)  # h11 validated it
        if size > self.max_header_size:
            raise HeadersTooLarge("request headers are larger than limits.max_header_size")
        return RequestHead(event.method, event.target, headers, content_length)

    async def read_body(self, request: RequestHead, *, max_size: int, timeout: float) -> bytes:
        """The whole request body, enforcing `max_size` while reading (RFC 9110 §15.5.14)."""
        length = request.content_length
        if length is not None and length > max_size:
            raise BodyTooLarge(
                f"request body of {length} bytes is over the {max_size} byte limit"
                " (limits.max_body_size)"
            )
        if self.conn.they_are_waiting_for_100_continue:
            await self._send(h11.InformationalResponse(status_code=100, headers=[]))
        parts: list[bytes] = []
        size = 0
        deadline = None  # set at the first wait: most bodies arrive with their head
        while True:
            try:
                event = self._event_now()
            except trio.BrokenResourceError:
                raise BadRequest("client closed the connection before sending its body") from None
            if event is h11.NEED_DATA:
                # A small body usually came with its head: a deadline scope is only
                # needed when there is something to wait for.
                if deadline is None:
                    deadline = trio.current_time() + timeout if math.isfinite(timeout) else math.inf
                with trio.move_on_at(deadline) as scope:
                    await self._wait_for_data()
                if scope.cancelled_caught:
                    raise RequestTimeout(f"request body not received within {timeout:g}s")
            elif isinstance(event, h11.Data):
                size += len(event.data)
                if size > max_size:
                    raise BodyTooLarge(
                        f"request body is over the {max_size} byte limit (limits.max_body_size)"
                    )
                parts.append(event.data)
            elif isinstance(event, h11.EndOfMessage):
                return b"".join(parts)

    async def _send(self, event: h11.Event, then: h11.Event | None = None) -> None:
        data = self.conn.send(event)
        if then is not None:
            data += self.conn.send(then)
        if not data:
            return  # e.g. the end of a Content-Length body: nothing to write, no checkpoint
        try:
            await rawio.send_all(self.stream.socket, data, self.on_wait)
        except BaseException:
            self.conn.send_failed()
            self.broken = True
            raise

    async def send_head(
        self, status: int, headers: list[tuple[bytes, bytes]], reason: bytes = b"",
        first_chunk: bytes = b"", *, checked: bool = False,
    ) -> None:
        """Send the response head, and `first_chunk` of the body in the same write; the
        rest follows through `send_data` and `send_end`. `checked` says h11 parsed the
        headers and reason already, so they need no second check."""
        self.response_started = True
        if self.closing:
            headers = [*headers, (b"connection", b"close")]
        await self._send(
            h11.Response(status_code=status, headers=headers, reason=reason, _parsed=checked),
            h11.Data(data=first_chunk) if first_chunk else None,
        )

    async def send_data(self, data: bytes) -> None:
        """Send one body chunk as it is, immediately (no coalescing)."""
        await self._send(h11.Data(data=data))

    async def send_end(self) -> None:
        await self._send(h11.EndOfMessage())

    async def send_simple(
        self, status: int, body: bytes, *, content_type: bytes = b"application/json",
        close: bool = False,
    ) -> None:
        """Send a whole small response that the proxy makes itself."""
        headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
        if close:
            headers.append((b"connection", b"close"))
        await self.send_head(status, headers)
        await self._send(h11.Data(data=body))
        await self.send_end()

    async def send_error(self, error: ProxyError, body: bytes) -> None:
        """Answer `error` if no response was started; close after it if the body was not read."""
        if self.response_started or self.broken:
            self.broken = True
            return
        close = self.conn.their_state is not h11.DONE or isinstance(error, RequestTimeout)
        self.linger = self.conn.their_state is not h11.DONE
        try:
            await self.send_simple(error.status, body, close=close)
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.LocalProtocolError):
            self.broken = True

    def start_next_cycle(self) -> bool:
        """Prepare for the next request on this connection; False if it must close."""
        if self.broken or self.gone:
            return False
        if self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE:
            self.conn.start_next_cycle()
            self.response_started = False
            self._answering = None
            return True
        return False

    def answer_scope(self, timeout: float) -> trio.CancelScope:
        """A cancel scope for sending an error answer, which ends it after `timeout`.

        When a deadline has cancelled `scope`, the error is that timeout: the answer is
        then shielded from it, and so from the server's shutdown too, which cancels it
        through `cut()` instead.
        """
        answer = trio.CancelScope(deadline=trio.current_time() + timeout)
        if self.scope is not None and self.scope.cancel_called:
            answer.shield = True
            if self._cut:
                answer.cancel()
            self._answering = answer
        return answer

    def cut(self) -> None:
        """The server stops this connection's work at once (see `answer_scope`)."""
        self._cut = True
        if self._answering is not None:
            self._answering.cancel()

    async def next_request_sent(self) -> bool:
        """After an answer: let the other tasks run, then take what the client has sent
        meanwhile; True if (part of) its next request is there.

        Under load a keep-alive client's next request is there by then: taking it saves
        an epoll wait and a hand-off from the reader (at 50 connections, the epoll
        registrations per request went from 1.0 to 0.02).
        """
        if self.conn.their_state is not h11.IDLE or self.conn.trailing_data[0]:
            return True  # pipelined: read ahead already
        await trio.lowlevel.checkpoint()
        try:
            self._feed_now()
        except trio.BrokenResourceError:
            return False  # reset: next_request finds the client gone
        return bool(self.conn.trailing_data[0]) or self.gone

    async def aclose(self) -> None:
        """Close the stream, waiting at most CLOSE_TIMEOUT for a graceful close; the
        reader stops.

        After an early answer (413 before the body was read) the unread body is drained
        for a moment first: closing a socket with unread input sends a reset, which can
        destroy the answer before the client reads it (RFC 9112 §9.6, "lingering close").
        """
        with trio.move_on_after(CLOSE_TIMEOUT, shield=True) as scope:
            if self.linger and not self.gone and isinstance(self.stream, trio.SocketStream):
                with trio.move_on_after(CLOSE_TIMEOUT / 2):
                    try:
                        await self.stream.send_eof()
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        pass
                    else:
                        self._discard = True  # the reader drains until EOF
                        self._wake(self._reader)
                        while not self.gone:
                            await self._park_consumer()
            self._closed = True
            self._wake(self._reader)
            await self.stream.aclose()
        if scope.cancelled_caught:
            await trio.aclose_forcefully(self.stream)


class HeadTimer:
    """Stops waits for a request head that run past `timeout` (ClientConnection.next_request).

    One task and an ordered dict instead of a cancel scope per waiting connection: a
    scope costs about 1 KB, and an idle keep-alive connection is always waiting for a
    head. Every wait has the same length, so the dict's insertion order is deadline
    order; a wait that ends leaves it at once, so it holds only the waiting connections.
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._waiting: dict[ClientConnection, float] = {}
        self._sleeping: trio.lowlevel.Task | None = None  # run(), parked on an empty dict

    def watch(self, client: ClientConnection) -> float:
        """Start timing `client`'s wait; return its deadline."""
        deadline = trio.current_time() + self.timeout
        if math.isfinite(deadline):
            self._waiting[client] = deadline
            if self._sleeping is not None:
                task, self._sleeping = self._sleeping, None
                trio.lowlevel.reschedule(task)
        return deadline

    def unwatch(self, client: ClientConnection) -> None:
        """`client`'s wait ended."""
        self._waiting.pop(client, None)

    async def run(self) -> None:
        """Stop each wait at its deadline; run until cancelled."""
        waiting = self._waiting
        while True:
            if not waiting:
                self._sleeping = trio.lowlevel.current_task()

                def abort(_: object) -> trio.lowlevel.Abort:
                    self._sleeping = None
                    return trio.lowlevel.Abort.SUCCEEDED

                await trio.lowlevel.wait_task_rescheduled(abort)
                continue
            client, deadline = next(iter(waiting.items()))
            if trio.current_time() < deadline:
                # If this wait ends meanwhile, the next one's deadline is later: waking
                # early only means looking again.
                await trio.sleep_until(deadline)
            else:
                del waiting[client]
                client.stop_head_wait("timeout")
