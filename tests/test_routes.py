"""RouteTable: longest prefix on segment boundaries, base path and query carried over."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trioproxy.config import Route, default_routes
from trioproxy.routes import RouteTable


def table(*routes: tuple[str, str]) -> RouteTable:
    return RouteTable([Route(prefix, upstream) for prefix, upstream in routes])


def matched(t: RouteTable, target: str) -> tuple[str, str] | None:
    """(prefix of the matching route, upstream target), or None."""
    result = t.match(target)
    return None if result is None else (result[0].prefix, result[1])


DEFAULTS = RouteTable(default_routes())


@pytest.mark.parametrize(
    ("target", "prefix", "upstream"),
    [
        ("/openai/v1/chat/completions?x=1", "/openai", "/v1/chat/completions?x=1"),
        ("/v1/messages?beta=true", "/", "/v1/messages?beta=true"),
        ("/openai", "/openai", "/"),
        ("/openai/", "/openai", "/"),
        ("/openai?x", "/openai", "/?x"),
        ("/openai/v1/x", "/openai", "/v1/x"),
        ("/openaiX", "/", "/openaiX"),
        ("/openaiX/v1", "/", "/openaiX/v1"),
        ("/", "/", "/"),
        ("/?a=1", "/", "/?a=1"),
        ("/v1/messages", "/", "/v1/messages"),
    ],
)
def test_default_routes(target: str, prefix: str, upstream: str) -> None:
    assert matched(DEFAULTS, target) == (prefix, upstream)


def test_match_returns_the_route_itself() -> None:
    route, upstream = DEFAULTS.match("/openai/v1/models")  # type: ignore[misc]
    assert route == default_routes()[1]
    assert route.host == "api.openai.com"
    assert upstream == "/v1/models"


@pytest.mark.parametrize(
    ("target", "upstream"),
    [
        ("/x/v1/y", "/api/v1/y"),
        ("/x", "/api"),
        ("/x/", "/api/"),
        ("/x?q", "/api?q"),
        ("/x/?q", "/api/?q"),
    ],
)
def test_base_path(target: str, upstream: str) -> None:
    t = table(("/x", "http://h/api"))
    assert matched(t, target) == ("/x", upstream)


def test_base_path_on_root_prefix() -> None:
    t = table(("/", "http://h/api/"))
    assert matched(t, "/v1/y?z") == ("/", "/api/v1/y?z")
    assert matched(t, "/") == ("/", "/api/")


def test_query_kept_byte_for_byte() -> None:
    target = "/openai/v1/a%2Fb?x=%20&y=a/b?c&&z=%ZZ#no"
    assert matched(DEFAULTS, target) == ("/openai", "/v1/a%2Fb?x=%20&y=a/b?c&&z=%ZZ#no")


def test_longest_prefix_wins_regardless_of_order() -> None:
    routes = [("/a", "http://1"), ("/a/b/c", "http://3"), ("/", "http://0"), ("/a/b", "http://2")]
    for ordering in (routes, routes[::-1]):
        t = table(*ordering)
        assert matched(t, "/a/b/c/d") == ("/a/b/c", "/d")
        assert matched(t, "/a/b/cd") == ("/a/b", "/cd")
        assert matched(t, "/a/b") == ("/a/b", "/")
        assert matched(t, "/a/bc") == ("/a", "/bc")
        assert matched(t, "/a?b/c") == ("/a", "/?b/c")
        assert matched(t, "/ab") == ("/", "/ab")
        assert matched(t, "/") == ("/", "/")


def test_no_root_route_means_no_match() -> None:
    t = table(("/openai", "http://h"))
    assert t.match("/v1/messages") is None
    assert t.match("/openaiX") is None
    assert t.match("/open") is None
    assert t.match("/") is None


def test_prefix_match_is_case_sensitive() -> None:
    t = table(("/openai", "http://h"))
    assert t.match("/OpenAI/v1") is None


def test_trailing_slash_in_configured_prefix() -> None:
    t = table(("/openai/", "http://h"))
    assert matched(t, "/openai") == ("/openai", "/")
    assert matched(t, "/openai/v1") == ("/openai", "/v1")


@pytest.mark.parametrize(
    ("target", "upstream"),
    [
        ("http://proxy.local:8765/openai/v1/x?q=1", "/v1/x?q=1"),
        ("HTTPS://proxy.local/openai", "/"),
        ("http://proxy.local?q", None),
    ],
)
def test_absolute_form_target(target: str, upstream: str | None) -> None:
    # RFC 9112 §3.2.2: a server must accept the absolute form; only its path counts.
    t = table(("/openai", "http://h"))
    assert matched(t, target) == (None if upstream is None else ("/openai", upstream))


def test_absolute_form_without_path() -> None:
    assert matched(DEFAULTS, "http://proxy.local?q") == ("/", "/?q")
    assert matched(DEFAULTS, "http://proxy.local") == ("/", "/")


@pytest.mark.parametrize("target", ["*", "", "example.com:443", "v1/messages"])
def test_other_target_forms_do_not_match(target: str) -> None:
    assert DEFAULTS.match(target) is None


def test_duplicate_prefixes_rejected() -> None:
    with pytest.raises(ValueError, match="duplicate route prefix '/a'"):
        table(("/a", "http://1"), ("/a/", "http://2"))


def test_empty_table() -> None:
    assert RouteTable([]).match("/") is None


# -- properties --------------------------------------------------------------------------

segment = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-._~%", min_size=1, max_size=8)
prefixes = st.lists(segment, min_size=1, max_size=4).map(lambda parts: "/" + "/".join(parts))
paths = st.lists(segment, max_size=4).map(lambda parts: "".join("/" + p for p in parts))
queries = st.one_of(
    st.just(""), st.text(alphabet="abc=&/?%+ 0123456789", max_size=12).map(lambda q: "?" + q)
)
base_paths = st.one_of(st.just(""), paths)


@given(prefix=prefixes, path=paths, query=queries, base_path=base_paths)
def test_prefix_plus_rest_round_trips(prefix: str, path: str, query: str, base_path: str) -> None:
    """prefix + rest maps to base_path + rest, with "/" standing in for an empty path."""
    route = Route(prefix, "http://upstream.example" + base_path)
    t = RouteTable([Route("/", "http://other.example"), route])
    rest = path + query
    result = t.match(prefix + rest)
    assert result is not None
    got_route, upstream = result
    assert got_route is route
    expected = base_path + rest
    if not expected.startswith("/"):
        expected = "/" + expected
    assert upstream == expected
    assert upstream.startswith("/")
    assert upstream.endswith(query)


@given(prefix=prefixes, extra=segment, path=paths)
def test_no_match_inside_a_segment(prefix: str, extra: str, path: str) -> None:
    """A prefix never matches a target that continues its last segment."""
    t = RouteTable([Route("/", "http://other.example"), Route(prefix, "http://x.example")])
    route, upstream = t.match(prefix + extra + path)  # type: ignore[misc]
    assert route.prefix == "/"
    assert upstream == prefix + extra + path


@given(prefix_list=st.lists(prefixes, min_size=1, max_size=6, unique=True), path=paths)
def test_longest_matching_prefix_wins(prefix_list: list[str], path: str) -> None:
    t = RouteTable([Route(p, "http://x.example") for p in prefix_list])
    for p in prefix_list:
        target = p + path
        candidates = [
            q for q in prefix_list
            if target == q or target.startswith(q + "/")
        ]
        route, _ = t.match(target)  # type: ignore[misc]
        assert route.prefix == max(candidates, key=len)
