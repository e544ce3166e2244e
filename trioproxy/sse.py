"""Incremental, sans-io decoder for server-sent events.

Follows the WHATWG HTML "Server-sent events" parsing rules (section 9.2.6, "Interpreting
an event stream"): lines end in CRLF, LF or CR; a leading UTF-8 BOM is dropped; lines
starting with ":" are comments; a blank line dispatches the event being built; at end
of stream an event without its closing blank line is discarded.

The decoder works on whole chunks with bytes.find/split and decodes complete lines
only, so a chunk may end anywhere, including inside a multi-byte UTF-8 character.
"""

from __future__ import annotations

from dataclasses import dataclass

_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """One dispatched event."""

    event: str  # "message" when the event had no event field
    data: str  # data lines joined with "\n"
    id: str | None = None  # the last event ID seen so far in the stream (it persists)
    retry: int | None = None  # a valid retry field given in this event


class SSEDecoder:
    """Turn SSE bytes into SSEEvent objects; feed chunks, then flush() at end of stream."""

    __slots__ = ("_pending", "_skip_lf", "_bom_checked", "_event", "_data", "_last_id", "_retry")

    def __init__(self) -> None:
        self._pending: list[bytes] = []  # start of a line whose terminator has not arrived
        self._skip_lf = False  # the last chunk ended in CR: a LF starting the next is its pair
        self._bom_checked = False
        self._event = ""
        self._data: list[str] = []
        self._last_id: str | None = None
        self._retry: int | None = None

    @property
    def buffered(self) -> int:
        """Bytes of an unterminated line plus characters of undispatched data held."""
        return sum(map(len, self._pending)) + sum(map(len, self._data))

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Consume one chunk; return the events that it completed, in order."""
        if not chunk:
            return []
        if self._skip_lf:
            self._skip_lf = False
            if chunk[0] == 0x0A:
                chunk = chunk[1:]
                if not chunk:
                    return []
        if not self._bom_checked:
            chunk = self._strip_bom(chunk)
            if not chunk:
                return []
        if b"\r" in chunk:
            # A CR at the very end is a complete terminator now; remember to drop the LF
            # of a CRLF that the next chunk may start with.
            self._skip_lf = chunk[-1] == 0x0D
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        end = chunk.rfind(b"\n")
        if end < 0:
            self._pending.append(chunk)
            return []
        if self._pending:
            self._pending.append(chunk[:end])
            block = b"".join(self._pending)
            self._pending.clear()
        else:
            block = chunk[:end]
        if end + 1 < len(chunk):
            self._pending.append(chunk[end + 1 :])
        # LF never occurs inside a multi-byte UTF-8 sequence, so decoding the block of
        # complete lines at once equals decoding line by line.
        return self._lines(block.decode("utf-8", "replace").split("\n"))

    def flush(self) -> list[SSEEvent]:
        """End of stream: discard an unterminated line and an undispatched event.

        Per the spec an event is dispatched only by a blank line, so nothing pending at
        end of stream is ever dispatched and this returns []. The decoder is reset
        (the last event ID excepted) and may be fed a new stream.
        """
        self._pending.clear()
        self._skip_lf = False
        self._bom_checked = False
        self._event = ""
        self._data.clear()
        self._retry = None
        return []

    def _strip_bom(self, chunk: bytes) -> bytes:
        if self._pending:
            chunk = self._pending.pop() + chunk
        if len(chunk) < len(_BOM) and _BOM.startswith(chunk):
            self._pending.append(chunk)  # too short to tell yet
            return b""
        self._bom_checked = True
        return chunk[len(_BOM) :] if chunk.startswith(_BOM) else chunk

    def _lines(self, lines: list[str]) -> list[SSEEvent]:
        events: list[SSEEvent] = []
        data = self._data
        for line in lines:
            if not line:
                if data:
                    name = self._event or "message"
                    events.append(SSEEvent(name, "\n".join(data), self._last_id, self._retry))
                    data.clear()
                self._event = ""
                self._retry = None
                continue
            if line[0] == ":":
                continue
            name, _, value = line.partition(":")
            if value[:1] == " ":
                value = value[1:]
            if name == "data":
                data.append(value)
            elif name == "event":
                self._event = value
            elif name == "id":
                if "\0" not in value:
                    self._last_id = value
            elif name == "retry":
                if value.isascii() and value.isdigit():
                    self._retry = int(value)
            # Any other field name is ignored, per the spec.
        return events
