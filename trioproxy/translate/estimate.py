"""A local estimate for `POST /v1/messages/count_tokens`, which OpenAI-compatible upstreams
do not offer.

The heuristic, cheap and deliberately simple (it is an estimate, not a tokenizer):

* text: one token per BYTES_PER_TOKEN bytes of UTF-8, rounded up, over the system
  prompt, every text, thinking and tool_result text, each tool_use's name and JSON
  input, and each tool definition's name, description and JSON input_schema. Counting
  UTF-8 bytes rather than characters keeps CJK and other non-Latin text from being
  underestimated fourfold;
* MESSAGE_TOKENS per message for the role and turn markers;
* IMAGE_TOKENS per image (Anthropic bills about width*height/750 tokens and downsizes
  large images to about 1600 tokens, the figure used here, without decoding the image);
* DOCUMENT_TOKENS per PDF or URL document (text documents count their text);
* TOOLS_TOKENS once when tools are given (the tool-use system prompt Anthropic adds).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

BYTES_PER_TOKEN = 4
MESSAGE_TOKENS = 4
IMAGE_TOKENS = 1600
DOCUMENT_TOKENS = 1600
TOOLS_TOKENS = 350


def estimate_input_tokens(body: Mapping[str, Any]) -> int:
    """An estimate of the input tokens of an Anthropic Messages (or count_tokens) request.

    Never raises on odd shapes: what it cannot read counts as nothing.
    """
    counter = _Counter()
    counter.content(body.get("system"))
    messages = body.get("messages")
    if isinstance(messages, list):
        for message in messages:
            counter.fixed += MESSAGE_TOKENS
            if isinstance(message, Mapping):
                counter.content(message.get("content"))
    tools = body.get("tools")
    if isinstance(tools, list) and tools:
        counter.fixed += TOOLS_TOKENS
        for tool in tools:
            if isinstance(tool, Mapping):
                counter.text(tool.get("name"))
                counter.text(tool.get("description"))
                counter.json(tool.get("input_schema"))
    return counter.total()


def count_tokens_response(body: Mapping[str, Any]) -> dict[str, int]:
    """The count_tokens answer for `body`: {"input_tokens": n}."""
    return {"input_tokens": estimate_input_tokens(body)}


class _Counter:
    __slots__ = ("bytes", "fixed")

    def __init__(self) -> None:
        self.bytes = 0
        self.fixed = 0

    def total(self) -> int:
        return self.fixed + -(-self.bytes // BYTES_PER_TOKEN)

    def text(self, value: Any) -> None:
        if isinstance(value, str):
            self.bytes += len(value.encode("utf-8", "replace"))

    def json(self, value: Any) -> None:
        if value is not None:
            self.text(json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str))

    def content(self, content: Any) -> None:
        if isinstance(content, str):
            self.text(content)
        elif isinstance(content, list):
            for block in content:
                if isinstance(block, Mapping):
                    self.block(block)

    def block(self, block: Mapping[str, Any]) -> None:
        kind = block.get("type")
        if kind == "text":
            self.text(block.get("text"))
        elif kind == "thinking":
            self.text(block.get("thinking"))
        elif kind == "image":
            self.fixed += IMAGE_TOKENS
        elif kind == "document":
            source = block.get("source")
            if isinstance(source, Mapping) and source.get("type") == "text":
                self.text(source.get("data"))
            else:
                self.fixed += DOCUMENT_TOKENS
        elif kind == "tool_use":
            self.text(block.get("name"))
            self.json(block.get("input"))
        elif kind == "tool_result":
            self.content(block.get("content"))
