"""The results table (what is printed) and its JSON twin (bench/results/latest.json)."""

from __future__ import annotations

import json
import math
import pstats
import shutil
import sys
from pathlib import Path
from typing import Any

import attrs

from bench.load import LoadResult

RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"


@attrs.frozen
class Metric:
    name: str
    unit: str
    direct: float | None
    proxy: float | None
    target: str = ""  # human form, e.g. "<= 300"
    limit: float | None = None  # the proxy value passes when <= limit
    # For rates the ratio is proxy/direct; for anything else too (1.0 = no overhead).

    @property
    def ratio(self) -> float | None:
        if self.direct is None or self.proxy is None or not self.direct:
            return None
        return self.proxy / self.direct

    @property
    def status(self) -> str:
        if self.limit is None:
            return ""
        if self.proxy is None or math.isnan(self.proxy):
            return "MISS"
        return "PASS" if self.proxy <= self.limit else "MISS"

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "unit": self.unit,
            "direct": _finite(self.direct),
            "proxy": _finite(self.proxy),
            "ratio": _finite(self.ratio),
            "target": self.target or None,
            "status": self.status or None,
        }


def _finite(value: float | None) -> float | None:
    if value is None or math.isnan(value):
        return None
    return round(value, 4)


def _cell(value: float | None) -> str:
    if value is None:
        return "-"
    if math.isnan(value):
        return "n/a"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"


def table(metrics: list[Metric]) -> str:
    header = ("metric", "unit", "direct", "proxy", "ratio", "target", "result")
    rows = [header]
    for m in metrics:
        ratio = f"{m.ratio:.2f}x" if m.ratio is not None else "-"
        rows.append((m.name, m.unit, _cell(m.direct), _cell(m.proxy), ratio, m.target, m.status))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = []
    for n, row in enumerate(rows):
        cells = [
            cell.ljust(widths[i]) if i in (0, 1, 5) else cell.rjust(widths[i])
            for i, cell in enumerate(row)
        ]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def load_json(result: LoadResult) -> dict[str, Any]:
    return {
        "target": result.target,
        "planned": result.planned,
        "concurrency": result.concurrency,
        "ok": result.ok,
        "errors": dict(result.errors),
        "error_examples": result.examples,
        "elapsed_s": round(result.elapsed_s, 4),
        "per_s": round(result.rate, 2),
        "timed_out": result.timed_out,
    }


def counts(loads: dict[str, LoadResult], upstream: dict[str, dict[str, Any]]) -> str:
    """One line per run: planned, ok, errors, time, what the simulator saw; then any errors."""
    lines = []
    for label, r in loads.items():
        seen = upstream.get(label)
        sim = f"  sim: {seen['requests']} req, {seen['connections']} new conn" if seen else ""
        lines.append(
            f"  {label:<26} c={r.concurrency:<3} planned={r.planned:<6} ok={r.ok:<6} "
            f"errors={r.error_count:<4} {r.elapsed_s:6.2f}s {r.rate:8.1f}/s{sim}"
        )
        lines += [f"      {kind}: {n}" for kind, n in r.errors.items()]
        lines += [f"      e.g. {example}" for example in r.examples]
    return "\n".join(lines)


def write_json(document: dict[str, Any], path: Path = RESULTS) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path


def print_profile(path: Path, top: int) -> None:
    if not path.exists():
        print(f"(no profile written at {path})")
        return
    kept = Path(__file__).parent / "results" / "proxy.prof"
    kept.parent.mkdir(exist_ok=True)
    shutil.copyfile(path, kept)
    print(
        f"\nproxy profile (cProfile, kept at {kept}; numbers above are inflated by it), top {top} by own time:"
    )
    stats = pstats.Stats(str(path), stream=sys.stdout)
    stats.strip_dirs().sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
