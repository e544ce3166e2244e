"""Non-streaming response translation: content, stop reasons, usage arithmetic, ids, and
shapes the official SDKs accept."""

from __future__ import annotations

from typing import Any

import anthropic.types
import openai.types.chat
import pytest

from trioproxy.translate import (
    UpstreamFormatError,
    anthropic_to_openai_response,
    openai_to_anthropic_response,
)
from trioproxy.translate.response import anthropic_usage, openai_usage


def completion(message: dict[str, Any], finish_reason: str | None = "stop",
               usage: dict[str, Any] | None = None, **choice: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
        "object": "chat.completion",
        "created": 1741569952,
        "model": "qwen3-coder-30b",
        "choices": [{"index": 0, "message": {"role": "assistant", **message},
                     "logprobs": None, "finish_reason": finish_reason, **choice}],
        "usage": usage,
    }


OPENAI_USAGE = {
    "prompt_tokens": 1500, "completion_tokens": 40, "total_tokens": 1540,
    "prompt_tokens_details": {"cached_tokens": 1200, "cache_write_tokens": 100,
                              "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 12, "audio_tokens": 0},
}


def test_openai_text_reply() -> None:
    body = completion({"content": "Hello!", "refusal": None, "annotations": []},
                      usage={"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12})
    message = openai_to_anthropic_response(body, "claude-sonnet-4-6")
    assert message == {
        "id": "msg_B9MBs8CjcvOU2jLn4n570S5qMJKcT",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-6",
        "content": [{"type": "text", "text": "Hello!"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 9, "cache_creation_input_tokens": 0,
                  "cache_read_input_tokens": 0, "output_tokens": 3},
    }
    anthropic.types.Message.model_validate(message)


def test_openai_reasoning_text_and_tool_calls() -> None:
    body = completion({
        "content": "Let me check.",
        "reasoning_content": "The user wants weather.",
        "tool_calls": [
            {"id": "call_a", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
            {"id": "chatcmpl-tool-9", "type": "function",
             "function": {"name": "get_time", "arguments": ""}},
        ],
    }, "tool_calls", OPENAI_USAGE)
    message = openai_to_anthropic_response(body, "m")
    assert message["content"] == [
        {"type": "thinking", "thinking": "The user wants weather.", "signature": ""},
        {"type": "text", "text": "Let me check."},
        {"type": "tool_use", "id": "call_a", "name": "get_weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "chatcmpl-tool-9", "name": "get_time", "input": {}},
    ]
    assert message["stop_reason"] == "tool_use"
    assert message["usage"] == {"input_tokens": 200, "cache_creation_input_tokens": 100,
                                "cache_read_input_tokens": 1200, "output_tokens": 40,
                                "output_tokens_details": {"thinking_tokens": 12}}
    anthropic.types.Message.model_validate(message)


def test_openrouter_reasoning_field() -> None:
    body = completion({"content": "4", "reasoning": "2+2"})
    assert openai_to_anthropic_response(body, "m")["content"][0] == {
        "type": "thinking", "thinking": "2+2", "signature": ""}


@pytest.mark.parametrize(("finish", "extra", "has_tools", "expected"), [
    ("stop", {}, False, ("end_turn", None)),
    ("stop", {"stop_reason": "\n\nHuman:"}, False, ("stop_sequence", "\n\nHuman:")),
    ("stop", {"stop_reason": 151645}, False, ("end_turn", None)),  # vLLM: a stop token id
    ("stop", {"stop_reason": None}, True, ("tool_use", None)),  # older Ollama
    ("length", {}, False, ("max_tokens", None)),
    ("length", {}, True, ("max_tokens", None)),
    ("tool_calls", {}, True, ("tool_use", None)),
    ("function_call", {}, False, ("tool_use", None)),
    ("content_filter", {}, False, ("refusal", None)),
    (None, {}, False, ("end_turn", None)),
])
def test_finish_reasons(finish: str | None, extra: dict[str, Any], has_tools: bool,
                        expected: tuple[str, str | None]) -> None:
    message: dict[str, Any] = {"content": "x"}
    if has_tools:
        message["tool_calls"] = [{"id": "c", "type": "function",
                                  "function": {"name": "f", "arguments": "{}"}}]
    result = openai_to_anthropic_response(completion(message, finish, **extra), "m")
    assert (result["stop_reason"], result["stop_sequence"]) == expected


def test_openai_refusal() -> None:
    result = openai_to_anthropic_response(
        completion({"content": None, "refusal": "I can't help with that."}), "m")
    assert result["content"] == [{"type": "text", "text": "I can't help with that."}]
    assert result["stop_reason"] == "refusal"


@pytest.mark.parametrize(("body", "says"), [
    ({"id": "x", "choices": []}, "no choices"),
    ({"id": "x"}, "no choices"),
    ({"id": "x", "choices": [{"index": 0}]}, "no message"),
    (completion({"tool_calls": [{"id": "c", "type": "function", "function": {
        "name": "f", "arguments": '{"a": tru'}}]}, "tool_calls"),
     "choices[0].message.tool_calls[0].function.arguments is not a JSON object"),
    (completion({"tool_calls": [{"id": "c", "type": "function", "function": {
        "name": "f", "arguments": '"just a string"'}}]}, "tool_calls"), "not a JSON object"),
])
def test_untranslatable_openai_responses(body: dict[str, Any], says: str) -> None:
    with pytest.raises(UpstreamFormatError) as info:
        openai_to_anthropic_response(body, "m")
    assert says in info.value.message
    assert info.value.status == 502


# -- Anthropic -> OpenAI ---------------------------------------------------------------

ANTHROPIC_USAGE = {
    "input_tokens": 25, "cache_creation_input_tokens": 340, "cache_read_input_tokens": 1200,
    "cache_creation": {"ephemeral_5m_input_tokens": 340, "ephemeral_1h_input_tokens": 0},
    "output_tokens": 17, "service_tier": "standard",
}


def message(content: list[dict[str, Any]], stop_reason: str = "end_turn",
            stop_sequence: str | None = None, usage: dict[str, Any] | None = None
            ) -> dict[str, Any]:
    return {"model": "claude-sonnet-4-6", "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
            "type": "message", "role": "assistant", "content": content,
            "stop_reason": stop_reason, "stop_sequence": stop_sequence,
            "usage": usage or ANTHROPIC_USAGE}


def test_anthropic_text_reply() -> None:
    result = anthropic_to_openai_response(
        message([{"type": "text", "text": "Hello"}, {"type": "text", "text": " there"}]),
        "gpt-4o", 1700000000)
    assert result == {
        "id": "chatcmpl-01XFDUDYJgAACzvnptvVoYEL",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "gpt-4o",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello there",
                                             "refusal": None},
                     "logprobs": None, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1565, "completion_tokens": 17, "total_tokens": 1582,
                  "prompt_tokens_details": {"cached_tokens": 1200, "cache_write_tokens": 340}},
    }
    openai.types.chat.ChatCompletion.model_validate(result)


def test_anthropic_thinking_and_tools() -> None:
    body = message([
        {"type": "thinking", "thinking": "Need weather.", "signature": "EqQB..."},
        {"type": "redacted_thinking", "data": "xyz"},
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "toolu_01A", "name": "get_weather",
         "input": {"city": "Zürich"}},
        {"type": "tool_use", "id": "toolu_01B", "name": "get_time", "input": {}},
    ], "tool_use", usage={"input_tokens": 10, "output_tokens": 5,
                          "output_tokens_details": {"thinking_tokens": 3}})
    result = anthropic_to_openai_response(body, "gpt-4o", 0)
    assert result["choices"][0] == {
        "index": 0, "logprobs": None, "finish_reason": "tool_calls",
        "message": {
            "role": "assistant", "content": "Checking.", "refusal": None,
            "reasoning_content": "Need weather.",
            "tool_calls": [
                {"id": "toolu_01A", "type": "function",
                 "function": {"name": "get_weather", "arguments": '{"city":"Zürich"}'}},
                {"id": "toolu_01B", "type": "function",
                 "function": {"name": "get_time", "arguments": "{}"}},
            ]},
    }
    assert result["usage"] == {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15,
                               "prompt_tokens_details": {"cached_tokens": 0},
                               "completion_tokens_details": {"reasoning_tokens": 3}}
    openai.types.chat.ChatCompletion.model_validate(result)


@pytest.mark.parametrize(("stop_reason", "finish"), [
    ("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"),
    ("tool_use", "tool_calls"), ("refusal", "content_filter"), ("pause_turn", "stop"),
    ("model_context_window_exceeded", "length"), (None, "stop"),
])
def test_stop_reasons(stop_reason: str, finish: str) -> None:
    result = anthropic_to_openai_response(message([], stop_reason), "m", 0)
    assert result["choices"][0]["finish_reason"] == finish
    assert result["choices"][0]["message"]["content"] is None


def test_stop_sequence_is_reported_like_vllm() -> None:
    result = anthropic_to_openai_response(
        message([{"type": "text", "text": "a"}], "stop_sequence", "###"), "m", 0)
    assert result["choices"][0]["stop_reason"] == "###"
    back = openai_to_anthropic_response(result, "m")
    assert (back["stop_reason"], back["stop_sequence"]) == ("stop_sequence", "###")


def test_no_content_list_is_untranslatable() -> None:
    with pytest.raises(UpstreamFormatError):
        anthropic_to_openai_response({"id": "msg_1"}, "m", 0)


# -- usage arithmetic -------------------------------------------------------------------


@pytest.mark.parametrize(("openai_side", "anthropic_side"), [
    ({"prompt_tokens": 31, "completion_tokens": 19, "prompt_tokens_details": {"cached_tokens": 12}},
     {"input_tokens": 19, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 12,
      "output_tokens": 19}),
    ({"prompt_tokens": 194, "completion_tokens": 2,
      "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 100}},
     {"input_tokens": 94, "cache_creation_input_tokens": 100, "cache_read_input_tokens": 0,
      "output_tokens": 2}),
    ({"prompt_tokens": 5, "completion_tokens": 1, "prompt_tokens_details": None},
     {"input_tokens": 5, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
      "output_tokens": 1}),
    (None, {"input_tokens": 0, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
            "output_tokens": 0}),
])
def test_usage_openai_to_anthropic(openai_side: Any, anthropic_side: dict[str, int]) -> None:
    assert anthropic_usage(openai_side) == anthropic_side


def test_usage_anthropic_to_openai_puts_cache_back_into_prompt() -> None:
    assert openai_usage(ANTHROPIC_USAGE) == {
        "prompt_tokens": 25 + 1200 + 340, "completion_tokens": 17,
        "total_tokens": 25 + 1200 + 340 + 17,
        "prompt_tokens_details": {"cached_tokens": 1200, "cache_write_tokens": 340}}
    assert anthropic_usage(openai_usage(ANTHROPIC_USAGE)) == {
        "input_tokens": 25, "cache_creation_input_tokens": 340,
        "cache_read_input_tokens": 1200, "output_tokens": 17}


def test_inconsistent_cache_counts_never_go_negative() -> None:
    usage = {"prompt_tokens": 10, "completion_tokens": 1,
             "prompt_tokens_details": {"cached_tokens": 50}}
    assert anthropic_usage(usage)["input_tokens"] == 0


@pytest.mark.parametrize(("upstream", "expected"), [
    ("chatcmpl-abc", "msg_abc"), ("cmpl-9", "msg_cmpl-9"), ("", "msg_"), (None, "msg_"),
])
def test_message_ids(upstream: Any, expected: str) -> None:
    body = completion({"content": "x"})
    body["id"] = upstream
    assert openai_to_anthropic_response(body, "m")["id"] == expected
