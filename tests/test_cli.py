"""The `trioproxy` command, run for real as a subprocess.

The mock upstream runs in the test's event loop; the proxy process reports readiness
over NOTIFY_SOCKET (a Unix datagram socket the test binds), so no test polls or sleeps.
No MockClock: the bounds (fail_after) are real seconds around real processes.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import httpx
import pytest
import tomli_w
import trio

from tests.conftest import ANTHROPIC_ARGS
from tests.mock_upstream import ANTHROPIC_USAGE, MockUpstream
from trioproxy.cli import YOUNG_GC_THRESHOLD

CLI = [sys.executable, "-m", "trioproxy.cli"]
TIMEOUT = 20  # real seconds: a Python process starts, serves and drains


async def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    with trio.fail_after(TIMEOUT):
        return await trio.run_process(
            [*CLI, *args], cwd=cwd, check=False, capture_stdout=True, capture_stderr=True
        )


def free_port() -> int:
    """A port that was free a moment ago (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ledger_bytes(ledger: Path) -> bytes:
    """The ledger file and its -wal and -shm companions, whichever exist, concatenated."""
    files = sorted(ledger.parent.glob(ledger.name + "*"))
    assert ledger in files
    return b"".join(path.read_bytes() for path in files)


@dataclass
class ProxyProcess:
    process: trio.Process
    port: int
    notify: trio.socket.SocketType
    stderr_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def next_notification(self) -> bytes:
        return await self.notify.recv(4096)

    async def terminate(self) -> int:
        """SIGTERM, then the exit status."""
        self.process.send_signal(signal.SIGTERM)
        return await self.process.wait()

    def stderr(self) -> str:
        return self.stderr_path.read_text()


@asynccontextmanager
async def proxy_process(tmp_path: Path, *args: str) -> AsyncIterator[ProxyProcess]:
    """`trioproxy run --listen 127.0.0.1:PORT ARGS...`, yielded once it sent READY=1.

    The process is killed if the test leaves early; stderr goes to a file."""
    port = free_port()
    notify_path = tmp_path / "notify.sock"
    notify = trio.socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    await notify.bind(str(notify_path))
    stderr_path = tmp_path / "stderr.log"
    env = {**os.environ, "NOTIFY_SOCKET": str(notify_path)}
    with notify, stderr_path.open("wb") as stderr:
        async with trio.open_nursery() as nursery:
            process = await nursery.start(partial(
                trio.run_process, [*CLI, "run", "--listen", f"127.0.0.1:{port}", *args],
                cwd=tmp_path, env=env, stderr=stderr, check=False,
            ))
            running = ProxyProcess(process, port, notify, stderr_path)
            with trio.fail_after(TIMEOUT):
                ready = await running.next_notification()
            assert ready == b"READY=1", running.stderr()
            yield running
            nursery.cancel_scope.cancel()  # kills the process if the test did not end it


# -- check and init --------------------------------------------------------------------


@pytest.mark.parametrize(("text", "key", "problem"), [
    ('[server]\nport = "eighty"\n', "server.port", "expected an integer from 0 to 65535"),
    ("[server]\nprot = 1\n", "server.prot", "unknown key; did you mean 'port'?"),
    ('[timeouts]\nidle = "5 parsecs"\n', "timeouts.idle", "expected a duration"),
    ("[server\n", "1:8", "invalid TOML"),
])
async def test_check_reports_file_key_and_problem(
    tmp_path: Path, text: str, key: str, problem: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    result = await cli("check", "-c", str(path), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == b""
    [line] = result.stderr.decode().splitlines()
    assert re.fullmatch(rf"trioproxy: {re.escape(str(path))}:{re.escape(key)}: .+", line), line
    assert problem in line
    assert "Traceback" not in line


async def test_check_accepts_a_good_file(tmp_path: Path) -> None:
    path = tmp_path / "good.toml"
    path.write_text(
        '[server]\nport = 9000\n[timeouts]\nidle = "45s"\n'
        '[[routes]]\nprefix = "/"\nupstream = "http://127.0.0.1:9"\n'
    )
    result = await cli("check", "-c", str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().startswith(f"{path}: ok")
    assert "127.0.0.1:9000" in result.stdout.decode()


async def test_python_m_trioproxy_is_the_trioproxy_command(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[server]\nport = "eighty"\n')
    with trio.fail_after(TIMEOUT):
        result = await trio.run_process(
            [sys.executable, "-m", "trioproxy", "check", "-c", str(path)], cwd=tmp_path,
            check=False, capture_stdout=True, capture_stderr=True)
    assert result.returncode != 0
    assert f"{path}:server.port" in result.stderr.decode()
    assert "Traceback" not in result.stderr.decode()


async def test_init_writes_a_file_check_accepts_and_will_not_overwrite_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "x.toml"
    first = await cli("init", "-c", str(path), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    written = path.read_bytes()
    checked = await cli("check", "-c", str(path), cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    path.write_bytes(written + b"# edited\n")
    again = await cli("init", "-c", str(path), cwd=tmp_path)
    assert again.returncode != 0
    assert "--force" in again.stderr.decode()
    assert path.read_bytes() == written + b"# edited\n"  # untouched
    forced = await cli("init", "-c", str(path), "--force", cwd=tmp_path)
    assert forced.returncode == 0
    assert path.read_bytes() == written


# -- run -------------------------------------------------------------------------------


async def test_run_serves_drains_on_sigterm_and_usage_reports_it(
    mock: MockUpstream, tmp_path: Path
) -> None:
    ledger = tmp_path / "usage.db"
    async with proxy_process(tmp_path, "--upstream", mock.url, "--ledger", str(ledger)) as proc:
        with trio.fail_after(TIMEOUT):
            async with httpx.AsyncClient(base_url=proc.url) as client:
                response = await client.post("/v1/messages", json=ANTHROPIC_ARGS)
            status = await proc.terminate()
    assert response.status_code == 200
    assert response.content == b"".join(mock.requests[0].sent)
    assert status == 0, proc.stderr()

    report = await cli("usage", "--ledger", str(ledger), "--format", "json", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    [row] = json.loads(report.stdout)["rows"]
    assert row["model"] == ANTHROPIC_ARGS["model"]
    assert row["requests"] == 1
    assert row["errors"] == 0
    assert (row["input_tokens"], row["output_tokens"], row["cache_read_tokens"],
            row["cache_write_tokens"]) == (
        ANTHROPIC_USAGE["input_tokens"], ANTHROPIC_USAGE["output_tokens"],
        ANTHROPIC_USAGE["cache_read_input_tokens"],
        ANTHROPIC_USAGE["cache_creation_input_tokens"])

    table = await cli("usage", "--ledger", str(ledger), "--format", "table", cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.decode().splitlines()
    assert lines[0].split()[:2] == ["day", "model"]
    assert any(ANTHROPIC_ARGS["model"] in line for line in lines[2:-2])
    assert lines[-1].startswith("TOTAL")


async def test_systemd_ready_once_listening_and_stopping_on_sigterm(
    mock: MockUpstream, tmp_path: Path
) -> None:
    async with proxy_process(tmp_path, "--upstream", mock.url,
                             "--ledger", str(tmp_path / "l.db")) as proc:
        with trio.fail_after(TIMEOUT):
            # READY=1 came (proxy_process waited for it): the port accepts right away.
            stream = await trio.open_tcp_stream("127.0.0.1", proc.port)
            await stream.aclose()
            proc.process.send_signal(signal.SIGTERM)
            stopping = await proc.next_notification()
            status = await proc.process.wait()
    assert stopping == b"STOPPING=1"
    assert status == 0, proc.stderr()
    assert "SIGTERM: draining" in proc.stderr()


async def test_run_leaves_startup_objects_out_of_garbage_collections(
    mock: MockUpstream, tmp_path: Path
) -> None:
    # A full collection walks every tracked object; what exists at startup lives as long
    # as the process, so `run` freezes it (gc.freeze) before it says it is ready, and
    # collects the young generation less often than Python's default (700).
    async with proxy_process(tmp_path, "--upstream", mock.url, "--log-level", "debug",
                             "--ledger", str(tmp_path / "l.db")) as proc:
        with trio.fail_after(TIMEOUT):
            status = await proc.terminate()
    assert status == 0, proc.stderr()
    [line] = [line for line in proc.stderr().splitlines() if "gc.freeze()" in line]
    frozen = int(line.split("gc.freeze(): ", 1)[1].split()[0])
    assert frozen > 10_000, line  # the modules alone hold tens of thousands
    assert line.endswith(f"gc thresholds ({YOUNG_GC_THRESHOLD}, 10, 10)"), line


async def test_run_on_a_port_in_use_exits_1_with_one_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = await cli("run", "--listen", f"127.0.0.1:{port}",
                           "--ledger", str(tmp_path / "l.db"), cwd=tmp_path)
    assert result.returncode == 1
    stderr = result.stderr.decode()
    assert "Traceback" not in stderr
    [line] = stderr.splitlines()
    assert line.startswith(f"trioproxy: cannot listen on 127.0.0.1:{port}: ")
    assert "in use" in line
    assert not (tmp_path / "trioproxy.db").exists()


@pytest.mark.parametrize("transport", ["h11", "httpx"])
async def test_api_keys_never_reach_logs_or_ledger(
    mock: MockUpstream, tmp_path: Path, transport: str
) -> None:
    secrets = ("sk-ant-SECRET123", "sk-SECRET456")
    config = tmp_path / "config.toml"
    config.write_text(tomli_w.dumps({"upstream": {"transport": transport}}))
    ledger = tmp_path / "usage.db"
    async with proxy_process(tmp_path, "-c", str(config), "--upstream", mock.url,
                             "--ledger", str(ledger), "--log-level", "debug") as proc:
        with trio.fail_after(TIMEOUT):
            async with httpx.AsyncClient(base_url=proc.url) as client:
                plain = await client.post("/v1/messages", json=ANTHROPIC_ARGS,
                                          headers={"x-api-key": secrets[0]})
                async with client.stream(
                        "POST", "/v1/chat/completions", json={
                            "model": "gpt-4o-mini", "stream": True,
                            "messages": [{"role": "user", "content": "Hi"}]},
                        headers={"authorization": f"Bearer {secrets[1]}"}) as streamed:
                    await streamed.aread()
                # An upstream error is logged too: its line must not carry the key either.
                failed = await client.post("/v1/messages", json=ANTHROPIC_ARGS,
                                           headers={"x-api-key": secrets[0],
                                                    "x-mock-status": "401"})
            status = await proc.terminate()
    assert (plain.status_code, streamed.status_code, failed.status_code) == (200, 200, 401)
    assert status == 0
    # The keys did pass through to upstream, untouched.
    assert mock.requests[0].header("x-api-key") == secrets[0]
    assert mock.requests[1].header("authorization") == f"Bearer {secrets[1]}"

    stderr = proc.stderr()
    if transport == "httpx":
        assert "DEBUG httpcore" in stderr  # debug logging was on (h11 logs none per request)
    assert "POST /v1/messages 200" in stderr  # and requests were logged
    stored = ledger_bytes(ledger)
    for secret in secrets:
        assert secret not in stderr
        assert secret.encode() not in stored
        assert secret.split("-")[-1].encode() not in stored
    with sqlite3.connect(ledger) as db:
        hashes = [h for (h,) in db.execute("SELECT client_key_hash FROM requests ORDER BY id")]
    assert len(hashes) == 3
    assert hashes[0] == hashes[2] != hashes[1]  # identified by a salted hash instead
    assert all(h.startswith("k_") for h in hashes)


async def test_usage_savings_reports_the_optimize_layer(tmp_path: Path) -> None:
    from tests.test_report import SAVINGS_RECORDS, write_ledger

    ledger = tmp_path / "usage.db"
    with trio.fail_after(TIMEOUT):
        await write_ledger(ledger, SAVINGS_RECORDS)
    report = await cli("usage", "--ledger", str(ledger), "--savings", "--by", "model",
                       "--format", "json", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    rows = json.loads(report.stdout)["rows"]
    assert [(r["model"], r["optimized"], r["dry_run"]) for r in rows] == [
        ("claude-sonnet-4-5-20250929", 2, 1), ("llama-3", 1, 0)]
    table = await cli("usage", "--ledger", str(ledger), "--savings", cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    assert b"saved $ (measured)" in table.stdout
    bad = await cli("usage", "--ledger", str(ledger), "--savings", "--by", "route",
                    cwd=tmp_path)
    assert bad.returncode == 1
    assert b"choose day, model" in bad.stderr
