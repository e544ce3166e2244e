"""Choose and run the usage scanner for one upstream response.

A scanner reads its own copy of the response body, chunk by chunk, beside the client
stream. It never raises: if it cannot read the body it gives up, sets complete to
False and says why in problem, and finish() returns what it saw.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from trioproxy.sse import SSEDecoder, SSEEvent
from trioproxy.usage.anthropic import MessagesStream, message_usage
from trioproxy.usage.fields import JSONObject, MalformedEvent, loads_object
from trioproxy.usage.inflate import SUPPORTED, InflateError, Inflater
from trioproxy.usage.openai import (
    ChatStream,
    ResponsesStream,
    chat_usage,
    embeddings_usage,
    responses_usage,
)
from trioproxy.usage.record import Usage

JSON_BODY_CAP = 16 * 1024 * 1024  # plaintext bytes a JSON scanner buffers before giving up
SSE_EVENT_CAP = 16 * 1024 * 1024  # plaintext an SSE scanner holds for one unfinished event

FLAVOURS = frozenset({"anthropic", "openai", "auto"})


class UsageScanner(Protocol):
    """Reads one response body and reports the usage in it."""

    complete: bool  # False once the scanner gave up
    problem: str | None  # why it gave up, or the first event it had to skip

    def feed(self, chunk: bytes) -> None:
        """Take the next chunk of the body as sent by upstream; never raises."""

    def finish(self) -> Usage:
        """End of body: return the usage seen (fields None where unknown); never raises."""


class StreamHandler(Protocol):
    """Builds a Usage from the SSE events of one API's stream."""

    usage: Usage

    def on_event(self, event: SSEEvent) -> None:
        """Take one event; raise MalformedEvent if it cannot be read."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """How to read the responses of one API endpoint."""

    flavour: str
    body: Callable[[JSONObject], Usage]
    stream: Callable[[], StreamHandler] | None  # None: the endpoint does not stream


# Matched against the end of the path. /v1/messages/count_tokens, /v1/models and
# anything else not listed return no scanner (count_tokens is not billed).
ENDPOINTS: tuple[tuple[str, Endpoint], ...] = (
    ("/messages", Endpoint("anthropic", message_usage, MessagesStream)),
    ("/chat/completions", Endpoint("openai", chat_usage, ChatStream)),
    ("/completions", Endpoint("openai", chat_usage, ChatStream)),
    ("/embeddings", Endpoint("openai", embeddings_usage, None)),
    ("/responses", Endpoint("openai", responses_usage, ResponsesStream)),
)


def find_endpoint(path: str) -> Endpoint | None:
    """The endpoint that `path` (maybe with a route prefix and a query) names, or None."""
    path = path.partition("?")[0].partition("#")[0].rstrip("/")
    for suffix, endpoint in ENDPOINTS:
        if path.endswith(suffix):
            return endpoint
    return None


def make_scanner(
    flavour: str, path: str, content_type: str | None, content_encoding: str | None
) -> UsageScanner | None:
    """A scanner for a response to `path`, or None when the response has no usage to read.

    The path names the endpoint, and so the wire format, whatever the flavour: servers
    implement each other's endpoints (vLLM and Ollama serve /v1/messages, Anthropic
    serves /v1/chat/completions), so a known path is read in its own API's format.
    Raises ValueError for a flavour other than "anthropic", "openai" or "auto".
    """
    if flavour not in FLAVOURS:
        raise ValueError(f"unknown API flavour {flavour!r}: use one of {sorted(FLAVOURS)}")
    endpoint = find_endpoint(path)
    if endpoint is None:
        return None
    media_type = (content_type or "").partition(";")[0].strip().lower()
    stream = media_type == "text/event-stream"
    if stream and endpoint.stream is None:
        return None
    if not stream and media_type != "application/json" and not media_type.endswith("+json"):
        return None
    inflater = None
    if content_encoding:
        # Codings are listed in the order applied (RFC 9110 section 8.4); identity is a
        # no-op.
        codings = [c.strip() for c in content_encoding.lower().split(",")]
        codings = [c for c in codings if c not in ("", "identity")]
        if len(codings) > 1 or (codings and codings[0] not in SUPPORTED):
            return DisabledScanner(f"unsupported content-encoding: {content_encoding}")
        inflater = Inflater(codings[0]) if codings else None
    if endpoint.stream is not None and stream:
        return SSEScanner(endpoint.stream(), inflater)
    return JSONScanner(endpoint.body, inflater)


class DisabledScanner:
    """A scanner that gave up before starting (e.g. an unsupported content-encoding)."""

    def __init__(self, problem: str) -> None:
        self.complete = False
        self.problem: str | None = problem

    def feed(self, chunk: bytes) -> None:
        """Ignore the chunk."""

    def finish(self) -> Usage:
        """Return an empty Usage."""
        return Usage()


class _Scanner(ABC):
    """Shared plumbing: decompression, giving up, and the never-raise guarantee."""

    def __init__(self, inflater: Inflater | None) -> None:
        self.complete = True
        self.problem: str | None = None
        self._inflater = inflater

    def feed(self, chunk: bytes) -> None:
        """Take the next chunk of the body as sent by upstream; never raises."""
        if not chunk or not self.complete:
            return
        try:
            if self._inflater is None:
                self._consume(chunk)
                return
            for piece in self._inflater.feed(chunk):
                self._consume(piece)
                if not self.complete:
                    return
        except InflateError as exc:
            self._give_up(f"cannot decompress body: {exc}")
        except Exception as exc:
            # A scanner runs beside the client stream: a bug here must cost the ledger
            # one record's usage, never the client its response.
            self._give_up(f"scanner failed: {exc!r}")

    @abstractmethod
    def _consume(self, data: bytes) -> None:
        """Take decoded body bytes (each kind of scanner parses them its own way)."""

    def _give_up(self, problem: str) -> None:
        self.complete = False
        self.problem = problem


class JSONScanner(_Scanner):
    """Buffers a JSON body (up to JSON_BODY_CAP) and reads it at the end."""

    def __init__(self, extract: Callable[[JSONObject], Usage], inflater: Inflater | None) -> None:
        super().__init__(inflater)
        self._extract = extract
        self._parts: list[bytes] = []
        self._size = 0

    def _consume(self, data: bytes) -> None:
        self._size += len(data)
        if self._size > JSON_BODY_CAP:
            self._parts.clear()
            self._give_up(f"JSON body over {JSON_BODY_CAP} bytes")
            return
        self._parts.append(data)

    def finish(self) -> Usage:
        """Decode the buffered body and return its usage; never raises."""
        if not self.complete:
            return Usage()
        body = b"".join(self._parts)
        self._parts.clear()
        try:
            return self._extract(loads_object(body))
        except MalformedEvent as exc:
            self._give_up(f"unreadable JSON body: {exc}")
        except Exception as exc:  # see _Scanner.feed
            self._give_up(f"scanner failed: {exc!r}")
        return Usage()


class SSEScanner(_Scanner):
    """Decodes an event stream and hands each event to an API-specific handler."""

    def __init__(self, handler: StreamHandler, inflater: Inflater | None) -> None:
        super().__init__(inflater)
        self._handler = handler
        self._decoder = SSEDecoder()

    def _consume(self, data: bytes) -> None:
        for event in self._decoder.feed(data):
            try:
                self._handler.on_event(event)
            except MalformedEvent as exc:
                # One bad event does not spoil the rest of the stream: note the first.
                if self.problem is None:
                    self.problem = f"skipped a malformed {event.event!r} event: {exc}"
        if self._decoder.buffered > SSE_EVENT_CAP:
            self._decoder.flush()
            self._give_up(f"SSE event over {SSE_EVENT_CAP} bytes")

    def finish(self) -> Usage:
        """End of stream: return the usage the events carried; never raises."""
        self._decoder.flush()
        return self._handler.usage
