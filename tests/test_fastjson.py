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


ANY_SIZE_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.integers(2**63, 2**70)
    | st.integers(-(2**70), -(2**63)) | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


@given(ANY_SIZE_JSON)
def test_loads_exact_reads_integers_of_any_size_as_the_json_module_does(value: object) -> None:
    text = json.dumps(value)
    decoded = fastjson.loads_exact(text.encode("utf-8", "surrogatepass"))
    assert decoded == json.loads(text)
    assert repr(decoded) == repr(json.loads(text))  # an int stays an int, a float a float


@pytest.mark.parametrize(
    "text",
    [
        b"18446744073709551616",  # 2**64: the first one orjson gets wrong
        b"-9223372036854775809",  # -2**63 - 1
        b'{"tool": {"input": {"amount_wei": 123456789012345678901234567890}}}',
        b'[1.5, [{"a": 340282366920938463463374607431768211456}]]',
    ],
)
def test_loads_exact_keeps_integers_beyond_64_bits(text: bytes) -> None:
    assert repr(fastjson.loads(text)) != repr(json.loads(text))  # what loads_exact is for
    assert repr(fastjson.loads_exact(text)) == repr(json.loads(text))


def test_nan_and_infinity_are_read_as_the_json_module_reads_them() -> None:
    value = fastjson.loads(b"[NaN, Infinity, -Infinity]")
    assert math.isnan(value[0])
    assert value[1:] == [math.inf, -math.inf]


@pytest.mark.parametrize("text", [b"", b"{", b'{"a": }', b"\xff", b"[1,]", "nul"])
def test_bad_json_raises_value_error(text: bytes | str) -> None:
    with pytest.raises(ValueError):
        fastjson.loads(text)
