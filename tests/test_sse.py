"""SSEDecoder against the WHATWG event-stream rules, and chunking that must not matter."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trioproxy.sse import SSEDecoder, SSEEvent


def parse(*chunks: bytes) -> list[SSEEvent]:
    decoder = SSEDecoder()
    events = [event for chunk in chunks for event in decoder.feed(chunk)]
    return events + decoder.flush()


def msg(
    data: str, event: str = "message", id: str | None = None, retry: int | None = None
) -> SSEEvent:
    return SSEEvent(event=event, data=data, id=id, retry=retry)


# A realistic Anthropic Messages stream, with multi-byte UTF-8 text written raw.
ANTHROPIC_STREAM = (
    "event: message_start\n"
    'data: {"type":"message_start","message":{"id":"msg_01XFDUDYJgAACzvnptvVoYEL",'
    '"type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-5-20250929",'
    '"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":472,'
    '"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":2}}}\n'
    "\n"
    "event: content_block_start\n"
    'data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}\n'
    "\n"
    "event: ping\n"
    'data: {"type": "ping"}\n'
    "\n"
    "event: content_block_delta\n"
    'data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"héllo"}}\n'
    "\n"
    "event: content_block_delta\n"
    'data: {"type":"content_block_delta","index":0,'
    '"delta":{"type":"text_delta","text":" 世界 🎉"}}\n'
    "\n"
    "event: content_block_stop\n"
    'data: {"type":"content_block_stop","index":0}\n'
    "\n"
    "event: message_delta\n"
    'data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},'
    '"usage":{"output_tokens":15}}\n'
    "\n"
    "event: message_stop\n"
    'data: {"type":"message_stop"}\n'
    "\n"
).encode()

# A realistic OpenAI chat.completion.chunk stream with stream_options.include_usage.
_CHUNK = (
    '{"id":"chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG","object":"chat.completion.chunk",'
    '"created":1741570283,"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_eb9dce56a8",'
    '"choices":[%s],"usage":%s}'
)
OPENAI_STREAM = (
    "".join(
        f"data: {_CHUNK % parts}\n\n"
        for parts in [
            (
                '{"index":0,"delta":{"role":"assistant","content":"","refusal":null},'
                '"logprobs":null,"finish_reason":null}',
                "null",
            ),
            (
                '{"index":0,"delta":{"content":"héllo 世界"},"logprobs":null,"finish_reason":null}',
                "null",
            ),
            ('{"index":0,"delta":{"content":" 🎉"},"logprobs":null,"finish_reason":null}', "null"),
            ('{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}', "null"),
            (
                "",
                '{"prompt_tokens":19,"completion_tokens":10,"total_tokens":29,'
                '"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0}}',
            ),
        ]
    ).encode()
    + b"data: [DONE]\n\n"
)


# --- the examples in the spec (WHATWG HTML, "Interpreting an event stream") ---


def test_spec_multiline_data() -> None:
    assert parse(b"data: YHOO\ndata: +2\ndata: 10\n\n") == [msg("YHOO\n+2\n10")]


def test_spec_comment_id_and_leading_space() -> None:
    stream = (
        b": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\n"
        b"data:  third event\n\n"
    )
    assert parse(stream) == [
        msg("first event", id="1"),
        msg("second event", id=""),  # a bare "id" resets the last event ID
        msg(" third event", id=""),  # only one leading space is stripped; the ID persists
    ]


def test_spec_empty_data() -> None:
    # The last block is not followed by a blank line, so it is discarded.
    assert parse(b"data\n\ndata\ndata\n\ndata:") == [msg(""), msg("\n")]


def test_spec_space_after_colon_is_optional() -> None:
    assert parse(b"data:test\n\ndata: test\n\n") == [msg("test"), msg("test")]


# --- line endings ---


@pytest.mark.parametrize("eol", [b"\n", b"\r\n", b"\r"])
def test_line_endings(eol: bytes) -> None:
    stream = eol.join([b"event: a", b"data: 1", b"data: 2", b"", b": c", b"data: 3", b"", b""])
    assert parse(stream) == [msg("1\n2", event="a"), msg("3")]


def test_mixed_line_endings() -> None:
    assert parse(b"data: 1\rdata: 2\r\ndata: 3\n\r\n") == [msg("1\n2\n3")]


def test_crlf_split_between_chunks_is_one_line_end() -> None:
    # If the LF after a chunk-final CR were a line end of its own, it would be a blank
    # line and dispatch "a" alone.
    assert parse(b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n") == [msg("a\nb")]


def test_cr_at_chunk_end_dispatches_at_once() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r\r") == [msg("a")]
    assert decoder.feed(b"\ndata: b\r\r") == [msg("b")]  # that LF paired with the last CR


def test_lone_cr_then_lf_chunk_later() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"") == []  # an empty chunk does not consume the pending pairing
    assert decoder.feed(b"\n") == []
    assert decoder.feed(b"\n") == [msg("a")]


# --- fields ---


def test_comments_are_ignored() -> None:
    assert parse(b": hello\n:\ndata: x\n: in the middle\n\n") == [msg("x")]


def test_event_type_and_default() -> None:
    assert parse(b"event: ping\ndata: {}\n\nevent:\ndata: y\n\ndata: z\n\n") == [
        msg("{}", event="ping"),
        msg("y"),
        msg("z"),
    ]


def test_event_without_data_is_not_dispatched_and_resets_type() -> None:
    assert parse(b"event: ping\n\ndata: x\n\n") == [msg("x")]
    assert parse(b"id: 7\n\n") == []


def test_field_without_colon_and_unknown_fields() -> None:
    assert parse(b"data\nfoo: bar\nbaz\ndata:x\n\n") == [msg("\nx")]


def test_value_keeps_later_colons_and_spaces() -> None:
    assert parse(b'data:  {"a": 1}  \n\n') == [msg(' {"a": 1}  ')]


def test_id_persists_and_nul_is_ignored() -> None:
    assert parse(b"id: 1\ndata: a\n\ndata: b\n\nid: x\0y\ndata: c\n\nid\ndata: d\n\n") == [
        msg("a", id="1"),
        msg("b", id="1"),
        msg("c", id="1"),
        msg("d", id=""),
    ]


def test_retry() -> None:
    stream = b"retry: 1500\ndata: a\n\ndata: b\n\nretry: 10a\ndata: c\n\n"
    stream += "retry: ١٢\ndata: d\n\nretry:\ndata: e\n\n".encode()
    assert parse(stream) == [msg("a", retry=1500), msg("b"), msg("c"), msg("d"), msg("e")]


def test_bom_dropped_once() -> None:
    assert parse(b"\xef\xbb\xbfdata: x\n\n") == [msg("x")]
    # Only the stream's first BOM: a second one is part of the field name "\ufeffdata".
    assert parse(b"\xef\xbb\xbf\xef\xbb\xbfdata: x\n\ndata: y\n\n") == [msg("y")]
    assert parse(b"\xef", b"\xbb", b"\xbfdata: x\n\n") == [msg("x")]
    assert parse(b"\xef\xbb", b"data: x\n\n") == []  # not a BOM: junk in the field name
    assert parse(b"d", b"ata: x\n\n") == [msg("x")]


def test_invalid_utf8_is_replaced() -> None:
    assert parse(b"data: a\xffb\xe4\xb8\n\n") == [msg("a\ufffdb\ufffd")]


def test_incomplete_event_at_eof_is_discarded() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: x\n\ndata: y\n") == [msg("x")]
    assert decoder.flush() == []
    assert parse(b"data: x") == []
    # After flush the decoder starts over, keeping only the last event ID.
    assert decoder.feed(b"\n\ndata: z\n\n") == [msg("z")]


def test_many_events_in_one_chunk_and_one_event_in_many() -> None:
    stream = b"".join(b"data: %d\n\n" % i for i in range(100))
    assert parse(stream) == [msg(str(i)) for i in range(100)]
    assert parse(*[bytes([b]) for b in b"data: 1\ndata: 2\n\n"]) == [msg("1\n2")]


def test_buffered_counts_held_data() -> None:
    decoder = SSEDecoder()
    decoder.feed(b"data: abc\ndata: de")
    assert decoder.buffered == 3 + 8
    decoder.feed(b"\n\n")
    assert decoder.buffered == 0


# --- chunking must not change the result ---


@pytest.mark.parametrize(
    "stream",
    [ANTHROPIC_STREAM, OPENAI_STREAM, ANTHROPIC_STREAM.replace(b"\n", b"\r\n")],
    ids=["anthropic", "openai", "anthropic-crlf"],
)
def test_split_at_every_offset(stream: bytes) -> None:
    expected = parse(stream)
    assert len(expected) == stream.count(b"data: ")
    for i in range(len(stream) + 1):
        assert parse(stream[:i], stream[i:]) == expected, f"split at {i}"
    assert parse(*[stream[i : i + 1] for i in range(len(stream))]) == expected


def test_multibyte_text_survives_splitting() -> None:
    events = parse(*[ANTHROPIC_STREAM[i : i + 1] for i in range(len(ANTHROPIC_STREAM))])
    assert '"héllo"' in events[3].data
    assert '" 世界 🎉"' in events[4].data
    assert "héllo 世界" in parse(OPENAI_STREAM)[1].data


@given(
    st.lists(
        st.sampled_from(
            [
                b"data: x",
                b"data:\xc3\xa9",
                b"event: e",
                b"id: 1",
                b"retry: 5",
                b": c",
                b"",
                b"\xf0\x9f\x8e\x89",
                b"\xff",
            ]
        )
    ),
    st.sampled_from([b"\n", b"\r\n", b"\r"]),
    st.lists(st.integers(min_value=0, max_value=200), max_size=8),
)
def test_any_chunking_gives_the_same_events(
    lines: list[bytes], eol: bytes, cuts: list[int]
) -> None:
    stream = b"\xef\xbb\xbf" + eol.join(lines) + eol
    bounds = sorted({min(c, len(stream)) for c in cuts})
    chunks = [stream[a:b] for a, b in zip([0, *bounds], [*bounds, len(stream)], strict=True)]
    assert parse(*chunks) == parse(stream)
