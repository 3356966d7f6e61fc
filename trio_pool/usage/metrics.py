"""The counters behind GET /metrics, rendered in the Prometheus text exposition format (0.0.4).

Fed from the same points as the usage ledger (``usage.events``: a request's end, each
upstream attempt; and each refresh). Labels are provider, account names, statuses and
kinds: never a token or a key. Pure: the front answers the request with ``render``.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterable, Sequence

from trio_pool.accounts.model import AccountView
from trio_pool.providers.base import TokenUsage

Labels = tuple[tuple[str, str], ...]
_TOKEN_KINDS = ("input", "cached", "output", "reasoning")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
DURATION_BUCKETS = (1.0, 5.0, 15.0, 60.0, 300.0, 900.0)
STATES = ("ok", "cooling", "backoff", "needs_relogin", "needs_action", "disabled")

# name -> (type, help text, label names)
_HELP = {
    "trio_pool_requests_total": (
        "counter",
        "Proxied requests by the status the client got.",
        ("provider", "account", "status"),
    ),
    "trio_pool_tokens_total": (
        "counter",
        "Tokens reported by the upstreams' usage events.",
        ("provider", "account", "kind"),
    ),
    "trio_pool_upstream_attempts_total": (
        "counter",
        "Upstream attempts by outcome.",
        ("provider", "account", "outcome"),
    ),
    "trio_pool_failovers_total": (
        "counter",
        "Attempts that failed over to another account.",
        ("provider", "account", "outcome"),
    ),
    "trio_pool_refreshes_total": (
        "counter",
        "Access token refreshes by result.",
        ("provider", "account", "result"),
    ),
    "trio_pool_user_limited_total": (
        "counter",
        "Requests refused by a user's own limit.",
        ("user", "limit"),
    ),
}


def escape(value: str) -> str:
    """A label value as the exposition format wants it inside double quotes."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: Labels) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{escape(v)}"' for k, v in labels) + "}"


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) else repr(value)


class Metrics:
    """Counters and one histogram, kept in memory for the life of the process."""

    def __init__(self) -> None:
        # name -> label values (in _HELP's order of names) -> count. Keyed by the bare values:
        # every request updates a few series, and a flat tuple of strings hashes several
        # times faster than the (name, value) pairs that render writes out.
        self._counters: dict[str, dict[tuple[str, ...], float]] = {name: {} for name in _HELP}
        # provider -> (count per bucket, not cumulative; +Inf count; sum)
        self._durations: dict[str, tuple[list[int], int, float]] = {}

    def _add(self, name: str, values: tuple[str, ...], amount: float = 1.0) -> None:
        series = self._counters[name]
        series[values] = series.get(values, 0.0) + amount

    def request(self, provider: str, account: str | None, status: int) -> None:
        self._add("trio_pool_requests_total", (provider, account or "", str(status)))

    def tokens(self, provider: str, account: str, usage: TokenUsage) -> None:
        series = self._counters["trio_pool_tokens_total"]
        for kind in _TOKEN_KINDS:
            amount = getattr(usage, kind)
            if amount:
                values = (provider, account, kind)
                series[values] = series.get(values, 0.0) + amount

    def attempt(self, provider: str, account: str, outcome: str, *, failover: bool) -> None:
        values = (provider, account, outcome)
        self._add("trio_pool_upstream_attempts_total", values)
        if failover:
            self._add("trio_pool_failovers_total", values)

    def limited(self, user: str, limit: str) -> None:
        self._add("trio_pool_user_limited_total", (user, limit))

    def stream_duration(self, provider: str, seconds: float) -> None:
        # One count in the first bucket that holds it; render adds them up into the
        # exposition format's cumulative buckets (one increment here, not one per bucket).
        counts, total, summed = self._durations.get(provider) or (
            [0] * len(DURATION_BUCKETS),
            0,
            0.0,
        )
        first = bisect.bisect_left(DURATION_BUCKETS, seconds)
        if first < len(counts) and seconds <= DURATION_BUCKETS[first]:
            counts[first] += 1
        self._durations[provider] = (counts, total + 1, summed + seconds)

    def refresh(self, provider: str, account: str, result: str) -> None:
        self._add("trio_pool_refreshes_total", (provider, account, result))

    def count(self, name: str, **labels: str) -> float:
        """One series' value (for tests and the status page); labels in the metric's order."""
        if tuple(labels) != _HELP[name][2]:
            return 0.0
        return self._counters[name].get(tuple(labels.values()), 0.0)

    def render(self, accounts: Sequence[AccountView], *, ledger_dropped: int) -> str:
        lines: list[str] = []
        for name, (kind, text, label_names) in _HELP.items():
            lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
            # Sorting the bare values sorts as the (name, value) pairs would: the names are
            # the same, in the same places, in every series of a metric.
            for values, value in sorted(self._counters[name].items()):
                labels = tuple(zip(label_names, values, strict=True))
                lines.append(f"{name}{_labels(labels)} {_number(value)}")
        lines += self._render_durations()
        lines += _render_accounts(accounts)
        name = "trio_pool_ledger_rows_dropped_total"
        lines += [
            f"# HELP {name} Ledger rows dropped because the state db did not keep up.",
            f"# TYPE {name} counter",
            f"{name} {ledger_dropped}",
        ]
        return "\n".join(lines) + "\n"

    def _render_durations(self) -> list[str]:
        name = "trio_pool_stream_duration_seconds"
        lines = [
            f"# HELP {name} Time from a request's arrival to the end of its relayed answer.",
            f"# TYPE {name} histogram",
        ]
        for provider, (counts, total, summed) in sorted(self._durations.items()):
            base = (("provider", provider),)
            for bound, count in zip(DURATION_BUCKETS, itertools.accumulate(counts), strict=True):
                lines.append(f"{name}_bucket{_labels((*base, ('le', _number(bound))))} {count}")
            lines.append(f"{name}_bucket{_labels((*base, ('le', '+Inf')))} {total}")
            lines.append(f"{name}_sum{_labels(base)} {_number(summed)}")
            lines.append(f"{name}_count{_labels(base)} {total}")
        return lines


def _render_accounts(accounts: Iterable[AccountView]) -> list[str]:
    state, window = "trio_pool_account_state", "trio_pool_window_used_ratio"
    states = [
        f"# HELP {state} 1 for the state each account is in, 0 for the others.",
        f"# TYPE {state} gauge",
    ]
    windows = [
        f"# HELP {window} Used fraction of each account's quota window (last reading).",
        f"# TYPE {window} gauge",
    ]
    for view in sorted(accounts, key=lambda v: v.name):
        base = (("provider", view.provider), ("account", view.name))
        for name in STATES:
            value = int(view.state == name)
            states.append(f"{state}{_labels((*base, ('state', name)))} {value}")
        for w in view.windows:
            windows.append(f"{window}{_labels((*base, ('window', w.name)))} {_number(w.used)}")
    return states + windows
