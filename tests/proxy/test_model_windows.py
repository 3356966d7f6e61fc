"""Model-scoped windows through the proxy with the official SDKs (issue 11 item 5): a spent
Codex limit family or Claude weekly Opus window stops that model on the account, never the
account, and never overwrites its own 5h/weekly windows."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import anthropic
import openai
import pytest
import trio

from tests.proxy.conftest import Env
from tests.proxy.test_end_to_end import anthropic_client, openai_client, raw
from tests.proxy.test_websocket import client_headers, url
from tests.testing.test_websocket import connect, create, turn
from trio_pool import clock
from trio_pool.credentials.polls import poll_account
from trio_pool.testing.accounts import SimWindow
from trio_pool.testing.issue import new_account
from trio_pool.testing.state import SimState

SPARK = "gpt-5.3-codex-spark"
SPARK_NAME = "GPT-5.3-Codex-Spark"  # the family's limit name, as the backend sends it
OPUS, SONNET, HAIKU = "claude-opus-4-1", "claude-sonnet-4-5", "claude-haiku-4-5"
HOUR, WEEK = 3600.0, 7 * 86400.0


def codex_pool(spark_used: dict[str, float], spark_capacity: float = 2) -> SimState:
    """Pro accounts with room of their own and a small Spark family, ``spark_used`` spent."""
    now = clock.now()
    accounts = []
    for name, used in spark_used.items():
        windows = [
            SimWindow("5h", 5 * HOUR, 100),
            SimWindow("weekly", WEEK, 1000),
            SimWindow(
                "5h", 5 * HOUR, spark_capacity, used, model=SPARK, limit_id="codex_bengalfox"
            ),
            SimWindow("weekly", WEEK, 100, model=SPARK, limit_id="codex_bengalfox"),
        ]
        accounts.append(new_account("codex", name, now=now, plan="pro", windows=windows))
    return SimState.with_accounts(accounts)


def claude_pool(opus_spent: str) -> SimState:
    """Two Max accounts; ``opus_spent``'s weekly Opus limit is used up, and the other's
    5-hour window is 80 % used, so ``opus_spent`` is the better choice for any other model."""
    now = clock.now()
    accounts = [new_account("claude", name, now=now) for name in ("a", "b")]
    for account in accounts:
        spent = account.name == opus_spent
        account.windows.append(SimWindow("7d_opus", WEEK, 10, 10 if spent else 0, model="opus"))
        if not spent:
            account.windows[0].used = 0.8 * account.windows[0].capacity
    return SimState.with_accounts(accounts)


async def codex_turn(env: Env, model: str) -> str:
    """One streamed Responses turn through the proxy with the openai SDK; its text."""

    def run() -> str:
        with openai_client(env) as client:
            stream = client.responses.create(
                model=model, instructions="", input="hi", store=False, stream=True
            )
            return "".join(e.delta for e in stream if e.type == "response.output_text.delta")

    with trio.fail_after(10):
        return await trio.to_thread.run_sync(run)


async def claude_turn(env: Env, model: str) -> str:
    """One Messages call through the proxy with the anthropic SDK; its text."""

    def run() -> str:
        with anthropic_client(env) as client:
            message = client.messages.create(
                model=model, max_tokens=16, messages=[{"role": "user", "content": "hi"}]
            )
        block = message.content[0]
        return block.text if block.type == "text" else ""

    with trio.fail_after(10):
        return await trio.to_thread.run_sync(run)


async def health(env: Env) -> dict[str, dict[str, Any]]:
    document = json.loads((await raw(env, "GET", "/healthz")).content)
    return {a["name"]: a for a in document["accounts"]}


async def poll(env: Env, key: str) -> None:
    """One usage poll of account ``key``, as the background poller makes it."""
    services = env.services
    pooled = services.registry.get(key)
    assert pooled is not None
    with trio.fail_after(10):
        status = await poll_account(
            pooled, services.pool, services.refresher, services.client, services.upstreams
        )
    assert status == 200


def windows(entry: dict[str, Any]) -> dict[str, tuple[float, str | None]]:
    return {w["name"]: (w["used"], w["scope"]) for w in entry["windows"]}


async def test_a_spent_codex_family_sends_its_model_elsewhere_over_http(
    make_env: Callable[..., Any],
) -> None:
    """Spark's family spent on a: Spark fails over to b, gpt-5 still goes to a, and once b's
    family is spent too the client gets a 429 naming Spark; a's 5h/weekly keep their own
    numbers (the 429's copy of the family's 100 % is not taken for them)."""
    env: Env = await make_env(state=codex_pool({"a": 2, "b": 0}))
    a, b = env.sim("codex/a"), env.sim("codex/b")
    text = env.state.config.text
    assert await codex_turn(env, SPARK) == text
    assert (a.requests, a.generations, b.generations) == (1, 0, 1)  # a asked, refused
    assert await codex_turn(env, "gpt-5") == text
    assert a.generations == 1
    assert await codex_turn(env, SPARK) == text  # b's family: 2 of 2 now
    assert (a.requests, b.generations) == (2, 2)
    asked = a.requests + b.requests
    with pytest.raises(openai.RateLimitError) as refused:
        await codex_turn(env, SPARK)
    assert SPARK_NAME.lower() in str(refused.value).lower()
    assert a.requests + b.requests == asked  # refused by the pool, no upstream asked
    assert await codex_turn(env, "gpt-5") == text
    accounts = await health(env)
    assert {accounts[k]["state"] for k in ("codex/a", "codex/b")} == {"ok"}
    seen = windows(accounts["codex/a"])
    assert seen["5h"] == (0.01, None)
    assert seen["weekly"] == (0.001, None)
    assert seen[f"{SPARK_NAME} 5h"] == (1.0, SPARK_NAME)


async def test_a_codex_usage_poll_with_the_family_spent_routes_spark_elsewhere_first_time(
    make_env: Callable[..., Any],
) -> None:
    """Learned from wham/usage's additional_rate_limits, Spark never reaches a while gpt-5
    does, and the poll's main numbers stay a's 5h/weekly."""
    env: Env = await make_env(state=codex_pool({"a": 2, "b": 0}))
    a, b = env.sim("codex/a"), env.sim("codex/b")
    for account in (a, b):
        await poll(env, account.key)
    polled = a.requests
    text = env.state.config.text
    assert await codex_turn(env, SPARK) == text
    assert (a.requests, b.generations) == (polled, 1)
    assert await codex_turn(env, "gpt-5") == text
    assert a.generations == 1
    seen = windows((await health(env))["codex/a"])
    assert seen[f"{SPARK_NAME} 5h"] == (1.0, SPARK_NAME)
    assert seen["5h"] == (0.01, None)


async def test_codex_websocket_family_frames_stay_in_their_own_windows(
    make_env: Callable[..., Any],
) -> None:
    """On a socket, codex.rate_limits of the Spark family (metered_limit_name) land in Spark's
    windows under its limit name, never in 5h/weekly; the family's 429 frame cools Spark on
    the account, which stays ok, and Spark then goes to the other account."""
    env: Env = await make_env(state=codex_pool({"a": 0, "b": 0}, spark_capacity=1))
    with trio.fail_after(10):
        async with connect(url(env), client_headers()) as ws:
            for model in ("gpt-5", SPARK, "gpt-5"):
                events = await turn(ws, create(model=model))
                assert events[-1]["type"] == "response.completed", events[-1]
            refused = await turn(ws, create(model=SPARK))
    assert refused[-1]["error"]["type"] == "usage_limit_reached"
    (first,) = [a for a in env.state.of("codex") if a.generations]
    (other,) = [a for a in env.state.of("codex") if a is not first]
    entry = (await health(env))[first.key]
    assert entry["state"] == "ok"
    seen = windows(entry)
    assert seen["5h"] == (0.01, None)  # the last main frame: 1 of 100, not Spark's 100 %
    assert seen["weekly"] == (0.001, None)
    assert seen[f"{SPARK_NAME} 5h"] == (1.0, SPARK_NAME)
    assert not any(name.startswith("codex_bengalfox") for name in seen)
    asked = first.requests
    assert await codex_turn(env, SPARK) == env.state.config.text
    assert (first.requests, other.generations) == (asked, 1)


async def test_a_claude_opus_429_sends_opus_elsewhere_and_keeps_the_account(
    make_env: Callable[..., Any],
) -> None:
    """a's weekly Opus limit is spent: its 429 (claim seven_day_opus) fails Opus over to b,
    a stays ok and serves Sonnet and Haiku, and later Opus turns skip a."""
    env: Env = await make_env(state=claude_pool(opus_spent="a"))
    a, b = env.sim("claude/a"), env.sim("claude/b")
    text = env.state.config.text
    assert await claude_turn(env, OPUS) == text
    assert (a.requests, a.generations, b.generations) == (1, 0, 1)
    entry = (await health(env))["claude/a"]
    assert entry["state"] == "ok"
    assert windows(entry)["7d_opus"] == (1.0, "opus")
    assert await claude_turn(env, SONNET) == text
    assert await claude_turn(env, HAIKU) == text
    assert a.generations == 2
    assert await claude_turn(env, OPUS) == text
    assert (a.requests, b.generations) == (3, 2)


async def test_a_claude_usage_poll_with_opus_spent_routes_opus_elsewhere_first_time(
    make_env: Callable[..., Any],
) -> None:
    """Learned from the usage poll (seven_day_opus at 100 %), Opus never reaches a, while
    Sonnet and Haiku do; with no account left for Opus the client gets a 429 naming it."""
    env: Env = await make_env(state=claude_pool(opus_spent="a"))
    a, b = env.sim("claude/a"), env.sim("claude/b")
    await poll(env, a.key)
    polled = a.requests
    text = env.state.config.text
    assert await claude_turn(env, OPUS) == text
    assert (a.requests, b.generations) == (polled, 1)
    assert await claude_turn(env, SONNET) == text
    assert await claude_turn(env, HAIKU) == text
    assert a.generations == 2
    b.windows[-1].used = b.windows[-1].capacity  # now b's Opus week is spent too
    with pytest.raises(anthropic.RateLimitError) as refused:
        await claude_turn(env, OPUS)
    assert "7d_opus model window" in str(refused.value)
    assert (await health(env))["claude/a"]["state"] == "ok"
