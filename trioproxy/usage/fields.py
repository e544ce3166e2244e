"""Typed, forgiving reads from decoded JSON, shared by the usage extractors.

Upstream bodies are not trusted to have the documented shape: every getter returns
None (or an empty dict/list) for a missing key or a value of the wrong type, so an
extractor can never raise on an odd body.
"""

from __future__ import annotations

import re
from typing import Any

from trioproxy import fastjson

JSONObject = dict[str, Any]


class MalformedEvent(ValueError):
    """A stream event that could not be read; the scanner skips it and notes why."""


def loads_object(text: str | bytes) -> JSONObject:
    """Decode text that must hold a JSON object; raise MalformedEvent otherwise."""
    try:
        value = fastjson.loads(text)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, bad UTF-8, huge ints
        raise MalformedEvent(f"bad JSON: {exc}") from None
    if not isinstance(value, dict):
        raise MalformedEvent(f"expected a JSON object, got {type(value).__name__}")
    return value


def get_dict(obj: object, key: str) -> JSONObject:
    """obj[key] if obj is a dict and the value is a dict, else {}."""
    value = obj.get(key) if isinstance(obj, dict) else None
    return value if isinstance(value, dict) else {}


def get_list(obj: object, key: str) -> list[Any]:
    """obj[key] if obj is a dict and the value is a list, else []."""
    value = obj.get(key) if isinstance(obj, dict) else None
    return value if isinstance(value, list) else []


def get_int(obj: object, key: str) -> int | None:
    """obj[key] if it is an integer (bools excluded), else None."""
    value = obj.get(key) if isinstance(obj, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def get_str(obj: object, key: str) -> str | None:
    """obj[key] if it is a non-empty string, else None."""
    value = obj.get(key) if isinstance(obj, dict) else None
    return value if isinstance(value, str) and value else None


def error_text(kind: str | None, message: str | None) -> str:
    """Render an upstream error as "kind: message", dropping whichever part is missing."""
    if kind and message:
        return f"{kind}: {message}"
    return kind or message or "error"


# "type" is the first key of every Anthropic and OpenAI stream event object.
_TYPE = re.compile(r'\s*\{\s*"type"\s*:\s*"([^"\\]+)"')


def sniff_type(data: str) -> str | None:
    """The "type" of a JSON event object read from its first key, without decoding it.

    For servers that send stream events without an SSE "event:" field.
    """
    match = _TYPE.match(data)
    return match.group(1) if match else None
