"""The dashboard's Try it sends what the real services take (the simulator refuses the rest)."""

from __future__ import annotations

import pytest
import trio

from tests.proxy.conftest import Env
from trio_pool.dashboard import try_it
from trio_pool.providers.base import ProviderName


async def try_through(env: Env, provider: ProviderName) -> dict[str, object]:
    services = env.services
    request = try_it.parse_try({"provider": provider, "prompt": "Say hello"})
    with trio.fail_after(10):
        return await try_it.try_request(
            services.client, services.self_call.url, services.self_call.token, None, request
        )


@pytest.mark.parametrize("provider", ["codex", "claude"])
async def test_try_it_is_served_by_the_real_services_rules(env: Env, provider: str) -> None:
    """Codex gets instructions, store false and a stream; Claude a model a subscription takes
    without Claude Code's signed billing block, even where extra usage is off."""
    for account in env.state.of("claude"):
        account.extra_usage = False  # a third-party request would be a 400 here
    answer = await try_through(env, provider)  # type: ignore[arg-type]
    assert answer["status"] == 200, answer["text"]
    assert answer["account"] in {a.key for a in env.state.of(provider)}  # type: ignore[arg-type]


async def test_claude_try_it_bills_no_extra_usage(env: Env) -> None:
    """Where extra usage is on, Try it still draws on the plan, not on extra usage."""
    answer = await try_through(env, "claude")
    assert answer["status"] == 200
    assert sum(a.extra_usage_requests for a in env.state.of("claude")) == 0
