"""fastjson.loads gives the json module's results and errors, whichever decoder ran."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trioproxy import fastjson

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


@given(JSON_VALUES, st.booleans())
def test_any_json_decodes_as_the_json_module_decodes_it(value: object, ascii_only: bool) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only)
    assert fastjson.loads(text) == json.loads(text)
    assert fastjson.loads(text.encode("utf-8", "surrogatepass")) == json.loads(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (b'"\\ud800"', "\ud800"),  # a lone surrogate escape
        ('{"a": 1, "a": 2}', {"a": 2}),
    ],
)
def test_what_orjson_refuses_the_json_module_reads(text: bytes | str, expected: object) -> None:
    assert fastjson.loads(text) == expected


def test_an_integer_beyond_64_bits_reads_as_a_float() -> None:
    # The one documented difference from json.loads: callers that re-encode must not
    # use fastjson for numbers they have to keep exact.
    assert fastjson.loads(b"[18446744073709551615]") == [2**64 - 1]
    value = fastjson.loads(b"[18446744073709551616]")[0]
    assert isinstance(value, float)
    assert value == 2.0**64


def test_nan_and_infinity_are_read_as_the_json_module_reads_them() -> None:
    value = fastjson.loads(b"[NaN, Infinity, -Infinity]")
    assert math.isnan(value[0])
    assert value[1:] == [math.inf, -math.inf]


@pytest.mark.parametrize("text", [b"", b"{", b'{"a": }', b"\xff", b"[1,]", "nul"])
def test_bad_json_raises_value_error(text: bytes | str) -> None:
    with pytest.raises(ValueError):
        fastjson.loads(text)
