"""optimize_body: which bytes go upstream in each mode, and the odd JSON that orjson refuses."""

from __future__ import annotations

import json

from trioproxy.config import OptimizeConfig
from trioproxy.optimizing import applies, optimize_body, optimize_options

OPTIONS = optimize_options(OptimizeConfig(mode="on"))
SYSTEM = "You are a careful coding agent. " * 400


def request(**extra: object) -> dict:
    return {"model": "claude-sonnet-4-5", "max_tokens": 10, "system": SYSTEM,
            "messages": [{"role": "user", "content": "hi"}], **extra}


def test_on_mode_sends_the_rewritten_body() -> None:
    body = json.dumps(request()).encode()
    sent, record = optimize_body("on", OPTIONS, body)
    assert record is not None
    assert record.mode == "on"
    assert record.breakpoints_added >= 1
    assert json.loads(sent)["system"][-1]["cache_control"] == {"type": "ephemeral"}


def test_dry_run_sends_the_original_bytes() -> None:
    body = json.dumps(request(), indent=2).encode()
    sent, record = optimize_body("dry-run", OPTIONS, body)
    assert sent is body
    assert record is not None
    assert (record.mode, record.breakpoints_added >= 1) == ("dry-run", True)


def test_unchanged_and_unreadable_bodies_go_as_they_came() -> None:
    small = json.dumps({"model": "m", "max_tokens": 1, "messages": []}).encode()
    sent, record = optimize_body("on", OPTIONS, small)
    assert sent is small
    assert record is not None
    assert record.breakpoints_added == 0
    for junk in (b"{nope", b"[1, 2]", b"\xff\xfe"):
        assert optimize_body("on", OPTIONS, junk) == (junk, None)


def test_json_that_orjson_refuses_still_round_trips() -> None:
    # A lone surrogate escape and an integer beyond 64 bits: valid JSON, not for orjson.
    body = json.dumps(request(metadata={"user_id": "\ud800"}, n=2**70)).encode()
    sent, record = optimize_body("on", OPTIONS, body)
    assert record is not None
    assert record.breakpoints_added >= 1
    decoded = json.loads(sent)
    assert (decoded["metadata"]["user_id"], decoded["n"]) == ("\ud800", 2**70)


def test_an_integer_beyond_64_bits_is_sent_exactly_as_the_client_wrote_it() -> None:
    # orjson alone would read 2**70 as a float and the rewrite would send 1.18e21.
    body = json.dumps(request(metadata={"user_id": "u"}, n=2**70, m=-(2**64))).encode()
    sent, record = optimize_body("on", OPTIONS, body)
    assert record is not None
    assert record.breakpoints_added >= 1
    assert b'"n":1180591620717411303424' in sent
    assert b'"m":-18446744073709551616' in sent


def test_only_post_messages_is_looked_at() -> None:
    on = OptimizeConfig(mode="on")
    assert applies(on, b"POST", "/v1/messages")
    assert not applies(on, b"POST", "/v1/messages/count_tokens")
    assert not applies(on, b"GET", "/v1/messages")
    assert not applies(OptimizeConfig(), b"POST", "/v1/messages")


def test_a_body_nested_too_deeply_to_decode_goes_unchanged() -> None:
    # orjson stops at 1,024 levels; json.loads then raised RecursionError, which ended
    # the connection with a traceback.
    deep = "[" * 5000 + "]" * 5000
    body = json.dumps({"model": "m", "max_tokens": 5, "messages": [], "metadata": {"x": 0}})
    body_bytes = body.replace("0", deep).encode()
    assert optimize_body("on", OPTIONS, body_bytes) == (body_bytes, None)
