"""Configuration: TOML -> frozen dataclasses, validated, with `file:key: problem` errors.

Every value is checked once, at load, so the rest of the proxy can trust it: durations
are float seconds (math.inf for "no limit"), sizes are int bytes, routes carry their
upstream URL already split into scheme, host, port and base path. A typo never passes
silently: an unknown section or key is an error that suggests the nearest known name.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any
from urllib.parse import urlsplit

LOG_LEVELS = ("debug", "info", "warning", "error")
TRANSPORTS = ("h11", "httpx")
FLAVOURS = ("anthropic", "openai", "auto")
# translate = "<what clients speak>-to-<what the upstream speaks>"
TRANSLATIONS = ("anthropic-to-openai", "openai-to-anthropic")
MAX_TOKENS_FIELDS = ("max_tokens", "max_completion_tokens")
OPTIMIZE_MODES = ("off", "dry-run", "on")
CACHE_TTLS = ("5m", "1h")
DEFAULT_PORTS = {"http": 80, "https": 443}


class ConfigError(Exception):
    """A bad configuration value. str(e) is "FILE:KEY: problem" (FILE or KEY may be absent)."""

    def __init__(self, source: str | None, key: str | None, problem: str) -> None:
        self.source = source
        self.key = key
        self.problem = problem
        where = ":".join(part for part in (source, key) if part)
        super().__init__(f"{where}: {problem}" if where else problem)


class _Invalid(ValueError):
    """A problem with one value; the caller adds the file and the key."""


# -- the configuration -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8765  # 0 picks a free port
    max_connections: int = 1024
    grace_period: float = 30.0  # seconds that in-flight requests get on shutdown
    log_level: str = "info"


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    max_header_size: int = 65536
    max_body_size: int = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class TimeoutsConfig:
    """Deadlines in seconds; math.inf means no limit."""

    request_head: float = 30.0
    request_body: float = 120.0
    upstream_connect: float = 10.0
    first_byte: float = 600.0
    idle: float = 300.0
    total: float = 3600.0


@dataclass(frozen=True, slots=True)
class UpstreamConfig:
    transport: str = "h11"
    pool_size: int = 64  # idle keep-alive connections kept per upstream; 0 = none
    pool_idle: float = 60.0
    ca_file: str | None = None
    http2: bool = False  # httpx transport only
    proxy: str | None = None  # httpx transport only


@dataclass(frozen=True, slots=True)
class LedgerConfig:
    enabled: bool = True
    path: str = "trioproxy.db"
    batch_size: int = 200
    flush_interval: float = 1.0
    checkpoint_interval: float = 300.0
    queue_size: int = 10000


@dataclass(frozen=True, slots=True)
class OptimizeConfig:
    """[routes.optimize]: rewrite Anthropic `POST /v1/messages` bodies to cost less.

    "dry-run" computes the rewrite and records what it would have saved, but forwards
    the body unchanged.
    """

    mode: str = "off"  # one of OPTIMIZE_MODES
    breakpoints: bool = True  # add cache_control breakpoints where they pay
    ttl: str = "5m"  # of the breakpoints added: one of CACHE_TTLS
    dedup: bool = True  # repeated large blocks after the first become a short reference
    dedup_min_bytes: int = 2048
    prune: bool = False  # shorten old large tool results to a stub (opt-in)
    prune_after_turns: int = 10
    prune_min_bytes: int = 8192


@dataclass(frozen=True, slots=True)
class Route:
    """Requests under `prefix` go to `upstream`, a URL whose path becomes a base path.

    The derived fields are computed from `upstream` when the route is made, so the hot
    path never parses a URL. `prefix` is stored without a trailing slash (except "/").
    A bad value raises ValueError; parse_config reports it as a ConfigError first.
    """

    prefix: str
    upstream: str
    flavour: str = "auto"
    transport: str | None = None
    translate: str | None = None  # one of TRANSLATIONS
    models: tuple[tuple[str, str], ...] = ()  # client model name -> upstream model name
    # anthropic-to-openai: the OpenAI field that carries max_tokens (OpenAI's reasoning
    # models take only max_completion_tokens; most other servers only max_tokens).
    max_tokens_field: str = "max_tokens"
    optimize: OptimizeConfig = field(default_factory=OptimizeConfig)
    scheme: str = field(init=False, repr=False, compare=False)
    host: str = field(init=False, repr=False, compare=False)
    port: int = field(init=False, repr=False, compare=False)
    base_path: str = field(init=False, repr=False, compare=False)
    host_header: str = field(init=False, repr=False, compare=False)
    model_map: dict[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            prefix = _route_prefix(self.prefix)
            scheme, host, port, base_path, host_header = parse_upstream_url(self.upstream)
            _choice(FLAVOURS)(self.flavour)
            _choice(MAX_TOKENS_FIELDS)(self.max_tokens_field)
            if self.optimize.mode != "off" and (
                self.translate is not None or self.flavour == "openai"
            ):
                raise _Invalid(
                    "optimize rewrites Anthropic requests: it needs a route with flavour"
                    " 'anthropic' or 'auto' and no translate"
                )
            if self.transport is not None:
                _choice(TRANSPORTS)(self.transport)
            flavour = self.flavour
            if self.translate is not None:
                _choice(TRANSLATIONS)(self.translate)
                speaks = self.translate.partition("-to-")[0]
                if flavour not in ("auto", speaks):
                    raise _Invalid(
                        f"flavour {flavour!r} contradicts translate = {self.translate!r}"
                        f" (its clients speak {speaks}); leave flavour out"
                    )
                flavour = speaks
        except _Invalid as exc:
            raise ValueError(f"route {self.prefix!r} -> {self.upstream!r}: {exc}") from None
        setattr_ = object.__setattr__  # frozen: set once here, never again
        setattr_(self, "prefix", prefix)
        setattr_(self, "flavour", flavour)
        setattr_(self, "model_map", dict(self.models))
        setattr_(self, "scheme", scheme)
        setattr_(self, "host", host)
        setattr_(self, "port", port)
        setattr_(self, "base_path", base_path)
        setattr_(self, "host_header", host_header)


def default_routes() -> tuple[Route, ...]:
    """Anthropic at "/", OpenAI at "/openai"."""
    return (
        Route("/", "https://api.anthropic.com", "anthropic"),
        Route("/openai", "https://api.openai.com", "openai"),
    )


@dataclass(frozen=True, slots=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    timeouts: TimeoutsConfig = field(default_factory=TimeoutsConfig)
    upstream: UpstreamConfig = field(default_factory=UpstreamConfig)
    ledger: LedgerConfig = field(default_factory=LedgerConfig)
    routes: tuple[Route, ...] = field(default_factory=default_routes)
    source: str | None = None  # the file it was read from, for messages


def default_config() -> Config:
    """The configuration used when no file is given."""
    return Config()


# -- values: durations, sizes, URLs ------------------------------------------------------

_DURATION_EXPECTED = "expected a duration like '30s', '5m' or '250ms'"
_SIZE_EXPECTED = "expected a size like '64MiB', '512KiB' or a number of bytes"
_DURATION_RE = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|h|m|s))+")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_DURATION_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}  # largest first
_SIZE_RE = re.compile(r"(\d+(?:\.\d+)?)\s*([A-Za-z]+)")
_SIZE_UNITS = {
    "b": 1,
    "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
}


def _show(value: Any) -> str:
    """A value as the user wrote it in TOML, for messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return str(value)


def parse_duration(value: object) -> float:
    """Seconds from a number or a string like "250ms", "30s", "5m", "1h30m".

    Units go from largest to smallest, each at most once. Raises ValueError.
    """
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _Invalid(f"{_DURATION_EXPECTED}, got {_show(value)}")
    if isinstance(value, str):
        text = value.strip()
        if not _DURATION_RE.fullmatch(text):
            raise _Invalid(f"{_DURATION_EXPECTED}, got {_show(value)}")
        seconds = 0.0
        last = -1
        order = list(_DURATION_UNITS)
        for number, unit in _DURATION_PART.findall(text):
            rank = order.index(unit)
            if rank <= last:  # "30m1h", "1m1m": ambiguous, refuse
                raise _Invalid(f"{_DURATION_EXPECTED}, got {_show(value)}")
            last = rank
            seconds += float(number) * _DURATION_UNITS[unit]
        return seconds
    if math.isnan(value):
        raise _Invalid(f"{_DURATION_EXPECTED}, got {_show(value)}")
    if value < 0:
        raise _Invalid(f"must not be negative, got {_show(value)}")
    return float(value)


def parse_size(value: object) -> int:
    """Bytes from an int or a string like "512KiB", "64MiB", "10MB", "123B"; must be > 0.

    KB/MB/GB/TB are powers of 1000, KiB/MiB/GiB/TiB powers of 1024. Raises ValueError.
    """
    if isinstance(value, str):
        match = _SIZE_RE.fullmatch(value.strip())
        unit = _SIZE_UNITS.get(match.group(2).lower()) if match else None
        if match is None or unit is None:
            raise _Invalid(f"{_SIZE_EXPECTED}, got {_show(value)}")
        exact = Fraction(match.group(1)) * unit
        if exact.denominator != 1:
            raise _Invalid(f"{_show(value)} is not a whole number of bytes")
        size = int(exact)
    elif isinstance(value, bool) or not isinstance(value, int):
        raise _Invalid(f"{_SIZE_EXPECTED}, got {_show(value)}")
    else:
        size = value
    if size <= 0:
        raise _Invalid(f"must be greater than 0, got {_show(value)}")
    return size


def format_duration(seconds: float) -> str | float:
    """The shortest string parse_duration reads back as `seconds` ("off" for math.inf)."""
    if math.isinf(seconds):
        return "off"
    millis = round(seconds * 1000)
    if not math.isclose(millis, seconds * 1000, abs_tol=1e-6):
        return seconds  # finer than a millisecond: keep the number
    if millis == 0:
        return "0s"
    parts = []
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        count, millis = divmod(millis, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def format_size(size: int) -> str | int:
    """The largest exact binary unit ("64MiB"), else the number of bytes."""
    for unit, factor in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if size % factor == 0:
            return f"{size // factor}{unit}"
    return size


def parse_upstream_url(url: object) -> tuple[str, str, int, str, str]:
    """Split an upstream URL into (scheme, host, port, base_path, host_header).

    base_path is "" or starts with "/" and has no trailing slash; host_header is
    "host" or "host:port" when the port is not the scheme's default. Raises ValueError.
    """
    expected = "expected an http:// or https:// URL such as 'https://api.openai.com'"
    if not isinstance(url, str):
        raise _Invalid(f"{expected}, got {_show(url)}")
    parts = urlsplit(url)
    if parts.scheme not in DEFAULT_PORTS or not url.startswith(f"{parts.scheme}://"):
        raise _Invalid(f"{expected}, got {_show(url)}")
    if "?" in url or "#" in url:
        raise _Invalid(f"must not have a query or fragment, got {_show(url)}")
    if "@" in parts.netloc:
        raise _Invalid(
            "must not contain credentials; clients send their own auth headers,"
            f" got {_show(url)}"
        )
    # The host goes into every upstream request's Host header, which is not re-checked.
    if any(c.isspace() or not c.isprintable() for c in url):
        raise _Invalid(f"must not contain spaces or control characters, got {_show(url)}")
    host = parts.hostname or ""
    if not host:
        raise _Invalid(f"{expected} (with a host), got {_show(url)}")
    try:
        port = parts.port
    except ValueError:
        raise _Invalid(f"has an invalid port, expected 1 to 65535, got {_show(url)}") from None
    if port == 0:
        raise _Invalid(f"has an invalid port, expected 1 to 65535, got {_show(url)}")
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise _Invalid(f"has a host name that is not valid, got {_show(url)}") from None
    default = DEFAULT_PORTS[parts.scheme]
    port = default if port is None else port
    shown = f"[{host}]" if ":" in host else host  # IPv6 literal (RFC 3986 §3.2.2)
    host_header = shown if port == default else f"{shown}:{port}"
    return parts.scheme, host, port, parts.path.rstrip("/"), host_header


def _route_prefix(value: object) -> str:
    if not isinstance(value, str) or not value.startswith("/"):
        raise _Invalid(f"expected a path starting with '/', such as '/openai', got {_show(value)}")
    if "?" in value or "#" in value or any(c.isspace() for c in value):
        raise _Invalid(
            f"expected a path without query, fragment or spaces, got {_show(value)}"
        )
    return value.rstrip("/") or "/"


# -- checkers for one value each: return the value to store or raise _Invalid -----------

Check = Callable[[Any], Any]


def _int(minimum: int, maximum: int | None = None, note: str = "") -> Check:
    if maximum is None:
        expected = f"expected an integer >= {minimum}{note}"
    else:
        expected = f"expected an integer from {minimum} to {maximum}{note}"

    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Invalid(f"{expected}, got {_show(value)}")
        if value < minimum or (maximum is not None and value > maximum):
            raise _Invalid(f"{expected}, got {_show(value)}")
        return value

    return check


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Invalid(f"expected true or false, got {_show(value)}")
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise _Invalid(f"expected a string, got {_show(value)}")
    if not value.strip():
        raise _Invalid(f"must not be empty, got {_show(value)}")
    return value


def _choice(options: tuple[str, ...]) -> Check:
    listed = ", ".join(repr(o) for o in options)

    def check(value: Any) -> str:
        if value in options and isinstance(value, str):
            return value
        problem = f"expected one of {listed}, got {_show(value)}"
        if isinstance(value, str):
            problem += _suggest(value.lower(), options)
        raise _Invalid(problem)

    return check


def _host(value: Any) -> str:
    host = _text(value)
    if host.startswith("[") and host.endswith("]"):  # "[::1]" as in a URL
        host = host[1:-1]
    return host


def _duration(*, positive: bool = False) -> Check:
    def check(value: Any) -> float:
        seconds = parse_duration(value)
        if math.isinf(seconds):
            raise _Invalid(f"must be finite, got {_show(value)}")
        if positive and seconds <= 0:
            raise _Invalid(f"must be greater than 0, got {_show(value)}")
        return seconds

    return check


def _timeout(value: Any) -> float:
    # "off" and 0 both mean no deadline; the I/O layer waits on math.inf.
    if isinstance(value, str) and value.strip().lower() == "off":
        return math.inf
    seconds = parse_duration(value)
    return math.inf if seconds == 0 else seconds


def _existing_file(value: Any) -> str:
    path = os.path.expanduser(_text(value))
    if not os.path.isfile(path):
        where = "" if os.path.isabs(path) else f" (relative to {os.getcwd()})"
        raise _Invalid(f"file not found: {path!r}{where}")
    return path


def _path(value: Any) -> str:
    return os.path.expanduser(_text(value))


def _proxy_url(value: Any) -> str:
    url = _text(value)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https", "socks5", "socks5h") or not parts.hostname:
        raise _Invalid(
            "expected a proxy URL such as 'http://proxy.example:3128' or"
            f" 'socks5://127.0.0.1:1080', got {_show(value)}"
        )
    return url


@dataclass(frozen=True, slots=True)
class _Key:
    """How one key is read from TOML and written back for `trioproxy init`."""

    check: Check
    write: Callable[[Any], Any] = lambda value: value


_DURATION = _Key(_duration(), format_duration)
_SIZE = _Key(parse_size, format_size)
_TIMEOUT = _Key(_timeout, format_duration)

_SECTIONS: dict[str, tuple[type, dict[str, _Key]]] = {
    "server": (ServerConfig, {
        "host": _Key(_host),
        "port": _Key(_int(0, 65535, " (0 picks a free port)")),
        "max_connections": _Key(_int(1)),
        "grace_period": _DURATION,
        "log_level": _Key(_choice(LOG_LEVELS)),
    }),
    "limits": (LimitsConfig, {
        "max_header_size": _SIZE,
        "max_body_size": _SIZE,
    }),
    "timeouts": (TimeoutsConfig, {
        "request_head": _TIMEOUT,
        "request_body": _TIMEOUT,
        "upstream_connect": _TIMEOUT,
        "first_byte": _TIMEOUT,
        "idle": _TIMEOUT,
        "total": _TIMEOUT,
    }),
    "upstream": (UpstreamConfig, {
        "transport": _Key(_choice(TRANSPORTS)),
        "pool_size": _Key(_int(0)),
        "pool_idle": _DURATION,
        "ca_file": _Key(_existing_file),
        "http2": _Key(_bool),
        "proxy": _Key(_proxy_url),
    }),
    "ledger": (LedgerConfig, {
        "enabled": _Key(_bool),
        "path": _Key(_path),
        "batch_size": _Key(_int(1)),
        "flush_interval": _Key(_duration(positive=True), format_duration),
        "checkpoint_interval": _Key(_duration(positive=True), format_duration),
        "queue_size": _Key(_int(1)),
    }),
}


def _upstream_url(value: Any) -> str:
    parse_upstream_url(value)
    return str(value)


def _models(value: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict):
        raise _Invalid(
            f"expected a table of client model name = upstream model name, got {_show(value)}"
        )
    pairs = []
    for name, target in value.items():
        if not isinstance(target, str) or not target.strip():
            raise _Invalid(f"{name!r}: expected an upstream model name string, got {_show(target)}")
        pairs.append((name, target))
    return tuple(pairs)


_ROUTE_KEYS: dict[str, Check] = {
    "prefix": _route_prefix,
    "upstream": _upstream_url,
    "flavour": _choice(FLAVOURS),
    "transport": _choice(TRANSPORTS),
    "translate": _choice(TRANSLATIONS),
    "models": _models,
    "max_tokens_field": _choice(MAX_TOKENS_FIELDS),
    "optimize": lambda value: value,  # a table, read by _Reader.optimize
}
_OPTIMIZE_KEYS: dict[str, _Key] = {
    "mode": _Key(_choice(OPTIMIZE_MODES)),
    "breakpoints": _Key(_bool),
    "ttl": _Key(_choice(CACHE_TTLS)),
    "dedup": _Key(_bool),
    "dedup_min_bytes": _SIZE,
    "prune": _Key(_bool),
    "prune_after_turns": _Key(_int(1)),
    "prune_min_bytes": _SIZE,
}
_ROUTE_REQUIRED = {
    "prefix": "a path such as '/openai'",
    "upstream": "an http:// or https:// URL such as 'https://api.openai.com'",
}


def _suggest(name: str, known: Any) -> str:
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


# -- reading a parsed TOML document ------------------------------------------------------


class _Reader:
    def __init__(self, source: str) -> None:
        self.source = source

    def error(self, key: str | None, problem: str) -> ConfigError:
        return ConfigError(self.source, key, problem)

    def unknown(self, key: str, known: Mapping[str, Any], what: str) -> ConfigError:
        name = key.rpartition(".")[2]
        hint = _suggest(name, known) or f"; known {what}s: {', '.join(known)}"
        return self.error(key, f"unknown {what}{hint}")

    def top_level(self, data: Mapping[str, Any]) -> None:
        known = {**_SECTIONS, "routes": None}
        for key, value in data.items():
            if key in known:
                continue
            owner = next((s for s, (_, keys) in _SECTIONS.items() if key in keys), None)
            if owner is not None and not isinstance(value, dict):
                problem = f"unknown top-level key; did you mean to put it in [{owner}]?"
                raise self.error(key, problem)
            raise self.unknown(key, known, "section" if isinstance(value, dict) else "key")

    def section(self, data: Mapping[str, Any], name: str) -> Any:
        cls, keys = _SECTIONS[name]
        table = data.get(name, {})
        if not isinstance(table, dict):
            raise self.error(name, f"expected a table written [{name}], got {_show(table)}")
        values = {}
        for key, value in table.items():
            dotted = f"{name}.{key}"
            spec = keys.get(key)
            if spec is None:
                raise self.unknown(dotted, keys, "key")
            try:
                values[key] = spec.check(value)
            except _Invalid as exc:
                raise self.error(dotted, str(exc)) from None
        return cls(**values)

    def optimize(self, table: Any, where: str) -> OptimizeConfig:
        if not isinstance(table, dict):
            problem = f"expected a table written [routes.optimize], got {_show(table)}"
            raise self.error(where, problem)
        values = {}
        for key, value in table.items():
            spec = _OPTIMIZE_KEYS.get(key)
            if spec is None:
                raise self.unknown(f"{where}.{key}", _OPTIMIZE_KEYS, "key")
            try:
                values[key] = spec.check(value)
            except _Invalid as exc:
                raise self.error(f"{where}.{key}", str(exc)) from None
        return OptimizeConfig(**values)

    def routes(self, data: Mapping[str, Any]) -> tuple[Route, ...]:
        if "routes" not in data:
            return default_routes()
        entries = data["routes"]
        expected = "expected an array of tables written [[routes]]"
        if isinstance(entries, dict):
            raise self.error("routes", f"{expected}, got a single table [routes]")
        if not isinstance(entries, list):
            raise self.error("routes", f"{expected}, got {_show(entries)}")
        if not entries:
            raise self.error(
                "routes", "expected at least one route; leave routes out to use the defaults"
            )
        seen: dict[str, int] = {}
        routes = []
        for index, entry in enumerate(entries):
            where = f"routes[{index}]"
            if not isinstance(entry, dict):
                problem = f"expected a table with prefix and upstream, got {_show(entry)}"
                raise self.error(where, problem)
            for key, value in entry.items():
                check = _ROUTE_KEYS.get(key)
                if check is None:
                    raise self.unknown(f"{where}.{key}", _ROUTE_KEYS, "key")
                try:
                    check(value)
                except _Invalid as exc:
                    raise self.error(f"{where}.{key}", str(exc)) from None
            for key, expected in _ROUTE_REQUIRED.items():
                if key not in entry:
                    raise self.error(f"{where}.{key}", f"missing; expected {expected}")
            for key in ("models", "max_tokens_field"):
                if key in entry and "translate" not in entry:
                    raise self.error(f"{where}.{key}", "needs translate on the same route")
            optimize = self.optimize(entry.get("optimize", {}), f"{where}.optimize")
            if optimize.mode != "off" and (
                "translate" in entry or entry.get("flavour") == "openai"
            ):
                raise self.error(
                    f"{where}.optimize.mode",
                    f"{optimize.mode!r} needs an Anthropic route (flavour 'anthropic' or"
                    " 'auto', no translate): it rewrites POST /v1/messages bodies",
                )
            translate, flavour = entry.get("translate"), entry.get("flavour", "auto")
            if translate is not None and flavour not in ("auto", translate.partition("-to-")[0]):
                raise self.error(
                    f"{where}.flavour",
                    f"{flavour!r} contradicts translate = {translate!r}; leave flavour out",
                )
            try:
                route = Route(
                    entry["prefix"], entry["upstream"], entry.get("flavour", "auto"),
                    entry.get("transport"), entry.get("translate"),
                    _models(entry.get("models", {})),
                    entry.get("max_tokens_field", "max_tokens"),
                    optimize,
                )
            except ValueError as exc:
                raise self.error(where, str(exc).partition(": ")[2] or str(exc)) from None
            if route.prefix in seen:
                raise self.error(
                    f"{where}.prefix",
                    f"duplicate of routes[{seen[route.prefix]}].prefix ({route.prefix!r})",
                )
            seen[route.prefix] = index
            routes.append(route)
        return tuple(routes)


def _check_transport_options(config: Config, report: Callable[[str, str], ConfigError]) -> None:
    """http2 and proxy are httpx features: some route must use the httpx transport."""
    up = config.upstream
    if up.transport == "httpx" or any(r.transport == "httpx" for r in config.routes):
        return
    fix = (
        'set transport = "httpx" in [upstream], or on the routes that need it'
        " (the h11 transport speaks plain HTTP/1.1 and connects directly)"
    )
    if up.http2:
        raise report("upstream.http2", f'http2 = true needs transport = "httpx"; {fix}')
    if up.proxy is not None:
        raise report("upstream.proxy", f'an outbound proxy needs transport = "httpx"; {fix}')


def parse_config(data: dict[str, Any], source: str = "<config>") -> Config:
    """Validate a parsed TOML document; raise ConfigError naming `source` and the key."""
    reader = _Reader(source)
    reader.top_level(data)
    config = Config(
        server=reader.section(data, "server"),
        limits=reader.section(data, "limits"),
        timeouts=reader.section(data, "timeouts"),
        upstream=reader.section(data, "upstream"),
        ledger=reader.section(data, "ledger"),
        routes=reader.routes(data),
        source=source,
    )
    _check_transport_options(config, reader.error)
    return config


_TOML_WHERE = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and validate a TOML config file; every problem is a ConfigError naming the file."""
    source = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError as exc:
        raise ConfigError(
            source, None, "no such file; write a starter config with 'trioproxy init'"
        ) from exc
    except IsADirectoryError as exc:
        raise ConfigError(source, None, "is a directory, expected a TOML file") from exc
    except OSError as exc:
        raise ConfigError(source, None, f"cannot read the file: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(
            source, None, f"not valid UTF-8 at byte {exc.start}; TOML files must be UTF-8"
        ) from exc
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        where = _TOML_WHERE.search(message)
        key = f"{where.group(1)}:{where.group(2)}" if where else None
        if where:
            message = message[: where.start()]
        message = message[:1].lower() + message[1:]
        raise ConfigError(source, key, f"invalid TOML: {message}") from exc
    return parse_config(data, source)


# -- command-line overrides and the starter file -----------------------------------------

_LISTEN_EXPECTED = "expected HOST:PORT, ':PORT' or '[::1]:PORT'"


def _parse_listen(value: str, host: str) -> tuple[str, int]:
    if value.startswith("["):
        end = value.find("]:")
        if end < 0:
            raise _Invalid(f"{_LISTEN_EXPECTED}, got {value!r}")
        new_host, port_text = value[1:end], value[end + 2 :]
    else:
        new_host, sep, port_text = value.rpartition(":")
        if not sep:
            raise _Invalid(f"{_LISTEN_EXPECTED}, got {value!r}")
        if ":" in new_host:
            raise _Invalid(f"put an IPv6 address in brackets, like '[::1]:8765', got {value!r}")
        new_host = new_host or host  # ":PORT" keeps the configured host
    if not new_host.strip() or not port_text.isdigit() or not port_text.isascii():
        raise _Invalid(f"{_LISTEN_EXPECTED}, got {value!r}")
    port = int(port_text)
    if port > 65535:
        raise _Invalid(f"port must be from 0 to 65535 (0 picks a free port), got {value!r}")
    return new_host, port


def with_overrides(
    config: Config, *, listen: str | None = None, upstream: str | None = None,
    ledger: str | None = None,
) -> Config:
    """Apply command-line flags: --listen HOST:PORT, --upstream URL (one route "/"), --ledger PATH.

    Raises ConfigError with the flag as the key.
    """
    changes: dict[str, Any] = {}
    key = ""
    try:
        if listen is not None:
            key = "--listen"
            host, port = _parse_listen(listen, config.server.host)
            changes["server"] = dataclasses.replace(config.server, host=host, port=port)
        if upstream is not None:
            key = "--upstream"
            parse_upstream_url(upstream)
            changes["routes"] = (Route("/", upstream, "auto"),)
        if ledger is not None:
            key = "--ledger"
            changes["ledger"] = dataclasses.replace(config.ledger, path=_path(ledger))
    except _Invalid as exc:
        raise ConfigError(None, key, str(exc)) from None
    result = dataclasses.replace(config, **changes)
    _check_transport_options(result, lambda k, problem: ConfigError(config.source, k, problem))
    return result


def starter_config_dict() -> dict[str, Any]:
    """The defaults as plain TOML-ready data, for `trioproxy init` (written with tomli_w).

    Durations and sizes are written the human way ("30s", "64MiB"); unset optional keys
    are left out. parse_config() of the result equals default_config() apart from source.
    """
    config = default_config()
    data: dict[str, Any] = {}
    for name, (_, keys) in _SECTIONS.items():
        section = getattr(config, name)
        data[name] = {
            key: spec.write(getattr(section, key))
            for key, spec in keys.items()
            if getattr(section, key) is not None
        }
    data["routes"] = [
        {"prefix": r.prefix, "upstream": r.upstream, "flavour": r.flavour}
        | ({"transport": r.transport} if r.transport else {})
        for r in config.routes
    ]
    return data
