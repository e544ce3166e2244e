"""Request bodies between the Anthropic Messages API and OpenAI Chat Completions.

Every field is decided: mapped, refused with a `TranslationError` (a 400 naming the
field) or dropped and reported in `Translated.dropped`. A field this module does not know
is refused, never passed or dropped blindly. `ANTHROPIC_REQUEST_FIELDS` and
`OPENAI_REQUEST_FIELDS` list each decision; their keys are the names that
`Translated.dropped` reports.

Sources: https://docs.anthropic.com/en/api/messages and
https://platform.openai.com/docs/api-reference/chat/create (and the official SDKs' types).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from trioproxy.translate.error_map import TranslationError

JSONObject = dict[str, Any]

#: max_tokens sent to Anthropic, which requires it, when an OpenAI client gives none.
DEFAULT_MAX_TOKENS = 4096

# A tool_result with is_error has no OpenAI flag; the text says it instead.
TOOL_ERROR_PREFIX = "Error: "
# OpenAI requires a name for a json_schema response format; Anthropic has none to give.
RESPONSE_FORMAT_NAME = "response"

_DROPPED = "dropped, reported"
_REFUSED = "refused (400)"

#: Anthropic request field -> what an OpenAI-compatible upstream gets.
ANTHROPIC_REQUEST_FIELDS: dict[str, str] = {
    "model": "mapped: model, through the route's model map (unmapped names pass unchanged)",
    "max_tokens": "mapped: max_tokens, or max_completion_tokens when the route sets "
    "max_tokens_field = \"max_completion_tokens\" (OpenAI's reasoning models need it)",
    "messages": "mapped: messages, one OpenAI message per turn except as noted for blocks; "
    "a final assistant turn (prefill) stays a trailing assistant message, which llama.cpp "
    "and Ollama continue and OpenAI answers with a new turn",
    "system": "mapped: one leading system message; a string or one block -> string "
    "content, several blocks -> text parts",
    "stop_sequences": "mapped: stop (a list)",
    "temperature": "mapped: temperature (Anthropic's 0..1 lies inside OpenAI's 0..2)",
    "top_p": "mapped: top_p",
    "top_k": "mapped: top_k, an extension vLLM, llama.cpp, Ollama and OpenRouter accept "
    "(OpenAI itself answers 400)",
    "stream": "mapped: stream; a streamed request also gets stream_options.include_usage",
    "metadata.user_id": "mapped: user",
    "metadata": f"{_DROPPED}: keys other than user_id",
    "tools": "mapped: function tools; name exact, description, input_schema -> parameters, "
    "strict",
    "tools.type": f"{_REFUSED} unless \"custom\" or absent: server tools (web search, "
    "bash, code execution, text editor, ...) run only on Anthropic's side",
    "tools.input_examples": _DROPPED,
    "tools.defer_loading": f"{_DROPPED} (the tool is always loaded)",
    "tools.eager_input_streaming": _DROPPED,
    "tools.allowed_callers": f"{_DROPPED} unless [\"direct\"]",
    "tool_choice": "mapped: auto -> \"auto\", any -> \"required\", tool -> {type: function, "
    "function: {name}}, none -> \"none\"",
    "tool_choice.disable_parallel_tool_use": "mapped: parallel_tool_calls = not "
    "disable_parallel_tool_use",
    "output_config.format": "mapped: response_format {type: json_schema, json_schema: "
    f"{{name: \"{RESPONSE_FORMAT_NAME}\", schema, strict: true}}}}",
    "output_config.effort": f"{_DROPPED}: reasoning_effort is model-specific on the other side",
    "thinking": f"{_DROPPED} when enabled or adaptive (no portable OpenAI equivalent); "
    "disabled needs nothing",
    "cache_control": f"{_DROPPED}: top-level, on system, message and tool_result blocks "
    "and tools (OpenAI-compatible servers cache prefixes on their own)",
    "service_tier": _DROPPED,
    "inference_geo": _DROPPED,
    "speed": _DROPPED,
    "diagnostics": _DROPPED,
    "context_management": f"{_DROPPED}: no server-side context editing; the whole context "
    "is sent",
    "user_profile_id": _DROPPED,
    "workspace_id": _DROPPED,
    "container": f"{_REFUSED}: containers belong to Anthropic's server tools",
    "mcp_servers": f"{_REFUSED}: the MCP connector runs on Anthropic's side",
    "content.text": "mapped: a text part (user) or text (assistant; several blocks joined)",
    "content.text.citations": _DROPPED,
    "content.image": "mapped: an image_url part; base64 source -> data: URL, url source -> "
    f"the URL; file source {_REFUSED}",
    "content.document": f"{_REFUSED}: OpenAI-compatible servers take no documents (PDF, "
    "text or URL)",
    "content.tool_use": "mapped: assistant tool_calls in order; id and name exact; input -> "
    "JSON arguments string",
    "content.tool_result": "mapped: one role \"tool\" message per block (tool_call_id = "
    "tool_use_id), before the turn's other user content; several text blocks joined by "
    "newlines",
    "content.tool_result.is_error": f"mapped: content prefixed with \"{TOOL_ERROR_PREFIX}\" "
    "(OpenAI has no error flag)",
    "content.tool_result.image": "mapped: moved to a user message right after the tool "
    "messages (tool messages carry no images)",
    "content.thinking": f"{_DROPPED}: earlier turns' thinking (OpenAI-compatible servers "
    "take no reasoning input)",
    "content.redacted_thinking": _DROPPED,
    "content.other": f"{_REFUSED}: server tool blocks, search results, container uploads and "
    "any other block type",
}

#: OpenAI request field -> what an Anthropic upstream gets.
OPENAI_REQUEST_FIELDS: dict[str, str] = {
    "model": "mapped: model, through the route's model map (unmapped names pass unchanged)",
    "messages": "mapped: messages; consecutive tool messages -> one user message of "
    "tool_result blocks, joined by a user message that directly follows them",
    "messages.system": "mapped: system and developer messages, in order, -> system (hoisted: "
    "Anthropic has no system turn); one string message -> a string, else text blocks",
    "messages.name": f"{_DROPPED}: Anthropic has no participant names",
    "messages.tool_calls": "mapped: tool_use blocks in order; id and name exact; arguments "
    f"parsed to an object (\"\" -> {{}}; invalid JSON {_REFUSED})",
    "messages.refusal": "mapped: a text block",
    "messages.reasoning_content": f"{_DROPPED} (also reasoning, reasoning_details): Anthropic "
    "takes back only signed thinking",
    "messages.annotations": f"{_DROPPED}: url citations of an earlier reply (empty: nothing)",
    "messages.function_call": f"{_REFUSED}: deprecated function calling; use tool_calls",
    "messages.audio": _REFUSED,
    "content.text": "mapped: a text block",
    "content.image_url": "mapped: an image block; data: URL -> base64 source, http(s) URL -> "
    "url source",
    "content.image_url.detail": f"{_DROPPED} unless \"auto\"",
    "content.file": "mapped: a PDF in file_data -> a base64 document block (filename -> "
    f"title); file_id and other files {_REFUSED}",
    "content.input_audio": _REFUSED,
    "content.prompt_cache_breakpoint": _DROPPED,
    "max_completion_tokens": f"mapped: max_tokens (default {DEFAULT_MAX_TOKENS})",
    "max_tokens": f"mapped: max_tokens (default {DEFAULT_MAX_TOKENS}); {_REFUSED} if it "
    "differs from max_completion_tokens",
    "temperature": f"mapped: temperature; above 1 {_REFUSED} (Anthropic's range is 0..1)",
    "top_p": "mapped: top_p",
    "top_k": "mapped: top_k (an extension some OpenAI clients send)",
    "stop": "mapped: stop_sequences (a string becomes a one-item list)",
    "stream": "mapped: stream",
    "stream_options": "consumed: include_usage tells the stream translator to send a usage "
    "chunk; there is no obfuscation padding to include",
    "n": f"1 or null accepted; more {_REFUSED} (Anthropic returns one message)",
    "tools": "mapped: name exact, description, parameters -> input_schema (absent -> an empty "
    f"object schema), strict; custom tools {_REFUSED}",
    "tool_choice": "mapped: \"auto\" -> auto, \"required\" -> any, {function: name} -> tool, "
    f"\"none\" -> none; allowed_tools and custom {_REFUSED}",
    "parallel_tool_calls": "mapped: tool_choice.disable_parallel_tool_use = not "
    "parallel_tool_calls (nothing to carry without tools or with tool_choice none)",
    "user": "mapped: metadata.user_id",
    "safety_identifier": f"mapped: metadata.user_id when user is absent, else {_DROPPED}",
    "response_format": "text accepted; json_schema -> output_config.format {type: "
    f"json_schema, schema}} (Anthropic is always strict); json_object {_REFUSED}",
    "logprobs": f"false accepted; true {_REFUSED}",
    "top_logprobs": f"0 or null accepted; else {_REFUSED}",
    "presence_penalty": f"0 or null accepted; else {_REFUSED}",
    "frequency_penalty": f"0 or null accepted; else {_REFUSED}",
    "logit_bias": f"empty or null accepted; else {_REFUSED}",
    "modalities": f"[\"text\"] accepted; audio {_REFUSED}",
    "audio": _REFUSED,
    "web_search_options": f"{_REFUSED}: a server-side search tool",
    "functions": f"{_REFUSED}: deprecated; use tools",
    "function_call": f"{_REFUSED}: deprecated; use tool_choice",
    "moderation": f"{_REFUSED}: OpenAI-side moderation cannot run on Anthropic",
    "seed": _DROPPED,
    "service_tier": _DROPPED,
    "store": f"{_DROPPED} when true",
    "metadata": _DROPPED,
    "reasoning_effort": f"{_DROPPED}: Anthropic thinking needs a token budget",
    "verbosity": _DROPPED,
    "prediction": f"{_DROPPED}: a latency hint only",
    "prompt_cache_key": _DROPPED,
    "prompt_cache_retention": _DROPPED,
    "prompt_cache_options": _DROPPED,
}


@dataclass(frozen=True, slots=True)
class Translated:
    """A translated request body and the names of what was dropped (sorted, unique)."""

    body: JSONObject
    dropped: tuple[str, ...] = ()


class _Report:
    __slots__ = ("dropped",)

    def __init__(self) -> None:
        self.dropped: set[str] = set()

    def drop(self, name: str) -> None:
        assert name in ANTHROPIC_REQUEST_FIELDS or name in OPENAI_REQUEST_FIELDS, name
        self.dropped.add(name)

    def result(self, body: JSONObject) -> Translated:
        return Translated(body, tuple(sorted(self.dropped)))


# -- shared helpers --------------------------------------------------------------------


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _dict(value: Any, path: str) -> JSONObject:
    if not isinstance(value, dict):
        raise TranslationError(path, "must be an object")
    return value


def _list(value: Any, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise TranslationError(path, "must be an array")
    return value


def _str(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise TranslationError(path, "must be a string")
    return value


def _number(value: Any, path: str) -> float | int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TranslationError(path, "must be a number")
    return value


def _int(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TranslationError(path, "must be an integer")
    return value


def _present(value: Any) -> bool:
    """Whether a value asks for something (null, false and empty containers do not)."""
    return value is not None and value is not False and value != [] and value != {}


def _unknown(path: str, what: str) -> TranslationError:
    return TranslationError(path, f"unknown {what}; trioproxy cannot translate it, so it "
                                  "refuses rather than drop it")


def _model(body: Mapping[str, Any], model_map: Mapping[str, str] | None) -> str:
    model = _str(body.get("model"), "model")
    return model_map.get(model, model) if model_map else model


def _check_keys(block: JSONObject, path: str, allowed: frozenset[str], report: _Report) -> None:
    """Refuse any key of `block` not in `allowed`; report cache_control as dropped.

    A null value is treated as absent: it asks for nothing (SDK models echo null fields).
    """
    for key, value in block.items():
        if key in allowed or value is None:
            continue
        if key == "cache_control":
            report.drop("cache_control")
            continue
        raise _unknown(f"{path}.{key}", f"field of a {block.get('type')!r} block")


# -- Anthropic -> OpenAI ---------------------------------------------------------------

_TEXT_KEYS = frozenset({"type", "text", "citations"})
_IMAGE_KEYS = frozenset({"type", "source"})
_TOOL_USE_KEYS = frozenset({"type", "id", "name", "input"})
_TOOL_RESULT_KEYS = frozenset({"type", "tool_use_id", "content", "is_error"})
_TOOL_KEYS = frozenset({"type", "name", "description", "input_schema", "strict"})
_TOOL_DROPPED = ("input_examples", "defer_loading", "eager_input_streaming", "allowed_callers")
_THINKING_TYPES = frozenset({"thinking", "redacted_thinking"})

_A2O_DROPPED = frozenset({
    "service_tier", "inference_geo", "speed", "diagnostics", "context_management",
    "user_profile_id", "workspace_id",
})
_A2O_REFUSED = {
    "container": "containers belong to Anthropic's server tools, which an OpenAI-compatible "
    "upstream cannot run",
    "mcp_servers": "the MCP connector runs on Anthropic's side; an OpenAI-compatible upstream "
    "cannot reach MCP servers",
}


def anthropic_to_openai_request(
    body: Mapping[str, Any],
    model_map: Mapping[str, str] | None = None,
    *,
    max_tokens_field: str = "max_tokens",
) -> Translated:
    """An Anthropic Messages request as an OpenAI Chat Completions request.

    `model_map` maps the client's model name to the upstream's; `max_tokens_field` is
    "max_tokens" (understood by every OpenAI-compatible server) or "max_completion_tokens"
    (required by OpenAI's reasoning models). Raises TranslationError naming the first field
    that cannot be expressed.
    """
    if not isinstance(body, Mapping):
        raise TranslationError("body", "must be a JSON object")
    if max_tokens_field not in ("max_tokens", "max_completion_tokens"):
        raise ValueError(f"max_tokens_field: {max_tokens_field!r}")
    report = _Report()
    out: JSONObject = {"model": _model(body, model_map)}
    messages: list[JSONObject] = []
    if body.get("system") is not None:
        messages.extend(_a2o_system(body["system"], report))
    for i, message in enumerate(_list(body.get("messages"), "messages")):
        messages.extend(_a2o_message(_dict(message, f"messages[{i}]"), f"messages[{i}]", report))
    out["messages"] = messages
    for key, value in body.items():
        if key in ("model", "system", "messages") or value is None:
            continue
        handler = _A2O_FIELDS.get(key)
        if handler is not None:
            handler(value, out, report, max_tokens_field)
        elif key in _A2O_DROPPED or key == "cache_control":
            if _present(value):
                report.drop(key)
        elif key in _A2O_REFUSED:
            if _present(value):
                raise TranslationError(key, _A2O_REFUSED[key])
        else:
            raise _unknown(key, "Anthropic request field")
    return report.result(out)


def _a2o_system(system: Any, report: _Report) -> list[JSONObject]:
    if isinstance(system, str):
        return [{"role": "system", "content": system}] if system else []
    parts = []
    for j, block in enumerate(_list(system, "system")):
        path = f"system[{j}]"
        block = _dict(block, path)
        if block.get("type") != "text":
            raise TranslationError(f"{path}.type", "system blocks must be text blocks")
        parts.append({"type": "text", "text": _a2o_text(block, path, report)})
    if not parts:
        return []
    if len(parts) == 1:
        return [{"role": "system", "content": parts[0]["text"]}]
    return [{"role": "system", "content": parts}]


def _a2o_text(block: JSONObject, path: str, report: _Report) -> str:
    _check_keys(block, path, _TEXT_KEYS, report)
    if _present(block.get("citations")):
        report.drop("content.text.citations")
    return _str(block.get("text"), f"{path}.text")


def _a2o_image(block: JSONObject, path: str, report: _Report) -> JSONObject:
    _check_keys(block, path, _IMAGE_KEYS, report)
    source = _dict(block.get("source"), f"{path}.source")
    kind = source.get("type")
    if kind == "base64":
        media_type = _str(source.get("media_type"), f"{path}.source.media_type")
        data = _str(source.get("data"), f"{path}.source.data")
        url = f"data:{media_type};base64,{data}"
    elif kind == "url":
        url = _str(source.get("url"), f"{path}.source.url")
    else:
        raise TranslationError(
            f"{path}.source.type",
            f"{kind!r} image sources cannot be sent to an OpenAI-compatible upstream; "
            "send the image as base64 or a URL",
        )
    return {"type": "image_url", "image_url": {"url": url}}


def _a2o_message(message: JSONObject, path: str, report: _Report) -> list[JSONObject]:
    for key, value in message.items():
        if key not in ("role", "content") and value is not None:
            raise _unknown(f"{path}.{key}", "message field")
    role = message.get("role")
    content = message.get("content")
    if role == "user":
        return _a2o_user(content, path, report)
    if role == "assistant":
        return [_a2o_assistant(content, path, report)]
    raise TranslationError(f"{path}.role", "must be \"user\" or \"assistant\"")


def _a2o_user(content: Any, path: str, report: _Report) -> list[JSONObject]:
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    tool_messages: list[JSONObject] = []
    moved_images: list[JSONObject] = []
    parts: list[JSONObject] = []
    for j, block in enumerate(_list(content, f"{path}.content")):
        bpath = f"{path}.content[{j}]"
        block = _dict(block, bpath)
        kind = block.get("type")
        if kind == "tool_result":
            tool_message, images = _a2o_tool_result(block, bpath, report)
            tool_messages.append(tool_message)
            moved_images.extend(images)
        elif kind == "text":
            parts.append({"type": "text", "text": _a2o_text(block, bpath, report)})
        elif kind == "image":
            parts.append(_a2o_image(block, bpath, report))
        elif kind == "document":
            raise TranslationError(
                bpath,
                "document blocks cannot be sent to an OpenAI-compatible upstream (its chat "
                "API takes no PDF, text or URL documents); send the text as a text block",
            )
        else:
            raise _a2o_block_refused(kind, bpath, "user")
    rest = moved_images + parts
    if rest or not tool_messages:
        return [*tool_messages, {"role": "user", "content": rest}]
    return tool_messages


def _a2o_block_refused(kind: Any, path: str, role: str) -> TranslationError:
    return TranslationError(
        f"{path}.type",
        f"{kind!r} blocks in a {role} turn cannot be sent to an OpenAI-compatible upstream",
    )


def _a2o_tool_result(
    block: JSONObject, path: str, report: _Report
) -> tuple[JSONObject, list[JSONObject]]:
    _check_keys(block, path, _TOOL_RESULT_KEYS, report)
    tool_use_id = _str(block.get("tool_use_id"), f"{path}.tool_use_id")
    content = block.get("content", "")
    texts: list[str] = []
    images: list[JSONObject] = []
    if isinstance(content, str):
        texts.append(content)
    else:
        for k, item in enumerate(_list(content, f"{path}.content")):
            ipath = f"{path}.content[{k}]"
            item = _dict(item, ipath)
            kind = item.get("type")
            if kind == "text":
                texts.append(_a2o_text(item, ipath, report))
            elif kind == "image":
                images.append(_a2o_image(item, ipath, report))
            else:
                raise TranslationError(
                    f"{ipath}.type",
                    f"{kind!r} blocks inside a tool_result cannot be sent to an "
                    "OpenAI-compatible upstream (tool messages carry text only)",
                )
    text = "\n".join(texts)
    is_error = block.get("is_error")
    if is_error is not None and not isinstance(is_error, bool):
        raise TranslationError(f"{path}.is_error", "must be a boolean")
    if is_error:
        text = TOOL_ERROR_PREFIX + text if text else TOOL_ERROR_PREFIX.rstrip(": ")
    return {"role": "tool", "tool_call_id": tool_use_id, "content": text}, images


def _a2o_assistant(content: Any, path: str, report: _Report) -> JSONObject:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    texts: list[str] = []
    calls: list[JSONObject] = []
    for j, block in enumerate(_list(content, f"{path}.content")):
        bpath = f"{path}.content[{j}]"
        block = _dict(block, bpath)
        kind = block.get("type")
        if kind == "text":
            texts.append(_a2o_text(block, bpath, report))
        elif kind == "tool_use":
            calls.append(_a2o_tool_use(block, bpath, report))
        elif kind in _THINKING_TYPES:
            report.drop(f"content.{kind}")
        else:
            raise _a2o_block_refused(kind, bpath, "assistant")
    # Text blocks of one turn are consecutive pieces of one reply (Anthropic splits text
    # at citations), so they join with nothing between them.
    message: JSONObject = {"role": "assistant", "content": "".join(texts) if texts else None}
    if calls:
        message["tool_calls"] = calls
    elif message["content"] is None:
        message["content"] = ""
    return message


def _a2o_tool_use(block: JSONObject, path: str, report: _Report) -> JSONObject:
    _check_keys(block, path, _TOOL_USE_KEYS, report)
    arguments = _dumps(_dict(block.get("input"), f"{path}.input"))
    return {
        "id": _str(block.get("id"), f"{path}.id"),
        "type": "function",
        "function": {"name": _str(block.get("name"), f"{path}.name"), "arguments": arguments},
    }


def _a2o_tools(value: Any, out: JSONObject, report: _Report, _field: str) -> None:
    tools = []
    for i, tool in enumerate(_list(value, "tools")):
        path = f"tools[{i}]"
        tool = _dict(tool, path)
        kind = tool.get("type")
        if kind not in (None, "custom"):
            raise TranslationError(
                f"{path}.type",
                f"{kind!r} is an Anthropic server tool, which an OpenAI-compatible upstream "
                "cannot run; remove it or define it as a custom tool",
            )
        for key in _TOOL_DROPPED:
            value_ = tool.get(key)
            if _present(value_) and not (key == "allowed_callers" and value_ == ["direct"]):
                report.drop(f"tools.{key}")
        _check_keys({k: v for k, v in tool.items() if k not in _TOOL_DROPPED}, path,
                    _TOOL_KEYS, report)
        function: JSONObject = {"name": _str(tool.get("name"), f"{path}.name")}
        if tool.get("description") is not None:
            function["description"] = _str(tool["description"], f"{path}.description")
        function["parameters"] = _dict(tool.get("input_schema"), f"{path}.input_schema")
        if tool.get("strict") is not None:
            function["strict"] = tool["strict"]
        tools.append({"type": "function", "function": function})
    out["tools"] = tools


def _a2o_tool_choice(value: Any, out: JSONObject, report: _Report, _field: str) -> None:
    choice = _dict(value, "tool_choice")
    for key, value in choice.items():
        if key not in ("type", "name", "disable_parallel_tool_use") and value is not None:
            raise _unknown(f"tool_choice.{key}", "tool_choice field")
    kind = choice.get("type")
    if kind == "auto":
        out["tool_choice"] = "auto"
    elif kind == "any":
        out["tool_choice"] = "required"
    elif kind == "tool":
        name = _str(choice.get("name"), "tool_choice.name")
        out["tool_choice"] = {"type": "function", "function": {"name": name}}
    elif kind == "none":
        out["tool_choice"] = "none"
        return  # nothing can run in parallel
    else:
        raise TranslationError("tool_choice.type", "must be auto, any, tool or none")
    disable = choice.get("disable_parallel_tool_use")
    if disable is not None:
        if not isinstance(disable, bool):
            raise TranslationError("tool_choice.disable_parallel_tool_use", "must be a boolean")
        out["parallel_tool_calls"] = not disable


def _a2o_output_config(value: Any, out: JSONObject, report: _Report, _field: str) -> None:
    config = _dict(value, "output_config")
    for key, item in config.items():
        if item is None:
            continue  # null asks for nothing
        if key == "effort":
            report.drop("output_config.effort")
        elif key == "format":
            fmt = _dict(item, "output_config.format")
            if fmt.get("type") != "json_schema":
                raise TranslationError("output_config.format.type", "must be json_schema")
            schema = _dict(fmt.get("schema"), "output_config.format.schema")
            out["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": RESPONSE_FORMAT_NAME, "schema": schema, "strict": True},
            }
        else:
            raise _unknown(f"output_config.{key}", "output_config field")


def _a2o_metadata(value: Any, out: JSONObject, report: _Report, _field: str) -> None:
    for key, item in _dict(value, "metadata").items():
        if key == "user_id":
            if item is not None:
                out["user"] = _str(item, "metadata.user_id")
        elif item is not None:
            report.drop("metadata")


def _a2o_thinking(value: Any, out: JSONObject, report: _Report, _field: str) -> None:
    if _dict(value, "thinking").get("type") != "disabled":
        report.drop("thinking")


def _a2o_max_tokens(value: Any, out: JSONObject, report: _Report, field: str) -> None:
    out[field] = _int(value, "max_tokens")


def _a2o_stream(value: Any, out: JSONObject, report: _Report, _field: str) -> None:
    if not isinstance(value, bool):
        raise TranslationError("stream", "must be a boolean")
    out["stream"] = value
    if value:
        # Chat Completions streams carry usage only when asked (stream_options docs).
        out["stream_options"] = {"include_usage": True}


def _a2o_stop(value: Any, out: JSONObject, report: _Report, _field: str) -> None:
    out["stop"] = [_str(s, f"stop_sequences[{i}]") for i, s in
                   enumerate(_list(value, "stop_sequences"))]


def _a2o_copy_number(name: str) -> Callable[[Any, JSONObject, _Report, str], None]:
    def copy(value: Any, out: JSONObject, report: _Report, _field: str) -> None:
        out[name] = _number(value, name)
    return copy


_A2O_FIELDS: dict[str, Callable[[Any, JSONObject, _Report, str], None]] = {
    "max_tokens": _a2o_max_tokens,
    "stream": _a2o_stream,
    "stop_sequences": _a2o_stop,
    "temperature": _a2o_copy_number("temperature"),
    "top_p": _a2o_copy_number("top_p"),
    "top_k": _a2o_copy_number("top_k"),
    "tools": _a2o_tools,
    "tool_choice": _a2o_tool_choice,
    "output_config": _a2o_output_config,
    "metadata": _a2o_metadata,
    "thinking": _a2o_thinking,
}


# -- OpenAI -> Anthropic ---------------------------------------------------------------

_DATA_URL = re.compile(r"data:([^;,]+);base64,(.*)", re.DOTALL)

_O2A_DROPPED = frozenset({
    "seed", "service_tier", "metadata", "reasoning_effort", "verbosity", "prediction",
    "prompt_cache_key", "prompt_cache_retention", "prompt_cache_options",
})
_O2A_REFUSED = {
    "audio": "Anthropic produces no audio",
    "web_search_options": "web search is a server-side tool that an Anthropic upstream runs "
    "only as its own web_search tool; trioproxy does not translate it",
    "functions": "deprecated function calling is not translated; send tools",
    "function_call": "deprecated function calling is not translated; send tool_choice",
    "moderation": "OpenAI-side moderation cannot run on an Anthropic upstream",
}
# Fields with a harmless default value; any other value is refused with the reason given.
_O2A_DEFAULT_ONLY: dict[str, tuple[Callable[[Any], bool], str]] = {
    "n": (lambda v: v == 1, "only one choice per request can be translated; Anthropic "
          "returns one message"),
    "logprobs": (lambda v: v is False, "Anthropic returns no log probabilities"),
    "top_logprobs": (lambda v: v == 0, "Anthropic returns no log probabilities"),
    "presence_penalty": (lambda v: v == 0, "Anthropic has no presence penalty"),
    "frequency_penalty": (lambda v: v == 0, "Anthropic has no frequency penalty"),
    "logit_bias": (lambda v: v == {}, "Anthropic has no logit bias"),
    "modalities": (lambda v: v == ["text"], "Anthropic produces text only"),
}

# Fields translated outside the loop over the body.
_O2A_SEPARATE = frozenset({"model", "messages", "max_tokens", "max_completion_tokens",
                           "stream_options", "parallel_tool_calls"})

_O2A_MESSAGE_KEYS = {
    "system": frozenset({"role", "content", "name"}),
    "developer": frozenset({"role", "content", "name"}),
    "user": frozenset({"role", "content", "name"}),
    "assistant": frozenset({"role", "content", "name", "tool_calls", "refusal",
                            "reasoning_content", "reasoning", "reasoning_details",
                            "annotations", "function_call", "audio"}),
    "tool": frozenset({"role", "content", "tool_call_id", "name"}),
}


def openai_to_anthropic_request(
    body: Mapping[str, Any], model_map: Mapping[str, str] | None = None
) -> Translated:
    """An OpenAI Chat Completions request as an Anthropic Messages request.

    `model_map` maps the client's model name to the upstream's. `max_tokens` becomes
    DEFAULT_MAX_TOKENS when the client gives none. Raises TranslationError naming the
    first field that cannot be expressed.
    """
    if not isinstance(body, Mapping):
        raise TranslationError("body", "must be a JSON object")
    report = _Report()
    out: JSONObject = {"model": _model(body, model_map), "max_tokens": _o2a_max_tokens(body)}
    system, messages = _o2a_messages(_list(body.get("messages"), "messages"), report)
    if system is not None:
        out["system"] = system
    out["messages"] = messages
    for key, value in body.items():
        if value is None or key in _O2A_SEPARATE:
            continue
        handler = _O2A_FIELDS.get(key)
        if handler is not None:
            handler(value, out, report, body)
        elif key in _O2A_DEFAULT_ONLY:
            accepts, reason = _O2A_DEFAULT_ONLY[key]
            if value is not None and not accepts(value):
                raise TranslationError(key, reason)
        elif key in _O2A_DROPPED:
            if _present(value):
                report.drop(key)
        elif key in _O2A_REFUSED:
            # An empty object still asks: `web_search_options: {}` turns search on.
            if value is not None and value != []:
                raise TranslationError(key, _O2A_REFUSED[key])
        else:
            raise _unknown(key, "OpenAI request field")
    _o2a_parallel(body, out)
    if body.get("stream_options") is not None:
        _dict(body["stream_options"], "stream_options")
    return report.result(out)


def _o2a_max_tokens(body: Mapping[str, Any]) -> int:
    newer = body.get("max_completion_tokens")
    older = body.get("max_tokens")
    if newer is not None and older is not None and newer != older:
        raise TranslationError("max_tokens", "differs from max_completion_tokens; send one")
    if newer is not None:
        return _int(newer, "max_completion_tokens")
    if older is not None:
        return _int(older, "max_tokens")
    return DEFAULT_MAX_TOKENS


def _o2a_messages(
    messages: list[Any], report: _Report
) -> tuple[str | list[JSONObject] | None, list[JSONObject]]:
    system: list[JSONObject] = []
    system_messages: list[Any] = []
    out: list[JSONObject] = []
    results: list[JSONObject] = []  # tool_result blocks of consecutive tool messages
    for i, message in enumerate(messages):
        path = f"messages[{i}]"
        message = _dict(message, path)
        role = message.get("role")
        if role not in _O2A_MESSAGE_KEYS:
            raise TranslationError(
                f"{path}.role", f"{role!r} messages cannot be translated (use system, "
                "developer, user, assistant or tool)")
        _o2a_check_message(message, path, role, report)
        if role in ("system", "developer"):
            system_messages.append(message.get("content"))
            system.extend(_o2a_text_parts(message.get("content"), f"{path}.content", report))
            continue
        if role == "tool":
            results.append(_o2a_tool_result(message, path, report))
            continue
        if role == "user":
            blocks = _o2a_user_content(message.get("content"), f"{path}.content", report)
            if results:
                # The user turn after tool results continues the same Anthropic user turn,
                # in which tool_result blocks must come first.
                if isinstance(blocks, str):
                    blocks = [{"type": "text", "text": blocks}]
                out.append({"role": "user", "content": [*results, *blocks]})
                results = []
            else:
                out.append({"role": "user", "content": blocks})
            continue
        if results:
            out.append({"role": "user", "content": results})
            results = []
        out.append(_o2a_assistant(message, path, report))
    if results:
        out.append({"role": "user", "content": results})
    if len(system_messages) == 1 and isinstance(system_messages[0], str):
        return system_messages[0], out
    return (system or None), out


def _o2a_check_message(message: JSONObject, path: str, role: str, report: _Report) -> None:
    for key, value in message.items():
        if value is None:
            continue
        if key not in _O2A_MESSAGE_KEYS[role]:
            raise _unknown(f"{path}.{key}", f"field of a {role} message")
        if key == "name":
            report.drop("messages.name")
        elif key in ("reasoning_content", "reasoning", "reasoning_details"):
            if _present(value):
                report.drop("messages.reasoning_content")
        elif key == "annotations":
            if _present(value):
                report.drop("messages.annotations")
        elif key == "function_call":
            raise TranslationError(f"{path}.function_call", _O2A_REFUSED["function_call"])
        elif key == "audio":
            raise TranslationError(f"{path}.audio", "audio replies cannot be sent to Anthropic")


def _o2a_text_part(part: JSONObject, path: str, report: _Report) -> JSONObject:
    for key, value in part.items():
        if value is None:
            continue
        if key == "prompt_cache_breakpoint":
            report.drop("content.prompt_cache_breakpoint")
        elif key not in ("type", "text"):
            raise _unknown(f"{path}.{key}", "field of a text part")
    return {"type": "text", "text": _str(part.get("text"), f"{path}.text")}


def _o2a_text_parts(content: Any, path: str, report: _Report) -> list[JSONObject]:
    """String or text-part content as a list of text blocks."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    blocks = []
    for j, part in enumerate(_list(content, path)):
        ppath = f"{path}[{j}]"
        part = _dict(part, ppath)
        if part.get("type") != "text":
            raise TranslationError(f"{ppath}.type", "must be text here")
        blocks.append(_o2a_text_part(part, ppath, report))
    return blocks


def _o2a_user_content(content: Any, path: str, report: _Report) -> str | list[JSONObject]:
    if isinstance(content, str):
        return content
    blocks = []
    for j, part in enumerate(_list(content, path)):
        ppath = f"{path}[{j}]"
        part = _dict(part, ppath)
        kind = part.get("type")
        if kind == "text":
            blocks.append(_o2a_text_part(part, ppath, report))
        elif kind == "image_url":
            blocks.append(_o2a_image(part, ppath, report))
        elif kind == "file":
            blocks.append(_o2a_file(part, ppath, report))
        elif kind == "input_audio":
            raise TranslationError(ppath, "audio input cannot be sent to Anthropic")
        else:
            raise TranslationError(f"{ppath}.type", f"{kind!r} parts cannot be sent to Anthropic")
    return blocks


def _o2a_part_keys(part: JSONObject, path: str, inner: str, report: _Report) -> JSONObject:
    for key, value in part.items():
        if value is None:
            continue
        if key == "prompt_cache_breakpoint":
            report.drop("content.prompt_cache_breakpoint")
        elif key not in ("type", inner):
            raise _unknown(f"{path}.{key}", f"field of a {part.get('type')} part")
    return _dict(part.get(inner), f"{path}.{inner}")


def _o2a_image(part: JSONObject, path: str, report: _Report) -> JSONObject:
    image = _o2a_part_keys(part, path, "image_url", report)
    for key, value in image.items():
        if key == "detail":
            if value not in (None, "auto"):
                report.drop("content.image_url.detail")
        elif key != "url" and value is not None:
            raise _unknown(f"{path}.image_url.{key}", "image_url field")
    url = _str(image.get("url"), f"{path}.image_url.url")
    if url.startswith("data:"):
        media_type, data = _data_url(url, f"{path}.image_url.url")
        return {"type": "image", "source": {"type": "base64", "media_type": media_type,
                                            "data": data}}
    if url.startswith(("https://", "http://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise TranslationError(f"{path}.image_url.url", "must be an http(s) or base64 data: URL")


def _data_url(url: str, path: str) -> tuple[str, str]:
    match = _DATA_URL.fullmatch(url)
    if match is None:
        raise TranslationError(path, "a data: URL must be base64 (data:<type>;base64,<data>)")
    return match.group(1), match.group(2)


def _o2a_file(part: JSONObject, path: str, report: _Report) -> JSONObject:
    file = _o2a_part_keys(part, path, "file", report)
    for key, value in file.items():
        if key not in ("file_data", "filename", "file_id") and value is not None:
            raise _unknown(f"{path}.file.{key}", "file field")
    if file.get("file_data") is None:
        raise TranslationError(
            f"{path}.file", "only inline file_data can be sent to Anthropic; an OpenAI file_id "
            "means nothing there")
    media_type, data = _data_url(_str(file["file_data"], f"{path}.file.file_data"),
                                 f"{path}.file.file_data")
    if media_type != "application/pdf":
        raise TranslationError(f"{path}.file.file_data",
                               f"{media_type} files cannot be sent to Anthropic; PDF only")
    block: JSONObject = {"type": "document", "source": {"type": "base64",
                                                        "media_type": media_type, "data": data}}
    if file.get("filename") is not None:
        block["title"] = _str(file["filename"], f"{path}.file.filename")
    return block


def _o2a_tool_result(message: JSONObject, path: str, report: _Report) -> JSONObject:
    tool_call_id = _str(message.get("tool_call_id"), f"{path}.tool_call_id")
    content = message.get("content")
    result: JSONObject = {"type": "tool_result", "tool_use_id": tool_call_id}
    if isinstance(content, str):
        result["content"] = content
    elif content is not None:
        result["content"] = _o2a_text_parts(content, f"{path}.content", report)
    return result


def _o2a_assistant(message: JSONObject, path: str, report: _Report) -> JSONObject:
    content = message.get("content")
    refusal = message.get("refusal")
    calls = message.get("tool_calls")
    if isinstance(content, str) and not calls and refusal is None:
        return {"role": "assistant", "content": content}
    blocks: list[JSONObject] = []
    if isinstance(content, str):
        if content:
            blocks.append({"type": "text", "text": content})
    elif content is not None:
        for j, part in enumerate(_list(content, f"{path}.content")):
            ppath = f"{path}.content[{j}]"
            part = _dict(part, ppath)
            if part.get("type") == "refusal":
                text = _str(part.get("refusal"), f"{ppath}.refusal")
                blocks.append({"type": "text", "text": text})
            elif part.get("type") == "text":
                blocks.append(_o2a_text_part(part, ppath, report))
            else:
                raise TranslationError(f"{ppath}.type", "must be text or refusal")
    if refusal is not None:
        blocks.append({"type": "text", "text": _str(refusal, f"{path}.refusal")})
    for j, call in enumerate(_list(calls, f"{path}.tool_calls") if calls else []):
        blocks.append(_o2a_tool_call(_dict(call, f"{path}.tool_calls[{j}]"),
                                     f"{path}.tool_calls[{j}]"))
    return {"role": "assistant", "content": blocks}


def _o2a_tool_call(call: JSONObject, path: str) -> JSONObject:
    if call.get("type", "function") != "function":
        raise TranslationError(f"{path}.type", f"{call.get('type')!r} tool calls cannot be "
                                               "sent to Anthropic; function only")
    for key, value in call.items():
        if key not in ("id", "type", "function") and value is not None:
            raise _unknown(f"{path}.{key}", "tool call field")
    function = _dict(call.get("function"), f"{path}.function")
    return {
        "type": "tool_use",
        "id": _str(call.get("id"), f"{path}.id"),
        "name": _str(function.get("name"), f"{path}.function.name"),
        "input": parse_arguments(function.get("arguments"), f"{path}.function.arguments"),
    }


def parse_arguments(arguments: Any, path: str) -> JSONObject:
    """OpenAI function-call `arguments` (a JSON string) as the object Anthropic wants.

    None and blank strings are {} (clients send them for tools without parameters);
    anything but a JSON object raises TranslationError naming `path`.
    """
    if isinstance(arguments, dict):
        return arguments
    if arguments is None or (isinstance(arguments, str) and not arguments.strip()):
        return {}
    if not isinstance(arguments, str):
        raise TranslationError(path, "must be a JSON string")
    try:
        parsed = json.loads(arguments)
    except (ValueError, RecursionError) as exc:
        raise TranslationError(path, f"is not valid JSON ({exc})") from None
    if not isinstance(parsed, dict):
        raise TranslationError(path, "must encode a JSON object")
    return parsed


def _o2a_tools(value: Any, out: JSONObject, report: _Report, body: Mapping[str, Any]) -> None:
    tools = []
    for i, tool in enumerate(_list(value, "tools")):
        path = f"tools[{i}]"
        tool = _dict(tool, path)
        if tool.get("type") != "function":
            raise TranslationError(f"{path}.type", f"{tool.get('type')!r} tools cannot be sent "
                                                   "to Anthropic; function tools only")
        for key, value in tool.items():
            if key not in ("type", "function") and value is not None:
                raise _unknown(f"{path}.{key}", "tool field")
        function = _dict(tool.get("function"), f"{path}.function")
        for key, value in function.items():
            if key not in ("name", "description", "parameters", "strict") and value is not None:
                raise _unknown(f"{path}.function.{key}", "function field")
        converted: JSONObject = {"name": _str(function.get("name"), f"{path}.function.name")}
        if function.get("description") is not None:
            converted["description"] = _str(function["description"],
                                            f"{path}.function.description")
        schema = function.get("parameters")
        converted["input_schema"] = (
            {"type": "object", "properties": {}} if schema is None
            else _dict(schema, f"{path}.function.parameters")
        )
        if function.get("strict") is not None:
            converted["strict"] = function["strict"]
        tools.append(converted)
    out["tools"] = tools


def _o2a_tool_choice(value: Any, out: JSONObject, report: _Report,
                     body: Mapping[str, Any]) -> None:
    if value == "auto":
        out["tool_choice"] = {"type": "auto"}
    elif value == "required":
        out["tool_choice"] = {"type": "any"}
    elif value == "none":
        out["tool_choice"] = {"type": "none"}
    elif isinstance(value, dict) and value.get("type") == "function":
        function = _dict(value.get("function"), "tool_choice.function")
        out["tool_choice"] = {"type": "tool",
                              "name": _str(function.get("name"), "tool_choice.function.name")}
    else:
        raise TranslationError("tool_choice", "must be auto, required, none or a function; "
                                              "allowed_tools and custom choices cannot be "
                                              "sent to Anthropic")


def _o2a_parallel(body: Mapping[str, Any], out: JSONObject) -> None:
    parallel = body.get("parallel_tool_calls")
    if parallel is None:
        return
    if not isinstance(parallel, bool):
        raise TranslationError("parallel_tool_calls", "must be a boolean")
    if not out.get("tools"):
        return  # no tools: nothing could run in parallel
    choice = out.setdefault("tool_choice", {"type": "auto"})
    if choice["type"] != "none":
        choice["disable_parallel_tool_use"] = not parallel


def _o2a_temperature(value: Any, out: JSONObject, report: _Report,
                     body: Mapping[str, Any]) -> None:
    if _number(value, "temperature") > 1:
        raise TranslationError("temperature", "Anthropic accepts 0 to 1; OpenAI's range above "
                                              "1 has no equivalent")
    out["temperature"] = value


def _o2a_stop(value: Any, out: JSONObject, report: _Report, body: Mapping[str, Any]) -> None:
    if isinstance(value, str):
        out["stop_sequences"] = [value]
    else:
        out["stop_sequences"] = [_str(s, f"stop[{i}]") for i, s in enumerate(_list(value, "stop"))]


def _o2a_stream(value: Any, out: JSONObject, report: _Report, body: Mapping[str, Any]) -> None:
    if not isinstance(value, bool):
        raise TranslationError("stream", "must be a boolean")
    out["stream"] = value


def _o2a_user(value: Any, out: JSONObject, report: _Report, body: Mapping[str, Any]) -> None:
    out.setdefault("metadata", {})["user_id"] = _str(value, "user")


def _o2a_safety_identifier(value: Any, out: JSONObject, report: _Report,
                           body: Mapping[str, Any]) -> None:
    if body.get("user") is not None:
        report.drop("safety_identifier")
    else:
        out.setdefault("metadata", {})["user_id"] = _str(value, "safety_identifier")


def _o2a_response_format(value: Any, out: JSONObject, report: _Report,
                         body: Mapping[str, Any]) -> None:
    fmt = _dict(value, "response_format")
    kind = fmt.get("type")
    if kind == "text":
        return
    if kind != "json_schema":
        raise TranslationError("response_format.type", f"{kind!r} cannot be sent to Anthropic; "
                                                       "use json_schema with a schema")
    spec = _dict(fmt.get("json_schema"), "response_format.json_schema")
    schema = _dict(spec.get("schema"), "response_format.json_schema.schema")
    out["output_config"] = {"format": {"type": "json_schema", "schema": schema}}


def _o2a_copy_number(name: str) -> Callable[[Any, JSONObject, _Report, Mapping[str, Any]], None]:
    def copy(value: Any, out: JSONObject, report: _Report, body: Mapping[str, Any]) -> None:
        out[name] = _number(value, name)
    return copy


def _o2a_store(value: Any, out: JSONObject, report: _Report, body: Mapping[str, Any]) -> None:
    if value is True:
        report.drop("store")


_O2A_FIELDS: dict[str, Callable[[Any, JSONObject, _Report, Mapping[str, Any]], None]] = {
    "temperature": _o2a_temperature,
    "top_p": _o2a_copy_number("top_p"),
    "top_k": _o2a_copy_number("top_k"),
    "stop": _o2a_stop,
    "stream": _o2a_stream,
    "tools": _o2a_tools,
    "tool_choice": _o2a_tool_choice,
    "user": _o2a_user,
    "safety_identifier": _o2a_safety_identifier,
    "response_format": _o2a_response_format,
    "store": _o2a_store,
}
