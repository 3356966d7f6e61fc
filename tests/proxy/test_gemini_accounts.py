"""Gemini accounts through the proxy against the strict Code Assist simulator (issue 11):
eligibility, projects, onboarding, verification, operations, settings and model buckets."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import trio

from tests.http_client import HttpClient, Reply
from tests.proxy.conftest import Env
from trio_pool import clock
from trio_pool.credentials import gemini_setup
from trio_pool.testing.accounts import SimWindow
from trio_pool.testing.gemini import UNSUPPORTED_MESSAGE
from trio_pool.testing.issue import new_account
from trio_pool.testing.state import SimState

TURN = "/v1internal:streamGenerateContent?alt=sse"


def body(model: str = "gemini-2.5-flash", session: str = "s1") -> dict[str, Any]:
    return {
        "model": model,
        "project": "the-clients-own-project",
        "user_prompt_id": f"{session}########1",
        "request": {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
    }


async def call(env: Env, method: str, path: str, payload: Any = None) -> Reply:
    async with HttpClient() as client:
        with trio.fail_after(10):
            return await client.request(
                method,
                env.base + path,
                headers=[("content-type", "application/json")],
                content=b"" if payload is None else json.dumps(payload).encode(),
            )


async def accounts(env: Env) -> dict[str, dict[str, Any]]:
    document = json.loads((await call(env, "GET", "/healthz")).content)
    return {a["name"]: a for a in document["accounts"]}


async def until_state(env: Env, name: str, state: str) -> dict[str, Any]:
    """The account's /healthz entry once it reaches ``state`` (set-up runs in the background)."""
    with trio.fail_after(10):
        while True:
            account = (await accounts(env)).get(name)
            if account is not None and account["state"] == state:
                return account
            await trio.sleep(0.05)


def gemini_pool(*accounts: tuple[str, str]) -> SimState:
    now = clock.now()
    return SimState.with_accounts(new_account("gemini", n, now=now, plan=p) for n, p in accounts)


async def test_an_individual_account_is_ineligible_and_never_used(
    make_env: Callable[..., Any],
) -> None:
    """A free-tier Google account (UNSUPPORTED_CLIENT) shows as needs_action ineligible with
    Google's reasonMessage, and every turn goes to the Standard account."""
    env: Env = await make_env(state=gemini_pool(("a", "free-tier"), ("b", "standard-tier")))
    entry = await until_state(env, "gemini/a", "needs_action")
    assert entry["action"]["kind"] == "ineligible"
    assert entry["action"]["message"] == UNSUPPORTED_MESSAGE
    for session in ("s1", "s2", "s3", "s4"):
        response = await call(env, "POST", TURN, body(session=session))
        assert response.status == 200
    assert env.sim("gemini/a").generations == 0
    assert env.sim("gemini/b").generations == 4


async def test_a_standard_account_without_a_project_waits_for_one(
    make_env: Callable[..., Any],
) -> None:
    """No project_id and no [gemini] project: needs_action project_required. Adding the
    project to the pool file clears it and the account serves under that project."""
    env: Env = await make_env(state=gemini_pool(("a", "standard-tier")))
    path = trio.Path(env.pool_dir / "gemini" / "a.json")
    document = json.loads(await path.read_text())
    project = document.pop("project_id")
    await path.write_text(json.dumps(document))
    entry = await until_state(env, "gemini/a", "needs_action")
    assert entry["action"]["kind"] == "project_required"
    assert (await call(env, "POST", TURN, body())).status == 429  # no account can serve
    await path.write_text(json.dumps({**document, "project_id": project}))
    await until_state(env, "gemini/a", "ok")
    assert (await call(env, "POST", TURN, body())).status == 200
    assert json.loads(env.sim("gemini/a").last_body)["project"] == project


async def test_an_account_not_onboarded_is_onboarded_before_it_serves(
    make_env: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """No currentTier: the proxy runs onboardUser and polls the operation, then serves."""
    monkeypatch.setattr(gemini_setup, "OPERATION_POLL_S", 0.01)
    state = gemini_pool(("a", "standard-tier"))
    state.account("gemini/a").onboarded = False
    env: Env = await make_env(state=state)
    assert (await call(env, "POST", TURN, body())).status == 200
    assert env.sim("gemini/a").onboarded


async def test_validation_required_sets_the_account_aside_with_its_link(
    make_env: Callable[..., Any],
) -> None:
    """A 403 VALIDATION_REQUIRED is not an expired token: the account waits for its owner
    (needs_action with the link), and the turn goes to the other account."""
    env: Env = await make_env(state=gemini_pool(("a", "standard-tier"), ("b", "standard-tier")))
    await until_state(env, "gemini/a", "ok")
    link = "https://accounts.google.test/verify"
    env.sim("gemini/a").validation_url = link
    env.sim("gemini/b").windows = [SimWindow("daily", 86400.0, 1000.0)]
    for session in ("s1", "s2", "s3"):
        assert (await call(env, "POST", TURN, body(session=session))).status == 200
    entry = await until_state(env, "gemini/a", "needs_action")
    assert entry["action"] == {
        "kind": "validation_required",
        "message": "Verify your account to continue.",
        "link": link,
        "since_at": entry["action"]["since_at"],
    }
    refreshes = env.sim("gemini/a").refreshes
    assert (await call(env, "POST", TURN, body(session="s9"))).status == 200
    assert env.sim("gemini/a").refreshes == refreshes  # no refresh loop


async def test_operation_polls_go_to_the_account_that_started_it(
    make_env: Callable[..., Any],
) -> None:
    """The client's onboardUser starts an operation on one account; every poll of it reaches
    that account (another account does not know it)."""
    env: Env = await make_env(state=gemini_pool(("a", "standard-tier"), ("b", "standard-tier")))
    await until_state(env, "gemini/a", "ok")
    await until_state(env, "gemini/b", "ok")
    for key in ("gemini/a", "gemini/b"):
        env.sim(key).onboarded = False
    started = await call(
        env,
        "POST",
        "/v1internal:onboardUser",
        {"tierId": "standard-tier", "cloudaicompanionProject": "x", "metadata": {}},
    )
    operation = json.loads(started.content)
    assert operation["done"] is False
    for _ in range(4):
        poll = await call(env, "GET", f"/v1internal/{operation['name']}")
        assert poll.status == 200


async def test_changing_a_pooled_accounts_settings_is_refused(env: Env) -> None:
    """setCodeAssistGlobalUserSetting never reaches a random pooled account."""
    await until_state(env, "gemini/a", "ok")
    answer = await call(
        env,
        "POST",
        "/v1internal:setCodeAssistGlobalUserSetting",
        {"cloudaicompanionProject": "x", "freeTierDataCollectionOptin": True},
    )
    assert answer.status == 403
    assert "settings" in json.loads(answer.content)["error"]["message"]
    assert env.state.settings_changed == []


async def test_a_spent_model_bucket_leaves_the_other_models_served(
    make_env: Callable[..., Any],
) -> None:
    """Pro's bucket at zero: the Pro turn is refused, Flash on the same account still serves."""
    state = gemini_pool(("a", "standard-tier"))
    pro = SimWindow("pro", 86400.0, 1.0, 1.0, model="gemini-2.5-pro")
    state.account("gemini/a").windows = [SimWindow("daily", 86400.0, 1000.0), pro]
    env: Env = await make_env(state=state)
    refused = await call(env, "POST", TURN, body("gemini-2.5-pro"))
    assert refused.status == 429
    served = await call(env, "POST", TURN, body("gemini-2.5-flash", session="s2"))
    assert served.status == 200
    assert (await accounts(env))["gemini/a"]["state"] == "ok"
