"""Request translation, both directions: exact bodies, refusals naming their field, and
what is dropped and reported."""

from __future__ import annotations

from typing import Any

import pytest

from trioproxy.errors import BadRequest
from trioproxy.translate import (
    ANTHROPIC_REQUEST_FIELDS,
    DEFAULT_MAX_TOKENS,
    OPENAI_REQUEST_FIELDS,
    Translated,
    TranslationError,
    anthropic_to_openai_request,
    openai_to_anthropic_request,
)

PNG = "iVBORw0KGgo="


def anthropic(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "claude-sonnet-4-6", "max_tokens": 100,
                            "messages": [{"role": "user", "content": "Hi"}]}
    body.update(fields)
    return body


def openai(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}]}
    body.update(fields)
    return body


def a2o(**fields: Any) -> Translated:
    return anthropic_to_openai_request(anthropic(**fields))


def o2a(**fields: Any) -> Translated:
    return openai_to_anthropic_request(openai(**fields))


# -- Anthropic -> OpenAI ---------------------------------------------------------------


def test_a2o_scalars_model_map_and_stream_usage() -> None:
    body = anthropic(
        system="Be brief.", temperature=0.5, top_p=0.9, top_k=40,
        stop_sequences=["END", "STOP"], metadata={"user_id": "u-1"}, stream=True,
    )
    result = anthropic_to_openai_request(body, {"claude-sonnet-4-6": "qwen3-coder"})
    assert result == Translated({
        "model": "qwen3-coder",
        "messages": [{"role": "system", "content": "Be brief."},
                     {"role": "user", "content": "Hi"}],
        "max_tokens": 100, "temperature": 0.5, "top_p": 0.9, "top_k": 40,
        "stop": ["END", "STOP"], "user": "u-1",
        "stream": True, "stream_options": {"include_usage": True},
    }, ())


def test_a2o_unmapped_model_passes_and_max_completion_tokens() -> None:
    result = anthropic_to_openai_request(anthropic(stream=False), {"other": "x"},
                                         max_tokens_field="max_completion_tokens")
    assert result.body == {"model": "claude-sonnet-4-6",
                           "messages": [{"role": "user", "content": "Hi"}],
                           "max_completion_tokens": 100, "stream": False}


def test_a2o_system_blocks() -> None:
    one = a2o(system=[{"type": "text", "text": "A", "cache_control": {"type": "ephemeral"}}])
    assert one.body["messages"][0] == {"role": "system", "content": "A"}
    assert one.dropped == ("cache_control",)
    two = a2o(system=[{"type": "text", "text": "A"}, {"type": "text", "text": "B"}])
    assert two.body["messages"][0] == {"role": "system", "content": [
        {"type": "text", "text": "A"}, {"type": "text", "text": "B"}]}
    assert two.dropped == ()


def test_a2o_user_blocks_text_and_images() -> None:
    content = [
        {"type": "text", "text": "look"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "image", "source": {"type": "url", "url": "https://x.test/a.jpg"}},
    ]
    result = a2o(messages=[{"role": "user", "content": content}])
    assert result.body["messages"] == [{"role": "user", "content": [
        {"type": "text", "text": "look"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        {"type": "image_url", "image_url": {"url": "https://x.test/a.jpg"}},
    ]}]


def test_a2o_tool_turns_keep_ids_names_and_order() -> None:
    messages = [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "hmm", "signature": "sig"},
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "toolu_01A", "name": "get_weather",
             "input": {"city": "Paris", "units": "C"}},
            {"type": "tool_use", "id": "call-B_2", "name": "get.time-v2", "input": {}},
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_01A", "content": "18C"},
            {"type": "tool_result", "tool_use_id": "call-B_2", "is_error": True,
             "content": [{"type": "text", "text": "timeout"}, {"type": "text", "text": "retry"}]},
            {"type": "text", "text": "and tomorrow?"},
        ]},
    ]
    result = a2o(messages=messages)
    assert result.body["messages"] == [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": "Checking.", "tool_calls": [
            {"id": "toolu_01A", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city":"Paris","units":"C"}'}},
            {"id": "call-B_2", "type": "function",
             "function": {"name": "get.time-v2", "arguments": "{}"}},
        ]},
        {"role": "tool", "tool_call_id": "toolu_01A", "content": "18C"},
        {"role": "tool", "tool_call_id": "call-B_2", "content": "Error: timeout\nretry"},
        {"role": "user", "content": [{"type": "text", "text": "and tomorrow?"}]},
    ]
    assert result.dropped == ("content.thinking",)


def test_a2o_tool_result_images_follow_the_tool_messages() -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                         "data": PNG}}
    messages = [{"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "t1",
         "content": [{"type": "text", "text": "shot:"}, image]},
        {"type": "tool_result", "tool_use_id": "t2", "content": [image], "is_error": False},
        {"type": "text", "text": "what do you see?"},
    ]}]
    assert a2o(messages=messages).body["messages"] == [
        {"role": "tool", "tool_call_id": "t1", "content": "shot:"},
        {"role": "tool", "tool_call_id": "t2", "content": ""},
        {"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
            {"type": "text", "text": "what do you see?"},
        ]},
    ]


def test_a2o_tool_results_alone_make_no_user_message() -> None:
    messages = [{"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "t1", "is_error": True}]}]
    assert a2o(messages=messages).body["messages"] == [
        {"role": "tool", "tool_call_id": "t1", "content": "Error"}]


def test_a2o_assistant_without_text() -> None:
    messages = [{"role": "user", "content": "x"}, {"role": "assistant", "content": [
        {"type": "redacted_thinking", "data": "abc"},
        {"type": "tool_use", "id": "t", "name": "f", "input": {"a": [1, 2]}}]},
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "t", "signature": ""}]}]
    result = a2o(messages=messages)
    assert result.body["messages"][1:] == [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "t", "type": "function",
             "function": {"name": "f", "arguments": '{"a":[1,2]}'}}]},
        {"role": "assistant", "content": ""},
    ]
    assert result.dropped == ("content.redacted_thinking", "content.thinking")


def test_a2o_tools_and_tool_choice() -> None:
    tools = [
        {"name": "get_weather", "description": "Weather.", "strict": True,
         "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
         "cache_control": {"type": "ephemeral"}, "input_examples": [{"city": "Oslo"}]},
        {"type": "custom", "name": "noop", "input_schema": {"type": "object"},
         "allowed_callers": ["direct"], "defer_loading": False},
    ]
    result = a2o(tools=tools, tool_choice={"type": "any", "disable_parallel_tool_use": True})
    assert result.body["tools"] == [
        {"type": "function", "function": {
            "name": "get_weather", "description": "Weather.",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            "strict": True}},
        {"type": "function", "function": {"name": "noop", "parameters": {"type": "object"}}},
    ]
    assert result.body["tool_choice"] == "required"
    assert result.body["parallel_tool_calls"] is False
    assert result.dropped == ("cache_control", "tools.input_examples")


@pytest.mark.parametrize(("choice", "expected"), [
    ({"type": "auto"}, {"tool_choice": "auto"}),
    ({"type": "auto", "disable_parallel_tool_use": False},
     {"tool_choice": "auto", "parallel_tool_calls": True}),
    ({"type": "tool", "name": "f"},
     {"tool_choice": {"type": "function", "function": {"name": "f"}}}),
    ({"type": "none"}, {"tool_choice": "none"}),
    ({"type": "none", "disable_parallel_tool_use": True}, {"tool_choice": "none"}),
])
def test_a2o_tool_choice_forms(choice: dict[str, Any], expected: dict[str, Any]) -> None:
    tools = [{"name": "f", "input_schema": {"type": "object"}}]
    body = a2o(tools=tools, tool_choice=choice).body
    assert {k: body[k] for k in ("tool_choice", "parallel_tool_calls") if k in body} == expected


def test_a2o_output_config_and_thinking() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}},
              "additionalProperties": False}
    result = a2o(output_config={"format": {"type": "json_schema", "schema": schema},
                                "effort": "high"},
                 thinking={"type": "enabled", "budget_tokens": 2048})
    assert result.body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "response", "schema": schema, "strict": True}}
    assert result.dropped == ("output_config.effort", "thinking")
    assert a2o(thinking={"type": "disabled"}).dropped == ()


def test_a2o_dropped_fields_are_reported_sorted_and_unique() -> None:
    block = {"type": "text", "text": "x", "cache_control": {"type": "ephemeral"},
             "citations": [{"type": "char_location"}]}
    result = a2o(
        messages=[{"role": "user", "content": [block, block]}],
        metadata={"user_id": "u", "session": "s"}, service_tier="auto",
        context_management={"edits": []}, cache_control={"type": "ephemeral"},
        inference_geo="us", speed="fast", container=None, mcp_servers=[],
    )
    assert result.dropped == ("cache_control", "content.text.citations", "context_management",
                              "inference_geo", "metadata", "service_tier", "speed")
    assert result.body["user"] == "u"
    assert all(name in ANTHROPIC_REQUEST_FIELDS for name in result.dropped)
    assert all(ANTHROPIC_REQUEST_FIELDS[name].startswith("dropped, reported")
               for name in result.dropped)


def image(source: dict[str, Any]) -> dict[str, Any]:
    return {"type": "image", "source": source}


@pytest.mark.parametrize(("fields", "field", "says"), [
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": "a"}, {
        "type": "document", "source": {"type": "base64", "media_type": "application/pdf",
                                       "data": "JVBERi0="}}]}]},
     "messages[0].content[1]", "document blocks cannot be sent to an OpenAI-compatible"),
    ({"messages": [{"role": "user", "content": [{
        "type": "document", "source": {"type": "url", "url": "https://x.test/a.pdf"}}]}]},
     "messages[0].content[0]", "document"),
    ({"messages": [{"role": "user", "content": [image({"type": "file", "file_id": "f"})]}]},
     "messages[0].content[0].source.type", "image sources"),
    ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]},
     "tools[0].type", "server tool"),
    ({"tools": [{"type": "bash_20250124", "name": "bash"}]}, "tools[0].type", "server tool"),
    ({"tools": [{"name": "f", "input_schema": {}}, {"type": "text_editor_20250728",
                                                    "name": "e"}]}, "tools[1].type", ""),
    ({"container": "c-1"}, "container", "server tools"),
    ({"mcp_servers": [{"type": "url", "url": "https://m"}]}, "mcp_servers", "MCP"),
    ({"messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t",
                                                  "content": [{"type": "search_result"}]}]}]},
     "messages[0].content[0].content[0].type", "inside a tool_result"),
    ({"messages": [{"role": "assistant", "content": [{"type": "server_tool_use", "id": "s",
                                                       "name": "web_search", "input": {}}]}]},
     "messages[0].content[0].type", "'server_tool_use' blocks in a assistant turn"),
    ({"messages": [{"role": "system", "content": "x"}]}, "messages[0].role", "user"),
    ({"frobnicate": 1}, "frobnicate", "unknown Anthropic request field"),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": "a", "x": 1}]}]},
     "messages[0].content[0].x", "unknown field of a 'text' block"),
    ({"output_config": {"format": {"type": "regex"}}}, "output_config.format.type", ""),
    ({"tool_choice": {"type": "maybe"}}, "tool_choice.type", ""),
    ({"max_tokens": "lots"}, "max_tokens", "integer"),
    ({"messages": "Hi"}, "messages", "array"),
])
def test_a2o_refusals_name_the_field(fields: dict[str, Any], field: str, says: str) -> None:
    with pytest.raises(TranslationError) as info:
        a2o(**fields)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")
    assert says in info.value.problem
    assert isinstance(info.value, BadRequest)
    assert info.value.status == 400


# -- OpenAI -> Anthropic ---------------------------------------------------------------


def test_o2a_scalars_default_max_tokens_and_model_map() -> None:
    body = openai(temperature=0.7, top_p=0.5, stop="END", user="u-9", stream=True,
                  stream_options={"include_usage": True}, n=1, logprobs=False,
                  presence_penalty=0, frequency_penalty=0.0, logit_bias={},
                  modalities=["text"], top_logprobs=None)
    result = openai_to_anthropic_request(body, {"gpt-4o": "claude-sonnet-4-6"})
    assert result == Translated({
        "model": "claude-sonnet-4-6", "max_tokens": DEFAULT_MAX_TOKENS,
        "messages": [{"role": "user", "content": "Hi"}],
        "temperature": 0.7, "top_p": 0.5, "stop_sequences": ["END"],
        "metadata": {"user_id": "u-9"}, "stream": True,
    }, ())
    assert DEFAULT_MAX_TOKENS == 4096


@pytest.mark.parametrize(("fields", "expected"), [
    ({"max_tokens": 50}, 50),
    ({"max_completion_tokens": 60}, 60),
    ({"max_tokens": 70, "max_completion_tokens": 70}, 70),
    ({"max_tokens": None, "max_completion_tokens": 80}, 80),
])
def test_o2a_max_tokens(fields: dict[str, Any], expected: int) -> None:
    assert o2a(**fields).body["max_tokens"] == expected


def test_o2a_system_and_developer_are_hoisted_in_order() -> None:
    messages = [
        {"role": "system", "content": "S1"},
        {"role": "user", "content": "Hi"},
        {"role": "developer", "content": [{"type": "text", "text": "D1"}]},
        {"role": "assistant", "content": "Yo"},
    ]
    body = o2a(messages=messages).body
    assert body["system"] == [{"type": "text", "text": "S1"}, {"type": "text", "text": "D1"}]
    assert body["messages"] == [{"role": "user", "content": "Hi"},
                                {"role": "assistant", "content": "Yo"}]
    single = o2a(messages=[{"role": "developer", "content": "Only"}, *messages[1:2]]).body
    assert single["system"] == "Only"


def test_o2a_tool_messages_merge_into_one_user_turn() -> None:
    messages = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "a", "arguments": '{"x": 1}'}},
            {"id": "call_2", "type": "function", "function": {"name": "b", "arguments": ""}},
        ]},
        {"role": "tool", "tool_call_id": "call_1", "content": "one"},
        {"role": "tool", "tool_call_id": "call_2",
         "content": [{"type": "text", "text": "two"}]},
        {"role": "user", "content": "thanks"},
        {"role": "assistant", "content": "ok", "tool_calls": [
            {"id": "call_3", "type": "function", "function": {"name": "c", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_3", "content": "three"},
    ]
    assert o2a(messages=messages).body["messages"] == [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "call_1", "name": "a", "input": {"x": 1}},
            {"type": "tool_use", "id": "call_2", "name": "b", "input": {}},
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "call_1", "content": "one"},
            {"type": "tool_result", "tool_use_id": "call_2",
             "content": [{"type": "text", "text": "two"}]},
            {"type": "text", "text": "thanks"},
        ]},
        {"role": "assistant", "content": [
            {"type": "text", "text": "ok"},
            {"type": "tool_use", "id": "call_3", "name": "c", "input": {}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "call_3", "content": "three"}]},
    ]


def test_o2a_user_parts() -> None:
    content = [
        {"type": "text", "text": "see"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}",
                                            "detail": "high"}},
        {"type": "image_url", "image_url": {"url": "https://x.test/a.png", "detail": "auto"}},
        {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0=",
                                  "filename": "a.pdf"}},
    ]
    result = o2a(messages=[{"role": "user", "content": content, "name": "bob"}])
    assert result.body["messages"] == [{"role": "user", "content": [
        {"type": "text", "text": "see"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "image", "source": {"type": "url", "url": "https://x.test/a.png"}},
        {"type": "document", "title": "a.pdf", "source": {
            "type": "base64", "media_type": "application/pdf", "data": "JVBERi0="}},
    ]}]
    assert result.dropped == ("content.image_url.detail", "messages.name")


def test_o2a_assistant_refusal_and_reasoning() -> None:
    messages = [{"role": "user", "content": "x"},
                {"role": "assistant", "content": [{"type": "refusal", "refusal": "No."}],
                 "reasoning_content": "thought"},
                {"role": "assistant", "content": None, "refusal": "Nope."}]
    result = o2a(messages=messages)
    assert result.body["messages"][1:] == [
        {"role": "assistant", "content": [{"type": "text", "text": "No."}]},
        {"role": "assistant", "content": [{"type": "text", "text": "Nope."}]},
    ]
    assert result.dropped == ("messages.reasoning_content",)


def test_o2a_tools_tool_choice_and_parallel() -> None:
    tools = [{"type": "function", "function": {"name": "a", "description": "A.",
                                               "parameters": {"type": "object"},
                                               "strict": True}},
             {"type": "function", "function": {"name": "b"}}]
    body = o2a(tools=tools, tool_choice="required", parallel_tool_calls=False).body
    assert body["tools"] == [
        {"name": "a", "description": "A.", "input_schema": {"type": "object"}, "strict": True},
        {"name": "b", "input_schema": {"type": "object", "properties": {}}},
    ]
    assert body["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    assert o2a(tools=tools, parallel_tool_calls=True).body["tool_choice"] == {
        "type": "auto", "disable_parallel_tool_use": False}
    assert o2a(tools=tools, tool_choice="none", parallel_tool_calls=False).body[
        "tool_choice"] == {"type": "none"}
    assert o2a(tools=tools, tool_choice={"type": "function", "function": {"name": "b"}}).body[
        "tool_choice"] == {"type": "tool", "name": "b"}
    assert "tool_choice" not in o2a(parallel_tool_calls=False).body


def test_o2a_response_format_and_identifiers() -> None:
    schema = {"type": "object", "properties": {}, "additionalProperties": False}
    result = o2a(response_format={"type": "json_schema", "json_schema": {
        "name": "x", "schema": schema, "strict": True}}, safety_identifier="s", user="u")
    assert result.body["output_config"] == {"format": {"type": "json_schema", "schema": schema}}
    assert result.body["metadata"] == {"user_id": "u"}
    assert result.dropped == ("safety_identifier",)
    assert o2a(safety_identifier="s").body["metadata"] == {"user_id": "s"}
    assert "output_config" not in o2a(response_format={"type": "text"}).body


def test_o2a_dropped_fields_are_reported() -> None:
    result = o2a(seed=7, service_tier="flex", store=True, metadata={"k": "v"},
                 reasoning_effort="high", verbosity="low", prompt_cache_key="k",
                 prediction={"type": "content", "content": "x"},
                 messages=[{"role": "user", "content": [{
                     "type": "text", "text": "x",
                     "prompt_cache_breakpoint": {"mode": "explicit"}}]}])
    assert result.dropped == ("content.prompt_cache_breakpoint", "metadata", "prediction",
                              "prompt_cache_key", "reasoning_effort", "seed", "service_tier",
                              "store", "verbosity")
    assert all(OPENAI_REQUEST_FIELDS[name].startswith("dropped, reported")
               for name in result.dropped)
    assert o2a(store=False, seed=None).dropped == ()


def call(arguments: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [
        {"id": "c0", "type": "function", "function": {"name": "f", "arguments": "{}"}},
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": arguments}}]}]}


@pytest.mark.parametrize(("fields", "field", "says"), [
    (call('{"a": '), "messages[1].tool_calls[1].function.arguments", "not valid JSON"),
    (call("[1, 2]"), "messages[1].tool_calls[1].function.arguments", "JSON object"),
    ({"n": 2}, "n", "one choice"),
    ({"logprobs": True}, "logprobs", "log probabilities"),
    ({"top_logprobs": 3}, "top_logprobs", "log probabilities"),
    ({"presence_penalty": 0.5}, "presence_penalty", "presence penalty"),
    ({"frequency_penalty": -1}, "frequency_penalty", "frequency penalty"),
    ({"logit_bias": {"50256": -100}}, "logit_bias", "logit bias"),
    ({"temperature": 1.5}, "temperature", "0 to 1"),
    ({"response_format": {"type": "json_object"}}, "response_format.type", "json_schema"),
    ({"modalities": ["text", "audio"]}, "modalities", "text only"),
    ({"audio": {"voice": "alloy"}}, "audio", "audio"),
    ({"web_search_options": {}}, "web_search_options", "search"),
    ({"functions": [{"name": "f"}]}, "functions", "deprecated"),
    ({"max_tokens": 10, "max_completion_tokens": 20}, "max_tokens", "max_completion_tokens"),
    ({"tools": [{"type": "custom", "custom": {"name": "x"}}]}, "tools[0].type", "function"),
    ({"tool_choice": {"type": "allowed_tools", "allowed_tools": {}}}, "tool_choice", ""),
    ({"messages": [{"role": "function", "name": "f", "content": "x"}]}, "messages[0].role", ""),
    ({"messages": [{"role": "user", "content": [
        {"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}]}]},
     "messages[0].content[0]", "audio"),
    ({"messages": [{"role": "user", "content": [
        {"type": "file", "file": {"file_id": "file-1"}}]}]},
     "messages[0].content[0].file", "file_id"),
    ({"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png,rawbytes"}}]}]},
     "messages[0].content[0].image_url.url", "base64"),
    ({"messages": [{"role": "assistant", "content": "x",
                    "function_call": {"name": "f", "arguments": "{}"}}]},
     "messages[0].function_call", "deprecated"),
    ({"messages": [{"role": "user", "content": "x", "weird": 1}]}, "messages[0].weird", "unknown"),
    ({"repetition_penalty": 1.1}, "repetition_penalty", "unknown OpenAI request field"),
    ({"model": 3}, "model", "string"),
])
def test_o2a_refusals_name_the_field(fields: dict[str, Any], field: str, says: str) -> None:
    with pytest.raises(TranslationError) as info:
        o2a(**fields)
    assert info.value.field == field
    assert str(info.value) == f"{field}: {info.value.problem}"
    assert says in info.value.problem


def test_o2a_arguments_objects_and_blanks() -> None:
    body = o2a(**call("  ")).body
    assert body["messages"][1]["content"][1]["input"] == {}
    body = o2a(**call({"already": "parsed"})).body
    assert body["messages"][1]["content"][1]["input"] == {"already": "parsed"}


def test_tables_classify_every_entry() -> None:
    kinds = ("mapped", "refused (400)", "dropped, reported", "consumed")
    for table in (ANTHROPIC_REQUEST_FIELDS, OPENAI_REQUEST_FIELDS):
        for name, how in table.items():
            assert how.startswith(kinds) or " accepted" in how, (name, how)


def test_null_fields_ask_for_nothing() -> None:
    # SDK models echo null fields (caller, toolset_name, citations, refusal, audio...).
    anthropic_body = anthropic(
        messages=[
            {"role": "user", "content": "x"},
            {"role": "assistant", "content": [
                {"type": "text", "text": "a", "citations": None},
                {"type": "tool_use", "id": "t", "name": "f", "input": {}, "caller": None}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t",
                                          "content": "ok", "toolset_name": None}]},
        ],
        temperature=None, container=None, brand_new_field=None)
    assert anthropic_to_openai_request(anthropic_body).dropped == ()
    openai_body = openai(
        messages=[
            {"role": "user", "content": "x", "name": None},
            {"role": "assistant", "content": "a", "refusal": None, "audio": None,
             "function_call": None, "annotations": [], "reasoning_details": [],
             "tool_calls": None},
        ],
        seed=None, brand_new_field=None, n=None)
    result = openai_to_anthropic_request(openai_body)
    assert result.body["messages"][1] == {"role": "assistant", "content": "a"}
    assert result.dropped == ()


def test_o2a_echoed_reply_metadata_is_dropped_and_reported() -> None:
    result = o2a(messages=[
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": "a", "reasoning_details": [{"type": "reasoning.text"}],
         "annotations": [{"type": "url_citation", "url_citation": {"url": "https://x"}}]},
    ])
    assert result.dropped == ("messages.annotations", "messages.reasoning_content")
