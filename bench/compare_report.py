"""The comparison's table, its PASS/MISS list against issue 12's targets, and its JSON."""

from __future__ import annotations

import math
from typing import Any

import attrs

from bench.compare import (
    CCR,
    CODEX_STREAM,
    DIRECT,
    ON_CODEX,
    POOL,
    RELAY,
    SMALL,
    STREAM,
    TRANSLATED,
    Comparison,
)
from bench.report import cell

COLUMNS = (DIRECT, RELAY, CCR, POOL)
RATIO_TO = (DIRECT, RELAY, CCR)


@attrs.frozen
class Row:
    name: str
    unit: str
    values: dict[str, float]  # target -> value (missing: not measured)
    ratios: bool = True  # print trio-pool / each other target


@attrs.frozen
class Check:
    """One of the issue's targets: trio-pool's figure and whether it meets it."""

    name: str
    shown: str  # the figure as printed
    target: str
    passed: bool | None  # None: could not be measured (a target skipped)

    @property
    def status(self) -> str:
        return "SKIP" if self.passed is None else ("PASS" if self.passed else "MISS")


def rows(c: Comparison) -> list[Row]:
    names = [s.name for s in c.measured()]

    def each(fn: Any) -> dict[str, float]:
        return {name: fn(name) for name in names}

    def ttfb(quantile: float) -> dict[str, float]:
        return {n: c.ttfb[n].ttfb_ms(quantile) for n in names if n in c.ttfb}

    p50 = ttfb(0.5)
    direct_p50 = p50.get(DIRECT, math.nan)
    relayed = [n for n in names if n != DIRECT]
    return [
        Row("small requests/s (c=16)", "req/s", each(lambda n: c.rate(SMALL, n))),
        Row(
            "CPU per small request",
            "µs",
            each(lambda n: c.cpu_per(SMALL, n) * 1e6),
        ),
        Row("200x200 B streams/s (c=64)", "streams/s", each(lambda n: c.rate(STREAM, n))),
        Row("CPU per stream", "ms", each(lambda n: c.cpu_per(STREAM, n) * 1e3)),
        *on_codex_rows(c),
        Row("TTFB p50 (c=1, short stream)", "ms", p50),
        Row("added TTFB p50", "ms", {n: p50[n] - direct_p50 for n in relayed if n in p50}, False),
        Row("TTFB p99", "ms", ttfb(0.99)),
        Row("RSS idle", "MiB", {n: c.rss[n]["idle"] for n in names}),
        Row("RSS peak (VmHWM)", "MiB", {n: c.rss[n].get("peak", math.nan) for n in names}),
        Row(
            "upstream CPU per small request",
            "µs",
            each(lambda n: c.cpu_per(SMALL, n, "upstream") * 1e6),
            False,
        ),
        Row(
            "upstream CPU per stream",
            "ms",
            each(lambda n: c.cpu_per(STREAM, n, "upstream") * 1e3),
            False,
        ),
        Row(
            "wrk CPU per small request",
            "µs",
            each(lambda n: c.cpu_per(SMALL, n, "wrk") * 1e6),
            False,
        ),
        Row("wrk CPU per stream", "ms", each(lambda n: c.cpu_per(STREAM, n, "wrk") * 1e3), False),
        Row("failed requests", "count", each(lambda n: float(c.errors(n))), False),
    ]


def on_codex_rows(c: Comparison) -> list[Row]:
    """The two Codex stream workloads, in trio-pool's column (measured on its twin whose
    Codex is on the fake upstream); no ratios, the other targets do not translate."""
    if c.on_codex is None:
        return []
    return [
        Row(
            f"  {TRANSLATED}: Messages client, Codex account",
            "streams/s",
            {POOL: c.rate(TRANSLATED, ON_CODEX)},
            False,
        ),
        Row(
            f"  CPU per {TRANSLATED} stream",
            "ms",
            {POOL: c.cpu_per(TRANSLATED, ON_CODEX) * 1e3},
            False,
        ),
        Row(
            f"  {CODEX_STREAM}: Codex CLI, same stream relayed",
            "streams/s",
            {POOL: c.rate(CODEX_STREAM, ON_CODEX)},
            False,
        ),
        Row(
            f"  CPU per {CODEX_STREAM}",
            "ms",
            {POOL: c.cpu_per(CODEX_STREAM, ON_CODEX) * 1e3},
            False,
        ),
    ]


def translation_lines(c: Comparison) -> list[str]:
    """Translated against native streams: proxy CPU per stream and streams per second."""
    if c.on_codex is None:
        return []
    native, codex, translated = (
        c.cpu_per(STREAM, POOL) * 1e3,
        c.cpu_per(CODEX_STREAM, ON_CODEX) * 1e3,
        c.cpu_per(TRANSLATED, ON_CODEX) * 1e3,
    )
    return [
        "translated stream (a Messages client on a Codex account, 200 Codex text deltas of "
        "200 B, one HTTP chunk per SSE event, c=64): "
        f"{translated:.2f} ms proxy CPU per stream, {c.rate(TRANSLATED, ON_CODEX):,.0f} streams/s",
        f"  native Claude stream (200 x 200 B): {native:.2f} ms, "
        f"{c.rate(STREAM, POOL):,.0f} streams/s -> translated / native {translated / native:.2f}x",
        f"  native Codex stream (the same Codex stream, relayed): {codex:.2f} ms, "
        f"{c.rate(CODEX_STREAM, ON_CODEX):,.0f} streams/s -> translating costs "
        f"{translated - codex:.2f} ms per stream ({translated / codex:.2f}x)",
    ]


def table(c: Comparison) -> str:
    header = ["metric", "unit", *COLUMNS, *(f"{POOL} ÷ {n}" for n in RATIO_TO)]
    lines = [header]
    for row in rows(c):
        values = [cell(row.values.get(name)) for name in COLUMNS]
        ratios = []
        for other in RATIO_TO:
            mine, theirs = row.values.get(POOL), row.values.get(other)
            ok = row.ratios and mine is not None and theirs and not math.isnan(theirs)
            ratios.append(f"{mine / theirs:.2f}x" if ok else "-")  # type: ignore[operator]
        lines.append([row.name, row.unit, *values, *ratios])
    return _align(lines, left=(0, 1))


def _align(lines: list[list[str]], left: tuple[int, ...]) -> str:
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    out = []
    for n, line in enumerate(lines):
        cells = [
            text.ljust(widths[i]) if i in left else text.rjust(widths[i])
            for i, text in enumerate(line)
        ]
        out.append("  ".join(cells).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def _versus_ccr(c: Comparison, workload: str, name: str, unit: str) -> Check:
    mine = c.rate(workload, POOL)
    if CCR in c.skipped:
        return Check(name, f"{mine:,.0f} {unit}", ">= 1.5x ccr", None)
    ratio = mine / c.rate(workload, CCR)
    return Check(name, f"{ratio:.2f}x ccr ({mine:,.0f} {unit})", ">= 1.5x ccr", ratio >= 1.5)


def _at_most(name: str, value: float, limit: float, unit: str) -> Check:
    shown = f"{cell(value)} {unit}"
    return Check(name, shown, f"<= {limit:g} {unit}", not math.isnan(value) and value <= limit)


def checks(c: Comparison, ledger_pct: float | None) -> list[Check]:
    """Issue 12's targets, in its order; ratios are to targets measured in this run."""
    p50 = {n: r.ttfb_ms(0.5) for n, r in c.ttfb.items()}
    growth = c.soak.get("rss_after_all", math.nan) - c.soak.get("rss_after_first", math.nan)
    errors = c.all_errors()
    out = [
        _versus_ccr(c, STREAM, "streams per second", "streams/s"),
        _at_most("proxy CPU per 200-event stream", c.cpu_per(STREAM, POOL) * 1e3, 1.0, "ms"),
        _at_most("proxy CPU per small request", c.cpu_per(SMALL, POOL) * 1e6, 350, "µs"),
        _versus_ccr(c, SMALL, "small requests per second", "req/s"),
        _at_most("added TTFB p50 (c=1)", p50[POOL] - p50[DIRECT], 0.5, "ms"),
        _at_most("RSS idle", c.rss[POOL]["idle"], 40, "MiB"),
        _at_most(
            f"RSS growth over {c.soak.get('requests', 0):,} requests",
            growth,
            c.plan.growth_limit_mb,
            "MiB",
        ),
    ]
    if ledger_pct is not None:
        out.append(_at_most("ledger share of proxy CPU", ledger_pct, 5, "%"))
    out.append(Check("failed requests (all targets)", str(errors), "0", errors == 0))
    return out


def checks_table(items: list[Check]) -> str:
    lines = [["issue 12 target", POOL, "target", "result"]]
    lines += [[i.name, i.shown, i.target, i.status] for i in items]
    return _align(lines, left=(0, 1, 2))


def as_json(c: Comparison, items: list[Check]) -> dict[str, Any]:
    def finite(value: float) -> float | None:
        return None if value is None or math.isnan(value) else round(value, 4)

    runs = {
        workload: {
            name: [
                {
                    "ok": r.result.ok,
                    "seconds": round(r.result.duration_s, 3),
                    "errors": r.result.errors,
                    "server_cpu_s": round(r.server_cpu_s, 3),
                    "upstream_cpu_s": round(r.upstream_cpu_s, 3),
                    "wrk_cpu_s": round(r.result.cpu_s, 3),
                    "latency_p50_ms": r.result.p50_ms,
                    "latency_p99_ms": r.result.p99_ms,
                }
                for r in runs
            ]
            for name, runs in by_name.items()
        }
        for workload, by_name in c.runs.items()
    }
    return {
        "plan": attrs.asdict(c.plan),
        "skipped": c.skipped,
        "table": [
            {"name": r.name, "unit": r.unit, "values": {k: finite(v) for k, v in r.values.items()}}
            for r in rows(c)
        ],
        "targets": [attrs.asdict(i) | {"status": i.status} for i in items],
        "runs": runs,
        "ttfb_errors": {n: r.error_count for n, r in c.ttfb.items()},
        "rss_mib": c.rss,
        "soak": {k: v if not isinstance(v, float) else finite(v) for k, v in c.soak.items()},
        "upstream_saw": c.upstream_seen,
    }


def summary_lines(c: Comparison) -> list[str]:
    """How the run was made, and the per-run detail that explains any error."""
    p = c.plan
    lines = [
        f"{p.rounds} round(s) of {p.seconds:g} s per target and workload after {p.warmup_s:g} s "
        f"of warm-up, target order rotated each round; wrk -t1; streams framed one HTTP chunk "
        f"per SSE event; TTFB over {p.ttfb} requests at c=1; soak "
        f"{c.soak.get('requests', 0):,} small requests through {POOL} in "
        f"{c.soak.get('seconds', 0)} s, RSS {c.soak.get('rss_after_first', math.nan):.1f} -> "
        f"{c.soak.get('rss_after_all', math.nan):.1f} MiB",
    ]
    lines.append(
        f"{DIRECT}: no relay, so its CPU rows are the fake upstream's own; wrk's CPU shows the "
        "load generator's share (a fraction of every relay's)"
    )
    lines += [f"skipped {name}: {why}" for name, why in c.skipped.items()]
    for workload, by_name in c.runs.items():
        for name, runs in by_name.items():
            for r in runs:
                if r.result.errors:
                    lines.append(f"  {workload} {name}: errors {r.result.errors}")
    for name, result in c.ttfb.items():
        lines += [f"  ttfb {name}: {example}" for example in result.examples]
    return [*lines, *translation_lines(c)]
