"""Fixtures: a mock upstream and the real proxy between it and real clients, on loopback.

Test rules: a hang guard aborts the run with tracebacks if a test hangs; timeouts are
tested with trio's MockClock, never with real sleeps.
"""

from __future__ import annotations

import faulthandler
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from tests.mock_upstream import MockUpstream
from trioproxy.config import Config, parse_config
from trioproxy.server import Server, serve

HANG_SECONDS = 60

# Request bodies the tests send, in each API's shape.
ANTHROPIC_ARGS: dict[str, Any] = {
    "model": "claude-sonnet-4-6",
    "max_tokens": 64,
    "messages": [{"role": "user", "content": "Hi"}],
}
CHAT_ARGS: dict[str, Any] = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": "Hi"}],
}


@pytest.fixture(autouse=True)
def hang_guard() -> Iterator[None]:
    """Abort the run with every thread's traceback if one test hangs (never a timing test:
    the bound is far above any test's run time, sync or async, real or mock clock)."""
    faulthandler.dump_traceback_later(HANG_SECONDS, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


@pytest.fixture
async def mock(nursery: trio.Nursery) -> MockUpstream:
    upstream = MockUpstream()
    await nursery.start(upstream.run)
    return upstream


def proxy_config(
    tmp_path: Path, upstream_url: str, *, transport: str = "h11", **sections: dict[str, Any]
) -> Config:
    """A config for tests: port 0, a ledger in tmp_path, Anthropic at / and OpenAI at /openai."""
    data: dict[str, Any] = {
        "server": {"port": 0, "grace_period": 5},
        "ledger": {"path": str(tmp_path / "ledger.db"), "flush_interval": 0.05},
        "upstream": {"transport": transport},
        "routes": [
            {"prefix": "/", "upstream": upstream_url, "flavour": "anthropic"},
            {"prefix": "/openai", "upstream": upstream_url, "flavour": "openai"},
        ],
    }
    for name, values in sections.items():
        if isinstance(values, dict):
            data.setdefault(name, {}).update(values)
        else:
            data[name] = values
    return parse_config(data, source="<test>")


class RunningProxy:
    """The real proxy running in the test's nursery; stop() shuts it down gracefully."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.server: Server | None = None
        self._scope = trio.CancelScope()
        self._stopped = trio.Event()

    async def _run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        try:
            with self._scope:
                await serve(self.config, task_status=task_status)
        finally:
            self._stopped.set()

    async def start(self, nursery: trio.Nursery) -> RunningProxy:
        self.server = await nursery.start(self._run)
        return self

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    async def stop(self) -> None:
        """Graceful shutdown; returns once the ledger is flushed."""
        self._scope.cancel()
        await self._stopped.wait()

    def rows(self) -> list[dict[str, Any]]:
        """The ledger's rows, oldest first (call after stop() so every row is flushed)."""
        with sqlite3.connect(self.config.ledger.path) as db:
            db.row_factory = sqlite3.Row
            return [dict(r) for r in db.execute("SELECT * FROM requests ORDER BY id")]


@pytest.fixture(params=["h11", "httpx"])
def transport(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
async def proxy(
    nursery: trio.Nursery, mock: MockUpstream, tmp_path: Path, transport: str
) -> RunningProxy:
    config = proxy_config(tmp_path, mock.url, transport=transport)
    return await RunningProxy(config).start(nursery)


async def post_plain_and_streamed(base_url: str) -> tuple[httpx.Response, httpx.Response, bytes]:
    """POST /v1/messages once as JSON and once streamed; return both responses and the
    streamed body's raw bytes."""
    async with httpx.AsyncClient(base_url=base_url) as client:
        plain = await client.post("/v1/messages", json=ANTHROPIC_ARGS)
        async with client.stream(
            "POST", "/v1/messages", json={**ANTHROPIC_ARGS, "stream": True}
        ) as response:
            streamed = b"".join([chunk async for chunk in response.aiter_raw()])
    return plain, response, streamed
