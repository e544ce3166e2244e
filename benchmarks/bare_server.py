"""A bare Trio + h11 server that answers every request with the fixed chat completion.

    python -m benchmarks.bare_server PORT

Not a proxy: no upstream at all. It reproduces the issue's orientation figure for "a
bare Trio+h11 server" (about 12,800 req/s when the targets were set), so that each run
shows how fast Python and Trio are on this machine today against that day.
"""

from __future__ import annotations

import sys
from functools import partial

import h11
import trio

from benchmarks.run import JSON_REPLY

RECEIVE_SIZE = 65536
BODY = JSON_REPLY.encode()
HEADERS = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(BODY))]


async def serve_client(stream: trio.SocketStream) -> None:
    """Answer each request on one connection once its body is read, until it closes."""
    conn = h11.Connection(h11.SERVER)
    try:
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await stream.receive_some(RECEIVE_SIZE))
            elif type(event) is h11.EndOfMessage:
                await stream.send_all(
                    conn.send(h11.Response(status_code=200, headers=HEADERS))
                    + conn.send(h11.Data(data=BODY))
                    + conn.send(h11.EndOfMessage())
                )
                conn.start_next_cycle()
            elif type(event) is h11.ConnectionClosed:
                return
    except (trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError, OSError):
        pass
    finally:
        await stream.aclose()


if __name__ == "__main__":
    if len(sys.argv) != 2 or not sys.argv[1].isdigit():
        sys.exit("usage: python -m benchmarks.bare_server PORT")
    trio.run(partial(trio.serve_tcp, serve_client, int(sys.argv[1]), host="127.0.0.1"))
