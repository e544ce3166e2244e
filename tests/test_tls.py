"""HTTPS upstreams: a trustme CA, a certificate for "localhost", both upstream transports.

No MockClock here: "localhost" is resolved in a worker thread, and an autojumping clock
would run past deadlines while that thread works. Every test is bounded by fail_after.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import trustme

from tests.conftest import (
    ANTHROPIC_ARGS,
    RunningProxy,
    post_plain_and_streamed,
    proxy_config,
)
from tests.mock_upstream import ANTHROPIC_USAGE, MockUpstream

TIMEOUT = 10


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
async def tls_mock(nursery: trio.Nursery, ca: trustme.CA) -> MockUpstream:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(context)
    mock = MockUpstream(ssl_context=context)
    await nursery.start(mock.run)
    return mock


async def start_proxy(
    nursery: trio.Nursery, tmp_path: Path, mock: MockUpstream, transport: str, **sections: Any
) -> RunningProxy:
    config = proxy_config(tmp_path, mock.url, transport=transport, **sections)
    return await RunningProxy(config).start(nursery)


async def test_https_upstream_with_ca_file(
    nursery: trio.Nursery, tls_mock: MockUpstream, ca: trustme.CA, tmp_path: Path,
    transport: str,
) -> None:
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    assert tls_mock.url.startswith("https://localhost:")
    proxy = await start_proxy(nursery, tmp_path, tls_mock, transport,
                              upstream={"ca_file": str(ca_file)})
    with trio.fail_after(TIMEOUT):
        plain, response, streamed = await post_plain_and_streamed(proxy.url)
        await proxy.stop()
    assert plain.status_code == response.status_code == 200
    assert plain.content == b"".join(tls_mock.requests[0].sent)
    assert streamed == b"".join(tls_mock.requests[1].sent)
    assert streamed.startswith(b"event: message_start\n")
    assert [r.completed for r in tls_mock.requests] == [True, True]
    # Host names the upstream as the certificate does.
    assert tls_mock.requests[0].header("host") == f"localhost:{tls_mock.port}"
    rows = proxy.rows()
    assert [(r["status"], r["outcome"], r["stream"]) for r in rows] == [
        (200, "ok", 0), (200, "ok", 1)]
    assert [r["input_tokens"] for r in rows] == [ANTHROPIC_USAGE["input_tokens"]] * 2


async def test_untrusted_upstream_certificate_is_a_502_that_says_what_to_do(
    nursery: trio.Nursery, tls_mock: MockUpstream, tmp_path: Path, transport: str
) -> None:
    proxy = await start_proxy(nursery, tmp_path, tls_mock, transport)
    with trio.fail_after(TIMEOUT):
        async with httpx.AsyncClient(base_url=proxy.url) as client:
            response = await client.post("/v1/messages", json=ANTHROPIC_ARGS)
        await proxy.stop()
    assert response.status_code == 502
    obj = response.json()
    assert obj["type"] == "error"
    assert obj["error"]["type"] == "api_error"
    message = obj["error"]["message"]
    assert "upstream localhost" in message
    assert "not trusted" in message
    assert "upstream.ca_file" in message
    assert tls_mock.requests == []  # nothing was sent over the untrusted connection
    [row] = proxy.rows()
    assert (row["status"], row["outcome"]) == (502, "upstream_error")
    assert "not trusted" in row["error"]
