"""Listeners, one task per connection, the connection cap and graceful shutdown.

Shutdown (the task running `serve` is cancelled) goes the hypercorn way: stop accepting,
close idle keep-alive connections, let in-flight requests finish until the grace period
ends, cancel what is left, then flush the ledger. Connection tasks run in a shielded
nursery so that shutdown, not the cancel, decides when they stop.
"""

from __future__ import annotations

import errno
import logging
import math
from dataclasses import dataclass, field

import trio

from .config import Config
from .errors import ProxyError, error_body
from .http1 import ClientConnection, HeadTimer, RequestHead
from .ledger import Ledger
from .proxy import Proxy, build_transports

log = logging.getLogger("trioproxy")

LEDGER_FLUSH_TIMEOUT = 10.0
ACCEPT_RETRY_SLEEP = 0.1
_ACCEPT_CAPACITY_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}


@dataclass
class Server:
    """A running proxy, as `serve` hands it to its starter."""

    config: Config
    host: str
    port: int
    ledger: Ledger | None
    proxy: Proxy
    _connections: set[ClientConnection] = field(default_factory=set)
    _nursery: trio.Nursery | None = None  # the connections' and their readers' tasks
    _head_timer: HeadTimer = field(init=False)
    _draining: bool = False
    _all_closed: trio.Event = field(default_factory=trio.Event)
    _drained: trio.Event = field(default_factory=trio.Event)

    def __post_init__(self) -> None:
        self._head_timer = HeadTimer(self.config.timeouts.request_head)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def open_connections(self) -> int:
        return len(self._connections)

    def abort(self) -> None:
        """Cut every connection now, in-flight requests included (their rows say
        cancelled). For a second shutdown signal; a normal shutdown drains instead."""
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()
        for client in self._connections:
            client.cut()


async def serve(config: Config, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
    """Run the proxy until cancelled; `task_status.started(server)` once it listens.

    Cancelling the caller's scope shuts down gracefully: in-flight requests get up to
    `server.grace_period` to finish, then the ledger is flushed.
    """
    ledger = None
    if config.ledger.enabled:
        lc = config.ledger
        ledger = Ledger(
            lc.path, batch_size=lc.batch_size, flush_interval=lc.flush_interval,
            checkpoint_interval=lc.checkpoint_interval, queue_size=lc.queue_size,
        )
        record, hash_key = ledger.record, ledger.hash_key
    else:
        record, hash_key = (lambda record: None), None  # no ledger: no row, no key hash
    sc = config.server
    listeners = await trio.open_tcp_listeners(sc.port, host=sc.host)
    transports = build_transports(config)
    proxy = Proxy(config, transports, record, hash_key)
    port = listeners[0].socket.getsockname()[1]
    server = Server(config=config, host=sc.host, port=port, ledger=ledger, proxy=proxy)
    limiter = trio.CapacityLimiter(sc.max_connections)
    # The ledger outlives the connections so that their last rows are written; it
    # stops when closed, within LEDGER_FLUSH_TIMEOUT.
    ledger_scope = trio.CancelScope(shield=True)

    async def run_ledger(*, task_status=trio.TASK_STATUS_IGNORED) -> None:
        with ledger_scope:
            await ledger.run(task_status=task_status)

    try:
        async with trio.open_nursery() as services:
            if ledger is not None:
                await services.start(run_ledger)
            await services.start(_hold_connections, server)
            try:
                async with trio.open_nursery() as accepting:
                    accepting.start_soon(server._head_timer.run, name="trioproxy head timer")
                    for listener in listeners:
                        accepting.start_soon(_accept_loop, server, listener, limiter)
                    log.info("listening on %s", server.url)
                    task_status.started(server)
            finally:
                with trio.CancelScope(shield=True):
                    await _drain(server, listeners)
                if ledger is not None:
                    ledger.close()
                    ledger_scope.deadline = trio.current_time() + LEDGER_FLUSH_TIMEOUT
    finally:
        with trio.move_on_after(1, shield=True):
            for transport in transports.values():
                await transport.aclose()
        log.info("stopped")


async def _hold_connections(server: Server, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
    # One shielded nursery for every connection task and its reader: the server's
    # shutdown (_drain), not the cancellation of `serve`, decides when they stop. One
    # scope for all of them rather than one per connection: an idle connection costs
    # memory, and a cancel scope is about 1 KB of it.
    async with trio.open_nursery() as nursery:
        nursery.cancel_scope.shield = True
        server._nursery = nursery
        task_status.started()
        await server._drained.wait()


async def _accept_loop(
    server: Server, listener: trio.SocketListener, limiter: trio.CapacityLimiter
) -> None:
    assert server._nursery is not None
    while True:
        token = object()
        # At the cap, stop accepting: new clients wait in the kernel's backlog.
        await limiter.acquire_on_behalf_of(token)
        try:
            stream = await listener.accept()
        except OSError as exc:
            limiter.release_on_behalf_of(token)
            if exc.errno not in _ACCEPT_CAPACITY_ERRNOS:
                raise
            # Out of file descriptors or memory: wait for some to free up (as trio does).
            log.error("accept failed (%s); retrying shortly", exc.strerror)
            await trio.sleep(ACCEPT_RETRY_SLEEP)
            continue
        except BaseException:
            limiter.release_on_behalf_of(token)
            raise
        server._nursery.start_soon(
            _run_connection, server, stream, limiter, token, name="trioproxy connection"
        )


async def _run_connection(
    server: Server, stream: trio.SocketStream, limiter: trio.CapacityLimiter, token: object
) -> None:
    """Serve one client connection's requests in turn, then close it."""
    config = server.config
    client = ClientConnection(stream, max_header_size=config.limits.max_header_size)
    server._connections.add(client)
    assert server._nursery is not None
    # The reader lives in the server's nursery, not a nursery of its own (memory, as
    # above); it ends when the client leaves or when client.aclose() closes the stream.
    server._nursery.start_soon(client.run_reader, name="trioproxy client reader")
    first = True
    try:
        while not server._draining:
            request = await _next_request(server, client, first=first)
            if request is None:
                break
            first = False
            # One cancel scope for this request and for each next one that the client
            # has sent by the time it is answered: a scope entered and left per request
            # cost about 4% of the requests per second at 50 connections, and one held
            # while the connection waits for a request would cost 0.7 KB per connection.
            with trio.CancelScope() as scope:
                client.scope = scope
                while True:
                    await server.proxy.handle(client, request)
                    request = None  # not kept alive (about 1 KB) while the connection idles
                    if not client.start_next_cycle():
                        return
                    if (
                        server._draining
                        or scope.cancel_called  # a deadline expired: a new scope
                        or not await client.next_request_sent()
                    ):
                        break
                    request = await _next_request(server, client, first=False)
                    if request is None:
                        return
            client.scope = None
            if scope.cancelled_caught:
                break  # cancelled outside a relay, which answers its own deadlines: give up
    except Exception:
        # One connection's failure, whatever it is, never takes the server down.
        log.exception("connection from %s failed", _peer(stream))
    finally:
        await client.aclose()
        server._connections.discard(client)
        limiter.release_on_behalf_of(token)
        if server._draining and not server._connections:
            server._all_closed.set()


async def _next_request(
    server: Server, client: ClientConnection, *, first: bool
) -> RequestHead | None:
    """The client's next request, or None: the connection closes (a head that cannot be
    read is answered first)."""
    try:
        return await client.next_request(server._head_timer, first=first)
    except ProxyError as exc:
        # A client that reads nothing must not hold the connection open: the answer
        # gets timeouts.idle to go out, as every other answer does.
        with client.answer_scope(server.config.timeouts.idle):
            await client.send_error(exc, error_body("anthropic", exc.status, exc.message))
        log.info("rejected request from %s: %s", _peer(client.stream), exc.message)
        return None


def _peer(stream: trio.abc.Stream) -> str:
    try:
        host, port = stream.socket.getpeername()[:2]  # type: ignore[attr-defined]
        return f"{host}:{port}"
    except (OSError, AttributeError):
        return "?"


async def _drain(server: Server, listeners: list[trio.SocketListener]) -> None:
    server._draining = True
    for listener in listeners:
        await listener.aclose()
    for client in list(server._connections):
        client.closing = True  # the next response says Connection: close
        client.stop_head_wait("drain")  # if waiting for a head, next_request returns None
    grace = server.config.server.grace_period
    if server._connections:
        log.info("waiting up to %gs for %d connection(s)", grace, len(server._connections))
        with trio.move_on_after(grace if math.isfinite(grace) else math.inf):
            await server._all_closed.wait()
    server.abort()  # what is left after the grace period
    if server._connections:
        await server._all_closed.wait()  # their last ledger rows, before the ledger closes
    server._drained.set()
