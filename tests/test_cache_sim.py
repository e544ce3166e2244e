"""The prompt-cache simulator and the request validator that the optimizer is judged by.

Token counts here are exact: text(n) is a text block whose canonical JSON is exactly n
tokens long for the simulator's tokenizer.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.cache_sim import CacheSim, canonical, tokens_of, total_tokens, validate
from tests.transcripts import generate_session

MODEL = "claude-sonnet-4-5"
M5 = {"type": "ephemeral"}
M1H = {"type": "ephemeral", "ttl": "1h"}


def text(tokens: int, marker: dict[str, str] | None = None, fill: str = "x") -> dict[str, Any]:
    # canonical({"type":"text","text":""}) is 25 bytes; 4 bytes a token.
    block: dict[str, Any] = {"type": "text", "text": fill * (4 * tokens - 25)}
    if marker is not None:
        block["cache_control"] = dict(marker)
    return block


def user(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {"role": "user", "content": list(blocks)}


def assistant(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {"role": "assistant", "content": list(blocks)}


def request(messages: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    return {"model": MODEL, "max_tokens": 100, "messages": messages, **fields}


def billed(usage: dict[str, Any]) -> tuple[int, int, int, int]:
    """(input, read, 5m writes, 1h writes), checking the totals agree."""
    w5 = usage["cache_creation"]["ephemeral_5m_input_tokens"]
    w1h = usage["cache_creation"]["ephemeral_1h_input_tokens"]
    assert usage["cache_creation_input_tokens"] == w5 + w1h
    return usage["input_tokens"], usage["cache_read_input_tokens"], w5, w1h


def test_tokenizer_is_bytes_over_four() -> None:
    assert tokens_of(canonical(text(7))) == 7
    assert tokens_of(canonical(text(100))) == 100
    assert tokens_of("abcde") == 2
    assert tokens_of("é") == 1  # 2 UTF-8 bytes
    assert total_tokens(request([user(text(10), text(20))], system=[text(30)])) == 60


def test_no_breakpoint_caches_nothing() -> None:
    sim = CacheSim(min_tokens=1024)
    body = request([user(text(10))], system=[text(2000)])
    for now in (0.0, 1.0):
        assert billed(sim.bill(body, now)) == (2010, 0, 0, 0)


def test_system_breakpoint_written_then_read() -> None:
    sim = CacheSim(min_tokens=1024)
    body = request([user(text(10))], system=[text(2000, M5)])
    assert billed(sim.bill(body, 0.0)) == (10, 0, 2000, 0)
    assert billed(sim.bill(body, 10.0)) == (10, 2000, 0, 0)
    # A string system prompt is the same single text block.
    same = request([user(text(10))], system=text(2000)["text"])
    assert billed(sim.bill(same, 20.0)) == (2010, 0, 0, 0)  # no breakpoint, no read
    assert sim.bill(same, 20.0, output_tokens=7)["output_tokens"] == 7


def test_prefix_below_the_minimum_is_not_cached() -> None:
    sim = CacheSim(min_tokens=1024)
    body = request([user(text(10))], system=[text(1000, M5)])
    assert billed(sim.bill(body, 0.0)) == (1010, 0, 0, 0)
    assert billed(sim.bill(body, 1.0)) == (1010, 0, 0, 0)
    # The marker on the user block ends a 1010-token prefix: still too short.
    body = request([user(text(10, M5))], system=[text(1000)])
    assert billed(sim.bill(body, 2.0)) == (1010, 0, 0, 0)
    body = request([user(text(30, M5))], system=[text(1000)])
    assert billed(sim.bill(body, 3.0)) == (0, 0, 1030, 0)


def test_moving_marker_reads_the_previous_prefix() -> None:
    # The guide's automatic caching table: the marker moves to the new last block and
    # the previous request's prefix is read; the marker itself is not content.
    sim = CacheSim(min_tokens=1024)
    first = request([user(text(500, M5))], system=[text(2000)])
    assert billed(sim.bill(first, 0.0)) == (0, 0, 2500, 0)
    second = request(
        [user(text(500)), assistant(text(300)), user(text(200, M5))], system=[text(2000)]
    )
    assert billed(sim.bill(second, 5.0)) == (0, 2500, 500, 0)


def blocks(n: int, marks: tuple[int, ...]) -> list[dict[str, Any]]:
    """A user message of n 100-token blocks, marked at the 1-based positions `marks`."""
    return [
        user(*(text(100, M5 if i in marks else None, fill=str(i % 10)) for i in range(1, n + 1)))
    ]


def test_lookback_window_is_twenty_blocks() -> None:
    # The guide's example: turn 1 has 10 blocks, turn 2 15, turn 3 35, one marker each on
    # the last block; turn 3's window (blocks 35..16) misses the entry at block 15.
    sim = CacheSim(min_tokens=100)
    assert billed(sim.bill(request(blocks(10, (10,))), 0.0)) == (0, 0, 1000, 0)
    assert billed(sim.bill(request(blocks(15, (15,))), 1.0)) == (0, 1000, 500, 0)
    assert billed(sim.bill(request(blocks(35, (35,))), 2.0)) == (0, 0, 3500, 0)
    # "Adding a second breakpoint at block 15 starts a second lookback window there."
    sim = CacheSim(min_tokens=100)
    sim.bill(request(blocks(10, (10,))), 0.0)
    sim.bill(request(blocks(15, (15,))), 1.0)
    assert billed(sim.bill(request(blocks(35, (15, 35))), 2.0)) == (0, 1500, 2000, 0)
    # 34 blocks: block 15 is the 20th position counting the breakpoint, inside the window.
    sim = CacheSim(min_tokens=100)
    sim.bill(request(blocks(15, (15,))), 1.0)
    assert billed(sim.bill(request(blocks(34, (34,))), 2.0)) == (0, 1500, 1900, 0)


def test_five_minute_entries_expire_unless_used() -> None:
    sim = CacheSim(min_tokens=1024)
    body = request([user(text(10))], system=[text(2000, M5)])
    assert billed(sim.bill(body, 0.0)) == (10, 0, 2000, 0)
    assert billed(sim.bill(body, 299.0)) == (10, 2000, 0, 0)  # refreshed: lives to 599
    assert billed(sim.bill(body, 598.0)) == (10, 2000, 0, 0)  # lives to 898
    assert billed(sim.bill(body, 898.5)) == (10, 0, 2000, 0)  # expired: written again


def test_one_hour_entries() -> None:
    sim = CacheSim(min_tokens=1024)
    body = request([user(text(10))], system=[text(2000, M1H)])
    assert billed(sim.bill(body, 0.0)) == (10, 0, 0, 2000)
    assert billed(sim.bill(body, 3599.0)) == (10, 2000, 0, 0)
    assert billed(sim.bill(body, 3599.0 + 3601.0)) == (10, 0, 0, 2000)


def test_mixed_ttls_are_billed_at_a_b_c() -> None:
    sim = CacheSim(min_tokens=1024)
    first = request([user(text(1000, M5))], system=[text(2000, M1H)])
    assert billed(sim.bill(first, 0.0)) == (0, 0, 1000, 2000)
    second = request(
        [user(text(1000)), assistant(text(500)), user(text(500, M5))], system=[text(2000, M1H)]
    )
    # Hit at the first request's 5m entry (A = 3000); no 1h marker after it (B = A).
    assert billed(sim.bill(second, 60.0)) == (0, 3000, 1000, 0)
    # Six idle minutes later the 5m entries are gone; the lookback falls back to the 1h
    # entry at the end of system (refreshed at 60 s).
    assert billed(sim.bill(second, 60.0 + 360.0)) == (0, 2000, 2000, 0)


def test_automatic_caching_marks_the_last_block() -> None:
    sim = CacheSim(min_tokens=1024)
    body = request([user(text(10))], system=[text(2000)], cache_control=dict(M5))
    assert billed(sim.bill(body, 0.0)) == (0, 0, 2010, 0)
    assert billed(sim.bill(body, 1.0)) == (0, 2010, 0, 0)


def test_what_invalidates_what() -> None:
    empty = {"name": "Read", "description": "", "input_schema": {}}
    pad = 4 * 1200 - len(canonical(empty))
    tool = {**empty, "description": "r" * pad}
    assert tokens_of(canonical(tool)) == 1200
    body = request([user(text(1000, M5))], system=[text(2000, M5)], tools=[tool])
    sim = CacheSim(min_tokens=1024)
    assert billed(sim.bill(body, 0.0)) == (0, 0, 4200, 0)
    # tool_choice changes only the messages cache: the system entry still hits.
    changed = {**body, "tool_choice": {"type": "any"}}
    assert billed(sim.bill(changed, 1.0)) == (0, 3200, 1000, 0)
    # A tool definition change invalidates everything.
    other = {**body, "tools": [{**tool, "description": "s" * pad}]}
    assert billed(sim.bill(other, 2.0)) == (0, 0, 4200, 0)
    # Another model has its own cache.
    assert billed(sim.bill({**body, "model": "claude-opus-4-1"}, 3.0)) == (0, 0, 4200, 0)
    assert billed(sim.bill(body, 4.0)) == (0, 4200, 0, 0)


# ---------------------------------------------------------------------------- validate


def valid() -> dict[str, Any]:
    return request(
        [
            user(text(10)),
            assistant(
                text(10),
                {"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {"p": 1}},
                {"type": "tool_use", "id": "toolu_2", "name": "Read", "input": {}},
            ),
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "a"},
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_2",
                        "content": [{"type": "text", "text": "b"}],
                        "is_error": True,
                    },
                    text(10),
                ],
            },
        ],
        system=[text(10, M1H)],
        tools=[{"name": "Read", "input_schema": {}, "cache_control": dict(M1H)}],
    )


def test_generated_sessions_are_valid() -> None:
    for cache in ("none", "claude_code"):
        session = generate_session(seed=3, cache=cache)
        for body in session.requests:
            assert validate(body) == []


def test_a_valid_request() -> None:
    assert validate(valid()) == []
    assert validate(request([user(text(10))])) == []
    assert validate(request([{"role": "user", "content": "hi"}], system="s")) == []


def broken(change: Any) -> list[str]:
    body = copy.deepcopy(valid())
    change(body)
    return validate(body)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda b: b["messages"][2]["content"].pop(1),
            ["messages[2]: tool_use toolu_2 has no tool_result here"],
        ),
        (
            lambda b: b["messages"][2]["content"][0].update(tool_use_id="toolu_9"),
            [
                "messages[2]: tool_result toolu_9 has no tool_use in the previous message",
                "messages[2]: tool_use toolu_1 has no tool_result here",
            ],
        ),
        (
            lambda b: b["messages"][2]["content"].insert(0, text(10)),
            [
                "messages[2].content[1]: tool_result blocks must come first in the message",
                "messages[2].content[2]: tool_result blocks must come first in the message",
            ],
        ),
        (
            lambda b: b["messages"].insert(2, user(text(10))),
            [
                "messages[2]: tool_use toolu_1 has no tool_result here",
                "messages[2]: tool_use toolu_2 has no tool_result here",
                "messages[3]: tool_result toolu_1 has no tool_use in the previous message",
                "messages[3]: tool_result toolu_2 has no tool_use in the previous message",
            ],
        ),
        (
            lambda b: b["messages"][1]["content"][2].update(id="toolu_1"),
            [
                "messages[1].content[2]: duplicate tool_use id toolu_1",
                "messages[2]: tool_result toolu_2 has no tool_use in the previous message",
            ],
        ),
        (
            lambda b: b["messages"][0]["content"].append({"type": "tool_use"}),
            ["messages[0].content[1]: 'tool_use' blocks are not allowed in a user message"],
        ),
        (
            lambda b: b["messages"][0]["content"].append({"type": "widget"}),
            ["messages[0].content[1]: 'widget' blocks are not allowed in a user message"],
        ),
        (
            lambda b: b["messages"][0]["content"].append({"type": "text", "text": " \n"}),
            ["messages[0].content[1]: text blocks must contain non-whitespace text"],
        ),
        (
            lambda b: b["messages"][0].update(content=[]),
            ["messages[0]: content must be a non-empty string or list"],
        ),
        (
            lambda b: b["messages"][0].update(content=""),
            ["messages[0]: empty content"],
        ),
        (
            lambda b: b["messages"][0].update(role="system"),
            ["messages[0]: role must be user or assistant"],
        ),
        (lambda b: b.update(messages=[]), ["messages: must be a non-empty list"]),
        (
            lambda b: b["messages"][1]["content"].insert(
                0, {"type": "thinking", "thinking": "t", "signature": "s", "cache_control": M5}
            ),
            ["messages[1].content[0]: a thinking block cannot carry cache_control"],
        ),
        (
            lambda b: b["messages"][0]["content"][0].update(cache_control={"type": "forever"}),
            ["messages[0].content[0]: cache_control must be {'type': 'ephemeral'}"],
        ),
        (
            lambda b: b["messages"][0]["content"][0].update(cache_control={**M5, "ttl": "2h"}),
            ["messages[0].content[0]: bad cache_control ttl '2h'"],
        ),
        (
            # 1h on tools and system, 5m on the first message, then 1h again.
            lambda b: (
                b["messages"][0]["content"][0].update(cache_control=M5),
                b["messages"][2]["content"][2].update(cache_control=M1H),
            ),
            ["a 1h cache_control breakpoint comes after a 5m one"],
        ),
        (
            lambda b: (
                b["messages"][0]["content"][0].update(cache_control=M1H),
                b["messages"][1]["content"][0].update(cache_control=M5),
                b.update(cache_control=M5),
            ),
            ["5 cache_control breakpoints, at most 4"],
        ),
        (
            # The top-level (automatic) marker comes last: 1h there after a 5m block is bad.
            lambda b: (
                b["messages"][0]["content"][0].update(cache_control=M5),
                b.update(cache_control=M1H),
            ),
            ["a 1h cache_control breakpoint comes after a 5m one"],
        ),
        (
            lambda b: b["messages"][2]["content"][1].update(content=[{"type": "tool_use"}]),
            ["messages[2].content[1].content[0]: not a block a tool_result may hold"],
        ),
        (
            lambda b: b.update(system=[{"type": "image", "source": {}}]),
            ["system[0]: system blocks must be text blocks"],
        ),
    ],
)
def test_rule_violations(change: Any, expected: list[str]) -> None:
    assert broken(change) == expected
