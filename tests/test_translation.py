"""plan_translation and ResponseTranslation: endpoints, headers, bodies, local answers. Pure."""

from __future__ import annotations

import json

import pytest

from trioproxy.config import Route
from trioproxy.errors import BadRequest
from trioproxy.translate import TranslationError, UpstreamFormatError
from trioproxy.translation import NotTranslated, plan_translation

A2O = Route("/oai", "https://openrouter.example/api", translate="anthropic-to-openai",
            models=(("claude-sonnet-4-5", "qwen3"),))
O2A = Route("/claude", "https://api.anthropic.com", translate="openai-to-anthropic")

MESSAGES = {"model": "claude-sonnet-4-5", "max_tokens": 64,
            "messages": [{"role": "user", "content": "hi"}]}
CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}


def body_of(data: dict) -> bytes:
    return json.dumps(data).encode()


def test_anthropic_client_messages_go_to_chat_completions_under_the_base_path() -> None:
    headers = [(b"x-api-key", b"sk-1"), (b"anthropic-version", b"2023-06-01"),
               (b"anthropic-beta", b"prompt-caching-2024-07-31"), (b"user-agent", b"cc/1"),
               (b"accept-encoding", b"gzip"), (b"content-type", b"application/json")]
    plan = plan_translation(A2O, b"POST", "/api/v1/messages?beta=true", headers,
                            body_of({**MESSAGES, "stream": True}))
    assert plan.local is None
    assert (plan.method, plan.target, plan.scan_path) == (
        b"POST", "/api/v1/chat/completions", "/api/v1/chat/completions")
    sent = json.loads(plan.body)
    assert sent["model"] == "qwen3"  # through the route's model map
    assert sent["stream_options"] == {"include_usage": True}
    assert plan.headers == [
        (b"host", b"openrouter.example"), (b"user-agent", b"cc/1"),
        (b"content-length", str(len(plan.body)).encode()),
        (b"accept-encoding", b"identity"), (b"authorization", b"Bearer sk-1"),
        (b"content-type", b"application/json"),
    ]
    assert plan.dropped == ("anthropic-beta",)
    assert plan.response is not None
    assert (plan.response.client, plan.response.endpoint, plan.response.model) == (
        "anthropic", "messages", "claude-sonnet-4-5")


def test_openai_client_chat_goes_to_messages_with_x_api_key_and_version() -> None:
    headers = [(b"authorization", b"Bearer sk-2"), (b"openai-organization", b"org")]
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    plan = plan_translation(O2A, b"POST", "/v1/chat/completions", headers, body_of(body))
    assert plan.target == "/v1/messages"
    assert plan.headers is not None
    assert (b"x-api-key", b"sk-2") in plan.headers
    assert (b"anthropic-version", b"2023-06-01") in plan.headers
    assert not any(name in (b"authorization", b"openai-organization") for name, _ in plan.headers)
    assert json.loads(plan.body)["max_tokens"] == 4096  # required upstream; the default
    assert plan.response is not None
    assert plan.response.include_usage


def test_count_tokens_is_answered_locally() -> None:
    plan = plan_translation(A2O, b"POST", "/api/v1/messages/count_tokens", [], body_of(MESSAGES))
    assert plan.local is not None
    assert json.loads(plan.local)["input_tokens"] > 0
    assert plan.response is None


@pytest.mark.parametrize(("route", "target"), [(A2O, "/api/v1/models"), (O2A, "/v1/models")])
def test_models_list_is_fetched_and_translated(route: Route, target: str) -> None:
    plan = plan_translation(route, b"GET", target, [(b"x-api-key", b"k")], b"")
    assert (plan.method, plan.target, plan.body) == (b"GET", target, b"")
    assert plan.headers is not None
    assert not any(name == b"content-length" for name, _ in plan.headers)
    assert plan.response is not None
    listed = json.loads(plan.response.whole(200, body_of(
        {"object": "list", "data": [{"id": "qwen3", "object": "model", "created": 0,
                                     "owned_by": "x"}]}
        if route is A2O else
        {"data": [{"type": "model", "id": "claude-x", "display_name": "X",
                   "created_at": "2025-01-01T00:00:00Z"}], "has_more": False}
    )))
    if route is A2O:
        assert [m["id"] for m in listed["data"]] == ["claude-sonnet-4-5", "qwen3"]
    else:
        assert listed["data"][0]["id"] == "claude-x"


@pytest.mark.parametrize(
    ("route", "method", "target"),
    [(A2O, b"POST", "/api/v1/complete"), (A2O, b"GET", "/api/v1/messages"),
     (O2A, b"POST", "/v1/responses"), (O2A, b"POST", "/v1/embeddings")],
)
def test_other_paths_are_not_served(route: Route, method: bytes, target: str) -> None:
    with pytest.raises(NotTranslated) as info:
        plan_translation(route, method, target, [], b"{}")
    assert info.value.status == 404
    assert route.prefix in info.value.message


@pytest.mark.parametrize(("body", "message"), [
    (b"{", "request body is not valid JSON"),
    (b"[1]", "request body must be a JSON object, not list"),
])
def test_bad_json_is_a_400(body: bytes, message: str) -> None:
    with pytest.raises(BadRequest) as info:
        plan_translation(A2O, b"POST", "/api/v1/messages", [], body)
    assert info.value.message == message


def test_a_refusal_names_the_field() -> None:
    with pytest.raises(TranslationError) as info:
        plan_translation(O2A, b"POST", "/v1/chat/completions", [], body_of({**CHAT, "n": 2}))
    assert info.value.status == 400
    assert info.value.message.startswith("n:")


def test_upstream_errors_are_reshaped_and_unreadable_success_is_a_502() -> None:
    plan = plan_translation(A2O, b"POST", "/api/v1/messages", [], body_of(MESSAGES))
    assert plan.response is not None
    error = json.loads(plan.response.whole(429, body_of(
        {"error": {"message": "slow down", "type": "rate_limit_exceeded", "code": None}})))
    assert error == {"type": "error",
                     "error": {"type": "rate_limit_error", "message": "slow down"}}
    with pytest.raises(UpstreamFormatError):
        plan.response.whole(200, b"<html>")


def test_max_tokens_field_follows_the_route() -> None:
    route = Route("/o", "https://api.openai.com", translate="anthropic-to-openai",
                  max_tokens_field="max_completion_tokens")
    plan = plan_translation(route, b"POST", "/v1/messages", [], body_of(MESSAGES))
    sent = json.loads(plan.body)
    assert sent["max_completion_tokens"] == 64
    assert "max_tokens" not in sent


@pytest.mark.parametrize("depth", [900, 990, 5000])
def test_an_upstream_body_nested_too_deeply_is_an_upstream_format_error(depth: int) -> None:
    # json.loads gives up at about 1,000 levels, the translators and json.dumps a little
    # earlier on a deeper stack: each way it must be a clean 502, never a RecursionError.
    plan = plan_translation(A2O, b"POST", "/v1/messages", [], body_of(MESSAGES))
    assert plan.response is not None
    arguments = json.dumps({"x": 0}).replace("0", "[" * depth + "]" * depth)
    body = body_of({"id": "c", "object": "chat.completion", "model": "qwen3", "choices": [{
        "index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": None, "tool_calls": [{
                "id": "t", "type": "function",
                "function": {"name": "f", "arguments": arguments}}]}}]})
    try:
        out = json.loads(plan.response.whole(200, body))
    except UpstreamFormatError as exc:
        message = str(exc)
        assert message.startswith("upstream"), message  # noqa: PT017
    else:  # shallow enough for this stack: translated whole
        assert out["content"][0]["input"] == json.loads(arguments)
