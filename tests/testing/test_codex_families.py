"""The simulated Codex's extra limit families (a model metered apart from the account), as
the backend reports them: headers, WebSocket codex.rate_limits, wham/usage and the 429."""

from __future__ import annotations

import trio

from tests.http_client import HttpClient
from tests.testing.sim_helpers import Sim, call, codex_headers, header, json_body
from tests.testing.test_codex import BODY, url
from tests.testing.test_websocket import auth, connect, create, turn, ws_url
from trio_pool.providers import identity
from trio_pool.testing.accounts import SimAccount, SimWindow

SPARK = "gpt-5.3-codex-spark"
FAMILY = "x-codex-bengalfox-"


def with_spark_family(account: SimAccount, capacity: float = 2) -> None:
    """A Pro account (Spark is Pro-only) with room of its own and a small Spark family."""
    account.plan = "pro"
    account.windows = [
        SimWindow("5h", 5 * 3600, 100),
        SimWindow("weekly", 7 * 86400, 1000),
        SimWindow("5h", 5 * 3600, capacity, model=SPARK, limit_id="codex_bengalfox"),
        SimWindow("weekly", 7 * 86400, 100, model=SPARK, limit_id="codex_bengalfox"),
    ]


async def test_a_family_is_metered_and_reported_apart(sim: Sim, http: HttpClient) -> None:
    """Every answer carries the family's headers and name; a Spark turn counts against the
    family only and its x-codex-primary-* repeat the family's numbers; once the family is
    spent Spark gets usage_limit_reached naming it, while gpt-5 is still served."""
    account = sim.account("codex")
    with_spark_family(account)
    spark = {**BODY, "model": SPARK}
    with trio.fail_after(10):
        main = await call(http, "POST", url(sim), codex_headers(account), BODY)
        first = await call(http, "POST", url(sim), codex_headers(account), spark)
        await call(http, "POST", url(sim), codex_headers(account), spark)
        refused = await call(http, "POST", url(sim), codex_headers(account), spark)
        still = await call(http, "POST", url(sim), codex_headers(account), BODY)
    assert (main.status, first.status, refused.status, still.status) == (200, 200, 429, 200)
    assert header(main, "x-codex-active-limit") == "premium"
    assert header(main, "x-codex-primary-used-percent") == "1"
    assert header(main, FAMILY + "limit-name") == "GPT-5.3-Codex-Spark"
    assert header(main, FAMILY + "primary-used-percent") == "0"
    assert header(first, "x-codex-active-limit") == "codex_bengalfox"
    assert header(first, "x-codex-primary-used-percent") == "50"  # the family's copy
    assert header(first, FAMILY + "primary-used-percent") == "50"
    assert header(first, FAMILY + "secondary-window-minutes") == "10080"
    error = json_body(refused)["error"]
    assert error["type"] == "usage_limit_reached"
    assert error["resets_at"] == int(sim.clock.now + 5 * 3600)
    assert header(refused, "x-codex-active-limit") == "codex_bengalfox"
    assert header(refused, "x-codex-primary-used-percent") == "100"
    assert header(refused, FAMILY + "primary-used-percent") == "100"
    assert header(still, "x-codex-primary-used-percent") == "2"  # the account's own: 2 of 100


async def test_wham_usage_lists_the_family_in_additional_rate_limits(
    sim: Sim, http: HttpClient
) -> None:
    """The usage poll carries the family as {limit_name, metered_feature, rate_limit}, spent,
    while the account's own limit is allowed."""
    account = sim.account("codex")
    with_spark_family(account, capacity=1)
    headers = [*codex_headers(account), *identity.codex_headers()]
    with trio.fail_after(10):
        spent = await call(http, "POST", url(sim), codex_headers(account), {**BODY, "model": SPARK})
        usage = await call(http, "GET", f"{sim.base}/backend-api/wham/usage", headers)
    assert spent.status == 200
    poll = json_body(usage)
    assert poll["rate_limit"]["allowed"] is True
    assert poll["rate_limit"]["primary_window"]["used_percent"] == 0
    (extra,) = poll["additional_rate_limits"]
    assert (extra["limit_name"], extra["metered_feature"]) == (
        "GPT-5.3-Codex-Spark",
        "codex_bengalfox",
    )
    assert extra["rate_limit"]["limit_reached"] is True
    assert extra["rate_limit"]["primary_window"]["used_percent"] == 100
    assert extra["rate_limit"]["secondary_window"]["limit_window_seconds"] == 7 * 86400


async def test_websocket_family_turns_get_their_own_rate_limits_event(sim: Sim) -> None:
    """On a socket a Spark turn's codex.rate_limits names the family by metered_limit_name;
    a spent family gets a 429 error frame whose headers name it; gpt-5 turns go on."""
    account = sim.account("codex")
    with_spark_family(account, capacity=1)
    with trio.fail_after(10):
        async with connect(ws_url(sim), auth(account)) as ws:
            main = await turn(ws, create())
            spark = await turn(ws, create(model=SPARK))
            refused = await turn(ws, create(model=SPARK))
            again = await turn(ws, create())
    assert "metered_limit_name" not in main[0]
    assert main[0]["rate_limits"]["primary"]["used_percent"] == 0
    assert spark[0]["metered_limit_name"] == "codex_bengalfox"
    assert spark[0]["rate_limits"]["secondary"]["window_minutes"] == 7 * 24 * 60
    (error,) = refused
    assert (error["type"], error["status"], error["error"]["type"]) == (
        "error",
        429,
        "usage_limit_reached",
    )
    assert error["headers"]["x-codex-active-limit"] == "codex_bengalfox"
    assert error["headers"][FAMILY + "limit-name"] == "GPT-5.3-Codex-Spark"
    assert again[-1]["type"] == "response.completed"
    assert again[0]["rate_limits"]["primary"]["used_percent"] == 1  # the account's own
