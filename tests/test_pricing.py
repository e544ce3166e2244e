"""Anthropic prices, cache multipliers and minimum cacheable lengths by model family."""

from __future__ import annotations

import pytest

from trioproxy.usage.pricing import (
    cache_savings,
    cache_split,
    input_cost,
    input_price,
    min_cacheable_tokens,
    model_family,
    usage_cache_savings,
)


@pytest.mark.parametrize(
    ("model", "family", "price"),
    [
        ("claude-opus-4-5-20251101", "claude-opus-4-5", 5.0),
        ("claude-opus-4-5", "claude-opus-4-5", 5.0),
        ("claude-opus-4-1-20250805", "claude-opus-4-1", 15.0),
        ("claude-opus-4-20250514", "claude-opus-4", 15.0),
        ("claude-opus-4-0", "claude-opus-4-0", 15.0),
        ("claude-opus-4-6", "claude-opus-4-6", 5.0),
        ("claude-opus-4-7", "claude-opus-4-7", 5.0),
        ("claude-sonnet-4-6", "claude-sonnet-4-6", 3.0),
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5", 3.0),
        ("claude-sonnet-4-20250514", "claude-sonnet-4", 3.0),
        ("claude-3-7-sonnet-latest", "claude-3-7-sonnet", 3.0),
        ("claude-haiku-4-5-20251001", "claude-haiku-4-5", 1.0),
        ("claude-3-5-haiku-20241022", "claude-3-5-haiku", 0.80),
        ("claude-3-haiku-20240307", "claude-3-haiku", 0.25),
        # Bedrock and Vertex spellings, and case.
        ("anthropic.claude-opus-4-5-20251101-v1:0", "claude-opus-4-5", 5.0),
        ("us.anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5", 3.0),
        ("claude-opus-4-1@20250805", "claude-opus-4-1", 15.0),
        ("Claude-Haiku-4-5", "claude-haiku-4-5", 1.0),
    ],
)
def test_family_and_price(model: str, family: str, price: float) -> None:
    assert model_family(model) == family
    assert input_price(model) == price


@pytest.mark.parametrize(
    "model",
    # An unknown minor version must not fall back to its major family's price.
    ["claude-opus-4-9", "claude-sonnet-4-7-20270101", "gpt-4o", "claude", "", None, 42],
)
def test_unknown_models(model: object) -> None:
    assert model_family(model) is None
    assert input_price(model) is None
    assert min_cacheable_tokens(model) is None
    assert input_cost(model, 1000) is None
    assert cache_savings(model, 1, 2, 3, 4) is None


@pytest.mark.parametrize(
    ("model", "minimum"),
    [
        ("claude-opus-4-5-20251101", 4096),
        ("claude-opus-4-7", 4096),
        ("claude-opus-4-1-20250805", 1024),
        ("claude-sonnet-4-6", 2048),
        ("claude-sonnet-4-5-20250929", 1024),
        ("claude-haiku-4-5", 4096),
        ("claude-3-5-haiku-latest", 2048),
        ("claude-opus-4-8", None),  # priced, minimum not on the pages read
    ],
)
def test_min_cacheable_tokens(model: str, minimum: int | None) -> None:
    assert min_cacheable_tokens(model) == minimum


def test_input_cost_uses_the_multipliers() -> None:
    # 1000 plain + 10000 read x 0.1 + 2000 5m writes x 1.25 + 1000 1h writes x 2 = 6500
    # base-priced tokens, at $3 per million.
    assert input_cost("claude-sonnet-4-5", 1000, 10_000, 2000, 1000) == pytest.approx(0.0195)
    assert input_cost("claude-opus-4-1", 1_000_000) == pytest.approx(15.0)
    assert input_cost("claude-opus-4-5", 0, 1_000_000) == pytest.approx(0.5)
    assert input_cost("claude-haiku-4-5", 0, 0, 1_000_000) == pytest.approx(1.25)
    assert input_cost("claude-haiku-4-5", 0, 0, 0, 1_000_000) == pytest.approx(2.0)


def test_cache_savings_can_be_negative() -> None:
    # The same 14000 tokens without caching cost $0.042.
    assert cache_savings("claude-sonnet-4-5", 1000, 10_000, 2000, 1000) == pytest.approx(0.0225)
    # A write nobody reads: 25% more than plain input.
    assert cache_savings("claude-sonnet-4-5", 0, 0, 1000, 0) == pytest.approx(-0.00075)
    assert cache_savings("claude-sonnet-4-5", 0, 0, 0, 1000) == pytest.approx(-0.003)
    assert cache_savings("claude-sonnet-4-5", 500, 0, 0, 0) == 0


def test_cache_split_reads_the_usage_object() -> None:
    usage = {
        "input_tokens": 12,
        "cache_read_input_tokens": 49981,
        "cache_creation_input_tokens": 4750,
        "cache_creation": {"ephemeral_5m_input_tokens": 4650, "ephemeral_1h_input_tokens": 100},
        "output_tokens": 7,
    }
    assert cache_split(usage) == (12, 49981, 4650, 100)
    # Without the breakdown (older API versions) the writes are 5-minute writes.
    assert cache_split({"input_tokens": 3, "cache_creation_input_tokens": 40}) == (3, 0, 40, 0)
    # Odd values count as nothing; nulls too (message_delta may repeat counts as null).
    odd = {"input_tokens": None, "cache_read_input_tokens": True, "cache_creation": "x"}
    assert cache_split(odd) == (0, 0, 0, 0)
    assert cache_split({}) == (0, 0, 0, 0)


def test_usage_cache_savings() -> None:
    usage = {
        "input_tokens": 1000,
        "cache_read_input_tokens": 10_000,
        "cache_creation_input_tokens": 3000,
        "cache_creation": {"ephemeral_5m_input_tokens": 2000, "ephemeral_1h_input_tokens": 1000},
    }
    assert usage_cache_savings("claude-sonnet-4-5", usage) == pytest.approx(0.0225)
    assert usage_cache_savings("gpt-4o", usage) is None
