"""Paced SSE upstream mock for the benchmarks (Trio + h11, keep-alive).

A POST whose body has "stream": true answers 200 ``text/event-stream`` with OpenAI chat.completion.chunk events:
the first immediately after the head, then one every ``interval`` on an absolute
schedule (event i is due at start + i * interval, so lateness does not accumulate), a
usage chunk, then ``data: [DONE]``. Any other POST gets a fixed chat.completion JSON (the fallback fast mock when
nginx is absent). Request headers steer the stream (a proxy forwards them):

    x-bench-events: N         number of content chunks (default 50)
    x-bench-interval-ms: MS   spacing between events (default 20)

Run: python -m benchmarks.sse_upstream --port 0 [--host 127.0.0.1]
Prints ``LISTENING <port>`` on stdout once it accepts connections.
"""

from __future__ import annotations

import argparse
import json
import sys

import h11
import trio

_HEAD_HEADERS = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache"),
    (b"transfer-encoding", b"chunked"),
]


JSON_REPLY = (
    b'{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,'
    b'"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant",'
    b'"content":"Hello! How can I help you today?"},"finish_reason":"stop"}],'
    b'"usage":{"prompt_tokens":12,"completion_tokens":9,"total_tokens":21}}'
)
_JSON_HEADERS = [
    (b"content-type", b"application/json"),
    (b"content-length", str(len(JSON_REPLY)).encode()),
]


def _chunk(i: int) -> bytes:
    obj = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "delta": {"content": f"tok{i} "}, "finish_reason": None}],
    }
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


_EVENTS = [_chunk(i) for i in range(10000)]


def _tail(n: int) -> bytes:
    usage = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "gpt-4o-mini",
        "choices": [],
        "usage": {"prompt_tokens": 12, "completion_tokens": n, "total_tokens": 12 + n},
    }
    return b"data: " + json.dumps(usage, separators=(",", ":")).encode() + b"\n\ndata: [DONE]\n\n"


async def _handle(stream: trio.SocketStream) -> None:
    conn = h11.Connection(h11.SERVER)
    try:
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await stream.receive_some(65536)
                if not data:
                    return
                conn.receive_data(data)
                continue
            if isinstance(event, h11.Request):
                headers = dict(event.headers)
                n = int(headers.get(b"x-bench-events", b"50"))
                interval = int(headers.get(b"x-bench-interval-ms", b"20")) / 1000
                body = b""
                while True:
                    ev = conn.next_event()
                    if ev is h11.NEED_DATA:
                        data = await stream.receive_some(65536)
                        if not data:
                            return
                        conn.receive_data(data)
                    elif isinstance(ev, h11.Data):
                        body += ev.data
                    elif isinstance(ev, h11.EndOfMessage):
                        break
                if b'"stream":true' not in body.replace(b" ", b""):
                    # plain JSON reply: the fallback fast mock when nginx is absent
                    await stream.send_all(
                        conn.send(h11.Response(status_code=200, headers=_JSON_HEADERS))
                        + conn.send(h11.Data(data=JSON_REPLY))
                        + conn.send(h11.EndOfMessage())
                    )
                    if conn.our_state is h11.MUST_CLOSE:
                        return
                    conn.start_next_cycle()
                    continue
                head = conn.send(h11.Response(status_code=200, headers=_HEAD_HEADERS))
                start = trio.current_time()
                await stream.send_all(head + conn.send(h11.Data(data=_EVENTS[0])))
                for i in range(1, n):
                    await trio.sleep_until(start + i * interval)
                    await stream.send_all(conn.send(h11.Data(data=_EVENTS[i % len(_EVENTS)])))
                await trio.sleep_until(start + n * interval)
                await stream.send_all(
                    conn.send(h11.Data(data=_tail(n))) + conn.send(h11.EndOfMessage())
                )
                if conn.our_state is h11.MUST_CLOSE:
                    return
                conn.start_next_cycle()
            elif isinstance(event, h11.ConnectionClosed):
                return
            else:
                return
    except (
        trio.BrokenResourceError,
        trio.ClosedResourceError,
        h11.RemoteProtocolError,
        ConnectionError,
    ):
        return
    finally:
        with trio.move_on_after(1):
            await stream.aclose()


async def main(host: str, port: int) -> None:
    listeners = await trio.open_tcp_listeners(port, host=host, backlog=4096)
    for ln in listeners:
        ln.socket.setsockopt(6, 1, 1)  # TCP_NODELAY on the listener is inherited
    print(f"LISTENING {listeners[0].socket.getsockname()[1]}", flush=True)
    await trio.serve_listeners(_handle, listeners)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    a = ap.parse_args()
    try:
        trio.run(main, a.host, a.port)
    except KeyboardInterrupt:
        sys.exit(0)
