"""Apply a route's optimize settings to one request body (the glue around optimize/).

Only `POST .../messages` bodies on routes whose `[routes.optimize] mode` is "on" or
"dry-run" are looked at. In "on" mode a changed body is re-serialised and sent; in
"dry-run" mode the client's bytes are sent unchanged and only the stats are recorded.
A body that is not JSON is left for the upstream to refuse. Pure: no I/O.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import orjson

from . import fastjson
from .config import OptimizeConfig
from .optimize import OptimizeOptions, optimize_request
from .usage.record import RewriteRecord

log = logging.getLogger("trioproxy")


def optimize_options(config: OptimizeConfig) -> OptimizeOptions:
    """The rewriter's options for a route's [routes.optimize] table."""
    return OptimizeOptions(
        breakpoints=config.breakpoints,
        ttl=config.ttl,
        dedup=config.dedup,
        dedup_min_bytes=config.dedup_min_bytes,
        prune=config.prune,
        prune_after_turns=config.prune_after_turns,
        prune_min_bytes=config.prune_min_bytes,
    )


def applies(config: OptimizeConfig, method: bytes, path: str) -> bool:
    """Whether the optimize layer looks at this request at all."""
    return config.mode != "off" and method == b"POST" and path.endswith("/messages")


def optimize_body(
    mode: str, options: OptimizeOptions, body: bytes
) -> tuple[bytes, RewriteRecord | None]:
    """The body to send upstream and the record of what was (or would have been) done.

    The original bytes come back unless `mode` is "on" and the rewriter changed
    something; the record is None when the body could not be read as a JSON object.
    """
    request = _loads(body)
    if not isinstance(request, dict):
        return body, None
    new, stats = optimize_request(request, options)
    if stats.error is not None:
        log.error("optimize layer failed on a request (%s); it was sent unchanged", stats.error)
    record = RewriteRecord(
        mode=mode,
        breakpoints_added=stats.breakpoints_added,
        blocks_deduped=stats.blocks_deduped,
        blocks_pruned=stats.blocks_pruned,
        bytes_removed=stats.bytes_removed,
        tokens_removed_estimate=stats.tokens_removed_estimate,
    )
    if mode == "dry-run":
        if new is not None:
            log.info(
                "optimize dry-run: would add %d breakpoint(s), dedup %d and prune %d block(s),"
                " removing %d bytes (~%d tokens)", stats.breakpoints_added,
                stats.blocks_deduped, stats.blocks_pruned, stats.bytes_removed,
                stats.tokens_removed_estimate,
            )
        return body, record
    if new is None:
        return body, record
    return _dumps(new), record


# orjson encodes a 200 KB request in a fraction of the json module's time
# (benchmarks/optimize_bench.py measures the whole rewrite). It refuses what JSON allows
# but UTF-8 cannot hold (a lone surrogate escape) and integers beyond 64 bits: those
# rare bodies go through the json module, on the way in (loads_exact) and out.


def _loads(body: bytes) -> Any:
    try:
        return fastjson.loads_exact(body)
    except (ValueError, RecursionError):
        return None


def _dumps(obj: Any) -> bytes:
    try:
        return orjson.dumps(obj)
    except (orjson.JSONEncodeError, TypeError):
        # ensure_ascii: a lone surrogate is written back as the same escape.
        return json.dumps(obj, separators=(",", ":")).encode()
