"""GET /metrics: the exposition format, the counts, and nothing secret in it."""

from __future__ import annotations

import json
import re
from typing import Any

import trio
from hypothesis import given
from hypothesis import strategies as st

from tests.http_client import HttpClient, Reply
from tests.proxy.conftest import Env
from trio_pool.providers.base import TokenUsage
from trio_pool.usage.metrics import DURATION_BUCKETS, Metrics, escape

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:\\.|[^"\\\n])*"'
SAMPLE = re.compile(
    rf"^{_NAME}(?:\{{{_LABEL}(?:,{_LABEL})*\}})? "
    r"(?:[-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\+Inf|-Inf|NaN)$"
)
COMMENT = re.compile(rf"^# (?:HELP {_NAME} .*|TYPE {_NAME} (?:counter|gauge|histogram))$")


async def get(base: str, path: str) -> Reply:
    async with HttpClient() as client:
        with trio.fail_after(10):
            return await client.request("GET", base + path)


async def claude(env: Env, **extra: Any) -> int:
    async with HttpClient() as client:
        with trio.fail_after(10):
            response = await client.request(
                "POST",
                env.base + "/v1/messages",
                headers=[("content-type", "application/json"), ("anthropic-version", "2023-06-01")],
                content=json.dumps(
                    {"model": "m", "max_tokens": 8, "messages": [], **extra}
                ).encode(),
            )
    return response.status


def samples(text: str) -> dict[str, float]:
    found = {}
    for line in text.splitlines():
        if not line.startswith("#"):
            series, _, value = line.rpartition(" ")
            found[series] = float(value)
    return found


async def test_metrics_parse_and_count_the_requests(env: Env) -> None:
    """Every line follows the exposition grammar; requests, tokens and states are there."""
    assert await claude(env) == 200
    assert await claude(env, stream=True) == 200
    response = await get(env.base, "/metrics")
    assert response.status == 200
    assert response.headers[0] == (b"content-type", b"text/plain; version=0.0.4; charset=utf-8")
    text = response.content.decode()
    assert text.endswith("\n")
    for line in text.splitlines():
        assert SAMPLE.match(line) or COMMENT.match(line), line
    values = samples(text)
    requests = {k: v for k, v in values.items() if k.startswith("trio_pool_requests_total{")}
    assert sum(requests.values()) == 2
    assert all('provider="claude"' in k and 'status="200"' in k for k in requests)
    tokens = [v for k, v in values.items() if k.startswith("trio_pool_tokens_total{")]
    assert sum(tokens) > 0
    assert values['trio_pool_stream_duration_seconds_count{provider="claude"}'] == 2
    assert values['trio_pool_account_state{provider="codex",account="codex/a",state="ok"}'] == 1
    assert values["trio_pool_ledger_rows_dropped_total"] == 0


async def test_failovers_are_counted_by_outcome(make_env: Any) -> None:
    """Every account out of quota: two failovers by outcome, one refused request."""
    env: Env = await make_env(accounts=[("claude", "a"), ("claude", "b")])
    env.sim("claude/a").force("quota", 1)
    env.sim("claude/b").force("quota", 1)
    assert await claude(env) == 429
    values = samples((await get(env.base, "/metrics")).content.decode())
    failovers = {k: v for k, v in values.items() if k.startswith("trio_pool_failovers_total{")}
    assert sum(failovers.values()) == 2
    assert all('outcome="quota"' in k for k in failovers)
    refused = [k for k in values if k.startswith("trio_pool_requests_total{")]
    assert len(refused) == 1
    assert 'status="429"' in refused[0]


def test_label_values_are_escaped() -> None:
    """Quotes, backslashes and newlines in a label value cannot break a line."""
    assert escape('a"b\\c\nd') == 'a\\"b\\\\c\\nd'
    metrics = Metrics()
    metrics.request("claude", 'odd"name\n', 200)
    metrics.tokens("claude", "claude/a", TokenUsage(3, 1, 2, 0))
    metrics.stream_duration("claude", 2.0)
    text = metrics.render([], ledger_dropped=4)
    for line in text.splitlines():
        assert SAMPLE.match(line) or COMMENT.match(line), line
    assert 'trio_pool_stream_duration_seconds_bucket{provider="claude",le="1"} 0' in text
    assert 'trio_pool_stream_duration_seconds_bucket{provider="claude",le="5"} 1' in text
    assert "trio_pool_ledger_rows_dropped_total 4" in text
    assert (
        metrics.count("trio_pool_tokens_total", provider="claude", account="claude/a", kind="input")
        == 3
    )


@given(st.lists(st.sampled_from([0.0, 0.5, 1.0, 1.5, 5.0, 60.0, 299.0, 900.0, 901.0, 1e6])))
def test_duration_buckets_count_every_duration_up_to_their_bound(durations: list[float]) -> None:
    """Each histogram bucket counts the durations at or below its bound, +Inf counts all."""
    metrics = Metrics()
    for seconds in durations:
        metrics.stream_duration("claude", seconds)
    text = metrics.render([], ledger_dropped=0)
    if not durations:
        assert "trio_pool_stream_duration_seconds_bucket" not in text
        return
    for bound in DURATION_BUCKETS:
        label = str(int(bound))
        expected = sum(1 for s in durations if s <= bound)
        line = f'trio_pool_stream_duration_seconds_bucket{{provider="claude",le="{label}"}}'
        assert f"{line} {expected}\n" in text
    inf = 'trio_pool_stream_duration_seconds_bucket{provider="claude",le="+Inf"}'
    assert f"{inf} {len(durations)}\n" in text
