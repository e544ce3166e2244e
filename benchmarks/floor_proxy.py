"""The floor: the least a Trio + h11 reverse proxy can do, measured in the same run.

    python -m benchmarks.floor_proxy LISTEN_PORT:UPSTREAM_PORT [LISTEN_PORT:UPSTREAM_PORT ...]

Each client connection reads a request with h11, sends it upstream over a pooled h11
connection, and writes the answer back as h11 hands it over (whatever one read brought
goes out in one write; nothing is held while waiting). No deadlines, no disconnect
watch, no usage scan, no ledger, no limits, no error answers: trioproxy does all of this
plus its job, so the gap between the two is what that job costs on this machine, and a
target below this floor cannot be met without leaving Trio or h11. Not a proxy to use:
it trusts both peers.
"""

from __future__ import annotations

import sys
from functools import partial

import h11
import trio

RECEIVE_SIZE = 65536
DROP_REQUEST = {b"host", b"connection"}
DROP_RESPONSE = {b"connection", b"keep-alive", b"transfer-encoding"}


class Upstream:
    """Idle keep-alive h11 connections to one upstream port on 127.0.0.1."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.host = b"127.0.0.1:%d" % port
        self.idle: list[tuple[trio.SocketStream, h11.Connection]] = []

    async def relay(
        self, req: h11.Request, body: bytes, client: trio.SocketStream, conn: h11.Connection
    ) -> None:
        """Send `req` upstream and write its answer to `client` through `conn`."""
        if self.idle:
            stream, up = self.idle.pop()
        else:
            stream = await trio.open_tcp_stream("127.0.0.1", self.port)
            up = h11.Connection(h11.CLIENT)
        headers = [(k, v) for k, v in req.headers if k not in DROP_REQUEST]
        headers.append((b"host", self.host))
        await stream.send_all(
            up.send(h11.Request(method=req.method, target=req.target, headers=headers))
            + up.send(h11.Data(data=body))
            + up.send(h11.EndOfMessage())
        )
        out = bytearray()
        while True:
            event = up.next_event()
            if event is h11.NEED_DATA:
                if out:
                    await client.send_all(out)
                    out.clear()
                up.receive_data(await stream.receive_some(RECEIVE_SIZE))
            elif type(event) is h11.Data:
                out += conn.send(h11.Data(data=event.data))
            elif type(event) is h11.Response:
                keep = [(k, v) for k, v in event.headers if k not in DROP_RESPONSE]
                out += conn.send(
                    h11.Response(status_code=event.status_code, headers=keep, reason=event.reason)
                )
            elif type(event) is h11.EndOfMessage:
                await client.send_all(out + conn.send(h11.EndOfMessage()))
                break
            else:
                raise trio.BrokenResourceError(f"upstream: {event!r}")
        if up.our_state is h11.DONE and up.their_state is h11.DONE:
            up.start_next_cycle()
            self.idle.append((stream, up))
        else:
            await stream.aclose()


async def serve_client(stream: trio.SocketStream, upstream: Upstream) -> None:
    """Relay requests from one client connection until it closes."""
    conn = h11.Connection(h11.SERVER)
    try:
        while True:
            req: h11.Request | None = None
            body: list[bytes] = []
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(await stream.receive_some(RECEIVE_SIZE))
                elif type(event) is h11.Request:
                    req = event
                elif type(event) is h11.Data:
                    body.append(event.data)
                elif type(event) is h11.EndOfMessage:
                    break
                else:
                    return  # ConnectionClosed
            assert req is not None
            await upstream.relay(req, b"".join(body), stream, conn)
            if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                return
            conn.start_next_cycle()
    except (trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError, OSError):
        pass
    finally:
        await stream.aclose()


async def main(pairs: list[tuple[int, int]]) -> None:
    async with trio.open_nursery() as nursery:
        for listen, up in pairs:
            handler = partial(serve_client, upstream=Upstream(up))
            nursery.start_soon(partial(trio.serve_tcp, handler, listen, host="127.0.0.1"))


if __name__ == "__main__":
    try:
        pairs = [(int(a), int(b)) for a, b in (p.split(":") for p in sys.argv[1:])]
    except ValueError:
        pairs = []
    if not pairs:
        sys.exit("usage: python -m benchmarks.floor_proxy LISTEN_PORT:UPSTREAM_PORT ...")
    trio.run(main, pairs)
