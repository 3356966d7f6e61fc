"""The direct-versus-proxy table (WebSocket and ledger figures) and the JSON writer."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import attrs

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


def cell(value: float | None) -> str:
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
        rows.append((m.name, m.unit, cell(m.direct), cell(m.proxy), ratio, m.target, m.status))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = []
    for n, row in enumerate(rows):
        cells = [
            text.ljust(widths[i]) if i in (0, 1, 5) else text.rjust(widths[i])
            for i, text in enumerate(row)
        ]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def write_json(document: dict[str, Any], path: Path = RESULTS) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path
