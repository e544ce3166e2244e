"""Anthropic input prices, prompt-cache multipliers and minimum cacheable lengths, per model family.

Sources (read 2026-11-23):

* Prompt caching guide, https://platform.claude.com/docs/en/build-with-claude/prompt-caching
  (copy dated 2026-05-04): the per-model price table, the multipliers ("5-minute cache write
  tokens are 1.25 times the base input tokens price, 1-hour cache write tokens are 2 times
  ..., cache read tokens are 0.1 times ...") and "Cache limitations" (the minimum cacheable
  prompt length per model).
* Pricing page, https://platform.claude.com/docs/en/about-claude/pricing (copy marked "last
  verified 2026-08-07"): the same figures, plus Claude Opus 4.8, Claude Opus 5 and Claude
  Sonnet 5 (standard pricing from 2026-09-01). Those three come from a third-party mirror of
  the page only, and their minimum cacheable length was not on the pages read: they have a
  price here and no minimum (callers fall back to their own default).

Model ids are matched by family prefix: "claude-opus-4-5-20251101" is Opus 4.5 ($5) while
"claude-opus-4-1-20250805" is Opus 4.1 ($15) and "claude-opus-4-20250514" is Opus 4 ($15).
Bedrock and Vertex spellings ("anthropic.claude-opus-4-5-20251101-v1:0",
"claude-opus-4-5@20251101") match too. An unknown model gives None, never a guess.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

CACHE_READ_MULTIPLIER = 0.1
CACHE_WRITE_5M_MULTIPLIER = 1.25
CACHE_WRITE_1H_MULTIPLIER = 2.0

# family prefix -> (base input price in dollars per million tokens, minimum cacheable prompt
# length in tokens, or None where the docs read did not say).
_FAMILIES: dict[str, tuple[float, int | None]] = {
    "claude-opus-5": (5.0, None),
    "claude-opus-4-8": (5.0, None),
    "claude-opus-4-7": (5.0, 4096),
    "claude-opus-4-6": (5.0, 4096),
    "claude-opus-4-5": (5.0, 4096),
    "claude-opus-4-1": (15.0, 1024),
    "claude-opus-4-0": (15.0, 1024),  # alias of claude-opus-4-20250514
    "claude-opus-4": (15.0, 1024),
    "claude-sonnet-5": (3.0, None),
    "claude-sonnet-4-6": (3.0, 2048),
    "claude-sonnet-4-5": (3.0, 1024),
    "claude-sonnet-4-0": (3.0, 1024),  # alias of claude-sonnet-4-20250514
    "claude-sonnet-4": (3.0, 1024),
    "claude-3-7-sonnet": (3.0, 1024),
    "claude-3-5-sonnet": (3.0, 1024),
    "claude-haiku-4-5": (1.0, 4096),
    "claude-3-5-haiku": (0.80, 2048),
    "claude-3-haiku": (0.25, 2048),
    "claude-3-opus": (15.0, 1024),
}
# Longest prefix first, so that "claude-opus-4-5" is tried before "claude-opus-4".
_PREFIXES = sorted(_FAMILIES, key=len, reverse=True)


def model_family(model: object) -> str | None:
    """The family prefix of a model id (e.g. "claude-opus-4-5"), or None if unknown."""
    if not isinstance(model, str):
        return None
    name = model.strip().lower().replace("@", "-")
    start = name.find("claude-")
    if start < 0:
        return None
    name = name[start:]
    for prefix in _PREFIXES:
        if name == prefix:
            return prefix
        if name.startswith(prefix + "-"):
            segment = name[len(prefix) + 1 :].split("-", 1)[0]
            # A short number after the prefix is a minor version of another family
            # ("claude-opus-4" + "-9" is Opus 4.9, unknown here), not a date or a tag.
            if segment.isdigit() and len(segment) <= 2:
                continue
            return prefix
    return None


def input_price(model: object) -> float | None:
    """Base input price of `model` in dollars per million tokens; None if unknown."""
    family = model_family(model)
    return None if family is None else _FAMILIES[family][0]


def min_cacheable_tokens(model: object) -> int | None:
    """The documented minimum cacheable prompt length of `model`; None if not known."""
    family = model_family(model)
    return None if family is None else _FAMILIES[family][1]


def input_cost(
    model: object,
    input_tokens: int,
    cache_read: int = 0,
    cache_write_5m: int = 0,
    cache_write_1h: int = 0,
) -> float | None:
    """What the input of one request cost in dollars, as Anthropic bills it; None if the
    model is unknown. `input_tokens` is the uncached part (the API's usage.input_tokens)."""
    price = input_price(model)
    if price is None:
        return None
    weighted = (
        input_tokens
        + cache_read * CACHE_READ_MULTIPLIER
        + cache_write_5m * CACHE_WRITE_5M_MULTIPLIER
        + cache_write_1h * CACHE_WRITE_1H_MULTIPLIER
    )
    return weighted * price / 1_000_000


def cache_savings(
    model: object,
    input_tokens: int,
    cache_read: int,
    cache_write_5m: int,
    cache_write_1h: int,
) -> float | None:
    """Dollars saved by caching on one request: the cost of the same tokens all billed as
    plain input, minus what was billed. Negative when the writes cost more than the reads
    saved (a write nobody reads again). None if the model is unknown."""
    with_cache = input_cost(model, input_tokens, cache_read, cache_write_5m, cache_write_1h)
    without = input_cost(model, input_tokens + cache_read + cache_write_5m + cache_write_1h)
    if with_cache is None or without is None:
        return None
    return without - with_cache


def cache_split(usage: Mapping[str, Any]) -> tuple[int, int, int, int]:
    """(input_tokens, cache_read, cache_write_5m, cache_write_1h) from an Anthropic usage
    object. Missing or odd values count as 0; a total cache_creation_input_tokens without the
    usage.cache_creation breakdown (older API versions) counts as 5-minute writes."""

    def count(obj: object, key: str) -> int:
        value = obj.get(key) if isinstance(obj, Mapping) else None
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    breakdown = usage.get("cache_creation")
    w5 = count(breakdown, "ephemeral_5m_input_tokens")
    w1h = count(breakdown, "ephemeral_1h_input_tokens")
    if not isinstance(breakdown, Mapping):
        w5 = count(usage, "cache_creation_input_tokens")
    return (count(usage, "input_tokens"), count(usage, "cache_read_input_tokens"), w5, w1h)


def usage_cache_savings(model: object, usage: Mapping[str, Any]) -> float | None:
    """cache_savings() for an Anthropic usage object (see cache_split for missing fields)."""
    return cache_savings(model, *cache_split(usage))
