"""The upstream transport interface that the relay talks to, and the TLS context it uses."""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable
from typing import Protocol

import certifi

from ..headers import Headers


class Origin(Protocol):
    """Where a request goes: a configured route provides these."""

    scheme: str
    host: str
    port: int


class UpstreamResponse(Protocol):
    """A response whose head has arrived; its body is read chunk by chunk as it comes."""

    status: int
    reason: bytes
    headers: Headers
    # True when h11 parsed the head, so its names and values are known to be valid
    # HTTP and need no second check when sent on to the client.
    headers_checked: bool

    async def receive_some(self) -> bytes:
        """The next body chunk as upstream framed it; b"" once the body is complete."""
        ...

    def receive_nowait(self) -> bytes | None:
        """Like receive_some, but only what has already arrived; None if it must wait."""
        ...

    async def aclose(self) -> None:
        """Release the connection: back to the pool if the body was read, else closed."""
        ...


class Transport(Protocol):
    """Sends one request upstream and returns once the response head arrived.

    The method, target and headers must be valid HTTP already, as the relay's are: the
    client's as h11 read them, and the proxy's own (a transport need not check them).

    Raises UpstreamError (unreachable, TLS, protocol) or UpstreamTimeout (connect).

    `on_wait`, if given, is called before the exchange first waits for upstream (to
    connect, for the response head or for more of the body; a transport that cannot
    tell calls it at once). The relay watches for the client leaving only from then
    on: an answer that is there at once needs no watch.
    """

    async def request(
        self, origin: Origin, method: bytes, target: bytes, headers: Headers, body: bytes,
        *, connect_timeout: float, on_wait: Callable[[], None] | None = None,
    ) -> UpstreamResponse: ...

    async def aclose(self) -> None: ...


def make_ssl_context(ca_file: str | None = None) -> ssl.SSLContext:
    """A verifying client context: the system CA store, certifi if that is empty, and ca_file."""
    context = ssl.create_default_context()
    paths = ssl.get_default_verify_paths()
    has_system_store = bool(paths.cafile) or bool(paths.capath and os.listdir(paths.capath))
    if not has_system_store:
        context.load_verify_locations(cafile=certifi.where())
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    context.set_alpn_protocols(["http/1.1"])
    return context


def ssl_cause(exc: BaseException) -> ssl.SSLError | None:
    """The ssl.SSLError behind `exc`, following causes and contexts (httpx, httpcore and
    trio each wrap it, some only implicitly)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def tls_failure_message(host: str, exc: BaseException) -> str:
    """Say why a TLS handshake with upstream failed and what to do about it."""
    cause = ssl_cause(exc) or exc
    if isinstance(cause, ssl.SSLCertVerificationError):
        return (
            f"upstream {host} presented a TLS certificate that is not trusted"
            f" ({cause.verify_message}); if it is yours, add its CA to upstream.ca_file"
        )
    return f"TLS handshake with upstream {host} failed: {cause}"
