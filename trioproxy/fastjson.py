"""JSON decoding for the hot path: orjson, falling back to the json module.

orjson decodes a small chat completion in about a third of the instructions the json
module needs (13k against 44k, callgrind), and a 200 KB request body in about 0.1 ms
against 0.2 to 1 ms. What orjson refuses but JSON allows (a lone surrogate escape, NaN
and Infinity) goes through the json module, so those texts decode as json.loads would.

One difference stays: an integer beyond 64 bits decodes as a float (orjson does this
without an error, so there is nothing to fall back on). Readers that only look for
token counts and names are not affected; code that re-encodes what it decoded
must not rely on this for numbers it has to keep exact.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


def loads(text: str | bytes) -> Any:
    """Decode `text`; raises ValueError (or RecursionError) where json.loads would."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)
