"""Fixtures of the browser tests: one proxy (in a trio thread) and one Chromium per module.

Without Chromium or Playwright the tests skip locally but fail under CI (env ``CI`` set),
so that CI can never pass by silently skipping them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from tests.dashboard.browser_helpers import (
    CHROMIUM,
    CHROMIUM_ARGS,
    WAIT_MS,
    DashboardServer,
    admin_cookie,
    dashboard_server,
    ensure_admin_password,
    join,
    require_browser,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

NewPage = Callable[..., "Page"]
DESKTOP = {"width": 1280, "height": 900}


@pytest.fixture(scope="module")
def dash(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DashboardServer]:
    """Simulator + proxy in friends mode, for every test of the module."""
    with dashboard_server(tmp_path_factory.mktemp("dashboard")) as server:
        yield server


@pytest.fixture
def admin(dash: DashboardServer) -> str:
    """A fresh admin session cookie value (the admin password set first): per test, since
    signing out in one test ends every admin session (H2)."""
    ensure_admin_password(dash)
    return admin_cookie(dash.base_url)


@pytest.fixture(scope="module")
def pool_key(dash: DashboardServer) -> str:
    """A pool key of a friend who joined over the API."""
    key, _cookie = join(dash.base_url, "sdk-friend")
    return key


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=30_000
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def new_page(browser: Browser, dash: DashboardServer) -> Iterator[NewPage]:
    """new_page(cookie=None, **context options) -> a Page in a fresh context (own cookies)."""
    contexts: list[BrowserContext] = []

    def make(*, cookie: str | None = None, **options: Any) -> Page:
        options.setdefault("viewport", DESKTOP)
        context = browser.new_context(**options)
        contexts.append(context)
        context.set_default_timeout(WAIT_MS)
        if cookie is not None:
            context.add_cookies([{"name": "tp_session", "value": cookie, "url": dash.base_url}])
        return context.new_page()

    yield make
    for context in contexts:
        context.close()
