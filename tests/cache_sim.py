"""A pure simulator of Anthropic's prompt caching and input billing, and a validator of
Messages API request rules. Importable from scripts (no pytest here), no clock: `now` is
a parameter.

The caching rules, from https://platform.claude.com/docs/en/build-with-claude/prompt-caching
(read 2026-11-23):

* The prompt is tools, then system, then messages; each tool, system block and message
  content block is one block position. A string system or message content is one text
  block (the API's shorthand).
* "Cache writes happen only at your breakpoint": a marked block writes one entry keyed by
  a cumulative hash of every block up to and including it. The hash here covers the
  model, each block's JSON without its cache_control (the marker is not content: the
  guide's automatic caching moves the marker every turn and still reads the previous
  prefix), its role and whether it starts a message, and tool_choice / thinking before
  the messages (changing those invalidates only the messages cache).
* "Cache reads look backward for entries that prior requests wrote": from each breakpoint,
  last first, the simulator checks at most LOOKBACK positions counting the breakpoint
  itself, and stops at the first (longest) live entry; if a window finds none it resumes
  from the previous breakpoint.
* An entry lives 5 minutes or 1 hour from its last use: "The cache is refreshed for no
  additional cost each time the cached content is used." The simulator refreshes the
  entry hit and the live entries at the request's breakpoints before it.
* A prefix shorter than `min_tokens` is "processed without caching".
* Billing with mixed TTLs: A = tokens up to the highest hit, B = up to the last 1h
  breakpoint after A, C = up to the last breakpoint; cache reads A, 1h writes B - A,
  5m writes C - B, input_tokens everything after C.
* A top-level `cache_control` (automatic caching) marks the last cacheable block.

Tokens are counted with a fixed, deterministic tokenizer: one token per BYTES_PER_TOKEN
bytes (rounded up) of each block's canonical JSON.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from trioproxy.translate.estimate import BYTES_PER_TOKEN

LOOKBACK = 20
MAX_BREAKPOINTS = 4
TTL_SECONDS = {"5m": 300.0, "1h": 3600.0}

# Block types the Messages API accepts, per role.
USER_BLOCKS = frozenset({"text", "image", "document", "tool_result", "search_result"})
ASSISTANT_BLOCKS = frozenset(
    {
        "text",
        "tool_use",
        "thinking",
        "redacted_thinking",
        "server_tool_use",
        "web_search_tool_result",
    }
)
TOOL_RESULT_BLOCKS = frozenset({"text", "image", "document", "search_result"})
_UNMARKABLE = frozenset({"thinking", "redacted_thinking"})


def canonical(value: Any) -> str:
    """The JSON text the simulator hashes and counts (key order kept, as sent)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def strip_markers(block: Any) -> Any:
    """`block` without cache_control, also inside a tool_result's content."""
    if not isinstance(block, Mapping):
        return block
    out = {k: v for k, v in block.items() if k != "cache_control"}
    content = out.get("content")
    if out.get("type") == "tool_result" and isinstance(content, list):
        out["content"] = [strip_markers(sub) for sub in content]
    return out


def tokens_of(text: str) -> int:
    """The simulator's tokenizer."""
    return -(-len(text.encode("utf-8", "surrogatepass")) // BYTES_PER_TOKEN)


@dataclass(frozen=True, slots=True)
class Block:
    """One block position of a request, as the cache sees it."""

    digest: bytes  # cumulative hash of the prefix ending here
    end: int  # tokens of the prefix ending here
    ttl: str | None  # the breakpoint's TTL if the block is marked
    markable: bool  # may carry a breakpoint (for automatic caching)


def blocks_of(request: Mapping[str, Any]) -> list[Block]:
    """The request's block positions, in prefix order."""
    running = hashlib.sha256(canonical(request.get("model")).encode()).digest()
    total = 0
    out: list[Block] = []

    def add(label: str, block: Any, markable: bool) -> None:
        nonlocal running, total
        text = canonical(strip_markers(block))
        data = label.encode() + b"\x00" + text.encode("utf-8", "surrogatepass")
        running = hashlib.sha256(running + data).digest()
        total += tokens_of(text)
        out.append(Block(running, total, _marker_ttl(block), markable))

    for tool in _as_list(request.get("tools")):
        add("tool", tool, True)
    system = request.get("system")
    for block in (
        [{"type": "text", "text": system}] if isinstance(system, str) else _as_list(system)
    ):
        add("system", block, _markable(block))
    mode = canonical(
        {"tool_choice": request.get("tool_choice"), "thinking": request.get("thinking")}
    )
    running = hashlib.sha256(running + mode.encode()).digest()
    for message in _as_list(request.get("messages")):
        if not isinstance(message, Mapping):
            continue
        role = str(message.get("role"))
        content = message.get("content")
        items = [{"type": "text", "text": content}] if isinstance(content, str) else content
        for j, block in enumerate(_as_list(items)):
            add(f"{role}{'+' if j == 0 else '.'}", block, _markable(block))
    top = request.get("cache_control")
    if isinstance(top, Mapping):
        for i in range(len(out) - 1, -1, -1):
            if out[i].markable:
                if out[i].ttl is None:
                    out[i] = Block(out[i].digest, out[i].end, top.get("ttl", "5m"), True)
                break
    return out


class CacheSim:
    """Anthropic's prompt cache for one workspace, as documented; see the module doc."""

    def __init__(self, min_tokens: int = 1024) -> None:
        self.min_tokens = min_tokens
        self._entries: dict[bytes, tuple[float, str]] = {}  # digest -> (expires at, ttl)

    def bill(
        self, request: Mapping[str, Any], now: float, output_tokens: int = 0
    ) -> dict[str, Any]:
        """Serve `request` at time `now` (seconds): update the cache, return the usage
        object the API would report."""
        blocks = blocks_of(request)
        marks = [i for i, b in enumerate(blocks) if b.ttl is not None]
        hit = self._lookup(blocks, marks, now)
        a = blocks[hit].end if hit >= 0 else 0
        for i in marks:
            if i <= hit and self._live(blocks[i].digest, now):
                ttl = self._entries[blocks[i].digest][1]
                self._entries[blocks[i].digest] = (now + TTL_SECONDS[ttl], ttl)
        if hit >= 0:
            ttl = self._entries[blocks[hit].digest][1]
            self._entries[blocks[hit].digest] = (now + TTL_SECONDS[ttl], ttl)
        b = c = a
        for i in marks:
            block = blocks[i]
            if i <= hit or block.end < self.min_tokens:
                continue
            ttl = block.ttl or "5m"
            self._entries[block.digest] = (now + TTL_SECONDS[ttl], ttl)
            c = block.end
            if ttl == "1h":
                b = block.end
        total = blocks[-1].end if blocks else 0
        return {
            "input_tokens": total - c,
            "cache_creation_input_tokens": c - a,
            "cache_read_input_tokens": a,
            "cache_creation": {
                "ephemeral_5m_input_tokens": c - b,
                "ephemeral_1h_input_tokens": b - a,
            },
            "output_tokens": output_tokens,
        }

    def _live(self, digest: bytes, now: float) -> bool:
        entry = self._entries.get(digest)
        return entry is not None and entry[0] > now

    def _lookup(self, blocks: list[Block], marks: list[int], now: float) -> int:
        for mark in reversed(marks):
            for i in range(mark, max(-1, mark - LOOKBACK), -1):
                if self._live(blocks[i].digest, now):
                    return i
        return -1


def total_tokens(request: Mapping[str, Any]) -> int:
    """All input tokens of `request` by the simulator's tokenizer."""
    blocks = blocks_of(request)
    return blocks[-1].end if blocks else 0


def _as_list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _marker_ttl(block: object) -> str | None:
    if not isinstance(block, Mapping):
        return None
    ttl = None
    marker = block.get("cache_control")
    if isinstance(marker, Mapping):
        ttl = str(marker.get("ttl", "5m"))
    content = block.get("content")
    if block.get("type") == "tool_result" and isinstance(content, list):
        for sub in content:
            if isinstance(sub, Mapping) and isinstance(sub.get("cache_control"), Mapping):
                ttl = str(sub["cache_control"].get("ttl", "5m"))
    return ttl


def _markable(block: object) -> bool:
    if not isinstance(block, Mapping) or str(block.get("type")) in _UNMARKABLE:
        return False
    text = block.get("text")
    return block.get("type") != "text" or (isinstance(text, str) and bool(text.strip()))


# ---------------------------------------------------------------------------- validation


def validate(request: object) -> list[str]:
    """Messages API rules that `request` breaks, one message each; [] if none.

    Checked: message roles and non-empty content; known block types per role; non-blank
    text; tool_use / tool_result pairing (every tool_use of an assistant turn answered in
    the next user message, tool_result blocks first there, no stray or duplicate ids);
    cache_control shape, at most 4 breakpoints (a top-level one counts), none on thinking
    or empty text, no 1h breakpoint after a 5m one.
    """
    errors: list[str] = []
    if not isinstance(request, Mapping):
        return ["request: not an object"]
    markers: list[str] = []  # TTLs in prefix order

    def marker(where: str, block: Mapping[str, Any]) -> None:
        if "cache_control" not in block:
            return
        cc = block["cache_control"]
        if not isinstance(cc, Mapping) or cc.get("type") != "ephemeral":
            errors.append(f"{where}: cache_control must be {{'type': 'ephemeral'}}")
            return
        ttl = cc.get("ttl", "5m")
        if ttl not in TTL_SECONDS:
            errors.append(f"{where}: bad cache_control ttl {ttl!r}")
            return
        if str(block.get("type")) in _UNMARKABLE:
            errors.append(f"{where}: a {block.get('type')} block cannot carry cache_control")
        if block.get("type") == "text" and not _markable(block):
            errors.append(f"{where}: an empty text block cannot carry cache_control")
        markers.append(ttl)

    tools = request.get("tools")
    if tools is not None and not isinstance(tools, list):
        errors.append("tools: not a list")
    for i, tool in enumerate(_as_list(tools)):
        if not isinstance(tool, Mapping) or not isinstance(tool.get("name"), str):
            errors.append(f"tools[{i}]: not a tool with a name")
            continue
        marker(f"tools[{i}]", tool)
    system = request.get("system")
    if isinstance(system, list):
        for i, block in enumerate(system):
            where = f"system[{i}]"
            if not isinstance(block, Mapping) or block.get("type") != "text":
                errors.append(f"{where}: system blocks must be text blocks")
                continue
            _check_text(where, block, errors)
            marker(where, block)
    elif system is not None and not isinstance(system, str):
        errors.append("system: must be a string or a list of text blocks")
    messages = request.get("messages")
    if not isinstance(messages, list) or not messages:
        errors.append("messages: must be a non-empty list")
        messages = []
    seen_ids: set[str] = set()
    pending: list[str] | None = None  # tool_use ids the next user message must answer
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, Mapping) or message.get("role") not in ("user", "assistant"):
            errors.append(f"{where}: role must be user or assistant")
            pending = None
            continue
        role = message["role"]
        content = message.get("content")
        if isinstance(content, str):
            if not content.strip():
                errors.append(f"{where}: empty content")
            blocks: list[Any] = []
        elif isinstance(content, list) and content:
            blocks = content
        else:
            errors.append(f"{where}: content must be a non-empty string or list")
            blocks = []
        results: list[str] = []
        uses: list[str] = []
        other = False  # a block other than tool_result seen in this message
        for j, block in enumerate(blocks):
            at = f"{where}.content[{j}]"
            if not isinstance(block, Mapping):
                errors.append(f"{at}: not an object")
                continue
            kind = block.get("type")
            allowed = USER_BLOCKS if role == "user" else ASSISTANT_BLOCKS
            if not isinstance(kind, str) or kind not in allowed:
                errors.append(f"{at}: {kind!r} blocks are not allowed in a {role} message")
                continue
            marker(at, block)
            if kind == "tool_result":
                if other:
                    errors.append(f"{at}: tool_result blocks must come first in the message")
                tool_id = block.get("tool_use_id")
                if not isinstance(tool_id, str):
                    errors.append(f"{at}: tool_result needs a tool_use_id")
                else:
                    results.append(tool_id)
                _check_result_content(at, block, errors, marker)
                continue
            other = True
            if kind == "text":
                _check_text(at, block, errors)
            elif kind == "tool_use":
                tool_id = block.get("id")
                if not isinstance(tool_id, str) or not isinstance(block.get("name"), str):
                    errors.append(f"{at}: tool_use needs an id and a name")
                elif tool_id in seen_ids:
                    errors.append(f"{at}: duplicate tool_use id {tool_id}")
                else:
                    seen_ids.add(tool_id)
                    uses.append(tool_id)
                if not isinstance(block.get("input"), Mapping):
                    errors.append(f"{at}: tool_use input must be an object")
            elif kind in ("image", "document") and not isinstance(block.get("source"), Mapping):
                errors.append(f"{at}: {kind} needs a source")
        if role == "user":
            expected = pending or []
            for tool_id in results:
                if tool_id not in expected:
                    errors.append(
                        f"{where}: tool_result {tool_id} has no tool_use in the previous message"
                    )
            for tool_id in expected:
                if tool_id not in results:
                    errors.append(f"{where}: tool_use {tool_id} has no tool_result here")
            if len(set(results)) != len(results):
                errors.append(f"{where}: a tool_use is answered twice")
            pending = None
        else:
            if pending:
                errors.append(f"messages[{i - 1}]: tool_use without a tool_result after it")
            pending = uses
    top = request.get("cache_control")
    if top is not None:
        marker("cache_control", {"cache_control": top})
    if len(markers) > MAX_BREAKPOINTS:
        errors.append(f"{len(markers)} cache_control breakpoints, at most {MAX_BREAKPOINTS}")
    seen_5m = False
    for ttl in markers:  # in prefix order, the top-level marker last
        if ttl == "5m":
            seen_5m = True
        elif seen_5m:
            errors.append("a 1h cache_control breakpoint comes after a 5m one")
            break
    return errors


def _check_text(where: str, block: Mapping[str, Any], errors: list[str]) -> None:
    text = block.get("text")
    if not isinstance(text, str) or not text.strip():
        errors.append(f"{where}: text blocks must contain non-whitespace text")


def _check_result_content(
    where: str, block: Mapping[str, Any], errors: list[str], marker: Callable[..., None]
) -> None:
    content = block.get("content")
    if content is None or isinstance(content, str):
        return
    if not isinstance(content, list):
        errors.append(f"{where}: tool_result content must be a string or a list")
        return
    for k, sub in enumerate(content):
        at = f"{where}.content[{k}]"
        if not isinstance(sub, Mapping) or str(sub.get("type")) not in TOOL_RESULT_BLOCKS:
            errors.append(f"{at}: not a block a tool_result may hold")
            continue
        if sub.get("type") == "text":
            _check_text(at, sub, errors)
        marker(at, sub)
