"""Small HTTP/1.1 keep-alive load client (Trio, raw sockets): the fallback for wrk.

`--connections N` connections each send POST requests back to back until `--requests M`
each are done or `--duration S` has passed (whichever first). Understands
Content-Length and chunked replies. Prints one JSON object: requests, errors, rps,
p50_ms, p99_ms, max_ms, wall_s.

`--hold S` mode instead opens N connections, does one request on each, then keeps them
all open and idle for S seconds (for the idle-connection RSS figure); it prints
``HOLDING <n-open>`` when all are open and idle.

Run: python -m benchmarks.load --port P [--path /v1/chat/completions] -c 50 -d 10
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time

import trio

BODY = (
    b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello."}],"max_tokens":16}'
)


def build_request(args: argparse.Namespace) -> bytes:
    extra = "".join(h + "\r\n" for h in args.header)
    return (
        f"POST {args.path} HTTP/1.1\r\nHost: 127.0.0.1:{args.port}\r\n"
        f"Content-Type: application/json\r\n{extra}"
        f"Content-Length: {len(BODY)}\r\n\r\n"
    ).encode() + BODY


class Conn:
    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buf = b""

    async def _more(self) -> None:
        data = await self.stream.receive_some(65536)
        if not data:
            raise EOFError("connection closed")
        self.buf += data

    async def response(self) -> int:
        while b"\r\n\r\n" not in self.buf:
            await self._more()
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length = None
        chunked = False
        close = False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            value = value.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value:
                chunked = True
            elif name == b"connection" and value == b"close":
                close = True
        if chunked:
            while True:
                while b"\r\n" not in self.buf:
                    await self._more()
                size_line, _, self.buf = self.buf.partition(b"\r\n")
                size = int(size_line.split(b";")[0], 16)
                while len(self.buf) < size + 2:
                    await self._more()
                self.buf = self.buf[size + 2 :]
                if size == 0:
                    break
        elif length is not None:
            while len(self.buf) < length:
                await self._more()
            self.buf = self.buf[length:]
        else:
            raise ValueError("reply without length")
        if close:
            raise EOFError("server closed keep-alive")
        return status


async def run_load(args: argparse.Namespace) -> dict:
    req = build_request(args)
    lat: list[float] = []
    errors = 0
    deadline = trio.current_time() + args.duration

    async def worker() -> None:
        nonlocal errors
        done = 0
        while done < args.requests and trio.current_time() < deadline:
            try:
                with trio.fail_after(args.timeout):
                    conn = Conn(await trio.open_tcp_stream("127.0.0.1", args.port))
            except (OSError, trio.TooSlowError):
                errors += 1
                await trio.sleep(0.01)
                continue
            try:
                while done < args.requests and trio.current_time() < deadline:
                    t = time.perf_counter()
                    with trio.fail_after(args.timeout):
                        await conn.stream.send_all(req)
                        status = await conn.response()
                    lat.append(time.perf_counter() - t)
                    done += 1
                    if status != 200:
                        errors += 1
            except (OSError, EOFError, ValueError, trio.TooSlowError, trio.BrokenResourceError):
                errors += 1
                done += 1
            finally:
                with trio.CancelScope(shield=True):
                    await conn.stream.aclose()

    t0 = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for _ in range(args.connections):
            nursery.start_soon(worker)
    wall = time.perf_counter() - t0
    lat.sort()

    def pct(p: float) -> float | None:
        # nearest rank, as benchmarks.run.pct
        return lat[max(0, math.ceil(round(p * len(lat), 9)) - 1)] * 1000 if lat else None

    return {
        "client": "load.py",
        "requests": len(lat),
        "errors": errors,
        "rps": len(lat) / wall if wall else 0.0,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "max_ms": lat[-1] * 1000 if lat else None,
        "wall_s": wall,
    }


async def hold(args: argparse.Namespace) -> dict:
    req = build_request(args)
    conns: list[Conn] = []
    errors = 0
    limiter = trio.CapacityLimiter(100)

    async def opener() -> None:
        nonlocal errors
        async with limiter:
            try:
                with trio.fail_after(args.timeout):
                    c = Conn(await trio.open_tcp_stream("127.0.0.1", args.port))
                    await c.stream.send_all(req)
                    await c.response()
                conns.append(c)
            except (OSError, EOFError, ValueError, trio.TooSlowError, trio.BrokenResourceError):
                errors += 1

    async with trio.open_nursery() as nursery:
        for _ in range(args.connections):
            nursery.start_soon(opener)
    print(f"HOLDING {len(conns)}", flush=True)
    await trio.sleep(args.hold)
    for c in conns:
        await c.stream.aclose()
    return {"client": "load.py", "held": len(conns), "errors": errors}


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--path", default="/v1/chat/completions")
    ap.add_argument("-c", "--connections", type=int, default=50)
    ap.add_argument("-n", "--requests", type=int, default=10**9, help="per connection")
    ap.add_argument("-d", "--duration", type=float, default=10.0)
    ap.add_argument("--timeout", type=float, default=10.0)
    ap.add_argument("--hold", type=float, default=0.0)
    ap.add_argument("--header", action="append", default=[], help="extra 'Name: value'")
    return ap.parse_args(argv)


if __name__ == "__main__":
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    a = parse()
    out = trio.run(hold if a.hold else run_load, a)
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")
