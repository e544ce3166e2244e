"""Usage scanners: every endpoint, streamed and not, compressed, chunked and broken."""

from __future__ import annotations

import gzip
import json
import zlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trioproxy.usage import anthropic, openai, scan
from trioproxy.usage.inflate import PIECE, Inflater
from trioproxy.usage.record import Usage
from trioproxy.usage.scan import UsageScanner, make_scanner

JSON = "application/json"
SSE = "text/event-stream; charset=utf-8"


def dumps(obj: object) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def sse(*events: tuple[str | None, Any]) -> bytes:
    """An event stream; a None name writes no event field, a str payload is sent as is."""
    out = []
    for name, payload in events:
        head = f"event: {name}\n" if name else ""
        data = payload if isinstance(payload, str) else dumps(payload)
        out.append(f"{head}data: {data}\n\n")
    return "".join(out).encode()


def scanner(path: str, content_type: str | None, encoding: str | None = None) -> UsageScanner:
    result = make_scanner("auto", path, content_type, encoding)
    assert result is not None
    return result


def run(
    path: str, body: bytes, content_type: str, chunks: list[bytes] | None = None
) -> tuple[Usage, UsageScanner]:
    s = scanner(path, content_type)
    for chunk in chunks if chunks is not None else [body]:
        s.feed(chunk)
    return s.finish(), s


def split_everywhere(path: str, body: bytes, content_type: str, expected: Usage) -> None:
    for i in range(len(body) + 1):
        usage, s = run(path, body, content_type, [body[:i], body[i:]])
        assert usage == expected, f"split at {i}"
        assert s.complete
        assert s.problem is None
    usage, _ = run(path, body, content_type, [body[i : i + 1] for i in range(len(body))])
    assert usage == expected


# --- Anthropic Messages ---

ANTHROPIC_MESSAGE = {
    "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5-20250929",
    "content": [{"type": "text", "text": "Hi! My name is Claude. 世界 🎉"}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 2095,
        "cache_creation_input_tokens": 2051,
        "cache_read_input_tokens": 10240,
        "cache_creation": {"ephemeral_5m_input_tokens": 2051, "ephemeral_1h_input_tokens": 0},
        "output_tokens": 503,
        "service_tier": "standard",
    },
}
ANTHROPIC_MESSAGE_USAGE = Usage(
    model="claude-sonnet-4-5-20250929",
    input_tokens=2095,
    output_tokens=503,
    cache_read_tokens=10240,
    cache_write_tokens=2051,
    cache_write_5m_tokens=2051,
    cache_write_1h_tokens=0,
    stop_reason="end_turn",
)


def _delta(text: str) -> tuple[str, Any]:
    return (
        "content_block_delta",
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}},
    )


def anthropic_stream(delta_usage: dict[str, Any] | None = None, tail: bool = True) -> bytes:
    start = {
        "type": "message_start",
        "message": {
            "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
            "type": "message",
            "role": "assistant",
            "content": [],
            "model": "claude-opus-4-1-20250805",
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {
                "input_tokens": 472,
                "cache_creation_input_tokens": 1200,
                "cache_read_input_tokens": 3300,
                "cache_creation": {
                    "ephemeral_5m_input_tokens": 200, "ephemeral_1h_input_tokens": 1000,
                },
                "output_tokens": 2,
            },
        },
    }
    events: list[tuple[str, Any]] = [
        ("message_start", start),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
        ("ping", {"type": "ping"}),
        _delta("héllo"),
        _delta(" 世界 🎉"),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
    ]
    if tail:
        events += [
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "max_tokens", "stop_sequence": None},
                    "usage": delta_usage or {"output_tokens": 15},
                },
            ),
            ("message_stop", {"type": "message_stop"}),
        ]
    return sse(*events)


ANTHROPIC_STREAM_USAGE = Usage(
    model="claude-opus-4-1-20250805",
    input_tokens=472,
    output_tokens=15,
    cache_read_tokens=3300,
    cache_write_tokens=1200,
    cache_write_5m_tokens=200,
    cache_write_1h_tokens=1000,
    stop_reason="max_tokens",
)


def test_anthropic_json() -> None:
    usage, s = run("/v1/messages", dumps(ANTHROPIC_MESSAGE).encode(), JSON)
    assert usage == ANTHROPIC_MESSAGE_USAGE
    assert s.complete


def test_anthropic_json_error() -> None:
    body = {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
        "request_id": "req_011CSHoEeqs5C35K2UUqR7Fy",
    }
    usage, s = run("/v1/messages", dumps(body).encode(), JSON)
    assert usage == Usage(error="overloaded_error: Overloaded")
    assert s.complete


def test_anthropic_stream() -> None:
    usage, s = run("/v1/messages?beta=true", anthropic_stream(), SSE)
    assert usage == ANTHROPIC_STREAM_USAGE
    assert s.complete
    assert s.problem is None


def test_anthropic_stream_split_everywhere() -> None:
    split_everywhere("/v1/messages", anthropic_stream(), SSE, ANTHROPIC_STREAM_USAGE)


def test_anthropic_stream_delta_usage_with_input_counts() -> None:
    # Newer API versions repeat the cumulative input and cache counts in message_delta.
    delta = {
        "input_tokens": 500,
        "cache_creation_input_tokens": None,
        "cache_read_input_tokens": 3400,
        "output_tokens": 99,
        "server_tool_use": {"web_search_requests": 1},
    }
    usage, _ = run("/v1/messages", anthropic_stream(delta), SSE)
    assert (usage.input_tokens, usage.cache_write_tokens, usage.cache_read_tokens) == (
        500,
        1200,
        3400,
    )
    assert usage.output_tokens == 99


def test_anthropic_stream_last_message_delta_wins() -> None:
    body = anthropic_stream() + sse(
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "tool_use"},
                "usage": {"output_tokens": 40},
            },
        )
    )
    usage, _ = run("/v1/messages", body, SSE)
    assert (usage.output_tokens, usage.stop_reason) == (40, "tool_use")


def test_anthropic_stream_error_mid_stream() -> None:
    body = anthropic_stream(tail=False) + sse(
        ("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    )
    usage, s = run("/v1/messages", body, SSE)
    assert usage.error == "overloaded_error: Overloaded"
    assert (usage.model, usage.input_tokens, usage.output_tokens) == (
        "claude-opus-4-1-20250805",
        472,
        2,
    )
    assert usage.stop_reason is None
    assert s.complete


def test_anthropic_stream_without_event_fields() -> None:
    # Some compatible servers send only data lines; the JSON "type" names the event.
    blocks = anthropic_stream().split(b"\n\n")[:-1]
    body = b"".join(block.partition(b"\n")[2] + b"\n\n" for block in blocks)
    assert b"event:" not in body
    usage, _ = run("/v1/messages", body, SSE)
    assert usage == ANTHROPIC_STREAM_USAGE


def test_anthropic_stream_decodes_only_the_events_it_needs(monkeypatch: pytest.MonkeyPatch) -> None:
    decoded: list[str] = []
    real = anthropic.loads_object

    def counting(text: str | bytes) -> Any:
        decoded.append(str(text))
        return real(text)

    monkeypatch.setattr(anthropic, "loads_object", counting)
    body = anthropic_stream(tail=False) + b"".join(sse(_delta("x" * 50)) for _ in range(200))
    body += anthropic_stream().split(b"event: content_block_stop")[1].partition(b"\n\n")[2]
    usage, _ = run("/v1/messages", body, SSE)
    assert usage == ANTHROPIC_STREAM_USAGE
    assert len(decoded) == 2  # message_start and message_delta


def test_anthropic_malformed_event_is_skipped() -> None:
    body = anthropic_stream().replace(b'data: {"type":"message_delta"', b"data: {oops")
    usage, s = run("/v1/messages", body, SSE)
    assert usage.input_tokens == 472
    assert usage.output_tokens == 2  # from message_start; the broken delta was skipped
    assert s.complete
    assert s.problem is not None
    assert "message_delta" in s.problem


# --- OpenAI Chat Completions ---

CHAT_COMPLETION = {
    "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
    "object": "chat.completion",
    "created": 1741569952,
    "model": "gpt-4.1-2025-04-14",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Hello! 世界",
                "refusal": None,
                "annotations": [],
            },
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {
        "prompt_tokens": 1219,
        "completion_tokens": 10,
        "total_tokens": 1229,
        "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    },
    "service_tier": "default",
    "system_fingerprint": "fp_b376dfbbd5",
}


def chat_chunk(
    choices: list[Any], usage: Any = None, model: str = "gpt-4o-mini-2024-07-18", **extra: Any
) -> dict[str, Any]:
    return {
        "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
        "object": "chat.completion.chunk",
        "created": 1741570283,
        "model": model,
        "service_tier": "default",
        "system_fingerprint": "fp_06737a9306",
        "choices": choices,
        "usage": usage,
        **extra,
    }


def content(text: str, finish: str | None = None, index: int = 0) -> dict[str, Any]:
    return {
        "index": index,
        "delta": {"content": text} if text else {},
        "logprobs": None,
        "finish_reason": finish,
    }


CHAT_USAGE_OBJ = {
    "prompt_tokens": 2006,
    "completion_tokens": 300,
    "total_tokens": 2306,
    "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 0},
    "completion_tokens_details": {
        "reasoning_tokens": 0,
        "audio_tokens": 0,
        "accepted_prediction_tokens": 0,
        "rejected_prediction_tokens": 0,
    },
}
CHAT_STREAM = sse(
    (
        None,
        chat_chunk(
            [
                {
                    "index": 0,
                    "delta": {"role": "assistant", "content": "", "refusal": None},
                    "logprobs": None,
                    "finish_reason": None,
                }
            ]
        ),
    ),
    (None, chat_chunk([content("héllo 世界")])),
    (
        None,
        chat_chunk(
            [
                {
                    "index": 0,
                    "delta": {
                        "tool_calls": [
                            {
                                "index": 0,
                                "function": {"arguments": '{"usage": 5, "error": "finish_reason"}'},
                            }
                        ]
                    },
                    "logprobs": None,
                    "finish_reason": None,
                }
            ]
        ),
    ),
    (None, chat_chunk([content(" 🎉")])),
    (None, chat_chunk([content("", "length")])),
    (None, chat_chunk([], CHAT_USAGE_OBJ)),
    (None, "[DONE]"),
)
CHAT_STREAM_USAGE = Usage(
    model="gpt-4o-mini-2024-07-18",
    input_tokens=2006,
    output_tokens=300,
    cache_read_tokens=1920,
    stop_reason="length",
)


def test_chat_json() -> None:
    usage, s = run("/v1/chat/completions", dumps(CHAT_COMPLETION).encode(), JSON)
    assert usage == Usage(
        model="gpt-4.1-2025-04-14",
        input_tokens=1219,
        output_tokens=10,
        cache_read_tokens=1024,
        stop_reason="stop",
    )
    assert s.complete


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (
            {
                "error": {
                    "message": "Incorrect API key provided: sk-abc***.",
                    "type": "invalid_request_error",
                    "param": None,
                    "code": "invalid_api_key",
                }
            },
            "invalid_request_error: Incorrect API key provided: sk-abc***.",
        ),
        (
            {
                "error": {
                    "message": "Rate limit reached",
                    "type": None,
                    "param": None,
                    "code": "rate_limit_exceeded",
                }
            },
            "rate_limit_exceeded: Rate limit reached",
        ),
        (
            {
                "object": "error",
                "message": "max_tokens is too large",
                "type": "BadRequestError",
                "param": None,
                "code": 400,
            },  # vLLM
            "BadRequestError: max_tokens is too large",
        ),
        ({"error": "model 'llama9' not found"}, "model 'llama9' not found"),  # Ollama
    ],
)
def test_chat_json_error(body: dict[str, Any], error: str) -> None:
    usage, s = run("/v1/chat/completions", dumps(body).encode(), JSON)
    assert usage == Usage(error=error)
    assert s.complete


def test_chat_stream() -> None:
    usage, s = run("/v1/chat/completions", CHAT_STREAM, SSE)
    assert usage == CHAT_STREAM_USAGE
    assert s.complete


def test_chat_stream_split_everywhere() -> None:
    split_everywhere("/v1/chat/completions", CHAT_STREAM, SSE, CHAT_STREAM_USAGE)


def test_chat_stream_without_usage() -> None:
    # Without stream_options.include_usage there is no usage chunk at all.
    body = sse(
        (None, chat_chunk([content("hi")])),
        (None, chat_chunk([content("", "stop")])),
        (None, "[DONE]"),
    )
    usage, s = run("/v1/chat/completions", body, SSE)
    assert usage == Usage(model="gpt-4o-mini-2024-07-18", stop_reason="stop")
    assert s.complete


def test_chat_stream_usage_on_every_chunk_takes_the_last() -> None:
    # vLLM with continuous_usage_stats: a running total on every chunk.
    def running(n: int) -> dict[str, int]:
        return {"prompt_tokens": 40, "total_tokens": 40 + n, "completion_tokens": n}

    body = sse(
        *[
            (None, chat_chunk([content("tok")], running(n), model="Qwen/Qwen3-8B"))
            for n in range(1, 6)
        ],
        (None, chat_chunk([content("", "stop")], running(6), model="Qwen/Qwen3-8B")),
        (None, "[DONE]"),
    )
    usage, _ = run("/v1/chat/completions", body, SSE)
    assert usage == Usage(
        model="Qwen/Qwen3-8B", input_tokens=40, output_tokens=6, stop_reason="stop"
    )


def test_chat_stream_azure_first_chunk_has_no_model() -> None:
    first = {
        "choices": [],
        "created": 0,
        "id": "",
        "model": "",
        "object": "",
        "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}],
    }
    body = sse(
        (None, first),
        (None, chat_chunk([content("hi")], model="gpt-4o-2024-11-20")),
        (None, chat_chunk([content("", "stop")])),
        (None, "[DONE]"),
    )
    usage, _ = run("/openai/deployments/gpt4o/chat/completions?api-version=2024-10-21", body, SSE)
    assert (usage.model, usage.stop_reason) == ("gpt-4o-2024-11-20", "stop")


def test_chat_stream_prefers_choice_zero_finish_reason() -> None:
    body = sse(
        (None, chat_chunk([content("", "stop", index=0)])),
        (None, chat_chunk([content("", "length", index=1)])),
    )
    usage, _ = run("/v1/chat/completions", body, SSE)
    assert usage.stop_reason == "stop"


def test_chat_stream_error_mid_stream() -> None:
    error = {
        "error": {
            "message": "The server had an error while processing your request.",
            "type": "server_error",
            "param": None,
            "code": None,
        }
    }
    body = sse((None, chat_chunk([content("hi")])), (None, error))
    usage, s = run("/v1/chat/completions", body, SSE)
    assert usage == Usage(
        model="gpt-4o-mini-2024-07-18",
        error="server_error: The server had an error while processing your request.",
    )
    assert s.complete


def test_chat_stream_named_error_event() -> None:
    body = sse((None, chat_chunk([content("hi")])), ("error", {"message": "upstream died"}))
    usage, _ = run("/v1/chat/completions", body, SSE)
    assert usage.error == "upstream died"


def test_chat_stream_decodes_few_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    decoded: list[str] = []
    real = openai.loads_object

    def counting(text: str | bytes) -> Any:
        decoded.append(str(text))
        return real(text)

    monkeypatch.setattr(openai, "loads_object", counting)
    usage, _ = run("/v1/chat/completions", CHAT_STREAM, SSE)
    assert usage == CHAT_STREAM_USAGE
    # The first chunk (model), the finish_reason chunk and the usage chunk; not the deltas,
    # not the tool call whose arguments mention "usage" and "error" inside a string.
    assert len(decoded) == 3


def test_completions_legacy() -> None:
    body = {
        "id": "cmpl-uqkvlQyYK7bGYrRHQ0eXlWi7",
        "object": "text_completion",
        "created": 1589478378,
        "model": "gpt-3.5-turbo-instruct",
        "system_fingerprint": "fp_44709d6fcb",
        "choices": [
            {
                "text": "\n\nThis is indeed a test",
                "index": 0,
                "logprobs": None,
                "finish_reason": "length",
            }
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12},
    }
    expected = Usage(
        model="gpt-3.5-turbo-instruct", input_tokens=5, output_tokens=7, stop_reason="length"
    )
    assert run("/v1/completions", dumps(body).encode(), JSON)[0] == expected
    chunk = {
        "id": "cmpl-7iA7iJjj8V2zOkCGvWF2hAkDWBQZe",
        "object": "text_completion",
        "created": 1690759702,
        "model": "gpt-3.5-turbo-instruct",
    }
    stream = sse(
        (
            None,
            {
                **chunk,
                "choices": [{"text": "This", "index": 0, "logprobs": None, "finish_reason": None}],
            },
        ),
        (
            None,
            {
                **chunk,
                "choices": [{"text": "", "index": 0, "logprobs": None, "finish_reason": "length"}],
            },
        ),
        (None, {**chunk, "choices": [], "usage": body["usage"]}),
        (None, "[DONE]"),
    )
    assert run("/v1/completions", stream, SSE)[0] == expected


# --- OpenAI Embeddings ---


def test_embeddings() -> None:
    body = {
        "object": "list",
        "data": [
            {
                "object": "embedding",
                "index": 0,
                "embedding": [0.0023064255, -0.009327292, -0.0028842222],
            }
        ],
        "model": "text-embedding-3-small",
        "usage": {"prompt_tokens": 8, "total_tokens": 8},
    }
    usage, s = run("/v1/embeddings", dumps(body).encode(), JSON)
    assert usage == Usage(model="text-embedding-3-small", input_tokens=8)
    assert s.complete
    assert make_scanner("auto", "/v1/embeddings", SSE, None) is None


# --- OpenAI Responses ---


def response_object(status: str = "completed", **changes: Any) -> dict[str, Any]:
    return {
        "id": "resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b",
        "object": "response",
        "created_at": 1741476542,
        "status": status,
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "max_output_tokens": None,
        "model": "gpt-4.1-2025-04-14",
        "output": [
            {
                "type": "message",
                "id": "msg_67ccd2bf17f0819081ff3bb2cf6508e60bb6a6b452d3795b",
                "status": "completed",
                "role": "assistant",
                "content": [
                    {"type": "output_text", "text": "In a peaceful grove 世界", "annotations": []}
                ],
            }
        ]
        if status != "in_progress"
        else [],
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "store": True,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": None
        if status == "in_progress"
        else {
            "input_tokens": 3036,
            "input_tokens_details": {"cached_tokens": 2944},
            "output_tokens": 87,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 3123,
        },
        "user": None,
        "metadata": {},
        **changes,
    }


RESPONSE_USAGE = Usage(
    model="gpt-4.1-2025-04-14",
    input_tokens=3036,
    output_tokens=87,
    cache_read_tokens=2944,
    stop_reason="completed",
)


def responses_stream(final: str = "response.completed", **changes: Any) -> bytes:
    item = "msg_67ccd2bf17f0819081ff3bb2cf6508e60bb6a6b452d3795b"
    created = response_object("in_progress")
    seq = iter(range(100))

    def event(name: str, **fields: Any) -> tuple[str, Any]:
        return name, {"type": name, "sequence_number": next(seq), **fields}

    status = final.removeprefix("response.")
    return sse(
        event("response.created", response=created),
        event("response.in_progress", response=created),
        event(
            "response.output_item.added",
            output_index=0,
            item={
                "id": item,
                "type": "message",
                "status": "in_progress",
                "content": [],
                "role": "assistant",
            },
        ),
        event(
            "response.content_part.added",
            item_id=item,
            output_index=0,
            content_index=0,
            part={"type": "output_text", "text": "", "annotations": []},
        ),
        event(
            "response.output_text.delta",
            item_id=item,
            output_index=0,
            content_index=0,
            delta="In a peaceful grove",
        ),
        event(
            "response.output_text.delta",
            item_id=item,
            output_index=0,
            content_index=0,
            delta=" 世界 🎉",
        ),
        event(
            "response.output_text.done",
            item_id=item,
            output_index=0,
            content_index=0,
            text="In a peaceful grove 世界 🎉",
        ),
        event(final, response=response_object(status, **changes)),
    )


def test_responses_json() -> None:
    usage, s = run("/v1/responses", dumps(response_object()).encode(), JSON)
    assert usage == RESPONSE_USAGE
    assert s.complete


def test_responses_json_incomplete() -> None:
    body = response_object("incomplete", incomplete_details={"reason": "max_output_tokens"})
    usage, _ = run("/v1/responses", dumps(body).encode(), JSON)
    assert usage.stop_reason == "max_output_tokens"
    assert usage.output_tokens == 87


def test_responses_json_api_error() -> None:
    body = {
        "error": {
            "message": "The model `gpt-9` does not exist or you do not have access.",
            "type": "invalid_request_error",
            "param": None,
            "code": "model_not_found",
        }
    }
    usage, _ = run("/v1/responses", dumps(body).encode(), JSON)
    assert usage == Usage(
        error="invalid_request_error: The model `gpt-9` does not exist or you do not have access."
    )


def test_responses_stream() -> None:
    usage, s = run("/v1/responses", responses_stream(), SSE)
    assert usage == RESPONSE_USAGE
    assert s.complete


def test_responses_stream_split_everywhere() -> None:
    split_everywhere("/v1/responses", responses_stream(), SSE, RESPONSE_USAGE)


def test_responses_stream_incomplete_and_failed() -> None:
    usage, _ = run(
        "/v1/responses",
        responses_stream("response.incomplete", incomplete_details={"reason": "max_output_tokens"}),
        SSE,
    )
    assert (usage.stop_reason, usage.output_tokens) == ("max_output_tokens", 87)
    failed = {"code": "server_error", "message": "The model failed to generate a response."}
    usage, s = run("/v1/responses", responses_stream("response.failed", error=failed), SSE)
    assert usage.stop_reason == "failed"
    assert usage.error == "server_error: The model failed to generate a response."
    assert s.complete


def test_responses_stream_error_event() -> None:
    body = responses_stream().rpartition(b"event: response.completed")[0] + sse(
        (
            "error",
            {
                "type": "error",
                "code": "ERR_SOMETHING",
                "message": "Something went wrong",
                "param": None,
                "sequence_number": 8,
            },
        )
    )
    usage, s = run("/v1/responses", body, SSE)
    assert usage == Usage(model="gpt-4.1-2025-04-14", error="ERR_SOMETHING: Something went wrong")
    assert s.complete


def test_responses_stream_decodes_only_lifecycle_events(monkeypatch: pytest.MonkeyPatch) -> None:
    names: list[str] = []
    real = openai.loads_object

    def counting(text: str | bytes) -> Any:
        names.append(json.loads(text)["type"])
        return real(text)

    monkeypatch.setattr(openai, "loads_object", counting)
    assert run("/v1/responses", responses_stream(), SSE)[0] == RESPONSE_USAGE
    assert names == ["response.created", "response.completed"]


# --- compression ---


def test_gzip_json_in_small_chunks() -> None:
    body = gzip.compress(dumps(ANTHROPIC_MESSAGE).encode())
    s = scanner("/v1/messages", JSON, "gzip")
    for i in range(0, len(body), 7):
        s.feed(body[i : i + 7])
    assert s.finish() == ANTHROPIC_MESSAGE_USAGE
    assert s.complete


def test_gzip_sse_sync_flushed_per_event() -> None:
    compressor = zlib.compressobj(wbits=31)  # gzip container
    pieces = []
    for block in CHAT_STREAM.split(b"\n\n")[:-1]:
        pieces.append(compressor.compress(block + b"\n\n") + compressor.flush(zlib.Z_SYNC_FLUSH))
    s = scanner("/v1/chat/completions", SSE, "x-gzip")
    for piece in pieces:  # the gzip trailer never comes: each event is readable on arrival
        s.feed(piece)
    assert s.finish() == CHAT_STREAM_USAGE
    assert s.complete


@pytest.mark.parametrize("wbits", [zlib.MAX_WBITS, -zlib.MAX_WBITS], ids=["zlib", "raw"])
def test_deflate_zlib_and_raw(wbits: int) -> None:
    compressor = zlib.compressobj(wbits=wbits)
    body = compressor.compress(responses_stream()) + compressor.flush()
    s = scanner("/v1/responses", SSE, "deflate")
    s.feed(body[:1])  # too short to tell zlib from raw deflate yet
    for i in range(1, len(body), 50):
        s.feed(body[i : i + 50])
    assert s.finish() == RESPONSE_USAGE
    assert s.complete


@pytest.mark.parametrize("encoding", ["br", "zstd", "gzip, br", "compress"])
def test_unsupported_encoding(encoding: str) -> None:
    s = scanner("/v1/messages", JSON, encoding)
    s.feed(dumps(ANTHROPIC_MESSAGE).encode())
    assert s.finish() == Usage()
    assert not s.complete
    assert s.problem == f"unsupported content-encoding: {encoding}"


@pytest.mark.parametrize("encoding", [None, "identity", "", "Identity"])
def test_identity_encoding(encoding: str | None) -> None:
    s = scanner("/v1/messages", JSON, encoding)
    s.feed(dumps(ANTHROPIC_MESSAGE).encode())
    assert s.finish() == ANTHROPIC_MESSAGE_USAGE


def test_corrupt_gzip_gives_up() -> None:
    s = scanner("/v1/chat/completions", SSE, "gzip")
    s.feed(b"this is not gzip at all")
    s.feed(gzip.compress(CHAT_STREAM))  # ignored once the scanner gave up
    assert s.finish() == Usage()
    assert not s.complete
    assert s.problem is not None
    assert s.problem.startswith("cannot decompress body")


def test_inflater_yields_bounded_pieces() -> None:
    body = gzip.compress(b"\0" * (3 * PIECE + 5))
    pieces = list(Inflater("gzip").feed(body))
    assert [len(p) for p in pieces] == [PIECE, PIECE, PIECE, 5]


def test_gzip_bomb_stops_at_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scan, "JSON_BODY_CAP", 2 * PIECE)
    s = scanner("/v1/messages", JSON, "gzip")
    s.feed(gzip.compress(b" " * (20 * PIECE)))
    assert not s.complete
    assert s.finish() == Usage()


# --- caps and broken bodies ---


def test_json_over_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scan, "JSON_BODY_CAP", 100)
    s = scanner("/v1/messages", JSON)
    body = dumps(ANTHROPIC_MESSAGE).encode()
    s.feed(body[:60])
    assert s.complete
    s.feed(body[60:])
    assert not s.complete
    assert s.problem == "JSON body over 100 bytes"
    assert s.finish() == Usage()


def test_sse_event_over_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scan, "SSE_EVENT_CAP", 1000)
    s = scanner("/v1/messages", SSE)
    s.feed(b"event: content_block_delta\ndata: " + b"x" * 2000)
    assert not s.complete
    assert s.problem == "SSE event over 1000 bytes"


@pytest.mark.parametrize("body", [b"", b"{", b"[1, 2]", b"null", b"\xff\xfe{", b"[" * 100_000])
def test_bad_json_body(body: bytes) -> None:
    usage, s = run("/v1/chat/completions", body, JSON)
    assert usage == Usage()
    assert not s.complete
    assert s.problem is not None


def test_odd_shapes_are_ignored_not_fatal() -> None:
    body = {
        "model": 5,
        "usage": {"prompt_tokens": "12", "completion_tokens": True},
        "choices": "nope",
    }
    usage, s = run("/v1/chat/completions", dumps(body).encode(), JSON)
    assert usage == Usage()
    assert s.complete
    body = {"type": "message", "model": "m", "usage": [1], "stop_reason": None}
    assert run("/v1/messages", dumps(body).encode(), JSON)[0] == Usage(model="m")


@given(st.lists(st.binary(max_size=64), max_size=8))
@pytest.mark.parametrize(
    ("path", "content_type", "encoding"),
    [
        ("/v1/messages", SSE, None),
        ("/v1/chat/completions", SSE, "gzip"),
        ("/v1/responses", SSE, "deflate"),
        ("/v1/embeddings", JSON, None),
    ],
)
def test_never_raises(
    path: str, content_type: str, encoding: str | None, chunks: list[bytes]
) -> None:
    s = scanner(path, content_type, encoding)
    for chunk in chunks:
        s.feed(chunk)
    assert isinstance(s.finish(), Usage)


# --- choosing a scanner ---


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/v1/messages", anthropic.MessagesStream),
        ("/v1/messages?beta=true", anthropic.MessagesStream),
        ("/anthropic/v1/messages/", anthropic.MessagesStream),
        ("/v1/chat/completions", openai.ChatStream),
        ("/openai/v1/chat/completions?api-version=1", openai.ChatStream),
        ("/v1/completions", openai.ChatStream),
        ("/llm/openai/v1/responses?x=1#frag", openai.ResponsesStream),
    ],
)
def test_auto_flavour_by_path(path: str, expected: type) -> None:
    s = make_scanner("auto", path, "text/event-stream", None)
    assert isinstance(s, scan.SSEScanner)
    assert isinstance(s._handler, expected)


@pytest.mark.parametrize(
    ("flavour", "path", "content_type"),
    [
        ("auto", "/v1/messages/count_tokens", JSON),
        ("anthropic", "/v1/messages/count_tokens?beta=true", JSON),
        ("auto", "/v1/models", JSON),
        ("openai", "/v1/models/gpt-4o", JSON),
        ("auto", "/v1/responses/resp_123", JSON),
        ("auto", "/v1/messages/batches", JSON),
        ("auto", "/v1/messages", "text/html"),
        ("auto", "/v1/messages", None),
        ("auto", "/v1/chat/completions", "text/plain"),
        ("auto", "/v1/audio/speech", "audio/mpeg"),
    ],
)
def test_nothing_to_scan(flavour: str, path: str, content_type: str | None) -> None:
    assert make_scanner(flavour, path, content_type, "br") is None


def test_count_tokens_input_is_not_reported() -> None:
    assert make_scanner("anthropic", "/v1/messages/count_tokens", JSON, None) is None


def test_explicit_flavour_still_uses_the_path() -> None:
    body = dumps(response_object()).encode()
    s = make_scanner("openai", "/v1/responses", "application/json; charset=utf-8", None)
    assert s is not None
    s.feed(body)
    assert s.finish() == RESPONSE_USAGE
    # A server speaking the other API's endpoint (vLLM serves /v1/messages) is read by path.
    s = make_scanner("openai", "/v1/messages", JSON, None)
    assert s is not None
    s.feed(dumps(ANTHROPIC_MESSAGE).encode())
    assert s.finish() == ANTHROPIC_MESSAGE_USAGE


def test_unknown_flavour_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown API flavour"):
        make_scanner("gemini", "/v1/messages", JSON, None)
