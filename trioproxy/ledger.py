"""The usage ledger: one SQLite row per proxied request, written off the event loop.

Rule 6 of the design: recording never blocks traffic. `Ledger.record()` is a sync,
non-blocking hand-off into a bounded memory channel; one writer task (`Ledger.run`)
takes rows from it and writes them in batches, with every sqlite3 call made in a
worker thread through `trio.to_thread.run_sync`, one call at a time, on one
connection. If the ledger cannot be opened, falls behind or fails to write, requests
still flow: the rows are counted in `Ledger.lost` and a rate-limited warning is logged.

The schema is versioned with `PRAGMA user_version`; `MIGRATIONS` holds the steps,
each applied in its own transaction. Read-only queries for reports live in
`trioproxy.report`.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import itertools
import logging
import math
import os
import secrets
import sqlite3
import time
from contextlib import suppress
from typing import Any

import trio

from trioproxy.usage.record import UsageRecord

logger = logging.getLogger("trioproxy.ledger")

# Schema migrations, in order: step i takes a ledger from user_version i to i + 1.
# Each step is a tuple of statements run in one transaction; to change the schema,
# append one step (never edit a released one).
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: one row per request, and the salt for client key hashes.
    (
        """CREATE TABLE requests (
            id INTEGER PRIMARY KEY,
            ts REAL NOT NULL,
            route TEXT,
            method TEXT,
            path TEXT,
            status INTEGER,
            model TEXT,
            stream INTEGER,
            input_tokens INTEGER,
            output_tokens INTEGER,
            cache_read_tokens INTEGER,
            cache_write_tokens INTEGER,
            stop_reason TEXT,
            ttfb_ms REAL,
            duration_ms REAL,
            bytes_in INTEGER,
            bytes_out INTEGER,
            outcome TEXT,
            client_key_hash TEXT,
            error TEXT,
            scan_complete INTEGER
        )""",
        "CREATE INDEX requests_ts ON requests (ts)",
        "CREATE INDEX requests_model ON requests (model)",
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)",
    ),
    # 2: cache writes by lifetime, and what the optimize layer did (issue 5).
    (
        "ALTER TABLE requests ADD COLUMN cache_write_5m_tokens INTEGER",
        "ALTER TABLE requests ADD COLUMN cache_write_1h_tokens INTEGER",
        "ALTER TABLE requests ADD COLUMN rewrite TEXT",  # NULL, 'on' or 'dry-run'
        "ALTER TABLE requests ADD COLUMN breakpoints_added INTEGER",
        "ALTER TABLE requests ADD COLUMN blocks_deduped INTEGER",
        "ALTER TABLE requests ADD COLUMN blocks_pruned INTEGER",
        "ALTER TABLE requests ADD COLUMN bytes_removed INTEGER",
        "ALTER TABLE requests ADD COLUMN tokens_removed_estimate INTEGER",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)

_COLUMNS = (
    "ts, route, method, path, status, model, stream, input_tokens, output_tokens,"
    " cache_read_tokens, cache_write_tokens, stop_reason, ttfb_ms, duration_ms,"
    " bytes_in, bytes_out, outcome, client_key_hash, error, scan_complete,"
    " cache_write_5m_tokens, cache_write_1h_tokens"
)
_REWRITE_COLUMNS = (
    "rewrite, breakpoints_added, blocks_deduped, blocks_pruned, bytes_removed,"
    " tokens_removed_estimate"
)
_N_COLUMNS = _COLUMNS.count(",") + 1
_N_REWRITE_COLUMNS = _N_COLUMNS + _REWRITE_COLUMNS.count(",") + 1


@functools.lru_cache(maxsize=64)
def _insert_statement(rows: int, rewrite: bool) -> str:
    """One INSERT of `rows` rows: the plain columns, or with the optimize layer's six.

    Many rows in one statement rather than executemany: sqlite3 then steps once, and
    releases and retakes the GIL once, for all of them (a fifth less CPU per row). Rows
    the optimize layer did not look at leave its columns out (NULL): six more values
    bound per row cost a quarter more CPU per row.
    """
    columns = f"{_COLUMNS}, {_REWRITE_COLUMNS}" if rewrite else _COLUMNS
    one = "(" + ", ".join("?" * (_N_REWRITE_COLUMNS if rewrite else _N_COLUMNS)) + ")"
    return f"INSERT INTO requests ({columns}) VALUES " + ", ".join([one] * rows)


# A batch is inserted a few rows at a time with a pause between: the writer thread
# shares the CPU with the event loop, and one long insert (about 1.5 ms for 200 rows)
# delays every request that arrives meanwhile. Short steps keep each delay short.
# One statement per step binds up to 20 * 28 values: SQLite before 3.32 allows 999.
_INSERT_CHUNK = 20
_INSERT_PAUSE = 0.0005


def _none_as_null(value: None) -> None:
    return value


# sqlite3 looks for an adapter for each value it binds other than an int, float, str or
# bytearray, and for None found none only after two failed attribute look-ups: 0.2 us
# per None, a fifth of the writer's CPU per row. With this one, None binds as NULL as
# before, at once. (The registry is the process's; for any other sqlite3 user in it,
# None still binds as NULL. A later NoneType adapter of someone else's replaces this
# one; test_records_round_trip_every_column checks that None still reads back as NULL.)
sqlite3.register_adapter(type(None), _none_as_null)

_SALT_BYTES = 16
# Client key hashes remembered (see Ledger.hash_key); past this many keys, start afresh.
_KEY_HASH_CACHE = 1024
# How long a write waits for another process's lock (e.g. a `trioproxy usage`
# reader doing a checkpoint) before the batch counts as failed.
_BUSY_TIMEOUT = 2.0
# Bound on the final flush when run() is cancelled.
_FINAL_FLUSH_TIMEOUT = 5.0
# At most one "rows lost" line per reason per this many seconds.
_LOSS_LOG_INTERVAL = 10.0


class LedgerError(Exception):
    """The ledger file cannot be used (the message says why and what to do)."""


class Ledger:
    """Batched, non-blocking writer of `UsageRecord`s into a SQLite file in WAL mode.

    Start it with `await nursery.start(ledger.run)`; call `record()` from any task;
    call `close()` to make `run()` write what it holds and return.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        batch_size: int = 200,
        flush_interval: float = 1.0,
        checkpoint_interval: float = 300.0,
        queue_size: int = 10_000,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        self.path = os.fspath(path)
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._checkpoint_interval = checkpoint_interval
        self._queue_size = queue_size
        # Rows wait in a plain list: the writer task is woken once per batch (at its
        # first row and when it is full), not once per row as a channel would.
        self._pending: list[UsageRecord] = []
        self._wake = trio.Event()
        self._wake_at = 1  # wake the writer when this many rows are pending
        # Until run() loads the ledger's own salt: a random one, never stored.
        self._salt = secrets.token_bytes(_SALT_BYTES)
        self._key_hashes: dict[int, str] = {}  # hash(secret) -> hash_key(secret), this salt
        self._conn: sqlite3.Connection | None = None
        self._started = False
        self._closed = False  # close() was called: no more records accepted
        self._stopped = False  # run() has returned, or the ledger could not be opened
        self._last_loss_log: dict[str, float] = {}
        self._lost_logged = 0
        self.lost = 0
        self.written = 0

    # -- the hot path ----------------------------------------------------------

    def record(self, rec: UsageRecord) -> None:
        """Queue one row for writing. Never blocks and never raises; a row that
        cannot be queued counts in `lost`."""
        try:
            if self._closed:
                self._lose(1, "closed", "the ledger is closed")
            elif self._stopped:
                self._lose(1, "unavailable", "the ledger is not running (unavailable or stopped)")
            elif len(self._pending) >= self._queue_size:
                self._lose(1, "full", "the write queue is full (the disk is too slow?)")
            else:
                self._pending.append(rec)
                if len(self._pending) >= self._wake_at:
                    self._wake.set()
        except Exception as exc:  # the caller is a request: it must never see this
            self._lose(1, "error", f"{type(exc).__name__}: {exc}")

    def hash_key(self, secret: str) -> str:
        """A salted hash that identifies a client API key without storing it."""
        # A client sends the same key with every request, and the HMAC was 2% of a small
        # request's instructions (callgrind): each key's is remembered, under Python's
        # own keyed 64-bit hash of the key, so that the key itself is not kept.
        slot = hash(secret)
        known = self._key_hashes.get(slot)
        if known is None:
            if len(self._key_hashes) >= _KEY_HASH_CACHE:
                self._key_hashes.clear()
            digest = hmac.new(self._salt, secret.encode("utf-8", "surrogatepass"), hashlib.sha256)
            known = self._key_hashes[slot] = "k_" + digest.hexdigest()[:32]
        return known

    def close(self) -> None:
        """Accept no more records; run() writes what it holds, then returns."""
        self._closed = True
        self._wake.set()

    # -- the writer task -------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Open the ledger, report started, then write batches until close().

        An unusable ledger is logged once and then only counted: it never stops the proxy.
        """
        if self._started:
            raise RuntimeError("Ledger.run() can only be called once")
        self._started = True
        try:
            try:
                conn, salt = await trio.to_thread.run_sync(self._open_sync)
            except Exception as exc:
                # One clear line; a traceback would add nothing for the user.
                logger.error(
                    "usage ledger %s is unavailable, usage will not be recorded: %s",
                    self.path,
                    exc,
                )
                self._stopped = True  # from now on record() counts rows as lost at once
                task_status.started()
                if self._pending:
                    self._lose(len(self._pending), "unavailable", "the ledger is not available")
                    self._pending = []
                return
            self._conn = conn
            self._salt = salt
            self._key_hashes.clear()  # made with the per-process salt
            task_status.started()
            try:
                await self._write_loop()
            except BaseException:
                # Cancelled (or worse): keep what we can, within a bound.
                with trio.move_on_after(_FINAL_FLUSH_TIMEOUT, shield=True):
                    while self._pending and self._conn is not None:
                        await self._flush()
                raise
        finally:
            await self._shutdown()

    async def _write_loop(self) -> None:
        next_checkpoint = trio.current_time() + self._checkpoint_interval
        flush_at = math.inf  # when the oldest pending row must be written
        dirty = False  # rows written since the last checkpoint
        while not self._closed:
            if self._pending and flush_at == math.inf:
                flush_at = trio.current_time() + self._flush_interval
            # Sleep until the first row, a full batch, the flush time or a checkpoint.
            self._wake_at = self._batch_size if self._pending else 1
            if len(self._pending) < self._wake_at:
                self._wake = trio.Event()
                with trio.move_on_at(min(flush_at, next_checkpoint)):
                    await self._wake.wait()
            now = trio.current_time()
            if len(self._pending) >= self._batch_size or (self._pending and now >= flush_at):
                while len(self._pending) >= self._batch_size:
                    await self._flush()
                if self._pending and now >= flush_at:
                    await self._flush()
                flush_at = math.inf
                dirty = True
            if now >= next_checkpoint:
                if dirty:
                    await self._checkpoint()
                    dirty = False
                next_checkpoint = now + self._checkpoint_interval
        while self._pending and self._conn is not None:
            await self._flush()

    async def _flush(self) -> None:
        """Write up to batch_size pending rows in one transaction; a failed batch is lost."""
        if not self._pending or self._conn is None:
            return
        batch = self._pending[: self._batch_size]
        del self._pending[: len(batch)]
        try:
            # Not abandoned on cancel: if this raises Cancelled, the thread never ran,
            # and once the thread has run, nothing can interrupt us before the count.
            await trio.to_thread.run_sync(_insert_sync, self._conn, batch)
        except trio.Cancelled:
            self._pending[:0] = batch  # not written: still pending
            raise
        except Exception as exc:
            self._lose(len(batch), "write", f"writing {len(batch)} rows failed: {exc}")
        else:
            self.written += len(batch)

    async def _checkpoint(self) -> None:
        if self._conn is None:
            return
        try:
            await trio.to_thread.run_sync(_checkpoint_sync, self._conn)
        except Exception as exc:
            logger.warning("usage ledger %s: WAL checkpoint failed: %s", self.path, exc)

    async def _shutdown(self) -> None:
        """After run(): refuse further rows, count what is left, close the connection."""
        self._stopped = True
        if self._pending:
            self._lose(len(self._pending), "shutdown", "the ledger stopped before writing them")
            self._pending = []
        conn, self._conn = self._conn, None
        if conn is not None:
            with trio.move_on_after(_FINAL_FLUSH_TIMEOUT, shield=True):
                try:
                    await trio.to_thread.run_sync(conn.close)
                except sqlite3.Error as exc:
                    logger.warning("usage ledger %s: closing failed: %s", self.path, exc)
        if self.lost != self._lost_logged:
            logger.warning("usage ledger %s: lost %d rows in total", self.path, self.lost)
            self._lost_logged = self.lost

    def _lose(self, n: int, kind: str, why: str) -> None:
        """Count lost rows; log at most one line per kind per _LOSS_LOG_INTERVAL."""
        self.lost += n
        now = time.monotonic()
        last = self._last_loss_log.get(kind)
        if last is None or now - last >= _LOSS_LOG_INTERVAL:
            self._last_loss_log[kind] = now
            self._lost_logged = self.lost
            level = logging.ERROR if kind == "write" else logging.WARNING
            logger.log(level, "usage ledger %s: %s (lost so far: %d)", self.path, why, self.lost)

    def _open_sync(self) -> tuple[sqlite3.Connection, bytes]:
        """(Worker thread.) Open, migrate and probe the ledger; return it with its salt."""
        parent = os.path.dirname(os.path.abspath(self.path))
        if not os.path.exists(parent):
            raise LedgerError(f"directory {parent} does not exist (create it first)")
        if not os.path.isdir(parent):
            raise LedgerError(f"{parent} is not a directory")
        if os.path.isdir(self.path):
            raise LedgerError("it is a directory, not a file")
        conn = sqlite3.connect(
            self.path, timeout=_BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
        )
        try:
            _check_version(conn)  # refuse a newer ledger before touching it
            _migrate(conn)
            salt = _load_salt(conn)
            # WAL: readers (`trioproxy usage`) never block the writer, nor it them.
            (mode,) = conn.execute("PRAGMA journal_mode=WAL").fetchone()
            if str(mode).lower() != "wal":
                logger.warning(
                    "usage ledger %s: WAL mode unavailable (journal mode %s); writes may"
                    " briefly block readers",
                    self.path,
                    mode,
                )
            # In WAL mode, NORMAL loses at most the last commits on power loss, never
            # corrupts; that is the right trade for usage rows.
            conn.execute("PRAGMA synchronous=NORMAL")
        except BaseException:
            conn.close()
            raise
        return conn, salt


# -- sqlite3 work, always run in the worker thread --------------------------------


def _check_version(conn: sqlite3.Connection) -> int:
    # The first read of the file: "file is not a database" surfaces here.
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    if version > SCHEMA_VERSION:
        raise LedgerError(
            f"its schema version {version} is newer than this trioproxy knows"
            f" ({SCHEMA_VERSION}); upgrade trioproxy or use another ledger file"
        )
    return int(version)


def _migrate(conn: sqlite3.Connection) -> None:
    """Apply the missing MIGRATIONS steps, each in its own transaction."""
    while True:
        conn.execute("BEGIN IMMEDIATE")  # take the write lock before reading the version
        try:
            version = _check_version(conn)
            if version == SCHEMA_VERSION:
                conn.execute("COMMIT")
                return
            for statement in MIGRATIONS[version]:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {version + 1:d}")
            conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            raise


def _load_salt(conn: sqlite3.Connection) -> bytes:
    """Read the ledger's salt, creating it on first open.

    This is also the write probe: a ledger that opens but cannot be written (a
    read-only file) fails here, at start, rather than on every batch.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = 'salt'").fetchone()
        if row is None:
            salt = secrets.token_bytes(_SALT_BYTES)
            conn.execute("INSERT INTO meta (key, value) VALUES ('salt', ?)", (salt.hex(),))
        else:
            try:
                salt = bytes.fromhex(row[0])
            except (TypeError, ValueError):
                raise LedgerError("its salt in table meta is not hex") from None
            conn.execute("UPDATE meta SET value = value WHERE key = 'salt'")
        conn.execute("COMMIT")
    except BaseException:
        _rollback(conn)
        raise
    return salt


def _insert_sync(conn: sqlite3.Connection, batch: list[UsageRecord]) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        for start in range(0, len(batch), _INSERT_CHUNK):
            if start:
                time.sleep(_INSERT_PAUSE)
            for statement, values in _runs(batch[start:start + _INSERT_CHUNK]):
                try:
                    conn.execute(statement, values)
                except UnicodeEncodeError:
                    # A lone surrogate (e.g. "\ud800" decoded from a client's JSON, in an
                    # error text or a model name): SQLite takes UTF-8 only. Raised while
                    # binding, before any row of the statement was written.
                    conn.execute(statement, [_utf8_safe(v) for v in values])
        conn.execute("COMMIT")
    except BaseException:
        _rollback(conn)
        raise


def _utf8_safe(value: Any) -> Any:
    """`value`; a str that UTF-8 cannot encode has its lone surrogates backslash-escaped."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


def _checkpoint_sync(conn: sqlite3.Connection) -> None:
    # PASSIVE: copy what it can without waiting for readers, never blocks writers.
    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        # The original error is what matters; a failed rollback adds nothing to it.
        with suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


def _runs(batch: list[UsageRecord]) -> list[tuple[str, list[Any]]]:
    """An INSERT statement and its values for each run of records that bind the same
    columns, in the batch's order (row ids follow it)."""
    runs: list[tuple[str, list[Any]]] = []
    for rewrite, group in itertools.groupby(batch, key=lambda rec: rec.rewrite is not None):
        records = list(group)
        values: list[Any] = []
        for rec in records:
            values += _row(rec)
        runs.append((_insert_statement(len(records), rewrite), values))
    return runs


def _row(rec: UsageRecord) -> tuple[Any, ...]:
    """The `requests` columns for one record: _COLUMNS, then _REWRITE_COLUMNS if the
    optimize layer looked at the request."""
    u = rec.usage
    rw = rec.rewrite
    # One error column: the proxy's own error if any, else the one upstream put in the body.
    error = rec.error if rec.error is not None else (u.error if u is not None else None)
    return (
        rec.ts,
        rec.route,
        rec.method,
        rec.path,
        rec.status,
        u.model if u is not None else None,
        int(rec.stream),
        u.input_tokens if u is not None else None,
        u.output_tokens if u is not None else None,
        u.cache_read_tokens if u is not None else None,
        u.cache_write_tokens if u is not None else None,
        u.stop_reason if u is not None else None,
        rec.ttfb_ms,
        rec.duration_ms,
        rec.bytes_in,
        rec.bytes_out,
        rec.outcome,
        rec.client_key_hash,
        error,
        int(rec.scan_complete),
        u.cache_write_5m_tokens if u is not None else None,
        u.cache_write_1h_tokens if u is not None else None,
        *(() if rw is None else (
            rw.mode, rw.breakpoints_added, rw.blocks_deduped, rw.blocks_pruned,
            rw.bytes_removed, rw.tokens_removed_estimate,
        )),
    )
