"""What one proxied request cost: the data the usage scanners fill and the ledger stores."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Usage:
    """Token usage and metadata read from one upstream response.

    Every field is None until the response said it. Token counts follow the
    Anthropic names; OpenAI's are mapped onto them (prompt_tokens -> input_tokens,
    completion_tokens -> output_tokens, prompt_tokens_details.cached_tokens ->
    cache_read_tokens). For OpenAI, input_tokens is the total prompt including
    cached tokens; for Anthropic it excludes them, as each API reports it.
    """

    model: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    # Anthropic splits cache writes by lifetime (usage.cache_creation.ephemeral_5m_ /
    # ephemeral_1h_input_tokens); they are priced differently.
    cache_write_5m_tokens: int | None = None
    cache_write_1h_tokens: int | None = None
    stop_reason: str | None = None
    # An error the upstream reported inside the body (error JSON or an SSE error event).
    error: str | None = None


@dataclass(slots=True)
class UsageRecord:
    """One ledger row: one request that the proxy handled, whatever its outcome."""

    ts: float  # unix time at which the request head was read
    route: str  # the matched route's prefix
    method: str
    path: str  # path as the client sent it, without the query string
    status: int | None = None  # status sent to the client; None if nothing was sent
    stream: bool = False  # the response was text/event-stream
    ttfb_ms: float | None = None  # from request head to first upstream response byte
    duration_ms: float | None = None
    bytes_in: int = 0  # request body bytes from the client
    bytes_out: int = 0  # response body bytes sent to the client
    # ok | client_error | upstream_error | timeout | cancelled | proxy_error
    outcome: str = "ok"
    client_key_hash: str | None = None
    error: str | None = None
    scan_complete: bool = True  # False if the usage scanner was detached or failed
    usage: Usage | None = None
    rewrite: RewriteRecord | None = None  # set when the optimize layer looked at the request


@dataclass(slots=True)
class RewriteRecord:
    """What the optimize layer did to (or, in dry-run mode, would have done to) a request."""

    mode: str  # "on" (the rewritten body was sent) or "dry-run" (the original was sent)
    breakpoints_added: int = 0
    blocks_deduped: int = 0
    blocks_pruned: int = 0
    bytes_removed: int = 0
    tokens_removed_estimate: int = 0
