"""SSE load client for the benchmarks (Trio, raw sockets).

Opens `--streams` streams (each on its own connection), at most `--concurrency` at a
time, starts spread over `--ramp` seconds, and timestamps every event on arrival (an
event ends with a blank line). Prints one JSON object:

  ttfb_ms          time from sending the request to the first response byte, per stream
  first_event_ms   time from sending the request to the end of the first event
  lateness_ms      per stream, the worst lateness of any event against the mock's
                   schedule: (arrival_i - arrival_0) - i * interval
  event_lateness_ms  with --each-event: that lateness for every event but each stream's first
  events, errors, error_kinds, wall_s

Run: python -m benchmarks.sse_client --port P [--path /v1/chat/completions]
     [--streams 50] [--concurrency 10] [--events 50] [--interval-ms 20] [--timeout 60]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter

import trio

BODY = (
    b'{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},'
    b'"messages":[{"role":"user","content":"hello"}]}'
)


class Stats:
    def __init__(self) -> None:
        self.ttfb: list[float] = []
        self.first_event: list[float] = []
        self.lateness: list[float] = []
        self.event_lateness: list[float] = []
        self.events = 0
        self.errors = 0
        self.kinds: Counter[str] = Counter()


async def one_stream(args: argparse.Namespace, stats: Stats) -> None:
    extra = "".join(h + "\r\n" for h in args.header)
    req = (
        f"POST {args.path} HTTP/1.1\r\nHost: 127.0.0.1:{args.port}\r\n"
        f"Content-Type: application/json\r\n"
        f"Accept: text/event-stream\r\nx-bench-events: {args.events}\r\n"
        f"x-bench-interval-ms: {args.interval_ms}\r\n"
        f"{extra}"
        f"Content-Length: {len(BODY)}\r\n\r\n"
    ).encode() + BODY
    interval = args.interval_ms / 1000
    expected = args.events + 2  # content chunks, usage chunk, [DONE]
    stream = None
    try:
        with trio.fail_after(args.timeout):
            stream = await trio.open_tcp_stream("127.0.0.1", args.port)
            t0 = time.perf_counter()
            await stream.send_all(req)
            buf = b""
            ttfb = None
            # response head
            while b"\r\n\r\n" not in buf:
                data = await stream.receive_some(65536)
                if not data:
                    raise EOFError("eof in head")
                if ttfb is None:
                    ttfb = time.perf_counter() - t0
                buf += data
            head, _, body = buf.partition(b"\r\n\r\n")
            status = head.split(b" ", 2)[1]
            if status != b"200":
                raise ValueError(f"status {status.decode()}")
            arrivals: list[float] = []
            now = time.perf_counter()
            tail = b""
            done = False
            while True:
                if body:
                    # count blank lines; the 1-byte tail catches one split across reads
                    k = (tail[-1:] + body).count(b"\n\n")
                    arrivals.extend([now] * k)
                    if b"[DONE]" in tail + body:
                        done = True
                    tail = (tail + body)[-8:]
                if done and len(arrivals) >= expected:
                    break
                body = await stream.receive_some(65536)
                now = time.perf_counter()
                if not body:
                    break
            if not done or len(arrivals) < expected:
                raise EOFError(f"incomplete stream: {len(arrivals)}/{expected} events")
    except trio.TooSlowError:
        stats.errors += 1
        stats.kinds["timeout"] += 1
        return
    except (OSError, EOFError, ValueError, IndexError, trio.BrokenResourceError) as exc:
        stats.errors += 1
        stats.kinds[type(exc).__name__ + ": " + str(exc)[:60]] += 1
        return
    finally:
        if stream is not None:
            with trio.CancelScope(shield=True), trio.move_on_after(1):
                await stream.aclose()
    stats.ttfb.append(ttfb * 1000)
    stats.first_event.append((arrivals[0] - t0) * 1000)
    a0 = arrivals[0]
    late = [((a - a0) - i * interval) * 1000 for i, a in enumerate(arrivals[: args.events + 1])]
    stats.lateness.append(max(late))
    if args.each_event:
        stats.event_lateness += late[1:]  # the first event is the reference: always 0
    stats.events += len(arrivals)


async def main(args: argparse.Namespace) -> dict:
    stats = Stats()
    limiter = trio.CapacityLimiter(args.concurrency)
    gap = args.ramp / max(args.streams, 1)

    async def runner() -> None:
        async with limiter:
            await one_stream(args, stats)

    t0 = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for _ in range(args.streams):
            nursery.start_soon(runner)
            if gap:
                await trio.sleep(gap)
    wall = time.perf_counter() - t0
    return {
        "streams": args.streams,
        "concurrency": args.concurrency,
        "ttfb_ms": stats.ttfb,
        "first_event_ms": stats.first_event,
        "lateness_ms": stats.lateness,
        **({"event_lateness_ms": stats.event_lateness} if args.each_event else {}),
        "events": stats.events,
        "errors": stats.errors,
        "error_kinds": dict(stats.kinds.most_common(5)),
        "wall_s": wall,
    }


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--path", default="/v1/chat/completions")
    ap.add_argument("--streams", type=int, default=50)
    ap.add_argument("--concurrency", type=int, default=10)
    ap.add_argument("--events", type=int, default=50)
    ap.add_argument("--interval-ms", type=int, default=20)
    ap.add_argument("--ramp", type=float, default=0.0, help="spread stream starts over S")
    ap.add_argument("--timeout", type=float, default=60.0, help="per stream")
    ap.add_argument("--header", action="append", default=[], help="extra 'Name: value'")
    ap.add_argument(
        "--each-event", action="store_true", help="also print every event's lateness"
    )
    return ap.parse_args(argv)


if __name__ == "__main__":
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    out = trio.run(main, parse())
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")
