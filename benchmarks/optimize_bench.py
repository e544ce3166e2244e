"""What the optimize layer saves: a Claude Code style session replayed through the proxy.

    python -m benchmarks.optimize_bench [--turns 24] [--seed 0] [--out benchmarks/results]

A generated agent session (tests/transcripts.py) is sent turn by turn through the real
proxy to a local upstream that imitates Anthropic's prompt caching and billing
(tests/cache_sim.py; one simulated cache per scenario). Four scenarios: the client sends
no breakpoints or Claude Code's own, and the route's optimize layer is off or on. The
table gives the input tokens billed (plain, cache reads, cache writes), their cost at the
model's list price, and the change against "no breakpoints, layer off". The upstream
also validates every request against the Messages API rules the simulator knows (at most
4 breakpoints, TTL order, tool_use / tool_result pairing) and answers 400 otherwise.

The rewrite's own cost is measured in-process on a ~200 KB request of the same session:
JSON decoding, rewriting and re-encoding, as the proxy does it (p50 and p99 of 200 runs).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import h11
import trio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.cache_sim import CacheSim, validate  # noqa: E402
from tests.transcripts import generate_session  # noqa: E402
from trioproxy import serve  # noqa: E402
from trioproxy.config import OptimizeConfig, parse_config  # noqa: E402
from trioproxy.optimizing import optimize_body, optimize_options  # noqa: E402
from trioproxy.usage.pricing import input_cost, min_cacheable_tokens  # noqa: E402

SCENARIOS = (
    # (label, client's cache_control style, route)
    ("no breakpoints, layer off", "none", "/off"),
    ("client's own breakpoints (Claude Code), layer off", "claude_code", "/off"),
    ("no breakpoints, layer on", "none", "/on"),
    ("client's own breakpoints, layer on", "claude_code", "/on"),
)


class CachingUpstream:
    """POST /v1/messages answered with usage billed by a CacheSim per x-sim-session."""

    def __init__(self, min_tokens: int) -> None:
        self.min_tokens = min_tokens
        self.sims: dict[str, CacheSim] = {}
        self.port = 0

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started()
        await trio.serve_listeners(self._connection, listeners)

    async def _connection(self, stream: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                request, body = await _read_request(conn, stream)
                if request is None:
                    return
                status, reply = self._answer(request, body)
                data = json.dumps(reply).encode()
                headers = [(b"content-type", b"application/json"),
                           (b"content-length", str(len(data)).encode())]
                await stream.send_all(
                    conn.send(h11.Response(status_code=status, headers=headers))
                    + conn.send(h11.Data(data=data)) + conn.send(h11.EndOfMessage())
                )
                conn.start_next_cycle()
        except (trio.BrokenResourceError, h11.RemoteProtocolError):
            return

    def _answer(self, request: h11.Request, body: bytes) -> tuple[int, dict[str, Any]]:
        headers = dict(request.headers)
        message = json.loads(body)
        problems = validate(message)
        if problems:
            return 400, {"type": "error", "error": {"type": "invalid_request_error",
                                                    "message": "; ".join(problems)}}
        session = headers[b"x-sim-session"].decode()
        sim = self.sims.setdefault(session, CacheSim(self.min_tokens))
        usage = sim.bill(message, float(headers[b"x-sim-now"]), output_tokens=100)
        return 200, {"id": "msg_bench", "type": "message", "role": "assistant",
                     "model": message["model"], "content": [{"type": "text", "text": "ok"}],
                     "stop_reason": "end_turn", "stop_sequence": None, "usage": usage}


async def _read_request(
    conn: h11.Connection, stream: trio.SocketStream
) -> tuple[h11.Request | None, bytes]:
    request, parts = None, []
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await stream.receive_some(1 << 20))
        elif isinstance(event, h11.Request):
            request = event
        elif isinstance(event, h11.Data):
            parts.append(event.data)
        elif isinstance(event, h11.EndOfMessage):
            return request, b"".join(parts)
        else:  # ConnectionClosed
            return None, b""


async def replay(turns: int, seed: int) -> list[dict[str, Any]]:
    """Run the four scenarios; return one result row per scenario."""
    sessions = {style: generate_session(turns, seed=seed, cache=style)
                for style in ("none", "claude_code")}
    model = sessions["none"].model
    upstream = CachingUpstream(min_cacheable_tokens(model) or 1024)
    results = []
    async with trio.open_nursery() as nursery:
        await nursery.start(upstream.run)
        url = f"http://127.0.0.1:{upstream.port}"
        config = parse_config({
            "server": {"port": 0, "log_level": "warning"},
            "ledger": {"enabled": False},
            "limits": {"max_body_size": "64MiB"},
            "routes": [
                {"prefix": "/off", "upstream": url, "flavour": "anthropic"},
                {"prefix": "/on", "upstream": url, "flavour": "anthropic",
                 "optimize": {"mode": "on"}},
            ],
        }, source="<bench>")
        server = await nursery.start(serve, config)
        import httpx  # the test client, as in the rest of the benchmarks

        async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
            for label, style, route in SCENARIOS:
                session = sessions[style]
                totals = {"input": 0, "cache_read": 0, "write_5m": 0, "write_1h": 0, "cost": 0.0}
                for request, at in zip(session.requests, session.times, strict=True):
                    response = await client.post(
                        f"{route}/v1/messages", json=request,
                        headers={"x-sim-session": label, "x-sim-now": repr(at)},
                    )
                    if response.status_code != 200:
                        raise RuntimeError(f"{label}: upstream refused a turn: {response.text}")
                    usage = response.json()["usage"]
                    parts = (usage["input_tokens"], usage["cache_read_input_tokens"],
                             usage["cache_creation"]["ephemeral_5m_input_tokens"],
                             usage["cache_creation"]["ephemeral_1h_input_tokens"])
                    for key, n in zip(("input", "cache_read", "write_5m", "write_1h"), parts,
                                      strict=True):
                        totals[key] += n
                    totals["cost"] += input_cost(model, *parts) or 0.0
                results.append({"scenario": label, **totals})
        nursery.cancel_scope.cancel()
    base = results[0]["cost"]
    for row in results:
        row["vs_none"] = row["cost"] / base - 1 if base else 0.0
    return results


def rewrite_cost(turns: int, seed: int) -> dict[str, Any]:
    """p50/p99 ms of optimize_body on the session's request closest to 200 KB."""
    session = generate_session(turns, seed=seed, cache="none")
    bodies = [json.dumps(r).encode() for r in session.requests]
    body = min(bodies, key=lambda b: abs(len(b) - 200_000))
    options = optimize_options(OptimizeConfig(mode="on"))
    times = []
    for _ in range(200):
        t0 = time.perf_counter()
        optimize_body("on", options, body)
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return {"bytes": len(body), "p50_ms": statistics.median(times),
            "p99_ms": times[int(len(times) * 0.99) - 1]}


def render(results: list[dict[str, Any]], cost: dict[str, Any], turns: int, model: str) -> str:
    lines = [
        f"# optimize layer: a {turns}-turn Claude Code style session ({model})",
        "",
        f"Run {time.strftime('%Y-%m-%d %H:%M')} with `python -m benchmarks.optimize_bench"
        f" --turns {turns}`. Billing by tests/cache_sim.py (Anthropic's documented prompt"
        " caching rules); prices from trioproxy/usage/pricing.py.",
        "",
        "| scenario | input billed | cache reads | cache writes 5m | cache writes 1h |"
        " input cost ($) | vs no breakpoints |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        lines.append(
            f"| {r['scenario']} | {r['input']:,} | {r['cache_read']:,} | {r['write_5m']:,} |"
            f" {r['write_1h']:,} | {r['cost']:.4f} | {r['vs_none']:+.1%} |"
        )
    lines += [
        "",
        f"Rewrite cost on a {cost['bytes']:,}-byte request (JSON decode, rewrite, encode):"
        f" p50 {cost['p50_ms']:.2f} ms, p99 {cost['p99_ms']:.2f} ms (200 runs, in-process).",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args(argv)
    results = trio.run(replay, args.turns, args.seed)
    cost = rewrite_cost(args.turns, args.seed)
    model = generate_session(2, seed=args.seed).model
    text = render(results, cost, args.turns, model)
    print(text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / time.strftime("optimize-%Y-%m-%d-%H%M")
    stem.with_suffix(".md").write_text(text + "\n")
    stem.with_suffix(".json").write_text(json.dumps({"results": results, "rewrite": cost},
                                                    indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
