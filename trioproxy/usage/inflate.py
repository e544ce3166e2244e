"""Incremental gzip / deflate decoding of a response body's copy for the usage scanners."""

from __future__ import annotations

import zlib
from collections.abc import Iterator

# Output comes in pieces of at most this size, so a small, highly compressed chunk
# never expands into one huge buffer (the consumer may stop early).
PIECE = 1 << 20

SUPPORTED = frozenset({"gzip", "x-gzip", "deflate"})

InflateError = zlib.error


class Inflater:
    """Decompress one gzip or deflate body chunk by chunk.

    HTTP "deflate" means the zlib format (RFC 9110 section 8.4.1.2), but some servers
    send raw deflate: the first two bytes tell which. Data after the end of the
    compressed stream (padding, a second gzip member) is ignored.
    """

    __slots__ = ("_gzip", "_inflater", "_head")

    def __init__(self, encoding: str) -> None:
        if encoding not in SUPPORTED:
            raise ValueError(f"unsupported content-encoding: {encoding}")
        self._gzip = encoding != "deflate"
        self._inflater = zlib.decompressobj(16 + zlib.MAX_WBITS) if self._gzip else None
        self._head = b""

    def feed(self, data: bytes) -> Iterator[bytes]:
        """Yield the plaintext that `data` completes; raise InflateError on bad input."""
        inflater = self._inflater
        if inflater is None:
            data = self._head + data
            if len(data) < 2:
                self._head = data
                return
            self._head = b""
            wbits = zlib.MAX_WBITS if _is_zlib_header(data) else -zlib.MAX_WBITS
            inflater = self._inflater = zlib.decompressobj(wbits)
        while not inflater.eof:
            out = inflater.decompress(data, PIECE)
            data = inflater.unconsumed_tail
            if out:
                yield out
            if len(out) < PIECE and not data:
                return  # a full piece may leave output inside zlib: go round once more


def _is_zlib_header(head: bytes) -> bool:
    # RFC 1950: CM = 8 (deflate) in the low nibble of CMF, and CMF*256 + FLG % 31 == 0.
    return head[0] & 0x0F == 8 and ((head[0] << 8) | head[1]) % 31 == 0
