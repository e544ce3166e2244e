"""Dedup: a large text repeated inside one request is kept once; later copies become a
short reference to the first.

What is deduplicated: in user messages only, `tool_result` blocks whose content is text
(a string or a list of text blocks) and top-level text blocks, of at least `min_bytes`
bytes of UTF-8. The same file read twice, the same grep or test run repeated, the same
pasted text. Assistant messages are never touched (their tool_use inputs and thinking
blocks must go back as the model wrote them), nor are images and documents.

Why this keeps the conversation valid: a replaced tool_result keeps its type, its
tool_use_id and its is_error, so every tool_use still has its tool_result right after it
(the Messages API's pairing rule); a replaced text block stays a non-empty text block.

Why it never breaks the prompt cache: how a block is rewritten depends only on that block
and the blocks before it, so whatever the client appends later cannot change an earlier
rewrite. The first occurrence is the earliest in the conversation, and appending turns
never changes what is earliest. A later copy is
rewritten in the request where it first appears (the uncached tail of that request), and
in exactly the same words in every later request: the reference names the first
occurrence (its tool_use_id, or its message and block index, both fixed once sent) and
the content's size and SHA-256, nothing that depends on the turn or the time. The
decision ignores cache_control markers, which move from turn to turn; a marker on a
replaced block stays where it was.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from trioproxy.translate.estimate import estimate_input_tokens

REFERENCE_PREFIX = "[trioproxy dedup: "


@dataclass(frozen=True, slots=True)
class Removed:
    """What one rewriting step removed."""

    blocks: int = 0
    bytes: int = 0
    tokens: int = 0


class BlockRewrites:
    """Replacements of user-side blocks by a shorter text, for one request: copies only the
    messages that change and counts what the replacements removed."""

    def __init__(self, body: Mapping[str, Any], messages: list[Any]) -> None:
        self._body = body
        self._messages = messages
        self._out: list[Any] | None = None
        self._removed = Removed()

    def replace(self, i: int, j: int, block: object, size: int, text: str) -> None:
        """Replace block `j` of message `i` (of `size` bytes) by `text`, if that is shorter."""
        new_block = replace_text(block, text)
        if new_block is None or text_size(text) >= size:
            return
        if self._out is None:
            self._out = list(self._messages)
        self._out[i] = replace_block(self._out[i], j, new_block)
        r = self._removed
        self._removed = Removed(
            r.blocks + 1, r.bytes + size - text_size(text),
            r.tokens + block_tokens(block) - block_tokens(new_block),
        )

    def result(self) -> tuple[dict[str, Any] | None, Removed]:
        """(the new body, or None if nothing was replaced; what was removed)."""
        if self._out is None:
            return None, Removed()
        return {**self._body, "messages": self._out}, self._removed


def dedup_blocks(
    body: Mapping[str, Any], *, min_bytes: int
) -> tuple[dict[str, Any] | None, Removed]:
    """Replace every later copy of a large user-side text by a reference to the first.

    Returns (new body, or None if nothing changed; what was removed). Never mutates `body`.
    """
    messages = body.get("messages")
    if not isinstance(messages, list):
        return None, Removed()
    first: dict[str, str] = {}  # dedup key -> how to name the first occurrence
    rewrites = BlockRewrites(body, messages)
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping) or message.get("role") != "user":
            continue
        content = message.get("content")
        items = [content] if isinstance(content, str) else content
        if not isinstance(items, list):
            continue
        for j, block in enumerate(items):
            found = _candidate(block, min_bytes)
            if found is None:
                continue
            key, size = found
            where = first.get(key)
            if where is None:
                first[key] = _name(block, i, j)
                continue
            reference = f"{REFERENCE_PREFIX}identical to {where} ({size} bytes, sha256 "
            reference += f"{_digest(block)}); omitted here to save tokens]"
            rewrites.replace(i, j, block, size, reference)
    return rewrites.result()


def _candidate(block: object, min_bytes: int) -> tuple[str, int] | None:
    """(dedup key, size in bytes) for a block that may be deduplicated, else None."""
    texts = block_texts(block)
    if texts is None:
        return None
    # A UTF-8 character is at most 4 bytes: most small blocks are skipped without encoding.
    if sum(map(len, texts)) * 4 < min_bytes:
        return None
    size = sum(map(text_size, texts))
    if size < min_bytes:
        return None
    if len(texts) == 1:
        key = texts[0]
    else:
        # The separator cannot occur in JSON text, so this never equals a plain string key.
        key = "\x00list\x00" + json.dumps(texts, ensure_ascii=False)
    if isinstance(block, Mapping) and block.get("type") == "tool_result":
        if not isinstance(block.get("tool_use_id"), str):
            return None
        if block.get("is_error") is True:
            key = "\x00error\x00" + key  # an error is not the same as a result
    return key, size


def _name(block: object, i: int, j: int) -> str:
    if isinstance(block, Mapping) and block.get("type") == "tool_result":
        return f"the result of tool call {block['tool_use_id']} above"
    return f"block {j} of message {i} above"


def _digest(block: object) -> str:
    """The first 16 hex digits of the SHA-256 of the block's text (texts joined by a
    newline), as the prune stub names it too."""
    text = "\n".join(block_texts(block) or ())
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def block_texts(block: object) -> list[str] | None:
    """The texts of a user-side block that is only text: a string (string message
    content), a text block, or a tool_result whose content is a string or text blocks.
    None for anything else (images, documents, empty content, odd shapes)."""
    if isinstance(block, str):
        return [block]
    if not isinstance(block, Mapping):
        return None
    kind = block.get("type")
    if kind == "text":
        text = block.get("text")
        return [text] if isinstance(text, str) else None
    if kind != "tool_result":
        return None
    content = block.get("content")
    if isinstance(content, str):
        return [content]
    if not isinstance(content, list) or not content:
        return None
    texts: list[str] = []
    for sub in content:
        if not isinstance(sub, Mapping) or sub.get("type") != "text":
            return None
        text = sub.get("text")
        if not isinstance(text, str):
            return None
        texts.append(text)
    return texts


def text_size(text: str) -> int:
    """Size of `text` in UTF-8 bytes (lone surrogates from JSON escapes count too)."""
    return len(text.encode("utf-8", "surrogatepass"))


def replace_text(block: object, text: str) -> Any:
    """`block` with its text content replaced by `text`; None if that would drop a client's
    cache_control marker nested in a tool_result's content (more than one of them)."""
    if isinstance(block, str):
        return text
    if not isinstance(block, Mapping):
        return None
    if block.get("type") == "text":
        return {**block, "text": text}
    content = block.get("content")
    nested = [
        sub["cache_control"]
        for sub in (content if isinstance(content, list) else ())
        if isinstance(sub, Mapping) and "cache_control" in sub
    ]
    if len(nested) > 1:
        return None
    if nested:
        # Keep the client's marker, on the one text block that replaces the content.
        return {**block, "content": [{"type": "text", "text": text, "cache_control": nested[0]}]}
    return {**block, "content": text}


def replace_block(message: Mapping[str, Any], j: int, new_block: Any) -> dict[str, Any]:
    """A copy of `message` with content block `j` (or its string content) replaced."""
    content = message.get("content")
    if isinstance(content, str):
        return {**message, "content": new_block}
    blocks = list(content) if isinstance(content, list) else []
    blocks[j] = new_block
    return {**message, "content": blocks}


def block_tokens(block: object) -> int:
    """The translate layer's token estimate for one user-side block."""
    content = block if isinstance(block, str) else [block]
    return estimate_input_tokens({"messages": [{"role": "user", "content": content}]})
