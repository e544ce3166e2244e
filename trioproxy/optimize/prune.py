"""Prune (opt-in): old, large tool results are shortened to a stub saying what was removed.

The trade-off. Anthropic caches a byte-identical prefix, so shortening a tool result that
earlier requests sent whole changes the prefix from that block on: the next request
writes everything after it to the cache again (1.25x the input price) instead of reading
it (0.1x). Pruning "whatever is older than N turns now" would do that on every turn, a
cost several times what it saves. So pruning moves in batches at fixed turn counts:

    T        = the number of assistant turns in the request
    boundary = N * floor(T / N) - N
    a tool result sent in turn t (t assistant turns before it) is pruned iff t < boundary
    and its text is at least `min_bytes` long.

The boundary only moves when T reaches a multiple of N (2N, 3N, ...), by N turns at a
time. Between two moves every earlier turn is rewritten exactly the same way, so the
cache holds; at a move the prefix changes once, from the first newly pruned block on.
A result is kept whole while it is between N and 2N turns old, and once pruned it stays
pruned in the same words: the stub depends only on the block (its tool's name, size, line
count, SHA-256 and first line), never on T. Over a session the cache is rebuilt once per
N turns, against a context that no longer carries the old results; tests/test_optimize.py
measures what that costs and saves on a generated session.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from trioproxy.optimize.dedup import BlockRewrites, Removed, block_texts, text_size

STUB_PREFIX = "[trioproxy pruned: "
_FIRST_LINE = 120  # characters of the first line kept in the stub


def prune_boundary(turns: int, after_turns: int) -> int:
    """The first turn index kept whole in a request with `turns` assistant turns."""
    if after_turns <= 0:
        return 0
    return max(0, after_turns * (turns // after_turns) - after_turns)


def prune_results(
    body: Mapping[str, Any], *, after_turns: int, min_bytes: int
) -> tuple[dict[str, Any] | None, Removed]:
    """Replace tool results before the batch boundary that are at least `min_bytes` long
    by a stub. Returns (new body or None if nothing changed, what was removed)."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        return None, Removed()
    turns = sum(1 for m in messages if isinstance(m, Mapping) and m.get("role") == "assistant")
    boundary = prune_boundary(turns, after_turns)
    if boundary == 0:
        return None, Removed()
    names: dict[str, str] = {}  # tool_use_id -> tool name, from the assistant turns
    rewrites = BlockRewrites(body, messages)
    turn = 0
    for i, message in enumerate(messages):
        if turn >= boundary:
            break
        if not isinstance(message, Mapping):
            continue
        content = message.get("content")
        if message.get("role") == "assistant":
            turn += 1
            for block in content if isinstance(content, list) else ():
                if isinstance(block, Mapping) and block.get("type") == "tool_use":
                    if isinstance(block.get("id"), str) and isinstance(block.get("name"), str):
                        names[block["id"]] = block["name"]
            continue
        if message.get("role") != "user" or not isinstance(content, list):
            continue
        for j, block in enumerate(content):
            if not isinstance(block, Mapping) or block.get("type") != "tool_result":
                continue
            texts = block_texts(block)
            if texts is None or sum(map(len, texts)) * 4 < min_bytes:
                continue
            size = sum(map(text_size, texts))
            if size < min_bytes:
                continue
            tool_use_id = block.get("tool_use_id")
            name = names.get(tool_use_id, "tool") if isinstance(tool_use_id, str) else "tool"
            rewrites.replace(i, j, block, size, _stub(name, texts, size))
    return rewrites.result()


def _stub(tool: str, texts: list[str], size: int) -> str:
    text = "\n".join(texts)
    lines = text.count("\n") + 1
    first = text.lstrip().split("\n", 1)[0].strip()
    if len(first) > _FIRST_LINE:
        first = first[:_FIRST_LINE] + "..."
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return (
        f"{STUB_PREFIX}this {tool} result ({size} bytes, {lines} lines, sha256 {digest}) "
        f"was removed to save tokens. It began: {first!r}. Run the tool again if you need "
        "it.]"
    )
