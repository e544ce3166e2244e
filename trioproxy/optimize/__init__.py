"""Request rewriting that saves money on Anthropic `POST /v1/messages` (sans-io).

One pure function, `optimize_request(body, options)`, takes a decoded request body and
returns a rewritten copy (or None when nothing changed, so the caller forwards the
original bytes untouched) with the stats of what it did. Three steps, each in its module:

* prune (opt-in, prune.py): old, large tool results become a stub, in batches at fixed turn
  counts so the prompt cache breaks rarely and predictably;
* dedup (dedup.py): a large text repeated inside the request is kept once, later copies
  become a reference to the first;
* breakpoints (breakpoints.py): `cache_control` markers where Anthropic's prompt cache
  pays, next to the client's own, which are never moved.

Every step is stable across the turns of a conversation: a turn, once sent, is rewritten
the same way in every later request (prune: until the next batch boundary), because
Anthropic caches only a byte-identical prefix and a rewrite that wavers would cost more
than it saves. tests/test_optimize.py checks this on generated agent sessions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from trioproxy.optimize.breakpoints import TTLS, place_breakpoints
from trioproxy.optimize.dedup import dedup_blocks
from trioproxy.optimize.prune import prune_results
from trioproxy.usage.pricing import min_cacheable_tokens

__all__ = ["DEFAULT_MIN_TOKENS", "OptimizeOptions", "RewriteStats", "optimize_request"]

# Minimum cacheable prefix assumed for a model whose minimum the pricing table lacks: the
# lowest figure documented for a current model, so that an unknown model still gets
# breakpoints (a marker below the real minimum costs nothing but its slot).
DEFAULT_MIN_TOKENS = 1024


@dataclass(frozen=True, slots=True)
class OptimizeOptions:
    """What the rewriting may do; the defaults are the safe set (no pruning)."""

    breakpoints: bool = True
    ttl: str = "5m"  # TTL of the breakpoints added: "5m" or "1h"
    dedup: bool = True
    dedup_min_bytes: int = 2048  # smaller repeated blocks are left alone
    prune: bool = False
    prune_after_turns: int = 10  # N: results are pruned in batches, between N and 2N turns old
    prune_min_bytes: int = 8192  # smaller results are never pruned

    def __post_init__(self) -> None:
        if self.ttl not in TTLS:
            raise ValueError(f"ttl must be one of {', '.join(TTLS)}, not {self.ttl!r}")
        for name in ("dedup_min_bytes", "prune_after_turns", "prune_min_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")


@dataclass(frozen=True, slots=True)
class RewriteStats:
    """What one rewrite did, for the ledger (also meaningful in dry-run mode)."""

    breakpoints_added: int = 0
    client_breakpoints: int = 0  # cache_control markers the client sent itself
    blocks_deduped: int = 0
    blocks_pruned: int = 0
    bytes_removed: int = 0  # UTF-8 bytes of text removed by dedup and prune
    tokens_removed_estimate: int = 0  # the same, in the translate layer's token estimate
    # Set if the rewriter failed on this body (a bug): the request is then left alone.
    error: str | None = None

    @property
    def changed(self) -> bool:
        """True if the body was rewritten."""
        return bool(self.breakpoints_added or self.blocks_deduped or self.blocks_pruned)


def optimize_request(
    body: Mapping[str, Any], options: OptimizeOptions
) -> tuple[dict[str, Any] | None, RewriteStats]:
    """Rewrite an Anthropic Messages request body to cost less.

    Returns (the new body, stats), or (None, stats) when nothing changed. Never mutates
    `body` (changed containers are copied, the rest is shared with it) and never raises:
    a body it cannot read is left alone with zero stats. Deterministic: the same body and
    options always give the same result.
    """
    if not isinstance(body, Mapping) or not isinstance(body.get("messages"), list):
        return None, RewriteStats()
    try:
        return _optimize(body, options)
    except Exception as exc:  # a bug must cost a saving, never a request
        # Only the exception's type: its message may quote the request's content.
        return None, RewriteStats(error=type(exc).__name__)


def _optimize(
    body: Mapping[str, Any], options: OptimizeOptions
) -> tuple[dict[str, Any] | None, RewriteStats]:
    current: Mapping[str, Any] = body
    pruned = deduped = added = client = removed_bytes = removed_tokens = 0
    # Prune before dedup: a copy whose first occurrence has been pruned then refers to the
    # earliest copy still whole, and both change in the same request (the batch boundary).
    if options.prune:
        new, removed = prune_results(
            current, after_turns=options.prune_after_turns, min_bytes=options.prune_min_bytes
        )
        if new is not None:
            current = new
            pruned = removed.blocks
            removed_bytes += removed.bytes
            removed_tokens += removed.tokens
    if options.dedup:
        new, removed = dedup_blocks(current, min_bytes=options.dedup_min_bytes)
        if new is not None:
            current = new
            deduped = removed.blocks
            removed_bytes += removed.bytes
            removed_tokens += removed.tokens
    if options.breakpoints:
        min_tokens = min_cacheable_tokens(body.get("model")) or DEFAULT_MIN_TOKENS
        new, added, client = place_breakpoints(current, ttl=options.ttl, min_tokens=min_tokens)
        if new is not None:
            current = new
    stats = RewriteStats(
        breakpoints_added=added,
        client_breakpoints=client,
        blocks_deduped=deduped,
        blocks_pruned=pruned,
        bytes_removed=removed_bytes,
        tokens_removed_estimate=removed_tokens,
    )
    if current is body:
        return None, stats
    return (current if isinstance(current, dict) else dict(current)), stats
