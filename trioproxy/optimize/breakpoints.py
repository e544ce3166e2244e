"""Prompt-cache breakpoints: add `cache_control` markers where Anthropic's cache pays.

The rules this follows are Anthropic's, from the prompt caching guide
(https://platform.claude.com/docs/en/build-with-claude/prompt-caching, read 2026-11-23):

* "Cache prefixes are created in the following order: tools, system, then messages", and a
  prefix is everything up to and including the marked block.
* At most 4 breakpoints per request; a top-level (automatic) `cache_control` "uses one of
  the 4 available breakpoint slots" and targets the last cacheable block, where an explicit
  marker with another TTL is a 400 error.
* "Cache writes happen only at your breakpoint": one entry, keyed by a hash of the prefix
  ending at that block. "Cache reads look backward for entries that prior requests wrote",
  at most 20 positions per breakpoint counting the breakpoint itself.
* The marker is not part of that hash: automatic caching moves its breakpoint to the last
  block of every new request and still reads "System through User(2)" written by the
  previous one (the guide's multi-turn table). So moving our own markers from turn to turn
  never breaks the cache, and only the content before a marker has to be stable.
* "Cache entries with longer TTL must appear before shorter TTLs": a 1h marker may not come
  after a 5m one.
* A prefix shorter than the model's minimum cacheable length is "processed without
  caching": a marker there only wastes a slot.
* Thinking blocks and empty text blocks cannot carry `cache_control`.

Placement, in priority order while free slots remain (the client's own markers are counted,
never moved or removed):

1. tail: the last eligible block of the last user message. This request is the prefix of
   the next one in an agent loop, so the next request's lookback finds this write.
2. end of system (tools + system): survives a conversation that changes (compaction, a new
   session, a sub-agent with the same prompt).
3. previous tail: the last eligible block of the user message that ended the previous
   request. The previous request wrote its tail there, so this hits exactly even when a turn
   adds 20 blocks or more (wide parallel tool calls) and the tail's lookback falls short.
4. end of tools: survives a system prompt change.

The markers are free ("Cache breakpoints themselves don't add any cost"): what is billed
depends only on where the highest hit and the last marker are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from trioproxy.translate.estimate import estimate_input_tokens

MAX_BREAKPOINTS = 4
TTLS = ("5m", "1h")

# Blocks that may carry cache_control. Thinking and redacted_thinking may not; unknown
# types are left alone rather than risk a 400.
_MARKABLE = frozenset({"text", "image", "document", "tool_use", "tool_result", "search_result"})

# Sections of a request in prefix order; a position is a tuple starting with one of these.
_TOOLS, _SYSTEM, _MESSAGES, _TOP = 0, 1, 2, 3

Position = tuple[int, ...]


def cache_control(ttl: str) -> dict[str, str]:
    """The marker for `ttl`: 5 minutes is the API's default, written without a ttl."""
    return {"type": "ephemeral"} if ttl == "5m" else {"type": "ephemeral", "ttl": ttl}


def client_markers(body: Mapping[str, Any]) -> list[tuple[Position, str]] | None:
    """The request's own cache_control markers as (position, ttl), in prefix order, the
    top-level one last; None if one of them is unreadable (then nothing is added)."""
    found: list[tuple[Position, str]] = []

    def note(obj: object, position: Position) -> bool:
        marker = obj.get("cache_control") if isinstance(obj, Mapping) else None
        if marker is None:
            return True
        if not isinstance(marker, Mapping):
            return False
        ttl = marker.get("ttl", "5m")
        if ttl not in TTLS:
            return False
        found.append((position, ttl))
        return True

    tools = body.get("tools")
    if isinstance(tools, list):
        for i, tool in enumerate(tools):
            if not note(tool, (_TOOLS, i)):
                return None
    system = body.get("system")
    if isinstance(system, list):
        for i, block in enumerate(system):
            if not note(block, (_SYSTEM, i)):
                return None
    messages = body.get("messages")
    if isinstance(messages, list):
        for i, message in enumerate(messages):
            content = message.get("content") if isinstance(message, Mapping) else None
            if not isinstance(content, list):
                continue
            for j, block in enumerate(content):
                if not note(block, (_MESSAGES, i, j)):
                    return None
                inner = block.get("content") if isinstance(block, Mapping) else None
                if isinstance(inner, list):
                    for k, sub in enumerate(inner):
                        if not note(sub, (_MESSAGES, i, j, k)):
                            return None
    if not note(body, (_TOP,)):
        return None
    return found


def ttl_order_ok(markers: Sequence[tuple[Position, str]]) -> bool:
    """True if no 1h marker comes after a 5m one (markers in prefix order)."""
    seen_5m = False
    for _, ttl in sorted(markers):
        if ttl == "5m":
            seen_5m = True
        elif seen_5m:
            return False
    return True


def place_breakpoints(
    body: Mapping[str, Any], *, ttl: str, min_tokens: int
) -> tuple[dict[str, Any] | None, int, int]:
    """Add up to 4 minus the client's count of markers, by the rules above.

    Returns (new body or None if nothing was added, markers added, client markers). Never
    mutates `body`; changed containers are copied, the rest is shared.
    """
    markers = client_markers(body)
    if markers is None:
        return None, 0, 0
    client = len(markers)
    messages = body.get("messages")
    free = MAX_BREAKPOINTS - client
    if free <= 0 or not isinstance(messages, list) or not ttl_order_ok(markers):
        return None, 0, client
    automatic = any(position == (_TOP,) for position, _ in markers)
    prefix = _PrefixTokens(body, min_tokens)
    chosen: list[tuple[Position, str]] = []
    for position in _candidates(body, messages, automatic):
        if len(chosen) == free:
            break
        if not prefix.reaches(position):
            continue
        marker_ttl = _legal_ttl(position, ttl, markers)
        if marker_ttl is not None:
            chosen.append((position, marker_ttl))
    if not chosen or not ttl_order_ok(markers + chosen):
        return None, 0, client
    return _apply(body, messages, chosen), len(chosen), client


def _candidates(body: Mapping[str, Any], messages: list[Any], automatic: bool) -> list[Position]:
    """Unmarked candidate positions, best first."""
    out: list[Position] = []
    tail = _last_user(messages, len(messages))
    if tail is not None and not automatic:
        # With automatic caching the API already marks the last block; another marker there
        # is a no-op or, with another TTL, a 400.
        out.append(tail)
    system = body.get("system")
    if isinstance(system, str) and system.strip():
        out.append((_SYSTEM, 0))
    elif isinstance(system, list) and system:
        last = system[-1]
        if isinstance(last, Mapping) and _markable(last) and "cache_control" not in last:
            out.append((_SYSTEM, len(system) - 1))
    if tail is not None:
        previous = _previous_tail(messages, tail[1])
        if previous is not None:
            out.append(previous)
    tools = body.get("tools")
    if isinstance(tools, list) and tools:
        last = tools[-1]
        if isinstance(last, Mapping) and "cache_control" not in last:
            out.append((_TOOLS, len(tools) - 1))
    return [p for p in out if not _marked(messages, p)]


def _last_user(messages: list[Any], end: int) -> Position | None:
    """The last markable block of the last user message before index `end`."""
    for i in range(end - 1, -1, -1):
        message = messages[i]
        if isinstance(message, Mapping) and message.get("role") == "user":
            j = _last_markable(message.get("content"))
            return None if j is None else (_MESSAGES, i, j)
    return None


def _previous_tail(messages: list[Any], tail_index: int) -> Position | None:
    """Where the previous request of an agent loop had its tail: the last user message
    before the last assistant message before the tail."""
    for i in range(tail_index - 1, -1, -1):
        message = messages[i]
        if isinstance(message, Mapping) and message.get("role") == "assistant":
            return _last_user(messages, i)
    return None


def _last_markable(content: object) -> int | None:
    if isinstance(content, str):
        return 0 if content.strip() else None
    if isinstance(content, list):
        for j in range(len(content) - 1, -1, -1):
            block = content[j]
            if isinstance(block, Mapping) and _markable(block):
                return j
    return None


def _markable(block: Mapping[str, Any]) -> bool:
    kind = block.get("type")
    if not isinstance(kind, str) or kind not in _MARKABLE:
        return False
    if kind == "text":
        text = block.get("text")
        return isinstance(text, str) and bool(text.strip())
    return True


def _marked(messages: list[Any], position: Position) -> bool:
    """True if the client already marked the message block at `position`."""
    if position[0] != _MESSAGES:
        return False
    content = messages[position[1]].get("content")
    return isinstance(content, list) and "cache_control" in content[position[2]]


def _legal_ttl(position: Position, ttl: str, markers: list[tuple[Position, str]]) -> str | None:
    """`ttl` adjusted so that 1h markers still all precede 5m ones.

    Before a client 1h marker ours must be 1h too; it costs nothing more, since the API bills
    everything up to the last 1h marker as 1h writes anyway ("1-hour cache write tokens for
    (B - A)"). After a client 5m marker ours must be 5m.
    """
    later_1h = any(p > position and t == "1h" for p, t in markers)
    earlier_5m = any(p < position and t == "5m" for p, t in markers)
    if later_1h and earlier_5m:
        return None
    if later_1h:
        return "1h"
    if earlier_5m:
        return "5m"
    return ttl


class _PrefixTokens:
    """Whether the prefix up to a position reaches the minimum cacheable length.

    Uses the translate layer's cheap estimate, and stops counting messages as soon as the
    minimum is reached: in an agent session tools + system alone usually reach it.
    """

    def __init__(self, body: Mapping[str, Any], min_tokens: int) -> None:
        self._body = body
        self._min = min_tokens
        self._tools = estimate_input_tokens({"tools": body.get("tools")})
        self._system = self._tools + estimate_input_tokens({"system": body.get("system")})
        self._counted = 0  # messages[:_counted] are in _messages
        self._messages = self._system

    def reaches(self, position: Position) -> bool:
        if position[0] == _TOOLS:
            return self._tools >= self._min
        if position[0] == _SYSTEM:
            return self._system >= self._min
        messages = self._body["messages"]
        end = position[1] + 1
        while self._messages < self._min and self._counted < end:
            self._messages += estimate_input_tokens({"messages": [messages[self._counted]]})
            self._counted += 1
        return self._messages >= self._min


def _apply(
    body: Mapping[str, Any], messages: list[Any], chosen: list[tuple[Position, str]]
) -> dict[str, Any]:
    new = dict(body)
    new_messages: list[Any] | None = None
    for position, ttl in chosen:
        marker = cache_control(ttl)
        if position[0] == _TOOLS:
            tools = list(body["tools"])
            tools[-1] = {**tools[-1], "cache_control": marker}
            new["tools"] = tools
        elif position[0] == _SYSTEM:
            system = body["system"]
            if isinstance(system, str):
                # A string is the documented shorthand for one text block.
                new["system"] = [{"type": "text", "text": system, "cache_control": marker}]
            else:
                blocks = list(system)
                blocks[-1] = {**blocks[-1], "cache_control": marker}
                new["system"] = blocks
        else:
            if new_messages is None:
                new_messages = list(messages)
            _, i, j = position
            message = new_messages[i]
            content = message["content"]
            if isinstance(content, str):
                blocks = [{"type": "text", "text": content, "cache_control": marker}]
            else:
                blocks = list(content)
                blocks[j] = {**blocks[j], "cache_control": marker}
            new_messages[i] = {**message, "content": blocks}
    if new_messages is not None:
        new["messages"] = new_messages
    return new
