"""The second upstream transport, on httpx: for HTTP/2 upstreams and outbound proxies.

Slower than the h11 pool on the hot path (see DESIGN.md), so it is opt-in per config.
"""

from __future__ import annotations

import math
import ssl
from collections.abc import AsyncIterator, Callable

import httpx

from ..errors import UpstreamError, UpstreamTimeout, UpstreamTLSError
from ..headers import Headers
from .base import Origin, ssl_cause, tls_failure_message


class HttpxResponse:
    """A streamed httpx response, relayed raw (still compressed if upstream compressed)."""

    __slots__ = ("status", "reason", "headers", "_response", "_chunks", "_on_wait")

    headers_checked = False  # h2 and httpx accept values that h11 would refuse to send

    def __init__(
        self, response: httpx.Response, on_wait: Callable[[], None] | None = None
    ) -> None:
        self.status = response.status_code
        self.reason = response.reason_phrase.encode("latin-1")
        self.headers: Headers = [(k.lower(), v) for k, v in response.headers.raw]
        self._response = response
        self._chunks: AsyncIterator[bytes] = response.aiter_raw()
        self._on_wait = on_wait

    async def receive_some(self) -> bytes:
        """The next raw body chunk; b"" at the end of the body."""
        if self._on_wait is not None:
            self._on_wait()  # httpx does not say whether it will wait: assume it will
        try:
            return await anext(self._chunks, b"")
        except httpx.HTTPError as exc:
            raise UpstreamError(f"upstream connection failed mid-response: {exc}") from exc

    def receive_nowait(self) -> bytes | None:
        """httpx offers no look at what has arrived: always None (wait)."""
        return None

    async def aclose(self) -> None:
        await self._chunks.aclose()  # type: ignore[attr-defined]
        await self._response.aclose()


class HttpxTransport:
    """Upstream requests through one shared httpx.AsyncClient."""

    def __init__(
        self, ssl_context: ssl.SSLContext, *, http2: bool = False, proxy: str | None = None,
        max_idle: int = 64, idle_timeout: float = 60.0,
    ) -> None:
        if http2:
            ssl_context.set_alpn_protocols(["h2", "http/1.1"])
        self._client = httpx.AsyncClient(
            verify=ssl_context,
            http2=http2,
            proxy=proxy,
            trust_env=False,
            follow_redirects=False,
            # The relay owns the read deadlines (first byte, idle, total).
            timeout=httpx.Timeout(None),
            limits=httpx.Limits(
                max_connections=None, max_keepalive_connections=max_idle,
                keepalive_expiry=idle_timeout,
            ),
        )

    async def request(
        self, origin: Origin, method: bytes, target: bytes, headers: Headers, body: bytes,
        *, connect_timeout: float, on_wait: Callable[[], None] | None = None,
    ) -> HttpxResponse:
        """Send one request and return once the response head arrived."""
        if on_wait is not None:
            on_wait()  # httpx does not say when it waits: assume it will
        url = f"{origin.scheme}://{origin.host}:{origin.port}{target.decode('latin-1')}"
        # httpx sets Host and Content-Length itself; give it the rest as they came.
        sent = [(k, v) for k, v in headers if k not in (b"host", b"content-length")]
        request = httpx.Request(method.decode(), url, headers=sent, content=body)
        connect = connect_timeout if math.isfinite(connect_timeout) else None
        request.extensions["timeout"] = httpx.Timeout(None, connect=connect).as_dict()
        where = f"{origin.host}:{origin.port}"
        try:
            response = await self._client.send(request, stream=True)
        except httpx.ConnectTimeout as exc:
            raise UpstreamTimeout(
                f"could not connect to upstream {where} within {connect_timeout:g}s"
                " (timeouts.upstream_connect)"
            ) from exc
        except httpx.ConnectError as exc:
            if ssl_cause(exc) is not None:
                raise UpstreamTLSError(tls_failure_message(origin.host, exc)) from exc
            raise UpstreamError(f"could not connect to upstream {where}: {exc}") from exc
        except httpx.HTTPError as exc:
            raise UpstreamError(f"upstream {where} failed: {exc}") from exc
        return HttpxResponse(response, on_wait)

    async def aclose(self) -> None:
        await self._client.aclose()
