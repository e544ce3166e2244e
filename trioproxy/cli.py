"""The `trioproxy` command: run, init, check, usage."""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import tomli_w
import trio

from . import __version__, systemd
from .config import (
    Config,
    ConfigError,
    default_config,
    load_config,
    starter_config_dict,
    with_overrides,
)
from .server import Server, serve

log = logging.getLogger("trioproxy")

EXIT_CONFIG = 2


class ListenError(Exception):
    """The proxy could not start listening (address in use, no permission, ...)."""


def _setup_logging(level: str) -> None:
    # Under systemd, journald stamps each line itself.
    fmt = "%(levelname)s %(name)s: %(message)s"
    if "JOURNAL_STREAM" not in os.environ:
        fmt = "%(asctime)s " + fmt
    logging.basicConfig(stream=sys.stderr, level=level.upper(), format=fmt)


def _load(args: argparse.Namespace) -> Config:
    config = load_config(args.config) if args.config else default_config()
    return with_overrides(
        config,
        listen=getattr(args, "listen", None),
        upstream=getattr(args, "upstream", None),
        ledger=getattr(args, "ledger", None),
    )


async def _handle_signals(
    signals: AsyncIterator[int], serve_scope: trio.CancelScope, server: Server, grace: float
) -> None:
    """First SIGTERM/SIGINT: drain gracefully. A second one: cut what is still running."""
    async for signum in signals:
        name = signal.Signals(signum).name
        if not serve_scope.cancel_called:
            log.info("%s: draining (up to %gs); send it again to stop at once", name, grace)
            systemd.notify("STOPPING=1")
            serve_scope.cancel()
        else:
            log.warning("%s again: cutting in-flight requests", name)
            server.abort()


# Each relayed stream waiting for its next event holds a fresh chain of ~20 tracked
# objects (coroutines, trio's wait records), so a young collection walks every stream
# that moved since the last one: ~5 ms at 1,000 streams whatever the threshold. At 700
# (Python's default) that came 23 times a second, plus ~1 ms gen-1 and ~19 ms full
# collections; at 5,000 a young one comes 7x less often and the GC time halves
# (issue 3). Cyclic garbage is rare on the request path, so the memory it may hold
# meanwhile is small.
YOUNG_GC_THRESHOLD = 5000


async def _run(config: Config) -> None:
    serve_scope = trio.CancelScope()
    stopped = trio.Event()

    async def run_server(*, task_status=trio.TASK_STATUS_IGNORED) -> None:
        try:
            with serve_scope:
                await serve(config, task_status=task_status)
        finally:
            stopped.set()

    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:
            try:
                server = await nursery.start(run_server)
            except (OSError, ExceptionGroup) as exc:
                error = _first(exc, OSError)
                if error is None:
                    raise
                raise ListenError(error) from exc
            for route in config.routes:
                log.info("route %s -> %s (%s)", route.prefix, route.upstream, route.flavour)
            # What exists now (modules, config, sockets, the ledger) lives as long as the
            # process: out of the cyclic collector's reach, a full collection no longer
            # walks it, which took about 10 ms each time on a small proxy (issue 3).
            gc.freeze()
            gc.set_threshold(YOUNG_GC_THRESHOLD, *gc.get_threshold()[1:])
            log.debug("gc.freeze(): %d startup objects left out of collections; "
                      "gc thresholds %s", gc.get_freeze_count(), gc.get_threshold())
            systemd.notify("READY=1")
            nursery.start_soon(
                _handle_signals, signals, serve_scope, server, config.server.grace_period
            )
            await stopped.wait()
            nursery.cancel_scope.cancel()
    if server.ledger is not None and server.ledger.lost:
        log.warning("%d ledger row(s) were lost", server.ledger.lost)


def cmd_run(args: argparse.Namespace) -> int:
    config = _load(args)
    _setup_logging(args.log_level or config.server.log_level)
    try:
        trio.run(_run, config)
    except (ListenError, ExceptionGroup) as exc:
        error = _first(exc, ListenError)
        if error is None:
            raise
        sc = config.server
        print(f"trioproxy: cannot listen on {sc.host}:{sc.port}: {error}", file=sys.stderr)
        return 1
    return 0


def _first(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    """`exc` itself or the first `kind` inside an exception group, if any."""
    if isinstance(exc, kind):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _first(inner, kind)
            if found is not None:
                return found
    return None


def cmd_init(args: argparse.Namespace) -> int:
    path = Path(args.config or "config.toml")
    if path.exists() and not args.force:
        print(f"trioproxy: {path} exists; use --force to overwrite it", file=sys.stderr)
        return 1
    path.write_text(tomli_w.dumps(starter_config_dict()))
    print(f"wrote {path}; start with: trioproxy run -c {path}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    routes = ", ".join(f"{r.prefix} -> {r.upstream}" for r in config.routes)
    print(f"{args.config}: ok (listen {config.server.host}:{config.server.port}; {routes})")
    return 0


def cmd_usage(args: argparse.Namespace) -> int:
    from .report import (
        ReportError,
        format_json,
        format_savings_table,
        format_table,
        savings_summary,
        usage_summary,
    )

    path = args.ledger or (load_config(args.config).ledger.path if args.config else None)
    path = path or default_config().ledger.path
    since = time.time() - args.days * 86400 if args.days else None
    group_by = tuple(args.by.split(","))
    try:
        if args.savings:
            rows = savings_summary(path, since=since, group_by=group_by)
        else:
            rows = usage_summary(path, since=since, group_by=group_by)
    except (ReportError, ValueError) as exc:
        print(f"trioproxy: {exc}", file=sys.stderr)
        return 1
    if args.format == "json":
        print(json.dumps({"rows": rows}, indent=2) if args.savings else format_json(rows))
    else:
        print(format_savings_table(rows) if args.savings else format_table(rows))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trioproxy", description="A fast, dependable reverse proxy for LLM APIs."
    )
    parser.add_argument("--version", action="version", version=f"trioproxy {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the proxy")
    run.add_argument("-c", "--config", help="config file (default: built-in defaults)")
    run.add_argument("--listen", metavar="HOST:PORT", help="address to listen on")
    run.add_argument("--upstream", metavar="URL", help="send every path to this one upstream")
    run.add_argument("--ledger", metavar="PATH", help="SQLite ledger file")
    run.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    run.set_defaults(func=cmd_run)

    init = sub.add_parser("init", help="write a starter config file")
    init.add_argument("-c", "--config", help="where to write it (default: config.toml)")
    init.add_argument("--force", action="store_true", help="overwrite an existing file")
    init.set_defaults(func=cmd_init)

    check = sub.add_parser("check", help="validate a config file")
    check.add_argument("-c", "--config", required=True)
    check.set_defaults(func=cmd_check)

    usage = sub.add_parser("usage", help="what the calls cost, from the ledger")
    usage.add_argument("-c", "--config", help="config file naming the ledger")
    usage.add_argument("--ledger", metavar="PATH", help="ledger file (overrides the config)")
    usage.add_argument("--format", choices=["table", "json"], default="table")
    usage.add_argument("--by", default="day,model", help="group by: day,model,route,outcome")
    usage.add_argument("--days", type=float, help="only the last N days")
    usage.add_argument(
        "--savings", action="store_true",
        help="what [routes.optimize] saved (by day and/or model): measured and estimated",
    )
    usage.set_defaults(func=cmd_usage)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `trioproxy` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"trioproxy: {exc}", file=sys.stderr)
        return EXIT_CONFIG


if __name__ == "__main__":
    sys.exit(main())
