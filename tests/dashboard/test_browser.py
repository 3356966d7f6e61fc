"""The dashboard in real headless Chromium against a real proxy and the simulated upstreams."""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import anthropic
import pytest

from tests.dashboard.browser_helpers import (
    ADMIN_PASSWORD,
    FRIEND_CODE,
    SEED_HOURS,
    SEED_USERS,
    WAIT_MS,
    DashboardServer,
    Watch,
    api,
    dashboard_server,
    join,
    open_route,
    require_browser,
    seed_ledger,
    served,
    shoot,
    tid,
)
from trio_pool import clock
from trio_pool.accounts.model import AccountAction
from trio_pool.accounts.pool import Pool
from trio_pool.providers.base import QuotaReading, QuotaWindow

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

    from tests.dashboard.conftest import NewPage

pytestmark = pytest.mark.browser

KEY = re.compile(r"tp-[A-Za-z0-9_-]{40}")
PHONE = {"width": 390, "height": 844}
# Route -> a test id that shows the page has rendered its content.
ADMIN_PAGES = {
    "overview": "provider-card",
    "accounts": "account-row",
    "usage": "usage-chart",
    "live": "live-table",
    "setup": "setup-snippet",
    "try": "try-submit",
    "users": "user-add-name",
}
ANONYMOUS_PAGES = {"join": "join-code", "login": "login-submit"}


def ask_claude(base: str, key: str, times: int = 1) -> list[str]:
    """``times`` unary Messages requests through the pool with the official SDK; the texts."""
    texts = []
    with anthropic.Anthropic(base_url=base, auth_token=key, max_retries=0, timeout=10.0) as client:
        for _ in range(times):
            reply = client.messages.create(
                model="claude-opus-5-5", max_tokens=32, messages=[{"role": "user", "content": "hi"}]
            )
            block = reply.content[0]
            assert block.type == "text"
            texts.append(block.text)
    return texts


def visible(page: Page, testid: str) -> None:
    page.locator(tid(testid)).first.wait_for(state="visible", timeout=WAIT_MS)


# -- the harness itself (needs no page) --------------------------------------------------


def test_harness_starts_calls_into_and_stops_the_proxy(tmp_path: Path) -> None:
    """The trio thread serves, call() reaches the pool, shutdown joins it and leaks no thread."""
    before = set(threading.enumerate())
    with dashboard_server(tmp_path) as server:

        async def accounts() -> int:
            return len(server.running.services.registry.accounts)

        assert server.call(accounts) == 6
        assert api(server.base_url, "GET", "/healthz").status == 200
        thread_alive = server.alive
    assert thread_alive
    assert not server.alive
    # trio's idle worker threads are its cache (they end on their own); nothing else stays.
    left = [t.name for t in threading.enumerate() if t not in before]
    assert [name for name in left if not name.startswith("Trio thread")] == []


def test_harness_drives_chromium(browser: Browser, scratch_png: Path) -> None:
    """Chromium launches headless from /usr/bin/chromium and can screenshot a page."""
    page = browser.new_page()
    try:
        page.goto("data:text/html,<h1 data-testid=hello>hello</h1>")
        assert page.inner_text(tid("hello")) == "hello"
        page.screenshot(path=scratch_png)
    finally:
        page.close()
    assert scratch_png.stat().st_size > 0


@pytest.fixture
def scratch_png(tmp_path: Path) -> Path:
    return tmp_path / "harness.png"


def test_a_missing_browser_skips_locally_but_fails_under_ci(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """CI can never pass by skipping the browser tests."""
    nowhere = tmp_path / "no-chromium"
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no-chromium is missing"):
        require_browser(nowhere)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must run the browser tests"):
        require_browser(nowhere)


# -- the dashboard -----------------------------------------------------------------------


@pytest.mark.parametrize("signed_in", [False, True], ids=["anonymous", "admin"])
def test_root_loads_clean_and_stays_on_the_proxy(
    dash: DashboardServer, new_page: NewPage, admin: str, signed_in: bool
) -> None:
    """`/` loads without console errors and requests nothing but the proxy's own origin."""
    page = new_page(cookie=admin if signed_in else None)
    watch = Watch(dash.base_url).attach(page)
    page.goto(dash.base_url + "/")
    visible(page, "nav-logout" if signed_in else "nav-login")
    page.wait_for_load_state("networkidle", timeout=WAIT_MS)
    assert watch.errors == []
    assert watch.foreign == []


def test_friend_signs_up_and_gets_working_instructions(
    dash: DashboardServer, new_page: NewPage
) -> None:
    """Join with the friend code: a key is shown, the instructions carry it and the address."""
    page = new_page()
    open_route(page, dash.base_url, "join", "join-code")
    page.fill(tid("join-code"), "not-the-code")
    page.fill(tid("join-name"), "friend-ui")
    page.click(tid("join-submit"))
    visible(page, "join-error")

    page.fill(tid("join-code"), FRIEND_CODE)
    page.click(tid("join-submit"))
    visible(page, "join-key")
    key = page.inner_text(tid("join-key")).strip()
    assert KEY.fullmatch(key), key
    visible(page, "setup-snippet")
    snippets = page.locator(tid("setup-snippet")).all_inner_texts()
    assert any(key in s for s in snippets), snippets
    assert any(dash.base_url in s for s in snippets), snippets
    assert "friend-ui" in page.inner_text(tid("who"))
    shoot(page, "desktop-join-done")
    # The key shown is a real pool key.
    assert ask_claude(dash.base_url, key) == [dash.state.config.text]


def test_admin_logs_in_and_out(dash: DashboardServer, new_page: NewPage, admin: str) -> None:
    """A wrong password is refused on the page; the right one signs in as admin; logout ends it."""
    page = new_page()
    open_route(page, dash.base_url, "login", "login-password")
    page.fill(tid("login-password"), "wrong password")
    page.click(tid("login-submit"))
    visible(page, "login-error")

    page.fill(tid("login-password"), ADMIN_PASSWORD)
    page.click(tid("login-submit"))
    visible(page, "nav-logout")
    assert "admin" in page.inner_text(tid("who")).lower()
    visible(page, "nav-users")
    assert page.request.get(dash.base_url + "/api/session").json()["user"]["role"] == "admin"

    (kept,) = [c["value"] for c in page.context.cookies() if c["name"] == "tp_session"]
    page.click(tid("nav-logout"))
    visible(page, "nav-login")
    assert page.request.get(dash.base_url + "/api/session").json()["user"] is None
    # A copy of the cookie taken before signing out is dead too (H2).
    answer = api(dash.base_url, "GET", "/api/users", cookie=kept)
    assert answer.status == 401


def test_account_disabled_in_the_ui_gets_no_traffic(
    dash: DashboardServer, new_page: NewPage, admin: str, pool_key: str
) -> None:
    """After clicking disable on claude/a's row, requests through the pool never reach it."""
    page = new_page(cookie=admin)
    open_route(page, dash.base_url, "accounts", "account-row")
    row = page.locator(f'{tid("account-row")}[data-account="claude/a"]')
    row.locator(tid("account-disable")).click()
    row.locator(tid("account-enable")).wait_for(state="visible", timeout=WAIT_MS)
    before = dash.call(served, dash.state)
    try:
        texts = ask_claude(dash.base_url, pool_key, times=6)
        after = dash.call(served, dash.state)
    finally:
        row.locator(tid("account-enable")).click()  # the module's other tests share the pool
        row.locator(tid("account-disable")).wait_for(state="visible", timeout=WAIT_MS)
    assert texts == [dash.state.config.text] * 6
    assert after["claude/a"] == before["claude/a"]
    assert after["claude/b"] == before["claude/b"] + 6


def test_accounts_page_shows_an_action_and_model_windows(
    dash: DashboardServer, new_page: NewPage, admin: str
) -> None:
    """A needs-action account shows the upstream's message and its link; a model window is
    listed apart from the account's own windows."""
    sonic = "gpt-5.4-codex-sonic"

    async def mark(pool: Pool) -> None:
        now = clock.now()
        action = AccountAction("validation_required", "Verify it.", "https://accounts.test/v")
        pool.set_action("gemini/b", action)
        window = QuotaWindow(f"{sonic} 5h", 1.0, 18000.0, now + 600, sonic)
        pool.observe("codex/b", QuotaReading((window,)), now)

    async def unmark(pool: Pool) -> None:
        pool.clear_action("gemini/b")

    pool = dash.running.services.pool
    dash.call(mark, pool)
    try:
        page = new_page(cookie=admin)
        open_route(page, dash.base_url, "accounts", "account-row")
        note = page.locator(
            f'{tid("account-row")}[data-account="gemini/b"] {tid("account-action")}'
        )
        note.wait_for(state="visible", timeout=WAIT_MS)
        assert "Verify it." in note.inner_text()
        assert note.locator("a").get_attribute("href") == "https://accounts.test/v"
        row = page.locator(f'{tid("account-row")}[data-account="codex/b"]')
        model = row.locator(f'{tid("model-window")}[data-scope="{sonic}"]')
        model.wait_for(state="visible", timeout=WAIT_MS)
    finally:
        dash.call(unmark, pool)


def test_usage_chart_draws_a_seeded_ledger(
    dash: DashboardServer, new_page: NewPage, admin: str
) -> None:
    """Ledger rows of three users over six hours come back as three series on the chart."""
    assert dash.call(seed_ledger, dash.running) > 0
    page = new_page(cookie=admin)
    usage = page.request.get(dash.base_url + "/api/usage?hours=24&by=user").json()
    assert {s["label"] for s in usage["series"]} >= set(SEED_USERS), usage
    open_route(page, dash.base_url, "usage", "usage-chart")
    if page.locator(tid("usage-by")).count():
        page.select_option(tid("usage-by"), "user")
    legend = page.locator(tid("usage-legend"))
    for user in SEED_USERS:
        legend.get_by_text(user).first.wait_for(timeout=WAIT_MS)
    marks = f"{tid('usage-chart')} path, {tid('usage-chart')} rect"
    # At least one mark per seeded (user, hour) point.
    page.wait_for_function(
        "([sel, n]) => document.querySelectorAll(sel).length >= n",
        arg=[marks, len(SEED_USERS) * SEED_HOURS],
        timeout=WAIT_MS,
    )
    shoot(page, "desktop-usage-seeded")


def test_live_page_shows_a_request_made_now(
    dash: DashboardServer, new_page: NewPage, admin: str
) -> None:
    """A request made while #/live is open appears as a new row, with its user and status."""
    key, _cookie = join(dash.base_url, "live-friend")  # a user no earlier row can have
    page = new_page(cookie=admin)
    # Subscribed (the feed's response head is in) before the request is made.
    with page.expect_response(lambda r: "/api/live" in r.url, timeout=WAIT_MS):
        open_route(page, dash.base_url, "live", "live-table")
    ask_claude(dash.base_url, key)
    # The row's status once it has one (an in-flight row may show none yet).
    status = page.wait_for_function(
        """() => [...document.querySelectorAll('[data-testid="live-row"]')]
            .filter(r => r.textContent.includes('live-friend'))
            .map(r => r.dataset.status).find(s => /^[0-9]{3}$/.test(s || '')) || null""",
        timeout=WAIT_MS,
    )
    assert status.json_value() == "200"
    shoot(page, "desktop-live-request")


def test_try_it_answers_through_the_pool(
    dash: DashboardServer, new_page: NewPage, admin: str
) -> None:
    """Try it sends a prompt through the pool and names the simulated account that answered."""
    page = new_page(cookie=admin)
    open_route(page, dash.base_url, "try", "try-submit")
    page.select_option(tid("try-provider"), "claude")
    page.fill(tid("try-prompt"), "hello")
    page.click(tid("try-submit"))
    visible(page, "try-account")
    assert page.inner_text(tid("try-account")) in {"claude/a", "claude/b"}
    assert dash.state.config.text in page.inner_text(tid("try-result"))


def test_screenshots_of_every_page(dash: DashboardServer, new_page: NewPage, admin: str) -> None:
    """Every page renders its content (no script errors) and is photographed; phone and dark too."""
    page = new_page(cookie=admin)
    watch = Watch(dash.base_url).attach(page)
    for route, ready in ADMIN_PAGES.items():
        open_route(page, dash.base_url, route, ready)
        shoot(page, f"desktop-{route}")
    anonymous = new_page()
    for route, ready in ANONYMOUS_PAGES.items():
        open_route(anonymous, dash.base_url, route, ready)
        shoot(anonymous, f"desktop-{route}")
    phone = new_page(cookie=admin, viewport=PHONE, is_mobile=True, has_touch=True)
    open_route(phone, dash.base_url, "overview", "provider-card")
    shoot(phone, "phone-overview")
    dark = new_page(cookie=admin, color_scheme="dark")
    open_route(dark, dash.base_url, "overview", "provider-card")
    shoot(dark, "dark-overview")
    assert [e for e in watch.errors if "pageerror" in e] == []


def test_no_page_shows_a_stray_null(dash: DashboardServer, new_page: NewPage, admin: str) -> None:
    """No page prints "null" where an optional part is absent (Accounts used to, under its
    title, when the pool had no problems)."""
    page = new_page(cookie=admin)
    for route, ready in ADMIN_PAGES.items():
        open_route(page, dash.base_url, route, ready)
        stray = page.evaluate(
            """() => {
                const walk = document.createTreeWalker(document.querySelector('#main'),
                                                       NodeFilter.SHOW_TEXT);
                let n = 0;
                while (walk.nextNode()) if (walk.currentNode.data.trim() === 'null') n++;
                return n;
            }"""
        )
        assert stray == 0, route
