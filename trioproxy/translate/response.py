"""Non-streaming responses between OpenAI Chat Completions and Anthropic Messages, and the
pieces the stream translators share: stop reasons, usage, ids.

Usage arithmetic: OpenAI's `prompt_tokens` includes `prompt_tokens_details.cached_tokens`
(cache reads) and, where a server reports it (OpenRouter), `cache_write_tokens`;
Anthropic's `input_tokens` excludes both (`cache_read_input_tokens`,
`cache_creation_input_tokens`). So input = prompt - cached - cache_write, and back
prompt = input + cache_read + cache_creation. Reasoning tokens:
`completion_tokens_details.reasoning_tokens` <-> `output_tokens_details.thinking_tokens`.

Ids keep the upstream's id with the other API's prefix: "chatcmpl-X" <-> "msg_X"; an id
without the expected prefix gets the prefix added. Tool-call ids pass unchanged. The model
reported is the one the client asked for.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from trioproxy.translate.error_map import UpstreamFormatError

JSONObject = dict[str, Any]

#: OpenAI finish_reason -> Anthropic stop_reason.
FINISH_TO_STOP_REASON: dict[str, str] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}

#: Anthropic stop_reason -> OpenAI finish_reason.
STOP_REASON_TO_FINISH: dict[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    "pause_turn": "stop",
    "model_context_window_exceeded": "length",
}

_OPENAI_ID_PREFIX = "chatcmpl-"
_ANTHROPIC_ID_PREFIX = "msg_"


def anthropic_message_id(openai_id: Any) -> str:
    """`chatcmpl-X` -> `msg_X`; any other string gets `msg_` in front."""
    text = openai_id if isinstance(openai_id, str) else ""
    return _ANTHROPIC_ID_PREFIX + text.removeprefix(_OPENAI_ID_PREFIX)


def openai_completion_id(anthropic_id: Any) -> str:
    """`msg_X` -> `chatcmpl-X`; any other string gets `chatcmpl-` in front."""
    text = anthropic_id if isinstance(anthropic_id, str) else ""
    return _OPENAI_ID_PREFIX + text.removeprefix(_ANTHROPIC_ID_PREFIX)


def anthropic_stop(
    finish_reason: Any, matched_stop: Any = None, *, tool_calls: bool = False
) -> tuple[str, str | None]:
    """(stop_reason, stop_sequence) for an OpenAI finish_reason.

    `matched_stop` is vLLM's choice-level `stop_reason`: the stop string that ended the
    text (a token id when a stop token did, which is not a stop sequence). A "stop" with
    tool calls is tool_use: some servers (older Ollama) say "stop" after tool calls.
    """
    if finish_reason == "stop" and isinstance(matched_stop, str):
        return "stop_sequence", matched_stop
    if finish_reason in (None, "stop") and tool_calls:
        return "tool_use", None
    return FINISH_TO_STOP_REASON.get(finish_reason, "end_turn"), None


def openai_finish(stop_reason: Any) -> str:
    """The OpenAI finish_reason for an Anthropic stop_reason (unknown -> "stop")."""
    return STOP_REASON_TO_FINISH.get(stop_reason, "stop")


def _count(obj: Any, key: str) -> int:
    value = obj.get(key) if isinstance(obj, Mapping) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def anthropic_usage(usage: Any) -> JSONObject:
    """OpenAI `usage` as Anthropic usage (cache tokens taken out of input_tokens)."""
    details = usage.get("prompt_tokens_details") if isinstance(usage, Mapping) else None
    cache_read = _count(details, "cached_tokens")
    cache_write = _count(details, "cache_write_tokens")
    out: JSONObject = {
        "input_tokens": max(_count(usage, "prompt_tokens") - cache_read - cache_write, 0),
        "cache_creation_input_tokens": cache_write,
        "cache_read_input_tokens": cache_read,
        "output_tokens": _count(usage, "completion_tokens"),
    }
    completion = usage.get("completion_tokens_details") if isinstance(usage, Mapping) else None
    if isinstance(completion, Mapping) and isinstance(completion.get("reasoning_tokens"), int):
        out["output_tokens_details"] = {"thinking_tokens": completion["reasoning_tokens"]}
    return out


def openai_usage(usage: Any) -> JSONObject:
    """Anthropic `usage` as OpenAI usage (cache tokens put back into prompt_tokens)."""
    cache_read = _count(usage, "cache_read_input_tokens")
    cache_write = _count(usage, "cache_creation_input_tokens")
    prompt = _count(usage, "input_tokens") + cache_read + cache_write
    completion = _count(usage, "output_tokens")
    details: JSONObject = {"cached_tokens": cache_read}
    if cache_write:
        details["cache_write_tokens"] = cache_write
    out: JSONObject = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": details,
    }
    output_details = usage.get("output_tokens_details") if isinstance(usage, Mapping) else None
    if isinstance(output_details, Mapping) and isinstance(
            output_details.get("thinking_tokens"), int):
        out["completion_tokens_details"] = {"reasoning_tokens": output_details["thinking_tokens"]}
    return out


def reasoning_text(delta: Mapping[str, Any]) -> str:
    """The reasoning text of an OpenAI message or delta: `reasoning_content` (vLLM before
    0.10, DeepSeek, llama.cpp) or `reasoning` (newer vLLM, OpenRouter, Ollama)."""
    for key in ("reasoning_content", "reasoning"):
        value = delta.get(key)
        if isinstance(value, str) and value:
            return value
    return ""


def arguments_json(arguments: Any) -> str:
    """A tool call's arguments as a JSON string (some servers send an object)."""
    if isinstance(arguments, str):
        return arguments
    if isinstance(arguments, dict):
        return json.dumps(arguments, ensure_ascii=False, separators=(",", ":"))
    return ""


def openai_to_anthropic_response(body: Mapping[str, Any], model: str) -> JSONObject:
    """A chat.completion object as an Anthropic message; `model` is the client's model name.

    Content order: thinking (from reasoning), text (content, then any refusal), tool_use
    blocks in order. Raises UpstreamFormatError for a body without a choice or with tool
    arguments that are not a JSON object.
    """
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise UpstreamFormatError("upstream chat completion has no choices")
    choice = next((c for c in choices if isinstance(c, dict) and c.get("index", 0) == 0),
                  choices[0])
    message = choice.get("message")
    if not isinstance(message, dict):
        raise UpstreamFormatError("upstream chat completion choice has no message")
    content: list[JSONObject] = []
    thinking = reasoning_text(message)
    if thinking:
        content.append({"type": "thinking", "thinking": thinking, "signature": ""})
    if isinstance(message.get("content"), str) and message["content"]:
        content.append({"type": "text", "text": message["content"]})
    refusal = message.get("refusal")
    if isinstance(refusal, str) and refusal:
        content.append({"type": "text", "text": refusal})
    calls = message.get("tool_calls") or []
    for j, call in enumerate(calls):
        content.append(_tool_use(call, f"choices[0].message.tool_calls[{j}]"))
    stop_reason, stop_sequence = anthropic_stop(
        choice.get("finish_reason"), choice.get("stop_reason"), tool_calls=bool(calls))
    if isinstance(refusal, str) and refusal:
        stop_reason, stop_sequence = "refusal", None
    return {
        "id": anthropic_message_id(body.get("id")),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "usage": anthropic_usage(body.get("usage")),
    }


def _tool_use(call: Any, path: str) -> JSONObject:
    if not isinstance(call, dict) or not isinstance(call.get("function"), dict):
        raise UpstreamFormatError(f"upstream {path} is not a function call")
    function = call["function"]
    arguments = arguments_json(function.get("arguments"))
    try:
        parsed = json.loads(arguments) if arguments.strip() else {}
    except (ValueError, RecursionError):
        parsed = None
    if not isinstance(parsed, dict):
        raise UpstreamFormatError(
            f"upstream {path}.function.arguments is not a JSON object: {arguments[:200]!r}")
    return {"type": "tool_use", "id": str(call.get("id") or ""),
            "name": str(function.get("name") or ""), "input": parsed}


def anthropic_to_openai_response(body: Mapping[str, Any], model: str, created: int) -> JSONObject:
    """An Anthropic message as a chat.completion object; `model` is the client's model name
    and `created` the Unix time to report (the caller's clock).

    Text blocks join into `content` (null when there is none), thinking into
    `reasoning_content`, tool_use blocks into `tool_calls` with JSON arguments. A
    stop_sequence stop also sets the choice's `stop_reason` to the sequence, as vLLM does.
    """
    content = body.get("content")
    if not isinstance(content, list):
        raise UpstreamFormatError("upstream message has no content list")
    texts: list[str] = []
    thinking: list[str] = []
    calls: list[JSONObject] = []
    for block in content:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif kind == "thinking" and isinstance(block.get("thinking"), str):
            thinking.append(block["thinking"])
        elif kind == "tool_use":
            arguments = json.dumps(block.get("input") or {}, ensure_ascii=False,
                                   separators=(",", ":"))
            calls.append({"id": block.get("id"), "type": "function",
                          "function": {"name": block.get("name"), "arguments": arguments}})
        # Other blocks (redacted_thinking, server tool results) have no OpenAI form; the
        # request translation refuses server tools, so only redacted thinking lands here.
    message: JSONObject = {"role": "assistant", "content": "".join(texts) if texts else None,
                           "refusal": None}
    if thinking:
        message["reasoning_content"] = "".join(thinking)
    if calls:
        message["tool_calls"] = calls
    stop_reason = body.get("stop_reason")
    choice: JSONObject = {"index": 0, "message": message, "logprobs": None,
                          "finish_reason": openai_finish(stop_reason)}
    if stop_reason == "stop_sequence" and isinstance(body.get("stop_sequence"), str):
        choice["stop_reason"] = body["stop_sequence"]
    return {
        "id": openai_completion_id(body.get("id")),
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [choice],
        "usage": openai_usage(body.get("usage")),
    }
