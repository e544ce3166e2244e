"""Tests for the usage ledger writer (trioproxy.ledger).

Rules for these tests:
- every async test runs under a fail-after bound (`@bounded`), so a hang fails fast;
- timing (flush_interval, checkpoint_interval) runs under the autojump clock, never
  real sleeps;
- the ledger does its sqlite3 work in worker threads, and the autojump clock counts a
  task that waits for a thread as blocked, so it may jump while SQLite works. Tests
  therefore call `settle()` after each step: it lets the ledger finish every thread
  call it can make at the current time while keeping the clock still;
- failure modes are real ones that fail for root too (tests run as root here, where
  chmod does not stop writes).
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, ParamSpec

import pytest
import trio
import trio.lowlevel
import trio.testing

from trioproxy import ledger as ledger_mod
from trioproxy.ledger import SCHEMA_VERSION, Ledger
from trioproxy.usage.record import RewriteRecord, Usage, UsageRecord

P = ParamSpec("P")
LOGGER = "trioproxy.ledger"


def bounded(seconds: float = 10) -> Callable[[Callable[P, Awaitable[None]]], Callable[P, Any]]:
    """Run an async test under trio.fail_after(seconds) (virtual seconds on a mock clock)."""

    def wrap(fn: Callable[P, Awaitable[None]]) -> Callable[P, Any]:
        @functools.wraps(fn)
        async def run(*args: P.args, **kwargs: P.kwargs) -> None:
            with trio.fail_after(seconds):
                await fn(*args, **kwargs)

        return run

    return wrap


async def settle(real_timeout: float = 10.0) -> None:
    """Return once every task is blocked and no worker thread is running.

    While a thread runs, this task stays runnable (checkpoint()), which keeps the autojump
    clock from jumping: the ledger sees exactly the virtual time the test set.
    """
    limiter = trio.to_thread.current_default_thread_limiter()
    give_up = time.monotonic() + real_timeout
    while True:
        await trio.testing.wait_all_tasks_blocked()
        if not limiter.borrowed_tokens:
            return
        while limiter.borrowed_tokens:
            assert time.monotonic() < give_up, "a worker thread did not finish"
            await trio.lowlevel.checkpoint()


async def start(nursery: trio.Nursery, ledger: Ledger) -> None:
    """nursery.start(ledger.run), holding the clock still while the ledger opens."""
    done = False

    async def hold_clock() -> None:
        while not done:  # runnable, never blocked: the autojump clock stays put
            await trio.lowlevel.checkpoint()

    async with trio.open_nursery() as inner:
        inner.start_soon(hold_clock)
        try:
            await nursery.start(ledger.run)
        finally:
            done = True


def make_record(i: int = 0, **changes: Any) -> UsageRecord:
    rec = UsageRecord(
        ts=1_700_000_000.25 + i,
        route="/anthropic",
        method="POST",
        path="/v1/messages",
        status=200,
        stream=True,
        ttfb_ms=123.5,
        duration_ms=2345.25,
        bytes_in=1024,
        bytes_out=4096 + i,
        outcome="ok",
        client_key_hash="k_0123456789abcdef0123456789abcdef",
        error=None,
        scan_complete=True,
        usage=Usage(
            model="claude-sonnet-4-5",
            input_tokens=10 + i,
            output_tokens=20,
            cache_read_tokens=300,
            cache_write_tokens=40,
            stop_reason="end_turn",
        ),
    )
    for k, v in changes.items():
        setattr(rec, k, v)
    return rec


def read_rows(path: Path) -> list[dict[str, Any]]:
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute("SELECT * FROM requests ORDER BY id")]
    finally:
        conn.close()


def user_version(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("PRAGMA user_version").fetchone()[0]
    finally:
        conn.close()


def file_bytes(path: Path) -> bytes | None:
    """The file's contents, or None if it is not a regular file."""
    return path.read_bytes() if path.is_file() else None


def all_bytes(directory: Path) -> bytes:
    """Every file's bytes in directory (the database, and any WAL or shm file)."""
    return b"".join(p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file())


def rows_in_main_file(path: Path, scratch: Path) -> int:
    """Rows in the database file itself, leaving out what is still only in the WAL."""
    copy = scratch / "main-only.db"
    for p in scratch.glob("main-only.db*"):
        p.unlink()
    shutil.copyfile(path, copy)
    conn = sqlite3.connect(copy)
    try:
        return conn.execute("SELECT count(*) FROM requests").fetchone()[0]
    except sqlite3.OperationalError:  # not even the table is checkpointed yet
        return 0
    finally:
        conn.close()


async def fill(tmp_path: Path, records: list[UsageRecord], **kw: Any) -> Ledger:
    """Run a ledger at tmp_path / 'ledger.db', record, close, wait for run() to return."""
    ledger = Ledger(tmp_path / "ledger.db", **kw)
    async with trio.open_nursery() as nursery:
        await start(nursery, ledger)
        for rec in records:
            ledger.record(rec)
        ledger.close()
    return ledger


# -- writing ---------------------------------------------------------------------


@bounded()
async def test_a_lone_surrogate_in_one_row_loses_no_row_of_its_batch(tmp_path: Path) -> None:
    # A client's JSON can carry "\ud800"; it may reach an error text or a model name.
    # SQLite takes UTF-8 only: the batch used to fail whole, losing every row in it.
    records = [make_record(i) for i in range(30)]
    records[7] = make_record(7, status=400, outcome="bad_request", error="bad key '\ud800'")
    assert records[12].usage is not None
    records[12].usage.model = "m\udfff"
    ledger = await fill(tmp_path, records, batch_size=25)
    assert (ledger.written, ledger.lost) == (30, 0)
    rows = read_rows(tmp_path / "ledger.db")
    assert [r["bytes_out"] for r in rows] == [4096 + i for i in range(30)]
    assert rows[7]["error"] == "bad key '\\ud800'"
    assert rows[12]["model"] == "m\\udfff"
    assert rows[8]["error"] is None
    assert rows[13]["model"] == "claude-sonnet-4-5"


@bounded()
async def test_records_round_trip_every_column(tmp_path: Path) -> None:
    full = make_record(0)
    assert full.usage is not None
    full.usage.cache_write_5m_tokens, full.usage.cache_write_1h_tokens = 30, 10
    full.rewrite = RewriteRecord("on", breakpoints_added=3, blocks_deduped=2, blocks_pruned=1,
                                 bytes_removed=50_000, tokens_removed_estimate=12_500)
    bare = UsageRecord(ts=1_700_000_100.0, route="/openai", method="GET", path="/v1/models")
    failed = make_record(
        2,
        status=502,
        stream=False,
        outcome="upstream_error",
        error=None,
        scan_complete=False,
        usage=Usage(model="gpt-4o", error="overloaded"),
    )
    ledger = await fill(tmp_path, [full, bare, failed])
    assert (ledger.written, ledger.lost) == (3, 0)

    rows = read_rows(tmp_path / "ledger.db")
    assert rows == [
        {
            "id": 1,
            "ts": 1_700_000_000.25,
            "route": "/anthropic",
            "method": "POST",
            "path": "/v1/messages",
            "status": 200,
            "model": "claude-sonnet-4-5",
            "stream": 1,
            "input_tokens": 10,
            "output_tokens": 20,
            "cache_read_tokens": 300,
            "cache_write_tokens": 40,
            "stop_reason": "end_turn",
            "ttfb_ms": 123.5,
            "duration_ms": 2345.25,
            "bytes_in": 1024,
            "bytes_out": 4096,
            "outcome": "ok",
            "client_key_hash": "k_0123456789abcdef0123456789abcdef",
            "error": None,
            "scan_complete": 1,
            "cache_write_5m_tokens": 30,
            "cache_write_1h_tokens": 10,
            "rewrite": "on",
            "breakpoints_added": 3,
            "blocks_deduped": 2,
            "blocks_pruned": 1,
            "bytes_removed": 50_000,
            "tokens_removed_estimate": 12_500,
        },
        {
            "id": 2,
            "ts": 1_700_000_100.0,
            "route": "/openai",
            "method": "GET",
            "path": "/v1/models",
            "status": None,
            "model": None,
            "stream": 0,
            "input_tokens": None,
            "output_tokens": None,
            "cache_read_tokens": None,
            "cache_write_tokens": None,
            "stop_reason": None,
            "ttfb_ms": None,
            "duration_ms": None,
            "bytes_in": 0,
            "bytes_out": 0,
            "outcome": "ok",
            "client_key_hash": None,
            "error": None,
            "scan_complete": 1,
            "cache_write_5m_tokens": None,
            "cache_write_1h_tokens": None,
            "rewrite": None,
            "breakpoints_added": None,
            "blocks_deduped": None,
            "blocks_pruned": None,
            "bytes_removed": None,
            "tokens_removed_estimate": None,
        },
        {
            "id": 3,
            "ts": 1_700_000_002.25,
            "route": "/anthropic",
            "method": "POST",
            "path": "/v1/messages",
            "status": 502,
            "model": "gpt-4o",
            "stream": 0,
            "input_tokens": None,
            "output_tokens": None,
            "cache_read_tokens": None,
            "cache_write_tokens": None,
            "stop_reason": None,
            "ttfb_ms": 123.5,
            "duration_ms": 2345.25,
            "bytes_in": 1024,
            "bytes_out": 4098,
            "outcome": "upstream_error",
            "client_key_hash": "k_0123456789abcdef0123456789abcdef",
            # the upstream's in-body error fills the column when the proxy had none
            "error": "overloaded",
            "scan_complete": 0,
            "cache_write_5m_tokens": None,
            "cache_write_1h_tokens": None,
            "rewrite": None,
            "breakpoints_added": None,
            "blocks_deduped": None,
            "blocks_pruned": None,
            "bytes_removed": None,
            "tokens_removed_estimate": None,
        },
    ]


@bounded()
async def test_rows_with_and_without_a_rewrite_keep_their_order(tmp_path: Path) -> None:
    # The two kinds are inserted by two statements: runs of each, in the batch's order.
    records = [make_record(i) for i in range(7)]
    for i in (1, 2, 5):
        records[i].rewrite = RewriteRecord("dry-run", breakpoints_added=i)
    await fill(tmp_path, records)
    rows = read_rows(tmp_path / "ledger.db")
    assert [r["ts"] for r in rows] == [rec.ts for rec in records]
    assert [r["id"] for r in rows] == list(range(1, 8))
    assert [r["breakpoints_added"] for r in rows] == [None, 1, 2, None, None, 5, None]
    assert [r["rewrite"] for r in rows] == [None, "dry-run", "dry-run", None, None, "dry-run", None]


@bounded()
async def test_a_batch_larger_than_one_insert_statement_keeps_every_value(tmp_path: Path) -> None:
    # Rows are inserted up to _INSERT_CHUNK at a time, many per statement: each row
    # must come back with its own values, whatever the chunk and run boundaries.
    records = [make_record(i, usage=Usage(input_tokens=i, model=f"m{i}")) for i in range(47)]
    for i in range(0, 47, 3):
        records[i].rewrite = RewriteRecord("on", breakpoints_added=i, bytes_removed=10 * i)
    ledger = await fill(tmp_path, records, batch_size=200)
    assert ledger.written == 47
    rows = read_rows(tmp_path / "ledger.db")
    assert [r["id"] for r in rows] == list(range(1, 48))
    assert [(r["ts"], r["input_tokens"], r["model"], r["bytes_out"]) for r in rows] == [
        (rec.ts, i, f"m{i}", 4096 + i) for i, rec in enumerate(records)
    ]
    assert [(r["rewrite"], r["breakpoints_added"], r["bytes_removed"]) for r in rows] == [
        ("on", i, 10 * i) if i % 3 == 0 else (None, None, None) for i in range(47)
    ]


@bounded()
async def test_proxy_error_wins_over_upstream_error(tmp_path: Path) -> None:
    rec = make_record(error="idle timeout", usage=Usage(error="overloaded"))
    await fill(tmp_path, [rec])
    assert read_rows(tmp_path / "ledger.db")[0]["error"] == "idle timeout"


@bounded()
async def test_full_batches_are_written_at_once_and_the_rest_on_close(tmp_path: Path) -> None:
    # flush_interval is far away: only batch_size and close() can cause a write here.
    ledger = Ledger(tmp_path / "ledger.db", batch_size=3, flush_interval=1e6)
    async with trio.open_nursery() as nursery:
        await start(nursery, ledger)
        for i in range(3):
            ledger.record(make_record(i))
        await settle()
        assert ledger.written == 3
        for i in range(3, 8):
            ledger.record(make_record(i))
        await settle()
        assert ledger.written == 6  # two full batches; two rows wait
        assert len(read_rows(tmp_path / "ledger.db")) == 6
        ledger.close()
    assert (ledger.written, ledger.lost) == (8, 0)
    assert [r["input_tokens"] for r in read_rows(tmp_path / "ledger.db")] == list(range(10, 18))


@bounded()
async def test_close_before_run_still_writes_what_was_queued(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.db")
    ledger.record(make_record(0))
    ledger.record(make_record(1))
    ledger.close()
    ledger.record(make_record(2))  # after close: lost, not raised
    await ledger.run()
    assert (ledger.written, ledger.lost) == (2, 1)
    assert len(read_rows(tmp_path / "ledger.db")) == 2


@bounded(100)
async def test_flush_after_interval_since_first_unwritten_row(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    ledger = Ledger(tmp_path / "ledger.db", batch_size=100, flush_interval=1.0)
    async with trio.open_nursery() as nursery:
        await start(nursery, ledger)
        t0 = trio.current_time()
        ledger.record(make_record(0))
        await trio.sleep(0.5)
        ledger.record(make_record(1))  # does not move the deadline: it counts from row 0
        await trio.sleep(0.499)
        await settle()
        assert ledger.written == 0
        await trio.sleep(0.002)  # t0 + 1.001
        await settle()
        assert ledger.written == 2
        assert trio.current_time() - t0 == pytest.approx(1.001)

        # The next row starts a new interval.
        t1 = trio.current_time()
        ledger.record(make_record(2))
        await trio.sleep(0.999)
        await settle()
        assert ledger.written == 2
        await trio.sleep(0.002)
        await settle()
        assert ledger.written == 3
        assert trio.current_time() - t1 == pytest.approx(1.001)

        # Idle: nothing to write, nothing written, no busy loop.
        await trio.sleep(50)
        await settle()
        assert ledger.written == 3
        ledger.close()
    assert ledger.lost == 0


@bounded(1000)
async def test_wal_checkpoint_every_interval(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    path = tmp_path / "ledger.db"
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    ledger = Ledger(path, batch_size=2, flush_interval=1.0, checkpoint_interval=300.0)
    async with trio.open_nursery() as nursery:
        await start(nursery, ledger)
        t0 = trio.current_time()
        for i in range(4):
            ledger.record(make_record(i))
        await settle()
        assert ledger.written == 4
        # Committed, but only in the WAL: the database file itself has none yet.
        assert len(read_rows(path)) == 4
        assert rows_in_main_file(path, scratch) == 0

        await trio.sleep(299.9)
        await settle()
        assert rows_in_main_file(path, scratch) == 0
        await trio.sleep(0.2)  # t0 + 300.1
        await settle()
        assert rows_in_main_file(path, scratch) == 4
        assert trio.current_time() - t0 == pytest.approx(300.1)

        # The next checkpoint is due 300 s after this one.
        ledger.record(make_record(4))
        ledger.record(make_record(5))
        await settle()
        await trio.sleep(299.8)
        await settle()
        assert rows_in_main_file(path, scratch) == 4
        await trio.sleep(0.2)
        await settle()
        assert rows_in_main_file(path, scratch) == 6
        ledger.close()


@bounded()
async def test_cancelled_run_flushes_what_it_holds_and_reraises(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.db", batch_size=100, flush_interval=1e6)
    reraised = False

    async def run_and_watch(task_status: trio.TaskStatus[None]) -> None:
        nonlocal reraised
        try:
            await ledger.run(task_status=task_status)
        except trio.Cancelled:
            reraised = True
            raise

    async with trio.open_nursery() as nursery:
        await nursery.start(run_and_watch)
        ledger.record(make_record(0))
        await settle()  # row 0 is now held in the writer's batch
        ledger.record(make_record(1))  # row 1 still waits in the channel
        nursery.cancel_scope.cancel()
    assert reraised
    assert (ledger.written, ledger.lost) == (2, 0)
    assert len(read_rows(tmp_path / "ledger.db")) == 2
    ledger.record(make_record(2))  # after run() has ended: counted, never raised
    assert ledger.lost == 1


@bounded()
async def test_queue_full_counts_lost_and_record_does_not_wait(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ledger = Ledger(tmp_path / "ledger.db", queue_size=5)
    caplog.set_level(logging.WARNING, logger=LOGGER)
    # No writer yet: nothing drains the channel, and record() must still return.
    t = time.monotonic()
    for i in range(105):
        ledger.record(make_record(i))
    assert time.monotonic() - t < 1.0
    assert ledger.lost == 100
    # Rate-limited: one line for the burst, and it says how many are lost so far.
    full = [r for r in caplog.records if r.name == LOGGER and "queue is full" in r.message]
    assert len(full) == 1
    assert "(lost so far: 1)" in full[0].message

    ledger.close()
    await ledger.run()
    assert (ledger.written, ledger.lost) == (5, 100)
    totals = [r.message for r in caplog.records if "in total" in r.message]
    assert totals == [f"usage ledger {tmp_path / 'ledger.db'}: lost 100 rows in total"]


@bounded()
async def test_record_never_raises_even_on_nonsense(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.db", batch_size=1)
    async with trio.open_nursery() as nursery:
        await start(nursery, ledger)
        ledger.record("not a record")  # type: ignore[arg-type]
        await settle()
        assert (ledger.written, ledger.lost) == (0, 1)  # the bad batch is lost ...
        ledger.record(make_record(0))
        await settle()
        assert ledger.written == 1  # ... and the writer keeps going
        ledger.close()


# -- failures that must not stop the proxy ---------------------------------------


@bounded()
async def test_write_failure_mid_run_loses_that_batch_and_keeps_going(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "ledger.db"
    ledger = Ledger(path, batch_size=2, flush_interval=1e6)
    caplog.set_level(logging.WARNING, logger=LOGGER)
    async with trio.open_nursery() as nursery:
        await start(nursery, ledger)
        ledger.record(make_record(0))
        ledger.record(make_record(1))
        await settle()
        assert ledger.written == 2

        # Make every insert fail the way a full disk does, from another connection.
        other = sqlite3.connect(path, isolation_level=None)
        other.execute(
            "CREATE TRIGGER full BEFORE INSERT ON requests"
            " BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
        )
        ledger.record(make_record(2))
        ledger.record(make_record(3))
        await settle()
        assert (ledger.written, ledger.lost) == (2, 2)
        failed = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert len(failed) == 1
        assert "disk is full" in failed[0].message
        assert str(path) in failed[0].message

        other.execute("DROP TRIGGER full")
        other.close()
        ledger.record(make_record(4))
        ledger.record(make_record(5))
        await settle()
        assert (ledger.written, ledger.lost) == (4, 2)
        ledger.close()
    assert [r["input_tokens"] for r in read_rows(path)] == [10, 11, 14, 15]


def _parent_is_a_file(tmp_path: Path) -> Path:
    (tmp_path / "afile").write_text("x")
    return tmp_path / "afile" / "ledger.db"


def _directory_at_path(tmp_path: Path) -> Path:
    (tmp_path / "ledger.db").mkdir()
    return tmp_path / "ledger.db"


def _not_sqlite(tmp_path: Path) -> Path:
    path = tmp_path / "ledger.db"
    path.write_bytes(b"this is a text file, not a database\n" * 200)
    return path


def _newer_schema(tmp_path: Path) -> Path:
    path = tmp_path / "ledger.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    return path


@pytest.mark.parametrize(
    ("make_path", "problem"),
    [
        (lambda tmp: tmp / "missing" / "ledger.db", "does not exist"),
        (_parent_is_a_file, "is not a directory"),
        (_directory_at_path, "is a directory"),
        (_not_sqlite, "not a database"),
        (_newer_schema, "newer than this trioproxy knows"),
    ],
    ids=["missing-dir", "parent-is-file", "dir-at-path", "not-sqlite", "newer-schema"],
)
@bounded()
async def test_unusable_ledger_does_not_stop_anything(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    make_path: Callable[[Path], Path],
    problem: str,
) -> None:
    path = make_path(tmp_path)
    before = file_bytes(path)
    await check_unavailable(path, problem, caplog)
    assert file_bytes(path) == before  # refused untouched


@pytest.fixture
def read_only_ledger(tmp_path: Path) -> Iterator[Path]:
    """A valid, migrated ledger file that really cannot be written, even by root.

    As root, chmod 0o444 does not stop writes, so the file is made immutable
    (chattr +i) instead; the test is skipped where that is not possible.
    """
    path = tmp_path / "ro.db"
    trio.run(fill_one, path)
    for p in tmp_path.glob("ro.db-*"):
        p.unlink()
    os.chmod(path, 0o444)
    immutable = False
    if os.geteuid() == 0:
        done = subprocess.run(["chattr", "+i", str(path)], capture_output=True, check=False)
        if done.returncode != 0:
            pytest.skip(f"cannot make a file read-only for root here: {done.stderr!r}")
        immutable = True
    try:
        yield path
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(path)], check=True)
        os.chmod(path, 0o644)


async def fill_one(path: Path) -> None:
    ledger = Ledger(path)
    async with trio.open_nursery() as nursery:
        await nursery.start(ledger.run)
        ledger.record(make_record(0))
        ledger.close()
    assert ledger.written == 1


@bounded()
async def test_read_only_ledger_does_not_stop_anything(
    read_only_ledger: Path, caplog: pytest.LogCaptureFixture
) -> None:
    before = file_bytes(read_only_ledger)
    await check_unavailable(read_only_ledger, "readonly", caplog)
    assert file_bytes(read_only_ledger) == before


async def check_unavailable(path: Path, problem: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    ledger = Ledger(path)
    ledger.record(make_record(0))  # queued before run(): drained as lost
    async with trio.open_nursery() as nursery:
        await start(nursery, ledger)  # started() is still reported
        await settle()
        assert ledger.lost == 1
        for i in range(1, 50):
            ledger.record(make_record(i))  # never raises, never waits
        assert ledger.lost == 50
        # Hashing still works, with a per-process salt.
        assert ledger.hash_key("sk-x").startswith("k_")
        ledger.close()
    assert ledger.written == 0
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1, [r.message for r in errors]
    assert str(path) in errors[0].message
    assert "unavailable" in errors[0].message
    assert problem in errors[0].message
    lines = [r for r in caplog.records if r.name == LOGGER]
    assert len(lines) <= 4  # one error, rate-limited warnings, one total: no flood


# -- schema and migrations -------------------------------------------------------


@bounded()
async def test_empty_file_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    path.write_bytes(b"")  # a v0 ledger: SQLite treats an empty file as an empty database
    await fill(tmp_path, [make_record(0)])
    assert user_version(path) == SCHEMA_VERSION == 2
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        assert {"requests", "meta", "requests_ts", "requests_model"} <= names
        (salt,) = conn.execute("SELECT value FROM meta WHERE key = 'salt'").fetchone()
        assert len(bytes.fromhex(salt)) == 16
    finally:
        conn.close()
    assert len(read_rows(path)) == 1


@bounded()
async def test_a_new_migration_is_one_more_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "ledger.db"
    await fill(tmp_path, [make_record(0)])
    assert user_version(path) == SCHEMA_VERSION

    steps = (*ledger_mod.MIGRATIONS, ("ALTER TABLE requests ADD COLUMN cost_usd REAL",))
    monkeypatch.setattr(ledger_mod, "MIGRATIONS", steps)
    monkeypatch.setattr(ledger_mod, "SCHEMA_VERSION", len(steps))
    await fill(tmp_path, [make_record(1)])
    assert user_version(path) == SCHEMA_VERSION + 1
    rows = read_rows(path)
    assert [r["cost_usd"] for r in rows] == [None, None]


@bounded()
async def test_each_migration_step_is_one_transaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "ledger.db"
    steps = (*ledger_mod.MIGRATIONS, ("CREATE TABLE half (x)", "THIS IS NOT SQL"))
    monkeypatch.setattr(ledger_mod, "MIGRATIONS", steps)
    monkeypatch.setattr(ledger_mod, "SCHEMA_VERSION", len(steps))
    await check_unavailable(path, "syntax error", caplog)
    # The real steps committed; the broken last one rolled back whole.
    assert user_version(path) == SCHEMA_VERSION
    conn = sqlite3.connect(path)
    try:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    finally:
        conn.close()
    assert "requests" in names
    assert "half" not in names


# -- client key hashes -----------------------------------------------------------


@bounded()
async def test_hash_key_salt_persists_and_secret_is_never_stored(tmp_path: Path) -> None:
    secret = "sk-ant-api03-VERY-SECRET-KEY-0123456789"
    path = tmp_path / "ledger.db"

    first = Ledger(path)
    before_open = first.hash_key(secret)
    async with trio.open_nursery() as nursery:
        await start(nursery, first)
        h1 = first.hash_key(secret)
        first.record(make_record(0, client_key_hash=h1, error=None))
        first.close()
    assert h1 != before_open  # the ledger's salt replaced the per-process one
    assert h1.startswith("k_")
    assert len(h1) == 34
    int(h1[2:], 16)
    assert first.hash_key("another key") != h1

    second = Ledger(path)
    async with trio.open_nursery() as nursery:
        await start(nursery, second)
        assert second.hash_key(secret) == h1  # same file, same salt, same hash
        second.close()

    elsewhere = Ledger(tmp_path / "other.db")
    async with trio.open_nursery() as nursery:
        await start(nursery, elsewhere)
        assert elsewhere.hash_key(secret) != h1
        elsewhere.close()

    # Neither the key nor any recognisable part of it is in the files.
    data = all_bytes(tmp_path)
    assert h1.encode() in data
    assert secret.encode() not in data
    assert b"VERY-SECRET" not in data


@bounded()
async def test_hash_keys_are_remembered_without_the_keys(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "a.db")
    keys = [f"sk-client-{i}" for i in range(3000)]  # more than the ledger remembers
    first = [ledger.hash_key(k) for k in keys]
    assert len(set(first)) == len(keys)
    assert [ledger.hash_key(k) for k in reversed(keys)] == first[::-1]
    # What it remembers is keyed by an int, never by the key itself.
    assert ledger._key_hashes
    assert all(type(slot) is int for slot in ledger._key_hashes)
    assert not any(k in ledger._key_hashes.values() for k in keys)


@bounded()
async def test_hash_key_before_run_differs_between_ledgers(tmp_path: Path) -> None:
    a, b = Ledger(tmp_path / "a.db"), Ledger(tmp_path / "b.db")
    assert a.hash_key("k") == a.hash_key("k")
    assert a.hash_key("k") != b.hash_key("k")


@bounded()
async def test_constructor_rejects_nonsense_sizes(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        Ledger(tmp_path / "x.db", batch_size=0)
    with pytest.raises(ValueError, match="queue_size"):
        Ledger(tmp_path / "x.db", queue_size=0)


@bounded()
async def test_run_twice_is_an_error(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.db")
    ledger.close()
    await ledger.run()
    with pytest.raises(RuntimeError, match="once"):
        await ledger.run()


@bounded()
async def test_a_version_1_ledger_gains_the_rewrite_and_cache_lifetime_columns(
    tmp_path: Path
) -> None:
    path = tmp_path / "ledger.db"
    conn = sqlite3.connect(path)
    try:
        for statement in ledger_mod.MIGRATIONS[0]:
            conn.execute(statement)
        conn.execute("INSERT INTO requests (ts, path, input_tokens) VALUES (1.0, '/old', 7)")
        conn.execute("PRAGMA user_version = 1")
        conn.commit()
    finally:
        conn.close()
    full = make_record(0)
    full.rewrite = RewriteRecord("dry-run", breakpoints_added=2)
    await fill(tmp_path, [full])
    assert user_version(path) == 2
    old, new = read_rows(path)
    assert (old["path"], old["input_tokens"], old["rewrite"], old["breakpoints_added"]) == (
        "/old", 7, None, None)
    assert (new["rewrite"], new["breakpoints_added"], new["blocks_deduped"]) == ("dry-run", 2, 0)
