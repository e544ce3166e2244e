"""Which headers cross the proxy (RFC 9110 §7.6.1), and small header look-ups. Pure."""

from __future__ import annotations

from collections.abc import Iterable

Headers = list[tuple[bytes, bytes]]

# Hop-by-hop headers: they describe one connection, not the message, so they stop here.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"trailers",
        b"transfer-encoding",
        b"upgrade",
    }
)

# Request headers the proxy sets itself: host for the upstream, content-length for the
# buffered body (the client may have sent it chunked), expect because the whole body
# is sent at once.
_REQUEST_OWN = frozenset({b"host", b"content-length", b"expect"})


def _named_in_connection(headers: Iterable[tuple[bytes, bytes]]) -> frozenset[bytes]:
    names: set[bytes] = set()
    for name, value in headers:
        if name == b"connection":
            names.update(token.strip().lower() for token in value.split(b","))
    return frozenset(names)


def _end_to_end(headers: Headers, skip: frozenset[bytes]) -> Headers:
    extra = _named_in_connection(headers)
    if extra:
        skip = skip | extra
    return [(name, value) for name, value in headers if name not in skip]


def request_headers(headers: Headers, host: bytes, body_length: int | None) -> Headers:
    """Client request headers as sent upstream: end-to-end ones in order, our host and length.

    Names are lowercase (as h11 gives them). Auth headers pass untouched.
    """
    out = [(b"host", host)]
    out += _end_to_end(headers, HOP_BY_HOP | _REQUEST_OWN)
    if body_length is not None:
        out.append((b"content-length", str(body_length).encode()))
    return out


def response_headers(headers: Headers) -> Headers:
    """Upstream response headers as sent to the client: all but hop-by-hop ones."""
    return _end_to_end(headers, HOP_BY_HOP)


def get(headers: Headers, name: bytes) -> bytes | None:
    """The first value of header `name` (lowercase), or None."""
    for key, value in headers:
        if key == name:
            return value
    return None


def client_secret(headers: Headers) -> str | None:
    """The client's API key as sent (x-api-key, else Authorization), for hashing only."""
    value = get(headers, b"x-api-key") or get(headers, b"authorization")
    return value.decode("latin-1") if value else None
