"""Config loading and validation: every rule with its exact `file:key: problem` message."""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from trioproxy.config import (
    Config,
    ConfigError,
    LedgerConfig,
    LimitsConfig,
    Route,
    ServerConfig,
    TimeoutsConfig,
    UpstreamConfig,
    default_config,
    default_routes,
    format_duration,
    format_size,
    load_config,
    parse_config,
    parse_duration,
    parse_size,
    starter_config_dict,
    with_overrides,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
SRC = "config.toml"


def error_of(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(data, SRC)
    return str(info.value)


def without_source(config: Config) -> Config:
    return dataclasses.replace(config, source=None)


# -- defaults ----------------------------------------------------------------------------


def test_defaults() -> None:
    c = default_config()
    assert c == Config()
    assert c.source is None
    assert c.server == ServerConfig("127.0.0.1", 8765, 1024, 30.0, "info")
    assert c.limits == LimitsConfig(65536, 64 * 1024 * 1024)
    assert c.timeouts == TimeoutsConfig(30.0, 120.0, 10.0, 600.0, 300.0, 3600.0)
    assert c.upstream == UpstreamConfig("h11", 64, 60.0, None, False, None)
    assert c.ledger == LedgerConfig(True, "trioproxy.db", 200, 1.0, 300.0, 10000)
    assert c.routes == default_routes()


def test_default_routes() -> None:
    anthropic, openai = default_routes()
    assert (anthropic.prefix, anthropic.flavour) == ("/", "anthropic")
    assert (anthropic.scheme, anthropic.host, anthropic.port) == ("https", "api.anthropic.com", 443)
    assert (anthropic.base_path, anthropic.host_header) == ("", "api.anthropic.com")
    assert (openai.prefix, openai.upstream, openai.flavour) == (
        "/openai", "https://api.openai.com", "openai",
    )


def test_empty_document_is_the_defaults() -> None:
    c = parse_config({}, SRC)
    assert c.source == SRC
    assert without_source(c) == default_config()


def test_dataclasses_are_frozen() -> None:
    c = default_config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.server.port = 1  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.routes[0].host = "evil"  # type: ignore[misc]


def test_repo_config_toml_equals_the_defaults() -> None:
    path = REPO_ROOT / "config.toml"
    c = load_config(path)
    assert c.source == str(path)
    assert without_source(c) == default_config()
    # Equal route by route, derived fields included.
    for got, want in zip(c.routes, default_config().routes, strict=True):
        assert got.host_header == want.host_header
        assert got.base_path == want.base_path


def test_starter_config_round_trips_through_tomli_w(tmp_path: Path) -> None:
    data = starter_config_dict()
    assert set(data) == {"server", "limits", "timeouts", "upstream", "ledger", "routes"}
    assert isinstance(data["routes"], list)
    assert without_source(parse_config(data)) == default_config()
    path = tmp_path / "starter.toml"
    path.write_text(tomli_w.dumps(data))
    assert without_source(load_config(path)) == default_config()


def test_starter_config_covers_every_field() -> None:
    data = starter_config_dict()
    optional = {"ca_file", "proxy"}  # None by default: TOML has no null, so left out
    for name in ("server", "limits", "timeouts", "upstream", "ledger"):
        fields = {f.name for f in dataclasses.fields(getattr(default_config(), name))}
        assert set(data[name]) == fields - optional


def test_starter_config_is_human() -> None:
    data = starter_config_dict()
    assert data["limits"] == {"max_header_size": "64KiB", "max_body_size": "64MiB"}
    assert data["timeouts"]["total"] == "1h"
    assert data["timeouts"]["request_body"] == "2m"


# -- a full document ---------------------------------------------------------------------


def test_full_document(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    path = tmp_path / "c.toml"
    path.write_text(
        f"""
[server]
host = "0.0.0.0"
port = 0
max_connections = 10
grace_period = 5
log_level = "debug"

[limits]
max_header_size = "16KiB"
max_body_size = 1000

[timeouts]
request_head = "250ms"
request_body = 1.5
upstream_connect = "off"
first_byte = 0
idle = "1h30m"
total = "OFF"

[upstream]
transport = "httpx"
pool_size = 0
pool_idle = "0s"
ca_file = {str(ca)!r}
http2 = true
proxy = "http://proxy.example:3128"

[ledger]
enabled = false
path = "/var/lib/trioproxy/ledger.db"
batch_size = 1
flush_interval = "100ms"
checkpoint_interval = "1m"
queue_size = 5

[[routes]]
prefix = "/ollama/"
upstream = "http://127.0.0.1:11434/"
flavour = "openai"
transport = "h11"
"""
    )
    c = load_config(path)
    assert c.server == ServerConfig("0.0.0.0", 0, 10, 5.0, "debug")
    assert c.limits == LimitsConfig(16384, 1000)
    assert c.timeouts == TimeoutsConfig(0.25, 1.5, math.inf, math.inf, 5400.0, math.inf)
    assert c.upstream == UpstreamConfig(
        "httpx", 0, 0.0, str(ca), True, "http://proxy.example:3128"
    )
    assert c.ledger == LedgerConfig(False, "/var/lib/trioproxy/ledger.db", 1, 0.1, 60.0, 5)
    (route,) = c.routes
    assert route == Route("/ollama", "http://127.0.0.1:11434/", "openai", "h11")
    assert (route.scheme, route.host, route.port) == ("http", "127.0.0.1", 11434)
    assert (route.base_path, route.host_header) == ("", "127.0.0.1:11434")


# -- durations and sizes -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (0, 0.0),
        (30, 30.0),
        (0.5, 0.5),
        ("250ms", 0.25),
        ("30s", 30.0),
        ("1.5s", 1.5),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("1h30m", 5400.0),
        ("1m30s", 90.0),
        ("1h1m1s1ms", 3661.001),
        (" 10s ", 10.0),
        ("0s", 0.0),
    ],
)
def test_parse_duration(value: object, seconds: float) -> None:
    assert parse_duration(value) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "value", ["fast", "", "30", "30 s", "s", "1d", "30m1h", "1m1m", "-5s", "1.s", True, [1]]
)
def test_parse_duration_rejects(value: object) -> None:
    with pytest.raises(ValueError, match="expected a duration like '30s', '5m' or '250ms'"):
        parse_duration(value)


def test_parse_duration_negative_and_nan() -> None:
    with pytest.raises(ValueError, match="must not be negative, got -1"):
        parse_duration(-1)
    with pytest.raises(ValueError, match="expected a duration"):
        parse_duration(math.nan)


@pytest.mark.parametrize(
    ("value", "size"),
    [
        (1, 1),
        (65536, 65536),
        ("123B", 123),
        ("100KB", 100_000),
        ("10MB", 10_000_000),
        ("1GB", 10**9),
        ("512KiB", 512 * 1024),
        ("64MiB", 64 * 1024**2),
        ("1GiB", 1024**3),
        ("1.5KiB", 1536),
        ("64 MiB", 64 * 1024**2),
        ("64mib", 64 * 1024**2),
    ],
)
def test_parse_size(value: object, size: int) -> None:
    assert parse_size(value) == size


@pytest.mark.parametrize("value", ["big", "", "64", "64XB", "MiB", "-1KiB", 1.5, True, None])
def test_parse_size_rejects(value: object) -> None:
    with pytest.raises(
        ValueError, match="expected a size like '64MiB', '512KiB' or a number of bytes"
    ):
        parse_size(value)


@pytest.mark.parametrize(("value", "shown"), [(0, "0"), (-5, "-5"), ("0KiB", "'0KiB'")])
def test_parse_size_must_be_positive(value: object, shown: str) -> None:
    with pytest.raises(ValueError, match=f"^must be greater than 0, got {shown}$"):
        parse_size(value)


def test_parse_size_whole_bytes() -> None:
    with pytest.raises(ValueError, match=r"^'1.5B' is not a whole number of bytes$"):
        parse_size("1.5B")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(30.0, "30s"), (120.0, "2m"), (3600.0, "1h"), (5400.0, "1h30m"), (0.25, "250ms"),
     (0.0, "0s"), (math.inf, "off"), (1e-4, 1e-4)],
)
def test_format_duration(seconds: float, text: object) -> None:
    assert format_duration(seconds) == text
    if isinstance(text, str) and text != "off":
        assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("size", "text"), [(65536, "64KiB"), (64 * 2**20, "64MiB"), (2**30, "1GiB"), (1000, 1000)]
)
def test_format_size(size: int, text: object) -> None:
    assert format_size(size) == text
    assert parse_size(text) == size


# -- validation: one message per rule ----------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        # durations and sizes, in context
        ({"timeouts": {"idle": "fast"}},
         "config.toml:timeouts.idle: expected a duration like '30s', '5m' or '250ms', got 'fast'"),
        ({"timeouts": {"total": -1}},
         "config.toml:timeouts.total: must not be negative, got -1"),
        ({"timeouts": {"first_byte": True}},
         "config.toml:timeouts.first_byte: expected a duration like '30s', '5m' or '250ms',"
         " got true"),
        ({"server": {"grace_period": "off"}},
         "config.toml:server.grace_period: expected a duration like '30s', '5m' or '250ms',"
         " got 'off'"),
        ({"server": {"grace_period": math.inf}},
         "config.toml:server.grace_period: must be finite, got inf"),
        ({"ledger": {"flush_interval": 0}},
         "config.toml:ledger.flush_interval: must be greater than 0, got 0"),
        ({"ledger": {"checkpoint_interval": "0s"}},
         "config.toml:ledger.checkpoint_interval: must be greater than 0, got '0s'"),
        ({"limits": {"max_body_size": "big"}},
         "config.toml:limits.max_body_size: expected a size like '64MiB', '512KiB' or a number"
         " of bytes, got 'big'"),
        ({"limits": {"max_header_size": 0}},
         "config.toml:limits.max_header_size: must be greater than 0, got 0"),
        # server
        ({"server": {"host": ""}}, "config.toml:server.host: must not be empty, got ''"),
        ({"server": {"host": 127}}, "config.toml:server.host: expected a string, got 127"),
        ({"server": {"port": 70000}},
         "config.toml:server.port: expected an integer from 0 to 65535 (0 picks a free port),"
         " got 70000"),
        ({"server": {"port": -1}},
         "config.toml:server.port: expected an integer from 0 to 65535 (0 picks a free port),"
         " got -1"),
        ({"server": {"port": "8765"}},
         "config.toml:server.port: expected an integer from 0 to 65535 (0 picks a free port),"
         " got '8765'"),
        ({"server": {"port": True}},
         "config.toml:server.port: expected an integer from 0 to 65535 (0 picks a free port),"
         " got true"),
        ({"server": {"max_connections": 0}},
         "config.toml:server.max_connections: expected an integer >= 1, got 0"),
        ({"server": {"max_connections": 1.0}},
         "config.toml:server.max_connections: expected an integer >= 1, got 1.0"),
        ({"server": {"log_level": "warn"}},
         "config.toml:server.log_level: expected one of 'debug', 'info', 'warning', 'error',"
         " got 'warn'; did you mean 'warning'?"),
        ({"server": {"log_level": "loud"}},
         "config.toml:server.log_level: expected one of 'debug', 'info', 'warning', 'error',"
         " got 'loud'"),
        # upstream
        ({"upstream": {"transport": "requests"}},
         "config.toml:upstream.transport: expected one of 'h11', 'httpx', got 'requests'"),
        ({"upstream": {"transport": "htpx"}},
         "config.toml:upstream.transport: expected one of 'h11', 'httpx', got 'htpx';"
         " did you mean 'httpx'?"),
        ({"upstream": {"pool_size": -1}},
         "config.toml:upstream.pool_size: expected an integer >= 0, got -1"),
        ({"upstream": {"http2": "yes"}},
         "config.toml:upstream.http2: expected true or false, got 'yes'"),
        ({"upstream": {"http2": True}},
         'config.toml:upstream.http2: http2 = true needs transport = "httpx"; set transport ='
         ' "httpx" in [upstream], or on the routes that need it (the h11 transport speaks'
         " plain HTTP/1.1 and connects directly)"),
        ({"upstream": {"proxy": "http://proxy:3128"}},
         'config.toml:upstream.proxy: an outbound proxy needs transport = "httpx"; set'
         ' transport = "httpx" in [upstream], or on the routes that need it (the h11'
         " transport speaks plain HTTP/1.1 and connects directly)"),
        ({"upstream": {"transport": "httpx", "proxy": "proxy:3128"}},
         "config.toml:upstream.proxy: expected a proxy URL such as 'http://proxy.example:3128'"
         " or 'socks5://127.0.0.1:1080', got 'proxy:3128'"),
        # ledger
        ({"ledger": {"enabled": 1}}, "config.toml:ledger.enabled: expected true or false, got 1"),
        ({"ledger": {"path": ""}}, "config.toml:ledger.path: must not be empty, got ''"),
        ({"ledger": {"batch_size": 0}},
         "config.toml:ledger.batch_size: expected an integer >= 1, got 0"),
        ({"ledger": {"queue_size": 0}},
         "config.toml:ledger.queue_size: expected an integer >= 1, got 0"),
        # structure
        ({"server": 5}, "config.toml:server: expected a table written [server], got 5"),
        ({"timeouts": {"idel": 1}}, "config.toml:timeouts.idel: unknown key; did you mean 'idle'?"),
        ({"timout": {"idle": 1}}, "config.toml:timout: unknown section; did you mean 'timeouts'?"),
        ({"server": {"zzz": 1}},
         "config.toml:server.zzz: unknown key; known keys: host, port, max_connections,"
         " grace_period, log_level"),
        ({"zzz": {}},
         "config.toml:zzz: unknown section; known sections: server, limits, timeouts,"
         " upstream, ledger, routes"),
        ({"port": 8080},
         "config.toml:port: unknown top-level key; did you mean to put it in [server]?"),
        ({"route": [{"prefix": "/", "upstream": "http://x"}]},
         "config.toml:route: unknown key; did you mean 'routes'?"),
        # the optimize layer
        ({"routes": [{"prefix": "/", "upstream": "http://x", "optimize": {"mode": "yes"}}]},
         "config.toml:routes[0].optimize.mode: expected one of 'off', 'dry-run', 'on',"
         " got 'yes'"),
        ({"routes": [{"prefix": "/", "upstream": "http://x", "optimize": {"ttl": "10m"}}]},
         "config.toml:routes[0].optimize.ttl: expected one of '5m', '1h', got '10m'"),
        ({"routes": [{"prefix": "/", "upstream": "http://x", "optimize": {"dedupe": True}}]},
         "config.toml:routes[0].optimize.dedupe: unknown key; did you mean 'dedup'?"),
        ({"routes": [{"prefix": "/", "upstream": "http://x", "optimize": "on"}]},
         "config.toml:routes[0].optimize: expected a table written [routes.optimize], got 'on'"),
        ({"routes": [{"prefix": "/", "upstream": "http://x", "flavour": "openai",
                      "optimize": {"mode": "on"}}]},
         "config.toml:routes[0].optimize.mode: 'on' needs an Anthropic route (flavour"
         " 'anthropic' or 'auto', no translate): it rewrites POST /v1/messages bodies"),
        # translation routes
        ({"routes": [{"prefix": "/", "upstream": "http://x", "translate": "claude"}]},
         "config.toml:routes[0].translate: expected one of 'anthropic-to-openai',"
         " 'openai-to-anthropic', got 'claude'"),
        ({"routes": [{"prefix": "/", "upstream": "http://x", "translate": "anthropic-to-openai",
                      "flavour": "openai"}]},
         "config.toml:routes[0].flavour: 'openai' contradicts translate ="
         " 'anthropic-to-openai'; leave flavour out"),
        ({"routes": [{"prefix": "/", "upstream": "http://x", "models": {"a": "b"}}]},
         "config.toml:routes[0].models: needs translate on the same route"),
        ({"routes": [{"prefix": "/", "upstream": "http://x", "translate": "anthropic-to-openai",
                      "max_tokens_field": "max_new_tokens"}]},
         "config.toml:routes[0].max_tokens_field: expected one of 'max_tokens',"
         " 'max_completion_tokens', got 'max_new_tokens'; did you mean 'max_tokens'?"),
        ({"routes": [{"prefix": "/", "upstream": "http://x", "translate": "openai-to-anthropic",
                      "models": {"gpt-4o": 4}}]},
         "config.toml:routes[0].models: 'gpt-4o': expected an upstream model name string,"
         " got 4"),
        ({"routes": [{"prefix": "/", "upstream": "http://x", "translate": "openai-to-anthropic",
                      "models": ["gpt-4o"]}]},
         "config.toml:routes[0].models: expected a table of client model name = upstream"
         " model name, got an array"),
    ],
)
def test_validation_messages(data: dict[str, Any], message: str) -> None:
    assert error_of(data) == message


def test_http2_and_proxy_allowed_with_httpx() -> None:
    up = {"transport": "httpx", "http2": True, "proxy": "socks5://127.0.0.1:1080"}
    c = parse_config({"upstream": up})
    assert c.upstream.http2
    assert c.upstream.proxy == "socks5://127.0.0.1:1080"


def test_http2_allowed_when_a_route_uses_httpx() -> None:
    c = parse_config(
        {
            "upstream": {"http2": True},
            "routes": [{"prefix": "/", "upstream": "https://x.example", "transport": "httpx"}],
        }
    )
    assert c.upstream.transport == "h11"
    assert c.upstream.http2


def test_ca_file_must_exist(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    message = error_of({"upstream": {"ca_file": str(missing)}})
    assert message == f"config.toml:upstream.ca_file: file not found: {str(missing)!r}"


def test_ca_file_relative_path_names_the_working_directory() -> None:
    message = error_of({"upstream": {"ca_file": "no-such-ca.pem"}})
    assert message == (
        "config.toml:upstream.ca_file: file not found: 'no-such-ca.pem'"
        f" (relative to {os.getcwd()})"
    )


def test_host_in_brackets_is_unwrapped() -> None:
    assert parse_config({"server": {"host": "[::1]"}}).server.host == "::1"


# -- routes ------------------------------------------------------------------------------


def route_error(*routes: dict[str, Any]) -> str:
    return error_of({"routes": list(routes)})


URL_EXPECTED = "expected an http:// or https:// URL such as 'https://api.openai.com'"


@pytest.mark.parametrize(
    ("route", "message"),
    [
        ({"prefix": "openai", "upstream": "http://x"},
         "config.toml:routes[0].prefix: expected a path starting with '/', such as '/openai',"
         " got 'openai'"),
        ({"prefix": 5, "upstream": "http://x"},
         "config.toml:routes[0].prefix: expected a path starting with '/', such as '/openai',"
         " got 5"),
        ({"prefix": "/a?b", "upstream": "http://x"},
         "config.toml:routes[0].prefix: expected a path without query, fragment or spaces,"
         " got '/a?b'"),
        ({"upstream": "http://x"},
         "config.toml:routes[0].prefix: missing; expected a path such as '/openai'"),
        ({"prefix": "/"},
         f"config.toml:routes[0].upstream: missing; {URL_EXPECTED}"),
        ({"prefix": "/", "upstream": "ftp://x"},
         f"config.toml:routes[0].upstream: {URL_EXPECTED}, got 'ftp://x'"),
        ({"prefix": "/", "upstream": "api.openai.com"},
         f"config.toml:routes[0].upstream: {URL_EXPECTED}, got 'api.openai.com'"),
        ({"prefix": "/", "upstream": "https:/x"},
         f"config.toml:routes[0].upstream: {URL_EXPECTED}, got 'https:/x'"),
        ({"prefix": "/", "upstream": "http://"},
         f"config.toml:routes[0].upstream: {URL_EXPECTED} (with a host), got 'http://'"),
        ({"prefix": "/", "upstream": "http://x/?a=1"},
         "config.toml:routes[0].upstream: must not have a query or fragment, got 'http://x/?a=1'"),
        ({"prefix": "/", "upstream": "http://x/#f"},
         "config.toml:routes[0].upstream: must not have a query or fragment, got 'http://x/#f'"),
        ({"prefix": "/", "upstream": "http://u:p@x"},
         "config.toml:routes[0].upstream: must not contain credentials; clients send their own"
         " auth headers, got 'http://u:p@x'"),
        ({"prefix": "/", "upstream": "http://a b"},
         "config.toml:routes[0].upstream: must not contain spaces or control characters,"
         " got 'http://a b'"),
        ({"prefix": "/", "upstream": "http://a\x7fb"},
         "config.toml:routes[0].upstream: must not contain spaces or control characters,"
         " got 'http://a\\x7fb'"),
        ({"prefix": "/", "upstream": "http://x:99999"},
         "config.toml:routes[0].upstream: has an invalid port, expected 1 to 65535,"
         " got 'http://x:99999'"),
        ({"prefix": "/", "upstream": 5},
         f"config.toml:routes[0].upstream: {URL_EXPECTED}, got 5"),
        ({"prefix": "/", "upstream": "http://x", "flavour": "gemini"},
         "config.toml:routes[0].flavour: expected one of 'anthropic', 'openai', 'auto',"
         " got 'gemini'"),
        ({"prefix": "/", "upstream": "http://x", "flavor": "openai"},
         "config.toml:routes[0].flavor: unknown key; did you mean 'flavour'?"),
        ({"prefix": "/", "upstream": "http://x", "transport": "curl"},
         "config.toml:routes[0].transport: expected one of 'h11', 'httpx', got 'curl'"),
    ],
)
def test_route_messages(route: dict[str, Any], message: str) -> None:
    assert route_error(route) == message


def test_route_index_in_messages() -> None:
    ok = {"prefix": "/", "upstream": "http://x"}
    assert route_error(ok, {"prefix": "/b", "upstream": "ftp://y"}) == (
        f"config.toml:routes[1].upstream: {URL_EXPECTED}, got 'ftp://y'"
    )


@pytest.mark.parametrize(("first", "second"), [("/a", "/a"), ("/a", "/a/"), ("/", "//")])
def test_duplicate_prefixes(first: str, second: str) -> None:
    normalized = first.rstrip("/") or "/"
    message = route_error(
        {"prefix": "/z", "upstream": "http://x"},
        {"prefix": first, "upstream": "http://x"},
        {"prefix": second, "upstream": "http://y"},
    )
    assert message == (
        f"config.toml:routes[2].prefix: duplicate of routes[1].prefix ({normalized!r})"
    )


def test_routes_shape_errors() -> None:
    expected = "expected an array of tables written [[routes]]"
    assert error_of({"routes": {"prefix": "/"}}) == (
        f"config.toml:routes: {expected}, got a single table [routes]"
    )
    assert error_of({"routes": "x"}) == f"config.toml:routes: {expected}, got 'x'"
    assert error_of({"routes": []}) == (
        "config.toml:routes: expected at least one route; leave routes out to use the defaults"
    )
    assert error_of({"routes": ["/"]}) == (
        "config.toml:routes[0]: expected a table with prefix and upstream, got '/'"
    )


@pytest.mark.parametrize(
    ("url", "scheme", "host", "port", "base_path", "host_header"),
    [
        ("https://api.openai.com", "https", "api.openai.com", 443, "", "api.openai.com"),
        ("https://api.openai.com/", "https", "api.openai.com", 443, "", "api.openai.com"),
        ("https://api.openai.com:443/v1/", "https", "api.openai.com", 443, "/v1", "api.openai.com"),
        ("http://localhost:80/api/v1", "http", "localhost", 80, "/api/v1", "localhost"),
        ("http://127.0.0.1:11434", "http", "127.0.0.1", 11434, "", "127.0.0.1:11434"),
        ("https://H.Example:8443/X", "https", "h.example", 8443, "/X", "h.example:8443"),
        ("http://[::1]:8000/v1", "http", "::1", 8000, "/v1", "[::1]:8000"),
        ("http://[::1]", "http", "::1", 80, "", "[::1]"),
        ("https://bücher.example", "https", "xn--bcher-kva.example", 443, "",
         "xn--bcher-kva.example"),
    ],
)
def test_route_derived_fields(
    url: str, scheme: str, host: str, port: int, base_path: str, host_header: str
) -> None:
    route = Route("/", url)
    assert (route.scheme, route.host, route.port) == (scheme, host, port)
    assert (route.base_path, route.host_header) == (base_path, host_header)
    assert route.upstream == url  # kept as written, for messages and logs


def test_route_prefix_is_normalized() -> None:
    assert Route("/openai/", "http://x").prefix == "/openai"
    assert Route("/", "http://x").prefix == "/"
    assert Route("//", "http://x").prefix == "/"


def test_route_constructor_validates() -> None:
    with pytest.raises(ValueError, match="expected an http:// or https:// URL"):
        Route("/", "ftp://x")
    with pytest.raises(ValueError, match="expected a path starting with '/'"):
        Route("x", "http://x")
    with pytest.raises(ValueError, match="expected one of 'anthropic', 'openai', 'auto'"):
        Route("/", "http://x", flavour="gemini")
    with pytest.raises(ValueError, match="expected one of 'h11', 'httpx'"):
        Route("/", "http://x", transport="curl")


# -- files -------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "missing.toml"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == (
        f"{path}: no such file; write a starter config with 'trioproxy init'"
    )
    assert info.value.source == str(path)
    assert info.value.key is None


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory, expected a TOML file"):
        load_config(tmp_path)


def test_toml_syntax_error_names_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[server]\nhost = "127.0.0.1"\nport = = 8765\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}:3:8: invalid TOML: invalid value"
    assert info.value.key == "3:8"


def test_toml_error_at_end_of_document(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[server\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}:")
    assert "invalid TOML: " in str(info.value)


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'[server]\nhost = "\xe9"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: not valid UTF-8 at byte 17; TOML files must be UTF-8"


def test_validation_error_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[timeouts]\nidle = 'fast'\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == (
        f"{path}:timeouts.idle: expected a duration like '30s', '5m' or '250ms', got 'fast'"
    )
    assert (info.value.key, info.value.problem) == (
        "timeouts.idle", "expected a duration like '30s', '5m' or '250ms', got 'fast'"
    )


def test_default_source_name() -> None:
    with pytest.raises(ConfigError, match=r"^<config>:server\.port: "):
        parse_config({"server": {"port": -1}})


# -- command-line overrides --------------------------------------------------------------


@pytest.mark.parametrize(
    ("listen", "host", "port"),
    [
        ("0.0.0.0:9000", "0.0.0.0", 9000),
        ("localhost:0", "localhost", 0),
        (":9000", "127.0.0.1", 9000),
        ("[::1]:9000", "::1", 9000),
        ("[::]:65535", "::", 65535),
    ],
)
def test_override_listen(listen: str, host: str, port: int) -> None:
    c = with_overrides(default_config(), listen=listen)
    assert (c.server.host, c.server.port) == (host, port)
    assert c.server.max_connections == 1024  # the rest is untouched


def test_override_listen_keeps_configured_host() -> None:
    base = parse_config({"server": {"host": "10.0.0.1"}})
    assert with_overrides(base, listen=":1").server.host == "10.0.0.1"


@pytest.mark.parametrize(
    ("listen", "message"),
    [
        ("9000", "--listen: expected HOST:PORT, ':PORT' or '[::1]:PORT', got '9000'"),
        ("host:", "--listen: expected HOST:PORT, ':PORT' or '[::1]:PORT', got 'host:'"),
        ("host:http", "--listen: expected HOST:PORT, ':PORT' or '[::1]:PORT', got 'host:http'"),
        ("[::1]9000", "--listen: expected HOST:PORT, ':PORT' or '[::1]:PORT', got '[::1]9000'"),
        ("[]:9000", "--listen: expected HOST:PORT, ':PORT' or '[::1]:PORT', got '[]:9000'"),
        ("h:70000",
         "--listen: port must be from 0 to 65535 (0 picks a free port), got 'h:70000'"),
        ("::1:9000",
         "--listen: put an IPv6 address in brackets, like '[::1]:8765', got '::1:9000'"),
    ],
)
def test_override_listen_errors(listen: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        with_overrides(default_config(), listen=listen)
    assert str(info.value) == message
    assert info.value.key == "--listen"


def test_override_upstream_replaces_all_routes() -> None:
    c = with_overrides(default_config(), upstream="http://127.0.0.1:11434/v1")
    assert c.routes == (Route("/", "http://127.0.0.1:11434/v1", "auto"),)
    assert c.routes[0].base_path == "/v1"


def test_override_upstream_error() -> None:
    with pytest.raises(ConfigError) as info:
        with_overrides(default_config(), upstream="localhost:11434")
    assert str(info.value) == f"--upstream: {URL_EXPECTED}, got 'localhost:11434'"


def test_override_ledger() -> None:
    c = with_overrides(default_config(), ledger="/tmp/x.db")
    assert c.ledger == dataclasses.replace(default_config().ledger, path="/tmp/x.db")
    with pytest.raises(ConfigError, match=r"^--ledger: must not be empty, got ''$"):
        with_overrides(default_config(), ledger="")


def test_no_overrides_is_identity() -> None:
    c = parse_config({"server": {"port": 1}}, SRC)
    assert with_overrides(c) == c
    assert with_overrides(c, listen=":2").source == SRC


def test_override_upstream_rechecks_transport_options() -> None:
    c = parse_config(
        {
            "upstream": {"http2": True},
            "routes": [{"prefix": "/", "upstream": "https://x.example", "transport": "httpx"}],
        },
        SRC,
    )
    with pytest.raises(ConfigError, match=r'^config\.toml:upstream\.http2: http2 = true needs'):
        with_overrides(c, upstream="https://y.example")


def test_translation_route_takes_its_flavour_and_model_map_from_translate() -> None:
    c = parse_config({"routes": [{
        "prefix": "/ollama", "upstream": "http://127.0.0.1:11434",
        "translate": "anthropic-to-openai", "models": {"claude-sonnet-4-5": "qwen3:32b"},
    }]})
    [route] = c.routes
    assert (route.translate, route.flavour) == ("anthropic-to-openai", "anthropic")
    assert route.model_map == {"claude-sonnet-4-5": "qwen3:32b"}
    assert hash(route) == hash(Route("/ollama", "http://127.0.0.1:11434", "anthropic", None,
                                     "anthropic-to-openai", (("claude-sonnet-4-5", "qwen3:32b"),)))
    assert parse_config({"routes": [{"prefix": "/", "upstream": "http://x",
                                     "translate": "openai-to-anthropic"}]}).routes[0].flavour \
        == "openai"



def test_optimize_table_is_read_with_sizes_and_defaults() -> None:
    c = parse_config({"routes": [{
        "prefix": "/", "upstream": "https://api.anthropic.com", "flavour": "anthropic",
        "optimize": {"mode": "dry-run", "ttl": "1h", "prune": True, "prune_min_bytes": "16KiB"},
    }]})
    opt = c.routes[0].optimize
    assert (opt.mode, opt.ttl, opt.prune, opt.prune_min_bytes) == ("dry-run", "1h", True, 16384)
    assert (opt.breakpoints, opt.dedup, opt.dedup_min_bytes, opt.prune_after_turns) == (
        True, True, 2048, 10)
    assert default_config().routes[0].optimize.mode == "off"
