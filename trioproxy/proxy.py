"""Handle one request: route it, read its body, relay it, write its ledger row and log line."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import trio

from . import headers as hdr
from .config import Config
from .errors import NoRoute, ProxyError, error_body, flavour_for_path, is_cancellation
from .http1 import ClientConnection, RequestHead
from .optimizing import applies, optimize_body, optimize_options
from .relay import Exchange, Relay
from .routes import RouteTable
from .translation import DROPPED_HEADER, plan_translation
from .upstream.base import Transport, make_ssl_context
from .upstream.h11pool import H11Pool
from .upstream.httpx_transport import HttpxTransport
from .usage.record import UsageRecord

access_log = logging.getLogger("trioproxy.access")


def build_transports(config: Config) -> dict[str, Transport]:
    """The transports the routes use, built once from the config."""
    up = config.upstream
    wanted = {up.transport} | {r.transport for r in config.routes if r.transport}
    transports: dict[str, Transport] = {}
    if "h11" in wanted:
        transports["h11"] = H11Pool(
            make_ssl_context(up.ca_file), max_idle=up.pool_size, idle_timeout=up.pool_idle
        )
    if "httpx" in wanted:
        transports["httpx"] = HttpxTransport(
            make_ssl_context(up.ca_file), http2=up.http2, proxy=up.proxy,
            max_idle=up.pool_size, idle_timeout=up.pool_idle,
        )
    return transports


def _fmt_tokens(value: int | None) -> str:
    return "-" if value is None else str(value)


def log_request(record: UsageRecord) -> None:
    """One concise access-log line: method, path, status, model, tokens, times, outcome."""
    if not access_log.isEnabledFor(logging.INFO):
        return
    u = record.usage
    parts = [record.method, record.path, str(record.status or "-")]
    if u is not None:
        parts.append(u.model or "-")
        parts.append(
            f"in={_fmt_tokens(u.input_tokens)} out={_fmt_tokens(u.output_tokens)}"
            f" cache_read={_fmt_tokens(u.cache_read_tokens)}"
            f" cache_write={_fmt_tokens(u.cache_write_tokens)}"
        )
    if record.ttfb_ms is not None:
        parts.append(f"ttfb={record.ttfb_ms:.0f}ms")
    parts.append(f"{record.duration_ms or 0:.0f}ms")
    if record.stream:
        parts.append("stream")
    parts.append(record.outcome)
    if record.error and record.outcome != "ok":
        parts.append(f"({record.error})")
    access_log.info(" ".join(parts))


class Proxy:
    """Everything one request needs, built from the config: routes, relay, ledger hook."""

    def __init__(
        self, config: Config, transports: dict[str, Transport],
        record: Callable[[UsageRecord], None], hash_key: Callable[[str], str] | None,
    ) -> None:
        self.config = config
        self.routes = RouteTable(config.routes)
        self.relay = Relay(transports, config.upstream.transport, config.timeouts)
        self._optimize = {
            route: optimize_options(route.optimize)
            for route in config.routes if route.optimize.mode != "off"
        }
        self._record = record
        self._hash_key = hash_key

    async def handle(self, client: ClientConnection, request: RequestHead) -> None:
        """Answer one request on `client`. Never raises for a proxy-level error: the client
        gets a status and an API-shaped JSON body, and the ledger gets a row."""
        started = trio.current_time()
        target = request.target.decode("latin-1")
        path = target.split("?", 1)[0]
        record = UsageRecord(ts=time.time(), route="", method=request.method.decode(), path=path)
        flavour = "anthropic" if "/messages" in path else "openai"
        try:
            try:
                match = self.routes.match(target)
                if match is None:
                    raise NoRoute(f"no route matches {path}; see [[routes]] in the config")
                route, upstream_target = match
                record.route = route.prefix
                flavour = flavour_for_path(route.flavour, path)
                limits, timeouts = self.config.limits, self.config.timeouts
                body = await client.read_body(
                    request, max_size=limits.max_body_size, timeout=timeouts.request_body
                )
                record.bytes_in = len(body)
                if route.translate is not None:
                    plan = plan_translation(
                        route, request.method, upstream_target, request.headers, body
                    )
                    if plan.local is not None:  # count_tokens: answered here
                        record.status, record.bytes_out = 200, len(plan.local)
                        await client.send_simple(200, plan.local)
                        return
                    assert plan.headers is not None
                    exchange = Exchange(
                        route=route,
                        method=plan.method,
                        target=plan.target.encode("latin-1"),
                        headers=plan.headers,
                        body=plan.body,
                        flavour=flavour,
                        started=started,
                        translation=plan.response,
                        scan_path=plan.scan_path,
                        extra_headers=(
                            [(DROPPED_HEADER, ", ".join(plan.dropped).encode())]
                            if plan.dropped else []
                        ),
                    )
                else:
                    if applies(route.optimize, request.method, path):
                        body, record.rewrite = optimize_body(
                            route.optimize.mode, self._optimize[route], body
                        )
                    has_body = body or request.method in (b"POST", b"PUT", b"PATCH")
                    exchange = Exchange(
                        route=route,
                        method=request.method,
                        target=upstream_target.encode("latin-1"),
                        headers=hdr.request_headers(
                            request.headers, route.host_header.encode(),
                            len(body) if has_body else None,
                        ),
                        body=body,
                        flavour=flavour,
                        started=started,
                    )
                await self.relay.run(client, exchange, record)
            except ProxyError as exc:
                record.outcome = exc.outcome
                record.error = exc.message
                if not client.response_started:
                    record.status = exc.status
                    with client.answer_scope(self.config.timeouts.idle):
                        await client.send_error(
                            exc, error_body(flavour, exc.status, exc.message, exc.param)
                        )
        except BaseException as exc:
            if is_cancellation(exc):
                record.outcome = "cancelled"
                record.error = record.error or "cancelled by server shutdown"
            else:
                record.outcome = "proxy_error"
                record.error = f"internal error: {type(exc).__name__}"
            raise
        finally:
            record.duration_ms = (trio.current_time() - started) * 1000
            # Hashed here, after the response, not on the way to the upstream: one HMAC
            # less before the first byte. Rows of refused requests name the key too.
            if self._hash_key is not None:
                secret = hdr.client_secret(request.headers)
                if secret:
                    record.client_key_hash = self._hash_key(secret)
            self._record(record)
            log_request(record)
