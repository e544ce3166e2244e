"""The request optimizer: breakpoints, dedup and prune, on hand-made requests and on
generated Claude Code style sessions replayed through the prompt-cache simulator."""

from __future__ import annotations

import copy
import re
import sys
from functools import cache
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.cache_sim import CacheSim, canonical, strip_markers, total_tokens, validate
from tests.transcripts import Session, generate_session
from trioproxy.optimize import OptimizeOptions, RewriteStats, optimize_request
from trioproxy.optimize.breakpoints import place_breakpoints
from trioproxy.optimize.dedup import block_texts
from trioproxy.optimize.prune import prune_boundary
from trioproxy.usage.pricing import cache_split, input_cost, min_cacheable_tokens

DEFAULT = OptimizeOptions()
PRUNE = OptimizeOptions(prune=True, prune_after_turns=6, prune_min_bytes=4096)
M5 = {"type": "ephemeral"}
M1H = {"type": "ephemeral", "ttl": "1h"}


@cache
def session(seed: int = 0, cache_style: str = "none", turns: int = 24) -> Session:
    return generate_session(turns, seed=seed, cache=cache_style)


def optimized(requests: list[dict[str, Any]], options: OptimizeOptions) -> list[dict[str, Any]]:
    out = []
    for body in requests:
        new, stats = optimize_request(body, options)
        assert stats.error is None
        out.append(body if new is None else new)
    return out


def normal(message: Any) -> str:
    """A message as the cache sees it: markers stripped, string content as one text block."""
    content = message["content"]
    if isinstance(content, str):
        content = [{"type": "text", "text": content}]
    return canonical({"role": message["role"], "content": [strip_markers(b) for b in content]})


def head(body: dict[str, Any]) -> str:
    system = body.get("system")
    if isinstance(system, str):
        system = [{"type": "text", "text": system}]
    return canonical(
        [[strip_markers(t) for t in body.get("tools", [])], [strip_markers(b) for b in system]]
    )


def markers(body: dict[str, Any]) -> dict[tuple[Any, ...], Any]:
    """Every cache_control marker of a request by its path."""
    found: dict[tuple[Any, ...], Any] = {}
    if "cache_control" in body:
        found[("top",)] = body["cache_control"]
    for i, tool in enumerate(body.get("tools", [])):
        if "cache_control" in tool:
            found[("tools", i)] = tool["cache_control"]
    if isinstance(body.get("system"), list):
        for i, block in enumerate(body["system"]):
            if "cache_control" in block:
                found[("system", i)] = block["cache_control"]
    for i, message in enumerate(body["messages"]):
        if not isinstance(message["content"], list):
            continue
        for j, block in enumerate(message["content"]):
            if "cache_control" in block:
                found[("messages", i, j)] = block["cache_control"]
            if isinstance(block.get("content"), list):
                for k, sub in enumerate(block["content"]):
                    if "cache_control" in sub:
                        found[("messages", i, j, k)] = sub["cache_control"]
    return found


def replay(requests: list[dict[str, Any]], s: Session) -> tuple[float, list[tuple[int, ...]]]:
    """Dollars of input billed for `requests` sent at the session's times, and the usage
    (input, read, 5m writes, 1h writes) of each."""
    sim = CacheSim(min_tokens=min_cacheable_tokens(s.model) or 1024)
    total = 0.0
    usages = []
    for body, now in zip(requests, s.times, strict=True):
        counts = cache_split(sim.bill(body, now))
        usages.append(counts)
        cost = input_cost(s.model, *counts)
        assert cost is not None
        total += cost
    return total, usages


def cache_breaks(usages: list[tuple[int, ...]]) -> list[int]:
    """Requests that read less than the previous request had cached."""
    return [
        k
        for k in range(1, len(usages))
        if usages[k][1] < usages[k - 1][1] + usages[k - 1][2] + usages[k - 1][3]
    ]


# ---------------------------------------------------------------------------- the API


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="ttl must be one of 5m, 1h"):
        OptimizeOptions(ttl="10m")
    with pytest.raises(ValueError, match="dedup_min_bytes must be a positive integer"):
        OptimizeOptions(dedup_min_bytes=0)
    with pytest.raises(ValueError, match="prune_after_turns"):
        OptimizeOptions(prune_after_turns=True)
    assert DEFAULT == OptimizeOptions(True, "5m", True, 2048, False, 10, 8192)


def test_unchanged_request_returns_none() -> None:
    small = {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "Hi"}]}
    # Below the minimum cacheable length: no breakpoint pays; nothing to dedup.
    assert optimize_request(small, DEFAULT) == (None, RewriteStats())
    body = session().requests[5]
    assert optimize_request(body, OptimizeOptions(breakpoints=False, dedup=False)) == (
        None,
        RewriteStats(),
    )
    # Four client markers already: none added, nothing repeated.
    full = copy.deepcopy(session().requests[1])
    for block in [full["tools"][0], full["tools"][-1], *full["system"]]:
        block["cache_control"] = dict(M5)
    assert optimize_request(full, DEFAULT) == (None, RewriteStats(client_breakpoints=4))


@pytest.mark.parametrize("body", [None, [], "x", {}, {"messages": "x"}, {"messages": None}])
def test_unreadable_bodies_are_left_alone(body: Any) -> None:
    assert optimize_request(body, DEFAULT) == (None, RewriteStats())


ODD_KEYS = ["type", "text", "content", "role", "tool_use_id", "id", "name", "input"]
ODD_KEYS += ["cache_control", "ttl", "is_error", "source"]
odd_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-2, 2)
    | st.sampled_from(["text", "tool_result", "tool_use", "user", "assistant", "5m", "1h"])
    | st.sampled_from(["image", "thinking", "ephemeral", "t1", "", " ", "\ud800", "x" * 9])
    | st.text(max_size=4),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(ODD_KEYS), inner, max_size=5)
    ),
    max_leaves=12,
)
odd_messages = st.lists(
    st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant"]), "content": odd_values})
    | odd_values,
    max_size=6,
)


@settings(max_examples=300, deadline=None)
@given(
    messages=odd_messages,
    system=odd_values,
    tools=odd_values,
    top=odd_values,
    model=st.sampled_from(["claude-sonnet-4-5", None, 3, "claude-opus-4-5"]),
)
def test_odd_shapes_never_raise_nor_mutate(
    messages: Any, system: Any, tools: Any, top: Any, model: Any
) -> None:
    body = {"model": model, "messages": messages, "system": system, "tools": tools}
    if top is not None:
        body["cache_control"] = top
    before = copy.deepcopy(body)
    tiny = OptimizeOptions(
        dedup_min_bytes=1, prune=True, prune_after_turns=1, prune_min_bytes=1, ttl="1h"
    )
    for options in (DEFAULT, tiny):
        new, stats = optimize_request(body, options)
        assert stats.error is None  # handled by design, not by the last-resort guard
        assert body == before
        assert (new is None) == (not stats.changed)


# ---------------------------------------------------------------------------- placement


def bp(body: dict[str, Any], ttl: str = "5m", min_tokens: int = 10) -> dict[tuple[Any, ...], Any]:
    new, added, _client = place_breakpoints(body, ttl=ttl, min_tokens=min_tokens)
    assert (new is None) == (added == 0)
    result = markers(new) if new is not None else {}
    assert len(result) - len(markers(body)) == added
    return result


def agent_body(**fields: Any) -> dict[str, Any]:
    body = {
        "model": "claude-sonnet-4-5",
        "tools": [{"name": "Read", "input_schema": {}}, {"name": "Bash", "input_schema": {}}],
        "system": [{"type": "text", "text": "You are an agent. " * 20}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Fix the bug."}]},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "t1", "name": "Read", "input": {}}],
            },
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1"}]},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "t2", "name": "Bash", "input": {}}],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "t2", "content": "ok"},
                    {"type": "text", "text": "<system-reminder>x</system-reminder>"},
                ],
            },
        ],
    }
    body.update(fields)
    return body


def test_placement_tail_system_previous_tail_tools() -> None:
    assert bp(agent_body()) == {
        ("messages", 4, 1): M5,  # the tail
        ("system", 0): M5,
        ("messages", 2, 0): M5,  # where the previous request had its tail
        ("tools", 1): M5,
    }
    one_hour = bp(agent_body(), ttl="1h")
    assert len(one_hour) == 4
    assert all(m == M1H for m in one_hour.values())


def test_placement_fills_only_free_slots_in_priority_order() -> None:
    body = agent_body()
    body["messages"][4]["content"][1]["cache_control"] = dict(M5)  # the client's tail
    assert bp(body) == {
        ("messages", 4, 1): M5,
        ("system", 0): M5,
        ("messages", 2, 0): M5,
        ("tools", 1): M5,
    }
    body["messages"][0]["content"][0]["cache_control"] = dict(M5)
    body["tools"][0]["cache_control"] = dict(M5)
    assert bp(body) == {
        ("tools", 0): M5,
        ("messages", 0, 0): M5,
        ("messages", 4, 1): M5,
        ("system", 0): M5,  # one free slot: system end beats the previous tail
    }


def test_placement_respects_the_minimum_length() -> None:
    # Tools + system stay under the minimum, the messages reach it.
    body = agent_body()
    body["messages"][2]["content"][0]["content"] = "z" * 400
    assert bp(body, min_tokens=500) == {("messages", 4, 1): M5, ("messages", 2, 0): M5}
    assert bp(body, min_tokens=10**6) == {}


def test_placement_converts_strings() -> None:
    body = agent_body(system="Be brief. " * 30)
    body["messages"].append({"role": "assistant", "content": [{"type": "text", "text": "Done"}]})
    body["messages"].append({"role": "user", "content": "Thanks, now the docs."})
    new, added, client = place_breakpoints(body, ttl="5m", min_tokens=10)
    assert (added, client) == (4, 0)
    assert new is not None
    assert new["system"] == [{"type": "text", "text": "Be brief. " * 30, "cache_control": M5}]
    assert new["messages"][6]["content"] == [
        {"type": "text", "text": "Thanks, now the docs.", "cache_control": M5}
    ]
    assert validate(new) == []


def test_placement_skips_blocks_that_cannot_be_marked() -> None:
    body = agent_body()
    body["messages"][4]["content"].append({"type": "text", "text": "  "})
    # A trailing assistant prefill: the tail is still the last user message.
    body["messages"].append(
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "t", "signature": "s"}]}
    )
    assert bp(body)[("messages", 4, 1)] == M5
    assert validate({**body, "messages": body["messages"][:-1]}) == [
        "messages[4].content[2]: text blocks must contain non-whitespace text"
    ]


def test_placement_with_automatic_caching() -> None:
    # A top-level marker takes a slot and the tail; with another TTL a marker there is a 400.
    body = agent_body(cache_control=dict(M5))
    assert bp(body, ttl="1h") == {
        ("top",): M5,
        ("system", 0): M1H,
        ("messages", 2, 0): M1H,
        ("tools", 1): M1H,
    }
    body = agent_body(cache_control=dict(M1H))
    assert bp(body) == {
        ("top",): M1H,
        ("system", 0): M1H,  # before a 1h marker, ours must be 1h too
        ("messages", 2, 0): M1H,
        ("tools", 1): M1H,
    }


def test_placement_keeps_the_ttl_order() -> None:
    body = agent_body()
    body["system"][0]["cache_control"] = dict(M5)  # client 5m early on
    result = bp(body, ttl="1h")
    assert result == {
        ("tools", 1): M1H,
        ("system", 0): M5,
        ("messages", 2, 0): M5,  # after a client 5m marker ours must be 5m
        ("messages", 4, 1): M5,
    }
    # A client whose own order is invalid gets nothing added.
    body["messages"][2]["content"][0]["cache_control"] = dict(M1H)
    assert place_breakpoints(body, ttl="5m", min_tokens=10) == (None, 0, 2)
    # Nor does one with an unreadable marker.
    body = agent_body()
    body["system"][0]["cache_control"] = {"type": "ephemeral", "ttl": "2h"}
    assert place_breakpoints(body, ttl="5m", min_tokens=10) == (None, 0, 0)


# ---------------------------------------------------------------------------- sessions


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("cache_style", ["none", "claude_code"])
@pytest.mark.parametrize("options", [DEFAULT, OptimizeOptions(ttl="1h"), PRUNE])
def test_every_optimized_request_is_valid(
    seed: int, cache_style: str, options: OptimizeOptions
) -> None:
    s = session(seed, cache_style)
    for k, body in enumerate(s.requests):
        before = copy.deepcopy(body)
        new, stats = optimize_request(body, options)
        assert body == before, "the input was mutated"
        assert new is not None
        assert validate(new) == [], k
        assert stats.breakpoints_added + stats.client_breakpoints == len(markers(new)) <= 4
        assert new["model"] == body["model"]
        assert [m["role"] for m in new["messages"]] == [m["role"] for m in body["messages"]]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("cache_style", ["none", "claude_code"])
def test_every_turn_is_rewritten_the_same_way_in_every_later_request(
    seed: int, cache_style: str
) -> None:
    s = session(seed, cache_style)
    out = optimized(s.requests, DEFAULT)
    heads = [head(body) for body in out]
    assert len(set(heads)) == 1  # tools and system never change
    prefixes = [[normal(m) for m in body["messages"]] for body in out]
    for k, earlier in enumerate(prefixes):
        for later in range(k + 1, len(prefixes)):
            assert prefixes[later][: len(earlier)] == earlier, (k, later)
    # Not vacuous: dedup rewrote turns of this session.
    assert optimize_request(s.requests[-1], DEFAULT)[1].blocks_deduped >= 2


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_client_breakpoints_are_never_moved(seed: int) -> None:
    s = session(seed, "claude_code")
    for body in s.requests:
        client = markers(body)
        assert len(client) == 3
        new, stats = optimize_request(body, DEFAULT)
        assert new is not None
        found = markers(new)
        assert {path: found.get(path) for path in client} == client
        assert stats.client_breakpoints == 3
        assert len(found) == 3 + stats.breakpoints_added


def test_client_one_hour_markers_make_ours_one_hour() -> None:
    s = generate_session(12, cache="claude_code", ttl="1h")
    for body in optimized(s.requests, DEFAULT):
        assert validate(body) == []
        assert all(m == M1H for m in markers(body).values())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_input_cost_on_a_24_turn_session(seed: int) -> None:
    plain = session(seed, "none")
    client = session(seed, "claude_code")
    none_cost, none_usage = replay(plain.requests, plain)
    client_cost, client_usage = replay(client.requests, client)
    layer_cost, layer_usage = replay(optimized(plain.requests, DEFAULT), plain)
    layer_client_cost, _ = replay(optimized(client.requests, DEFAULT), client)
    assert all(u[1:] == (0, 0, 0) for u in none_usage)
    # The goal: at least 70% less than no breakpoints...
    assert layer_cost <= 0.30 * none_cost
    # ... and never more than the client's own breakpoints alone.
    assert layer_client_cost <= client_cost
    assert layer_cost <= client_cost
    # The client's single moving marker misses the wide turn (21 new blocks, past the
    # 20-block lookback); the layer's marker at the previous tail does not.
    assert cache_breaks(client_usage) == [10]
    assert cache_breaks(layer_usage) == []


def test_input_cost_numbers_seed_0() -> None:
    # The figures quoted for the benchmark; exact, since everything is deterministic.
    plain = session(0, "none")
    client = session(0, "claude_code")
    none_cost, _ = replay(plain.requests, plain)
    client_cost, _ = replay(client.requests, client)
    layer_cost, layer_usage = replay(optimized(plain.requests, DEFAULT), plain)
    assert sum(total_tokens(b) for b in plain.requests) == 1_091_596
    assert round(none_cost, 4) == 3.2748
    assert round(client_cost, 4) == 0.7108
    assert round(layer_cost, 4) == 0.5073
    assert [sum(u[i] for u in layer_usage) for i in range(4)] == [0, 917_794, 61_849, 0]


# ---------------------------------------------------------------------------- dedup

REFERENCE = re.compile(
    r"\[trioproxy dedup: identical to (?:the result of tool call (?P<tool>\S+) above|"
    r"block (?P<block>\d+) of message (?P<message>\d+) above) \((?P<size>\d+) bytes, "
    r"sha256 (?P<digest>[0-9a-f]{16})\); omitted here to save tokens\]"
)


def expand(body: dict[str, Any]) -> dict[str, Any]:
    """`body` with every dedup reference replaced by the text it refers to."""
    body = copy.deepcopy(body)
    results: dict[str, list[str]] = {}
    for message in body["messages"]:
        if message["role"] != "user" or not isinstance(message["content"], list):
            continue
        for j, block in enumerate(message["content"]):
            texts = block_texts(block)
            if texts is None:
                continue
            match = REFERENCE.fullmatch(texts[0]) if len(texts) == 1 else None
            if match is None:
                if block.get("type") == "tool_result":
                    results[block["tool_use_id"]] = texts
                continue
            if match["tool"]:
                original = results[match["tool"]]
            else:
                source = body["messages"][int(match["message"])]["content"]
                original = block_texts(source[int(match["block"])])
            assert original is not None
            assert sum(len(t.encode()) for t in original) == int(match["size"])
            if block["type"] == "text":
                message["content"][j] = {**block, "text": original[0]}
            elif len(original) == 1:
                message["content"][j] = {**block, "content": original[0]}
            else:
                texts = [{"type": "text", "text": t} for t in original]
                message["content"][j] = {**block, "content": texts}
    return body


def semantic(body: dict[str, Any]) -> list[Any]:
    """What the model reads: content as text lists, markers stripped."""
    out = []
    for message in body["messages"]:
        content = message["content"]
        blocks = [content] if isinstance(content, str) else content
        out.append([block_texts(strip_markers(b)) or strip_markers(b) for b in blocks])
    return [head(body), out]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dedup_is_lossless(seed: int) -> None:
    s = session(seed)
    deduped = 0
    for body, new in zip(s.requests, optimized(s.requests, DEFAULT), strict=True):
        deduped += len(REFERENCE.findall(canonical(new)))
        assert semantic(expand(new)) == semantic(body)
    assert deduped >= 10


def read_turns(content: str, *, repeat: int) -> dict[str, Any]:
    """A request that reads the same file `repeat` times."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Look at main.py"}]
    for n in range(repeat):
        messages.append(
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Reading."},
                    {"type": "tool_use", "id": f"toolu_{n}", "name": "Read", "input": {}},
                ],
            }
        )
        messages.append(
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": f"toolu_{n}", "content": content}
                ],
            }
        )
    return {"model": "claude-sonnet-4-5", "messages": messages}


def test_dedup_reference_text_and_stats() -> None:
    content = "line of code\n" * 400  # 5200 bytes
    body = read_turns(content, repeat=3)
    new, stats = optimize_request(body, OptimizeOptions(breakpoints=False))
    assert new is not None
    reference = (
        "[trioproxy dedup: identical to the result of tool call toolu_0 above (5200 bytes, "
        "sha256 81abc237f1772859); omitted here to save tokens]"
    )
    assert [new["messages"][i]["content"][0]["content"] for i in (2, 4, 6)] == [
        content,
        reference,
        reference,
    ]
    assert stats == RewriteStats(
        blocks_deduped=2,
        bytes_removed=2 * (5200 - len(reference)),
        tokens_removed_estimate=2 * (1300 - 34),
    )
    assert validate(new) == []
    # The same block is rewritten the same way whatever comes after it.
    longer, _ = optimize_request(read_turns(content, repeat=6), OptimizeOptions(breakpoints=False))
    assert longer is not None
    assert longer["messages"][:7] == new["messages"]


def test_dedup_leaves_alone_what_it_must() -> None:
    big = "x" * 3000
    body = read_turns(big, repeat=2)
    messages = body["messages"]
    messages[4]["content"][0]["is_error"] = True  # an error is not the same result
    messages[3]["content"][1]["input"] = {"content": big}  # assistants are never touched
    messages.append({"role": "assistant", "content": [{"type": "text", "text": big}]})
    messages.append({"role": "user", "content": [{"type": "text", "text": big[:2047]}]})
    assert optimize_request(body, OptimizeOptions(breakpoints=False)) == (None, RewriteStats())
    # Text blocks and string content are deduplicated too, against tool results.
    messages.append({"role": "assistant", "content": [{"type": "text", "text": "ok"}]})
    messages.append({"role": "user", "content": big})
    new, stats = optimize_request(body, OptimizeOptions(breakpoints=False))
    assert new is not None
    assert stats.blocks_deduped == 1
    assert new["messages"][-1]["content"].startswith(
        "[trioproxy dedup: identical to the result of tool call toolu_0 above (3000 bytes"
    )


def test_dedup_keeps_a_client_marker_where_it_was() -> None:
    body = read_turns("y" * 4000, repeat=2)
    body["messages"][4]["content"][0]["cache_control"] = dict(M5)
    new, stats = optimize_request(body, OptimizeOptions(breakpoints=False))
    assert new is not None
    assert stats.blocks_deduped == 1
    assert new["messages"][4]["content"][0]["cache_control"] == M5
    nested = read_turns("y" * 4000, repeat=2)
    nested["messages"][4]["content"][0]["content"] = [
        {"type": "text", "text": "y" * 4000, "cache_control": dict(M1H)}
    ]
    new, _ = optimize_request(nested, OptimizeOptions(breakpoints=False))
    assert new is not None
    (only,) = new["messages"][4]["content"][0]["content"]
    assert only["cache_control"] == M1H
    assert only["text"].startswith("[trioproxy dedup:")


# ---------------------------------------------------------------------------- prune


def test_prune_boundary_moves_in_batches() -> None:
    assert [prune_boundary(t, 10) for t in range(0, 45, 5)] == [0, 0, 0, 0, 10, 10, 20, 20, 30]
    assert [prune_boundary(t, 3) for t in range(10)] == [0, 0, 0, 0, 0, 0, 3, 3, 3, 6]


def test_prune_stub() -> None:
    content = "def main():\n" + "    pass\n" * 1000
    body = read_turns(content, repeat=1)
    for n in range(1, 4):  # three more turns: T = 4, boundary(4, 2) = 2
        body["messages"].append(
            {"role": "assistant", "content": [{"type": "text", "text": f"step {n}"}]}
        )
        body["messages"].append({"role": "user", "content": "go on"})
    new, stats = optimize_request(
        body, OptimizeOptions(breakpoints=False, prune=True, prune_after_turns=2)
    )
    assert new is not None
    assert new["messages"][2]["content"][0] == {
        "type": "tool_result",
        "tool_use_id": "toolu_0",
        "content": "[trioproxy pruned: this Read result (9012 bytes, 1002 lines, sha256 "
        "2a11de0d902b7b60) was removed to save tokens. It began: 'def main():'. Run the "
        "tool again if you need it.]",
    }
    assert (stats.blocks_pruned, stats.blocks_deduped) == (1, 0)
    assert validate(new) == []


@pytest.mark.parametrize("dedup", [False, True])
def test_prune_changes_turns_only_at_batch_boundaries(dedup: bool) -> None:
    s = session(0)
    options = OptimizeOptions(dedup=dedup, prune=True, prune_after_turns=6, prune_min_bytes=4096)
    out = optimized(s.requests, options)
    versions: dict[int, list[tuple[int, str]]] = {}  # message index -> (request, form)
    for k, body in enumerate(out):
        for i, message in enumerate(body["messages"]):
            form = normal(message)
            seen = versions.setdefault(i, [])
            if not seen or seen[-1][1] != form:
                seen.append((k, form))
    changed_at = sorted({k for seen in versions.values() for k, _ in seen[1:]})
    # Request k carries k assistant turns: boundaries move at T = 12 and T = 18.
    assert changed_at == [12, 18]
    if not dedup:
        assert max(len(seen) for seen in versions.values()) == 2  # pruned once, for good


def test_prune_trade_off_measured() -> None:
    s = session(0)
    layer_cost, layer_usage = replay(optimized(s.requests, DEFAULT), s)
    prune_cost, prune_usage = replay(optimized(s.requests, PRUNE), s)
    # The cache is rebuilt exactly at the batch boundaries, never in between.
    assert cache_breaks(layer_usage) == []
    assert cache_breaks(prune_usage) == [12, 18]
    # What it buys: a much smaller context at the end of the session...
    assert total_tokens(optimized(s.requests[-1:], PRUNE)[0]) == 38_820
    assert total_tokens(optimized(s.requests[-1:], DEFAULT)[0]) == 61_849
    # ... and what it costs on this 24-turn session, priced by Anthropic's cache: each
    # rebuild writes the rest of the prefix again at 1.25x, more than the 0.1x reads of
    # the pruned tokens save. Pruning is for the context window, not the bill.
    assert round(layer_cost, 4) == 0.5073
    assert round(prune_cost, 4) == 0.5897
    # References never point at a pruned block: lossless expansion still works on the
    # unpruned part (expand() asserts each referenced result is there, whole).
    for body in optimized(s.requests, PRUNE):
        expand(body)


# ---------------------------------------------------------------------------- cost


def python_calls(body: dict[str, Any], options: OptimizeOptions) -> int:
    """Function calls (Python and C) made by one optimize_request: a clock-free work count."""
    count = 0

    def profile(_frame: Any, event: str, _arg: Any) -> None:
        nonlocal count
        if event in ("call", "c_call"):
            count += 1

    sys.setprofile(profile)
    try:
        optimize_request(body, options)
    finally:
        sys.setprofile(None)
    return count


def blocks_in(body: dict[str, Any]) -> int:
    return sum(len(m["content"]) if isinstance(m["content"], list) else 1 for m in body["messages"])


@pytest.mark.parametrize("options", [DEFAULT, PRUNE])
def test_work_is_linear_in_blocks_and_independent_of_text_size(options: OptimizeOptions) -> None:
    s = session(0, turns=48)
    small, large = s.requests[8], s.requests[47]
    per_block = [python_calls(b, options) / blocks_in(b) for b in (small, large)]
    assert blocks_in(large) > 3 * blocks_in(small)
    assert per_block[1] < 1.5 * per_block[0]
    # Ten times more text in every block, and thresholds to match: the same decisions, and
    # no more calls (no per-character Python loops).
    bigger = copy.deepcopy(large)
    for message in bigger["messages"]:
        for block in message["content"]:
            if block.get("type") == "tool_result" and isinstance(block["content"], str):
                block["content"] *= 10
            elif block.get("type") == "text" and message["role"] == "user":
                block["text"] *= 10
    scaled = OptimizeOptions(
        prune=options.prune,
        prune_after_turns=options.prune_after_turns,
        prune_min_bytes=10 * options.prune_min_bytes,
        dedup_min_bytes=10 * options.dedup_min_bytes,
    )
    same = optimize_request(large, options)[1]
    assert optimize_request(bigger, scaled)[1].blocks_deduped == same.blocks_deduped
    assert python_calls(bigger, scaled) <= 1.05 * python_calls(large, options)


pool = st.sampled_from(["a" * 3000, "b" * 2500, "c" * 100, "a" * 2999])


@settings(max_examples=200, deadline=None)
@given(turns=st.lists(st.lists(pool, min_size=1, max_size=3), min_size=1, max_size=8))
def test_dedup_rewrite_depends_only_on_what_came_before(turns: list[list[str]]) -> None:
    messages: list[dict[str, Any]] = [{"role": "user", "content": "start"}]
    for n, results in enumerate(turns):
        ids = [f"toolu_{n}_{k}" for k in range(len(results))]
        uses = [{"type": "tool_use", "id": i, "name": "Read", "input": {}} for i in ids]
        messages.append({"role": "assistant", "content": uses})
        messages.append(
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": i, "content": r}
                    for i, r in zip(ids, results, strict=True)
                ],
            }
        )
    options = OptimizeOptions(breakpoints=False)
    whole = optimize_request({"messages": messages}, options)[0] or {"messages": messages}
    for end in range(1, len(messages) + 1):
        part = optimize_request({"messages": messages[:end]}, options)[0]
        part = part or {"messages": messages[:end]}
        assert part["messages"] == whole["messages"][:end]
        assert validate(part) == []
