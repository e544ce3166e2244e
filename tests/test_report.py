"""Tests for the usage report queries and formatting (trioproxy.report).

The report is plain sync code; the tests are async only so that they run under the
suite's watchdog, and so that fixtures can fill a ledger with the real writer.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from tests.test_ledger import file_bytes, settle
from trioproxy.ledger import Ledger
from trioproxy.report import (
    LedgerNotFound,
    ReportError,
    _connect_ro,
    format_json,
    format_savings_table,
    format_table,
    savings_summary,
    usage_summary,
)
from trioproxy.usage.record import RewriteRecord, Usage, UsageRecord

DAY1 = 1_714_521_600.0  # 2024-05-01T00:00:00Z
HOUR = 3600.0
DAY = 86_400.0


def rec(
    ts: float,
    *,
    route: str = "/anthropic",
    outcome: str = "ok",
    ttfb_ms: float | None = 100.0,
    scan_complete: bool = True,
    usage: Usage | None = None,
) -> UsageRecord:
    return UsageRecord(
        ts=ts,
        route=route,
        method="POST",
        path="/v1/messages",
        status=200 if outcome == "ok" else 502,
        ttfb_ms=ttfb_ms,
        outcome=outcome,
        scan_complete=scan_complete,
        usage=usage,
    )


RECORDS = [
    rec(
        DAY1 + 10 * HOUR,
        usage=Usage(model="a", input_tokens=100, output_tokens=10, cache_read_tokens=1000),
    ),
    rec(
        DAY1 + 11 * HOUR,
        outcome="upstream_error",
        ttfb_ms=300.0,
        scan_complete=False,
        usage=Usage(model="a", output_tokens=5, cache_write_tokens=50),
    ),
    # The last moment of day 1, with no usage at all (e.g. rejected by the proxy).
    rec(DAY1 + DAY - 0.5, route="/openai", outcome="client_error", ttfb_ms=None),
    # The first moment of day 2.
    rec(
        DAY1 + DAY,
        route="/openai",
        ttfb_ms=50.0,
        usage=Usage(model="b", input_tokens=7, output_tokens=3),
    ),
    rec(
        DAY1 + DAY + HOUR,
        ttfb_ms=10.0,
        usage=Usage(
            model="a",
            input_tokens=1_234_567,
            output_tokens=1,
            cache_read_tokens=0,
            cache_write_tokens=0,
        ),
    ),
]


def metrics(
    requests: int,
    input_tokens: int = 0,
    output_tokens: int = 0,
    cache_read_tokens: int = 0,
    cache_write_tokens: int = 0,
    errors: int = 0,
    incomplete: int = 0,
    avg_ttfb_ms: float | None = None,
) -> dict[str, Any]:
    return {
        "requests": requests,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_read_tokens": cache_read_tokens,
        "cache_write_tokens": cache_write_tokens,
        "errors": errors,
        "incomplete": incomplete,
        "avg_ttfb_ms": avg_ttfb_ms,
    }


async def write_ledger(path: Path, records: list[UsageRecord]) -> None:
    ledger = Ledger(path)
    async with trio.open_nursery() as nursery:
        await nursery.start(ledger.run)
        for r in records:
            ledger.record(r)
        ledger.close()
    assert ledger.written == len(records)


@pytest.fixture
async def ledger_path(tmp_path: Path) -> Path:
    path = tmp_path / "ledger.db"
    with trio.fail_after(10):
        await write_ledger(path, RECORDS)
    return path


# -- queries ---------------------------------------------------------------------


async def test_group_by_day_and_model(ledger_path: Path) -> None:
    assert usage_summary(ledger_path) == [
        {"day": "2024-05-01", "model": "(unknown)", **metrics(1, errors=1)},
        {
            "day": "2024-05-01",
            "model": "a",
            **metrics(
                2,
                input_tokens=100,
                output_tokens=15,
                cache_read_tokens=1000,
                cache_write_tokens=50,
                errors=1,
                incomplete=1,
                avg_ttfb_ms=200.0,
            ),
        },
        {
            "day": "2024-05-02",
            "model": "a",
            **metrics(1, input_tokens=1_234_567, output_tokens=1, avg_ttfb_ms=10.0),
        },
        {
            "day": "2024-05-02",
            "model": "b",
            **metrics(1, input_tokens=7, output_tokens=3, avg_ttfb_ms=50.0),
        },
    ]


async def test_group_by_route_and_outcome(ledger_path: Path) -> None:
    by_route = usage_summary(ledger_path, group_by=("route",))
    assert [(r["route"], r["requests"], r["input_tokens"]) for r in by_route] == [
        ("/anthropic", 3, 1_234_667),
        ("/openai", 2, 7),
    ]
    by_outcome = usage_summary(ledger_path, group_by=("outcome",))
    assert [(r["outcome"], r["requests"], r["errors"]) for r in by_outcome] == [
        ("client_error", 1, 1),
        ("ok", 3, 0),
        ("upstream_error", 1, 1),
    ]
    # Ordered by day, then model, whatever order the keys were given in.
    mixed = usage_summary(ledger_path, group_by=("model", "day"))
    assert [(r["model"], r["day"]) for r in mixed] == [
        ("(unknown)", "2024-05-01"),
        ("a", "2024-05-01"),
        ("a", "2024-05-02"),
        ("b", "2024-05-02"),
    ]
    assert list(mixed[0])[:2] == ["model", "day"]  # keys come in the order asked


async def test_no_grouping_is_one_total_row(ledger_path: Path) -> None:
    assert usage_summary(ledger_path, group_by=()) == [
        metrics(
            5,
            input_tokens=1_234_674,
            output_tokens=19,
            cache_read_tokens=1000,
            cache_write_tokens=50,
            errors=2,
            incomplete=1,
            avg_ttfb_ms=pytest.approx(115.0),
        )
    ]


async def test_since_until_is_half_open(ledger_path: Path) -> None:
    day2 = usage_summary(ledger_path, since=DAY1 + DAY, group_by=("day",))
    assert [(r["day"], r["requests"]) for r in day2] == [("2024-05-02", 2)]
    day1 = usage_summary(ledger_path, until=DAY1 + DAY, group_by=("day",))
    assert [(r["day"], r["requests"]) for r in day1] == [("2024-05-01", 3)]
    both = usage_summary(ledger_path, since=DAY1 + 11 * HOUR, until=DAY1 + DAY + 1)
    assert sum(r["requests"] for r in both) == 3
    assert usage_summary(ledger_path, since=DAY1 + 2 * DAY) == []
    assert usage_summary(ledger_path, since=DAY1 + 2 * DAY, group_by=()) == []


async def test_unknown_group_is_refused(ledger_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot group by client"):
        usage_summary(ledger_path, group_by=("day", "client"))


async def test_reads_while_the_proxy_writes(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    ledger = Ledger(path, batch_size=1)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(ledger.run)
            ledger.record(RECORDS[0])
            await settle()
            assert usage_summary(path, group_by=())[0]["requests"] == 1
            ledger.record(RECORDS[1])
            await settle()
            assert usage_summary(path, group_by=())[0]["requests"] == 2
            ledger.close()


async def test_path_with_uri_characters(tmp_path: Path) -> None:
    path = tmp_path / "odd dir %20#?x" / "led?ger#1.db"
    path.parent.mkdir()
    with trio.fail_after(10):
        await write_ledger(path, RECORDS[:2])
    assert usage_summary(path, group_by=())[0]["requests"] == 2


# -- missing and unreadable ledgers ------------------------------------------------


async def test_missing_ledger(tmp_path: Path) -> None:
    path = tmp_path / "nope.db"
    with pytest.raises(LedgerNotFound) as info:
        usage_summary(path)
    message = str(info.value)
    assert str(path) in message
    assert "run the proxy first" in message
    assert not path.exists()  # a report never creates a ledger


async def test_empty_file_is_not_a_ledger_yet(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    path.write_bytes(b"")
    with pytest.raises(LedgerNotFound, match="no usage table"):
        usage_summary(path)
    assert path.read_bytes() == b""


async def test_unreadable_file_is_a_report_error(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"not sqlite at all\n" * 100)
    with pytest.raises(ReportError, match="junk.db") as info:
        usage_summary(path)
    assert not isinstance(info.value, LedgerNotFound)
    with pytest.raises(ReportError, match="is a directory"):
        usage_summary(tmp_path)


async def test_report_is_read_only(ledger_path: Path) -> None:
    before = file_bytes(ledger_path)
    usage_summary(ledger_path)
    assert file_bytes(ledger_path) == before
    # Even a write through the report's own connection would be refused.
    conn = _connect_ro(ledger_path)
    try:
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            conn.execute("DELETE FROM requests")
    finally:
        conn.close()


# -- formatting ------------------------------------------------------------------


async def test_format_table(ledger_path: Path) -> None:
    table = format_table(usage_summary(ledger_path))
    assert table == (
        "day         model      requests      input  output  cache read  cache write"
        "  errors  incomplete  avg ttfb ms\n"
        "----------  ---------  --------  ---------  ------  ----------  -----------"
        "  ------  ----------  -----------\n"
        "2024-05-01  (unknown)         1          0       0           0            0"
        "       1           0            -\n"
        "2024-05-01  a                 2        100      15       1,000           50"
        "       1           1        200.0\n"
        "2024-05-02  a                 1  1,234,567       1           0            0"
        "       0           0         10.0\n"
        "2024-05-02  b                 1          7       3           0            0"
        "       0           0         50.0\n"
        "----------  ---------  --------  ---------  ------  ----------  -----------"
        "  ------  ----------  -----------\n"
        "TOTAL                         5  1,234,674      19       1,000           50"
        "       2           1        115.0"
    )


async def test_format_table_without_groups_and_empty(ledger_path: Path) -> None:
    lines = format_table(usage_summary(ledger_path, group_by=())).splitlines()
    assert lines[0].split() == [
        "requests", "input", "output", "cache", "read", "cache", "write",
        "errors", "incomplete", "avg", "ttfb", "ms",
    ]  # fmt: skip
    assert lines[-1].split()[:3] == ["TOTAL", "5", "1,234,674"]
    assert len(lines) == 5
    assert format_table([]) == "no requests recorded in this period"


async def test_format_json(ledger_path: Path) -> None:
    rows = usage_summary(ledger_path, group_by=("model",))
    data = json.loads(format_json(rows))
    assert data["rows"] == rows
    assert data["total"] == metrics(
        5,
        input_tokens=1_234_674,
        output_tokens=19,
        cache_read_tokens=1000,
        cache_write_tokens=50,
        errors=2,
        incomplete=1,
        avg_ttfb_ms=pytest.approx(115.0),
    )
    assert json.loads(format_json([])) == {"rows": [], "total": metrics(0)}


# -- savings of the optimize layer -------------------------------------------------------

SONNET = "claude-sonnet-4-5-20250929"  # $3 per million input tokens
SAVINGS_RECORDS = [
    # The proxy added breakpoints: the cache hits are its measured saving.
    rec(DAY1 + HOUR, usage=Usage(model=SONNET, input_tokens=1_000, cache_read_tokens=90_000,
                                 cache_write_tokens=10_000, cache_write_5m_tokens=10_000,
                                 cache_write_1h_tokens=0)),
    # Rewritten (dedup) without adding breakpoints: only an estimate, from tokens removed.
    rec(DAY1 + 2 * HOUR, usage=Usage(model=SONNET, input_tokens=500, cache_read_tokens=7_000)),
    # Dry-run: nothing measured, what it would have removed is estimated.
    rec(DAY1 + DAY, usage=Usage(model=SONNET, input_tokens=20_000)),
    # Not looked at by the layer: not in the savings report at all.
    rec(DAY1 + 3 * HOUR, usage=Usage(model=SONNET, input_tokens=1, cache_read_tokens=99_999)),
    # A model without a known price: tokens counted, dollars unknown.
    rec(DAY1 + 4 * HOUR, usage=Usage(model="llama-3", input_tokens=10, cache_read_tokens=100,
                                     cache_write_tokens=50)),
]
SAVINGS_RECORDS[0].rewrite = RewriteRecord("on", breakpoints_added=3)
SAVINGS_RECORDS[1].rewrite = RewriteRecord("on", blocks_deduped=2, bytes_removed=40_000,
                                           tokens_removed_estimate=10_000)
SAVINGS_RECORDS[2].rewrite = RewriteRecord("dry-run", breakpoints_added=2,
                                           tokens_removed_estimate=4_000)
SAVINGS_RECORDS[4].rewrite = RewriteRecord("on", breakpoints_added=1)


async def test_savings_by_day_and_model_separate_measured_from_estimated(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ledger.db"
    with trio.fail_after(10):
        await write_ledger(path, SAVINGS_RECORDS)
    rows = savings_summary(path)
    assert [(r["day"], r["model"]) for r in rows] == [
        ("2024-05-01", SONNET), ("2024-05-01", "llama-3"), ("2024-05-02", SONNET)]
    first, unknown, dry = rows
    assert (first["optimized"], first["dry_run"], first["cache_read_tokens"],
            first["cache_write_5m_tokens"], first["removed_tokens"]) == (2, 0, 90_000, 10_000,
                                                                         10_000)
    # 90k reads save 0.9 x $3/M; 10k 5-minute writes cost 0.25 x $3/M more.
    assert first["measured_usd"] == pytest.approx((90_000 * 0.9 - 10_000 * 0.25) * 3 / 1e6)
    assert first["estimated_usd"] == pytest.approx(10_000 * 3 / 1e6)
    assert first["dry_run_estimated_usd"] == 0
    assert (unknown["cache_read_tokens"], unknown["measured_usd"]) == (100, None)
    assert (dry["optimized"], dry["dry_run"], dry["dry_run_removed_tokens"]) == (0, 1, 4_000)
    assert dry["measured_usd"] == 0
    assert dry["dry_run_estimated_usd"] == pytest.approx(4_000 * 3 / 1e6)
    by_model = savings_summary(path, group_by=("model",))
    assert [(r["model"], r["optimized"], r["dry_run"]) for r in by_model] == [
        (SONNET, 2, 1), ("llama-3", 1, 0)]
    table = format_savings_table(rows)
    assert "saved $ (measured)" in table
    assert "0.2355" in table  # the measured dollars of the first row, as printed
    with pytest.raises(ValueError, match="choose day, model"):
        savings_summary(path, group_by=("route",))
