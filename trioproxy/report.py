"""Read-only usage queries over the ledger, and their formatting for `trioproxy usage`.

Plain synchronous code: the CLI calls it, never the proxy's event loop. The ledger is
opened read-only, so a report can run while the proxy writes (WAL mode).
"""

from __future__ import annotations

import json
import os
import sqlite3
from typing import Any
from urllib.parse import quote

# Grouping keys and the SQL that computes each one.
_GROUP_EXPRS = {
    "day": "strftime('%Y-%m-%d', ts, 'unixepoch')",  # UTC
    "model": "COALESCE(model, '(unknown)')",
    "route": "route",
    "outcome": "outcome",
}
_GROUP_ORDER = ("day", "model", "route", "outcome")  # the ORDER BY, whatever the grouping

# Summed columns, in output order.
_SUMS = (
    "requests",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "errors",
    "incomplete",
)
_METRICS = (*_SUMS, "avg_ttfb_ms")

_HEADERS = {
    "day": "day",
    "model": "model",
    "route": "route",
    "outcome": "outcome",
    "requests": "requests",
    "input_tokens": "input",
    "output_tokens": "output",
    "cache_read_tokens": "cache read",
    "cache_write_tokens": "cache write",
    "errors": "errors",
    "incomplete": "incomplete",
    "avg_ttfb_ms": "avg ttfb ms",
}


class ReportError(Exception):
    """The ledger exists but cannot be read (the message says why)."""


class LedgerNotFound(ReportError):
    """There is no ledger at the path yet."""

    def __init__(self, path: str | os.PathLike[str], why: str = "no such file") -> None:
        super().__init__(
            f"no usage ledger at {os.fspath(path)} ({why}): the proxy creates it when it"
            " first starts (`trioproxy run -c config.toml`); run the proxy first, or"
            " check the ledger path in the config"
        )
        self.path = os.fspath(path)


def usage_summary(
    path: str | os.PathLike[str],
    *,
    since: float | None = None,
    until: float | None = None,
    group_by: tuple[str, ...] = ("day", "model"),
) -> list[dict[str, Any]]:
    """Usage totals per group, for requests with since <= ts < until (unix seconds).

    Each row holds the group keys (from "day" (UTC, YYYY-MM-DD), "model", "route",
    "outcome") and the metrics: requests, the four token sums (a missing count adds
    0), errors (outcome other than "ok"), incomplete (usage scan incomplete) and
    avg_ttfb_ms (None if no request in the group reached upstream). Rows are ordered
    by day, then model, then route, then outcome.
    """
    unknown = [g for g in group_by if g not in _GROUP_EXPRS]
    if unknown:
        raise ValueError(
            f"cannot group by {', '.join(unknown)}; choose from {', '.join(_GROUP_ORDER)}"
        )
    keys = list(dict.fromkeys(group_by))  # drop repeats, keep order

    select = [f"{_GROUP_EXPRS[k]} AS {k}" for k in keys]
    select += [
        "COUNT(*)",
        "COALESCE(SUM(input_tokens), 0)",
        "COALESCE(SUM(output_tokens), 0)",
        "COALESCE(SUM(cache_read_tokens), 0)",
        "COALESCE(SUM(cache_write_tokens), 0)",
        "COALESCE(SUM(COALESCE(outcome, '') != 'ok'), 0)",
        "COALESCE(SUM(scan_complete = 0), 0)",
        "AVG(ttfb_ms)",
    ]
    where, params = [], []
    if since is not None:
        where.append("ts >= ?")
        params.append(since)
    if until is not None:
        where.append("ts < ?")
        params.append(until)
    sql = f"SELECT {', '.join(select)} FROM requests"
    if where:
        sql += " WHERE " + " AND ".join(where)
    if keys:
        # Expressions, not aliases: "model" is also a column name.
        sql += " GROUP BY " + ", ".join(_GROUP_EXPRS[k] for k in keys)
        sql += " ORDER BY " + ", ".join(_GROUP_EXPRS[k] for k in _GROUP_ORDER if k in keys)

    conn = _connect_ro(path)
    try:
        result = conn.execute(sql, params).fetchall()
    except sqlite3.Error as exc:
        raise ReportError(f"cannot read usage ledger {os.fspath(path)}: {exc}") from exc
    finally:
        conn.close()

    rows = []
    for values in result:
        row = dict(zip([*keys, *_METRICS], values, strict=True))
        if row["requests"] == 0:  # no GROUP BY over no rows still yields one row
            continue
        rows.append(row)
    return rows


def summary_total(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The metrics summed over rows. avg_ttfb_ms is the groups' averages weighted by
    their request counts (groups without one left out)."""
    total: dict[str, Any] = {k: sum(r.get(k) or 0 for r in rows) for k in _SUMS}
    timed = [r for r in rows if r.get("avg_ttfb_ms") is not None]
    weight = sum(r["requests"] for r in timed)
    total["avg_ttfb_ms"] = (
        sum(r["avg_ttfb_ms"] * r["requests"] for r in timed) / weight if weight else None
    )
    return total


def format_table(rows: list[dict[str, Any]]) -> str:
    """An aligned plain-text table of usage_summary() rows, with a TOTAL line.

    No trailing newline (print() adds one).
    """
    if not rows:
        return "no requests recorded in this period"
    keys = [k for k in rows[0] if k not in _METRICS]
    label_cols = keys or [""]  # a column to hold "TOTAL" even without group keys
    header = [_HEADERS.get(k, k) for k in label_cols] + [_HEADERS[m] for m in _METRICS]

    def cells(row: dict[str, Any], labels: list[str]) -> list[str]:
        return labels + [_number(row.get(m), m) for m in _METRICS]

    body = [cells(r, [_text(r.get(k)) for k in keys] or [""]) for r in rows]
    total = cells(summary_total(rows), ["TOTAL"] + [""] * (len(label_cols) - 1))

    widths = [max(len(line[i]) for line in [header, *body, total]) for i in range(len(header))]
    n_labels = len(label_cols)

    def render(line: list[str]) -> str:
        parts = [
            c.ljust(w) if i < n_labels else c.rjust(w)
            for i, (c, w) in enumerate(zip(line, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    out = [render(header), rule, *(render(line) for line in body), rule, render(total)]
    return "\n".join(out)


def format_json(rows: list[dict[str, Any]]) -> str:
    """usage_summary() rows as a JSON object {"rows": [...], "total": {...}}."""
    return json.dumps({"rows": rows, "total": summary_total(rows)}, indent=2)


def _connect_ro(path: str | os.PathLike[str]) -> sqlite3.Connection:
    fspath = os.fspath(path)
    if not os.path.exists(fspath):
        raise LedgerNotFound(fspath)
    if os.path.isdir(fspath):
        raise ReportError(f"usage ledger path {fspath} is a directory, not a ledger file")
    # URI form for mode=ro; quote so '?', '#' and '%' in the path stay part of it.
    uri = f"file:{quote(fspath)}?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True)
    except sqlite3.Error as exc:
        raise ReportError(f"cannot open usage ledger {fspath}: {exc}") from exc
    try:
        found = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'requests'"
        ).fetchone()
    except sqlite3.Error as exc:
        conn.close()
        raise ReportError(f"cannot read usage ledger {fspath}: {exc}") from exc
    if found is None:
        conn.close()
        raise LedgerNotFound(fspath, "the file holds no usage table yet")
    return conn


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _number(value: Any, metric: str) -> str:
    if value is None:
        return "-"
    if metric == "avg_ttfb_ms":
        return f"{value:,.1f}"
    return f"{value:,}"


# -- savings of the optimize layer ---------------------------------------------------

# Requests whose cache hits the proxy can claim: it sent the body with breakpoints it added.
_MEASURED = "rewrite = 'on' AND breakpoints_added > 0"
_SAVINGS_SQL = f"""
SELECT strftime('%Y-%m-%d', ts, 'unixepoch'), COALESCE(model, '(unknown)'),
  SUM(rewrite = 'on'),
  SUM(rewrite = 'dry-run'),
  SUM(CASE WHEN {_MEASURED} THEN COALESCE(input_tokens, 0) ELSE 0 END),
  SUM(CASE WHEN {_MEASURED} THEN COALESCE(cache_read_tokens, 0) ELSE 0 END),
  SUM(CASE WHEN {_MEASURED} THEN COALESCE(cache_write_5m_tokens,
      COALESCE(cache_write_tokens, 0) - COALESCE(cache_write_1h_tokens, 0)) ELSE 0 END),
  SUM(CASE WHEN {_MEASURED} THEN COALESCE(cache_write_1h_tokens, 0) ELSE 0 END),
  SUM(CASE WHEN rewrite = 'on' THEN COALESCE(tokens_removed_estimate, 0) ELSE 0 END),
  SUM(CASE WHEN rewrite = 'dry-run' THEN COALESCE(tokens_removed_estimate, 0) ELSE 0 END)
FROM requests WHERE rewrite IS NOT NULL"""
_SAVINGS_COUNTS = (
    "optimized", "dry_run", "input_tokens", "cache_read_tokens", "cache_write_5m_tokens",
    "cache_write_1h_tokens", "removed_tokens", "dry_run_removed_tokens",
)
_SAVINGS_DOLLARS = ("measured_usd", "estimated_usd", "dry_run_estimated_usd")
_SAVINGS_HEADERS = {
    "optimized": "optimized", "dry_run": "dry-run",
    "cache_read_tokens": "cache read", "cache_write_5m_tokens": "write 5m",
    "cache_write_1h_tokens": "write 1h", "measured_usd": "saved $ (measured)",
    "removed_tokens": "tokens removed", "estimated_usd": "saved $ (est.)",
    "dry_run_removed_tokens": "dry-run would remove", "dry_run_estimated_usd": "$ (est.)",
}


def savings_summary(
    path: str | os.PathLike[str],
    *,
    since: float | None = None,
    until: float | None = None,
    group_by: tuple[str, ...] = ("day", "model"),
) -> list[dict[str, Any]]:
    """What the optimize layer saved, per group ("day" and/or "model").

    Measured: the cache reads and writes Anthropic reported on requests sent with
    breakpoints the proxy added, priced with the model's cache multipliers
    (trioproxy.usage.pricing.cache_savings: can be negative when writes are not read
    back). Estimated: tokens that dedup and prune removed, at the full input price (an
    upper bound: some would have been cheap cache reads). Dry-run rows only estimate.
    A model without a known price has None dollars.
    """
    from .usage.pricing import cache_savings, input_price

    unknown = [g for g in group_by if g not in ("day", "model")]
    if unknown:
        raise ValueError(f"cannot group savings by {', '.join(unknown)}; choose day, model")
    sql, params = _SAVINGS_SQL, []
    if since is not None:
        sql += " AND ts >= ?"
        params.append(since)
    if until is not None:
        sql += " AND ts < ?"
        params.append(until)
    sql += " GROUP BY 1, 2 ORDER BY 1, 2"
    conn = _connect_ro(path)
    try:
        result = conn.execute(sql, params).fetchall()
    except sqlite3.Error as exc:
        raise ReportError(f"cannot read usage ledger {os.fspath(path)}: {exc}") from exc
    finally:
        conn.close()

    groups: dict[tuple[str, ...], dict[str, Any]] = {}
    for day, model, *counts in result:
        values = dict(zip(_SAVINGS_COUNTS, counts, strict=True))
        price = input_price(model)
        measured = cache_savings(
            model, values["input_tokens"], values["cache_read_tokens"],
            values["cache_write_5m_tokens"], values["cache_write_1h_tokens"],
        )
        dollars = {
            "measured_usd": measured,
            "estimated_usd": None if price is None else values["removed_tokens"] * price / 1e6,
            "dry_run_estimated_usd": (
                None if price is None else values["dry_run_removed_tokens"] * price / 1e6
            ),
        }
        key = tuple({"day": day, "model": model}[g] for g in group_by)
        row = groups.setdefault(key, {
            **dict(zip(group_by, key, strict=True)),
            **dict.fromkeys(_SAVINGS_COUNTS, 0), **dict.fromkeys(_SAVINGS_DOLLARS, 0.0),
        })
        for name in _SAVINGS_COUNTS:
            row[name] += values[name]
        for name, value in dollars.items():
            # One unpriced model makes the group's dollars unknown, not silently lower.
            row[name] = None if value is None or row[name] is None else row[name] + value
    return list(groups.values())


def format_savings_table(rows: list[dict[str, Any]]) -> str:
    """An aligned plain-text table of savings_summary() rows. No trailing newline."""
    if not rows:
        return "no optimized requests recorded in this period ([routes.optimize] mode)"
    keys = [k for k in rows[0] if k not in _SAVINGS_COUNTS and k not in _SAVINGS_DOLLARS]
    columns = [c for c in _SAVINGS_HEADERS if c in rows[0]]
    header = keys + [_SAVINGS_HEADERS[c] for c in columns]

    def cell(value: Any, column: str) -> str:
        if value is None:
            return "-"
        return f"{value:,.4f}" if column.endswith("usd") else f"{value:,}"

    body = [[_text(r[k]) for k in keys] + [cell(r[c], c) for c in columns] for r in rows]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    lines = [
        "  ".join(c.ljust(w) if i < len(keys) else c.rjust(w)
                  for i, (c, w) in enumerate(zip(line, widths, strict=True))).rstrip()
        for line in [header, *body]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append("measured: cache reads/writes Anthropic billed on requests the proxy added"
                 " breakpoints to; est.: tokens removed, at the full input price")
    return "\n".join(lines)
