"""Forward one request upstream and stream the answer back, with usage scanning on the side.

The client stream is primary: each upstream chunk is written to the client as soon as
it arrives, as it is, and only then handed to the usage scanner, which parses it while
the relay would otherwise wait for upstream's next chunk. (A scanner task fed through a
channel, as first built, ran on the same thread at the same moments and added two task
switches per chunk: removing it took the CPU per relayed SSE event from 101 to 90 us;
see issue 3.) The relay runs in its connection's cancel scope, which the connection's
reader cancels if the client leaves: that closes the upstream request (nobody pays for
tokens no one reads).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import trio

from . import headers as hdr
from .config import Route, TimeoutsConfig
from .errors import (
    ClientTooSlow,
    ProxyError,
    UpstreamError,
    UpstreamTimeout,
    error_sse_event,
    is_cancellation,
)
from .http1 import ClientConnection
from .translate import UpstreamFormatError
from .translation import ResponseTranslation
from .upstream.base import Transport, UpstreamResponse
from .usage.record import UsageRecord
from .usage.scan import JSON_BODY_CAP, UsageScanner, make_scanner

log = logging.getLogger("trioproxy")

# The idle deadline is moved only when it would move by more than this fraction of
# timeouts.idle (at most DEADLINE_SLACK_MAX seconds): moving a deadline costs a heap
# operation, and a stream of small events would move it twice per event.
DEADLINE_SLACK = 0.01
DEADLINE_SLACK_MAX = 1.0


@dataclass(slots=True)
class Exchange:
    """One request on its way upstream, as the relay needs it."""

    route: Route
    method: bytes
    target: bytes  # upstream target: base path + rest + query
    headers: hdr.Headers  # already filtered for upstream
    body: bytes
    flavour: str  # the API shape for errors made by the proxy
    started: float  # trio.current_time() when the request head was read
    # The response so far lets the proxy append an SSE error event (an uncompressed
    # event stream framed by chunks, not by Content-Length).
    can_append_event: bool = False
    completed: bool = False  # the whole response reached the client
    # On a translate route: how to turn the response back into the client's API, which
    # upstream endpoint the usage scanner reads, and headers added to the response.
    translation: ResponseTranslation | None = None
    scan_path: str | None = None
    extra_headers: hdr.Headers = field(default_factory=list)


def _deadline(start: float, seconds: float) -> float:
    return start + seconds if math.isfinite(seconds) else math.inf


class _Deadline:
    """The relay's limits, given to the connection's cancel scope as the exchange goes on.

    Each wait has its own limit (the first byte, then the idle gap before every read from
    upstream and every write to the client) and the whole exchange has `timeouts.total`.
    One scope set to the nearer of the two costs far less than a scope per wait: cancel
    scopes were about 15% of the CPU time of a small request. The scope is the client
    connection's (`ClientConnection.scope`), shared with the requests before and after
    this one; the reader cancels it when the client leaves.

    The limit is kept here and given to the scope only when the exchange is about to
    wait (`on_wait`, which transports and the client connection call): an answer that
    is there at once never registers a deadline with trio (5% more requests per second
    at 50 connections). `release()` takes it back when the exchange ends.
    """

    __slots__ = (
        "scope", "_timeouts", "_total_at", "_slack", "_at", "_waiting_for", "_by_total",
        "_client",
    )

    def __init__(self, started: float, timeouts: TimeoutsConfig, client: ClientConnection):
        assert client.scope is not None, "a relay runs in the connection's cancel scope"
        self.scope = client.scope
        self._timeouts = timeouts
        self._total_at = _deadline(started, timeouts.total)
        self._slack = min(timeouts.idle * DEADLINE_SLACK, DEADLINE_SLACK_MAX)
        self._client = client
        self._set(_deadline(started, timeouts.first_byte), "first_byte")

    def _set(self, at: float, waiting_for: str) -> None:
        self._waiting_for = waiting_for
        self._by_total = self._total_at <= at
        self._at = self._total_at if self._by_total else at

    def _move_idle(self, waiting_for: str) -> None:
        at = trio.current_time() + self._timeouts.idle
        if self._by_total and at >= self._total_at:
            self._waiting_for = waiting_for  # timeouts.total stays the nearer limit
        elif self._waiting_for == "first_byte" or at - self._at > self._slack:
            self._set(at, waiting_for)
        else:
            # Nearly where it should be: left alone, it may expire up to _slack early.
            self._waiting_for = waiting_for

    def wait_upstream(self) -> None:
        """The next wait is a read from upstream."""
        self._move_idle("upstream")

    def wait_client(self) -> None:
        """The next wait is a write to the client."""
        self._move_idle("client")

    def apply(self) -> None:
        """Give the scope the current limit: the exchange is about to wait."""
        if self.scope.deadline != self._at:
            self.scope.deadline = self._at

    def on_wait(self) -> None:
        """Before a wait on upstream: the limit applies, and the client is watched."""
        self.apply()
        self._client.watch()

    def release(self) -> None:
        """The exchange is over: its limit no longer applies to the scope."""
        if self.scope.deadline != math.inf:
            self.scope.deadline = math.inf

    def expired(self) -> ProxyError:
        """The error for the deadline that expired."""
        t = self._timeouts
        if self._by_total:
            return UpstreamTimeout(f"request took longer than {t.total:g}s (timeouts.total)")
        if self._waiting_for == "first_byte":
            return UpstreamTimeout(
                f"upstream sent no response within {t.first_byte:g}s (timeouts.first_byte)"
            )
        if self._waiting_for == "upstream":
            return UpstreamTimeout(
                f"upstream sent nothing for {t.idle:g}s mid-response (timeouts.idle)"
            )
        return ClientTooSlow(f"client read nothing for {t.idle:g}s mid-response (timeouts.idle)")


class Relay:
    """Runs exchanges over the configured transports with the configured deadlines."""

    def __init__(self, transports: dict[str, Transport], default: str, timeouts: TimeoutsConfig):
        self._transports = transports
        self._default = default
        self._timeouts = timeouts

    async def run(self, client: ClientConnection, ex: Exchange, record: UsageRecord) -> None:
        """Relay `ex` and fill `record`. Raises ProxyError only before the response started.

        Runs in the connection's cancel scope (`client.scope`); a cancellation of it (this
        exchange's deadline, or the client leaving) ends here and never escapes.
        """
        error: ProxyError | None = None
        if client.gone:
            return  # left before we started: nothing to relay
        deadline = _Deadline(ex.started, self._timeouts, client)
        client.on_gone = deadline.scope
        client.on_wait = deadline.apply
        try:
            try:
                await self._exchange(client, ex, record, deadline)
            except BaseException as exc:
                if not (deadline.scope.cancel_called and is_cancellation(exc)):
                    raise  # not ours: the server's shutdown, or an error handled below
                if not client.gone and not ex.completed:
                    raise deadline.expired() from None
        except ProxyError as exc:
            client.on_gone = client.on_wait = None
            deadline.release()  # the error answer has its own limit (answer_scope)
            if client.response_started:
                await self._end_stream_with_error(client, ex, record, exc)
            else:
                error = exc
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            client.gone = True  # writing to the client failed: it left
        finally:
            client.on_gone = client.on_wait = None
            client.watching = False
            deadline.release()
        if error is not None:
            raise error
        if client.gone and not ex.completed:
            record.outcome = "cancelled"
            record.error = "client disconnected before the response was complete"

    async def _exchange(
        self, client: ClientConnection, ex: Exchange, record: UsageRecord, deadline: _Deadline
    ) -> None:
        transport = self._transports[ex.route.transport or self._default]
        response = await transport.request(
            ex.route, ex.method, ex.target, ex.headers, ex.body,
            connect_timeout=self._timeouts.upstream_connect, on_wait=deadline.on_wait,
        )
        record.ttfb_ms = (trio.current_time() - ex.started) * 1000
        try:
            await self._stream_response(client, ex, record, response, deadline)
        finally:
            await response.aclose()

    async def _stream_response(
        self, client: ClientConnection, ex: Exchange, record: UsageRecord,
        response: UpstreamResponse, deadline: _Deadline,
    ) -> None:
        record.status = response.status
        content_type = hdr.get(response.headers, b"content-type")
        encoding = hdr.get(response.headers, b"content-encoding")
        ctype = content_type.decode("latin-1") if content_type else None
        record.stream = bool(ctype and ctype.startswith("text/event-stream"))
        ex.can_append_event = (
            record.stream and encoding is None
            and hdr.get(response.headers, b"content-length") is None
        )
        if response.status >= 400:
            record.outcome = "upstream_error"
        scanner = make_scanner(
            ex.route.flavour, ex.scan_path or record.path, ctype,
            encoding.decode("latin-1") if encoding else None,
        )
        if ex.translation is not None:
            await self._translate(client, ex, record, response, deadline, scanner)
            return
        try:
            await self._pump(client, ex, record, response, deadline, scanner)
        finally:
            if scanner is not None:
                record.usage = scanner.finish()
                record.scan_complete = scanner.complete
                if not scanner.complete and scanner.problem:
                    log.debug("usage scan incomplete: %s", scanner.problem)

    async def _pump(
        self, client: ClientConnection, ex: Exchange, record: UsageRecord,
        response: UpstreamResponse, deadline: _Deadline, scanner: UsageScanner | None,
    ) -> None:
        """Copy the response to the client, chunk by chunk, as it arrives."""
        # Body bytes the client still expects, or -1 when the end is marked by framing.
        # Once it has them all it may leave at once, so its response is ended then,
        # before upstream's end is read (which returns the upstream socket to the pool).
        length_header = hdr.get(response.headers, b"content-length")
        if ex.method == b"HEAD" or response.status in (204, 304):
            remaining = 0
        else:
            remaining = int(length_header) if length_header is not None else -1
        deadline.wait_client()
        # Body bytes already received go out in the same write as the head.
        chunk = response.receive_nowait()
        await client.send_head(
            response.status, hdr.response_headers(response.headers), response.reason,
            chunk or b"", checked=response.headers_checked,
        )
        while True:
            if chunk:
                record.bytes_out += len(chunk)
                if scanner is not None:
                    scanner.feed(chunk)  # after the client has it (see the module docstring)
                if remaining > 0:
                    remaining -= len(chunk)
            if remaining == 0 and not ex.completed:
                ex.completed = True
                await client.send_end()
            if chunk == b"":
                break  # upstream's body is complete
            deadline.wait_upstream()
            chunk = await response.receive_some()
            if chunk:
                deadline.wait_client()
                await client.send_data(chunk)
        if not ex.completed:
            await client.send_end()
            ex.completed = True

    async def _translate(
        self, client: ClientConnection, ex: Exchange, record: UsageRecord,
        response: UpstreamResponse, deadline: _Deadline, scanner: UsageScanner | None,
    ) -> None:
        """Relay a response on a translate route: an event stream translated event by
        event as it arrives, any other body (errors included) translated whole."""
        assert ex.translation is not None
        headers = [
            (name, value) for name, value in hdr.response_headers(response.headers)
            if name not in (b"content-length", b"content-type", b"content-encoding")
        ]
        headers += ex.extra_headers
        try:
            if record.stream and response.status < 300:
                await self._translate_stream(client, ex, record, response, deadline, headers,
                                             scanner)
                return
            body = await self._read_whole(response, deadline)
            if scanner is not None:
                scanner.feed(body)
        finally:
            if scanner is not None:
                record.usage = scanner.finish()
                record.scan_complete = scanner.complete
        out = ex.translation.whole(response.status, body)
        headers += [(b"content-type", b"application/json"),
                    (b"content-length", str(len(out)).encode())]
        deadline.wait_client()
        await client.send_head(response.status, headers, response.reason, out)
        ex.completed = True
        await client.send_end()
        record.bytes_out = len(out)

    async def _translate_stream(
        self, client: ClientConnection, ex: Exchange, record: UsageRecord,
        response: UpstreamResponse, deadline: _Deadline, headers: hdr.Headers,
        scanner: UsageScanner | None,
    ) -> None:
        assert ex.translation is not None
        translator = ex.translation.stream()
        ex.can_append_event = True  # the client's stream is framed by chunks, uncompressed
        headers.append((b"content-type", b"text/event-stream; charset=utf-8"))
        deadline.wait_client()
        await client.send_head(response.status, headers, response.reason)
        while True:
            deadline.wait_upstream()
            chunk = await response.receive_some()
            try:
                out = translator.feed(chunk) if chunk else translator.close()
            except RecursionError:  # json and the translators recurse
                raise UpstreamFormatError(
                    "upstream sent an event nested too deeply to be translated") from None
            if out:
                record.bytes_out += len(out)
                deadline.wait_client()
                await client.send_data(out)
            if not chunk:
                break
            if scanner is not None:
                scanner.feed(chunk)
        if not (translator.finished or translator.errored):
            raise UpstreamError("upstream ended the event stream before its last event")
        ex.completed = True
        await client.send_end()

    async def _read_whole(self, response: UpstreamResponse, deadline: _Deadline) -> bytes:
        """The whole response body, for translating it (capped at JSON_BODY_CAP)."""
        parts: list[bytes] = []
        size = 0
        while True:
            deadline.wait_upstream()
            chunk = await response.receive_some()
            if not chunk:
                return b"".join(parts)
            size += len(chunk)
            if size > JSON_BODY_CAP:
                raise UpstreamError(
                    f"upstream response is over {JSON_BODY_CAP} bytes; too large to translate"
                )
            parts.append(chunk)

    async def _end_stream_with_error(
        self, client: ClientConnection, ex: Exchange, record: UsageRecord, exc: ProxyError
    ) -> None:
        """Upstream failed after the head was sent: end an SSE stream with an error event
        in the client's API shape; any other body can only be cut, by closing."""
        record.outcome = exc.outcome
        record.error = exc.message
        log.warning("%s %s: %s", ex.method.decode(), record.path, exc.message)
        if client.broken or client.gone:
            return
        if ex.can_append_event:
            with client.answer_scope(self._timeouts.idle):
                try:
                    await client.send_data(error_sse_event(ex.flavour, exc.message))
                    await client.send_end()
                    return
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass
        client.broken = True
