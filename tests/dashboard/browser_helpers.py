"""The browser tests' harness: a proxy in a trio thread, and small page/API helpers.

Playwright's sync API must own the test thread, and the proxy is trio: so the simulator
and the proxy run under ``trio.run`` in a background thread (``DashboardServer``), and the
tests reach into it with ``call`` (``trio.from_thread.run``).
"""

from __future__ import annotations

import http.client
import importlib.util
import json
import os
import queue
import threading
import urllib.parse
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, TypeVarTuple, Unpack

import attrs
import pytest
import trio

from trio_pool import clock
from trio_pool.app import Running, serve_proxy
from trio_pool.config import Config
from trio_pool.demo import demo_config
from trio_pool.providers.base import TokenUsage
from trio_pool.testing.issue import new_account
from trio_pool.testing.pool_files import write_pool
from trio_pool.testing.server import serve_simulator
from trio_pool.testing.state import SimState
from trio_pool.usage.ledger import LedgerRow

if TYPE_CHECKING:  # imported by the fixtures only once they know Playwright is there
    from playwright.sync_api import ConsoleMessage, Page, Request

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[1] / ".artifacts" / "screenshots"
FRIEND_CODE = "let-me-in-123"
FRIEND_NAME = "Test pool"
ADMIN_PASSWORD = "correct horse battery staple"
ADMIN_TOKEN = "dashboard-test-admin-token-0123456789"  # keeps /api/accounts on
ACCOUNTS = [(p, n) for p in ("codex", "claude", "gemini") for n in ("a", "b")]
START_S = 30.0  # the proxy's start, one call(), the shutdown: each bounded by this
WAIT_MS = 10_000  # every browser wait
CSRF = {"content-type": "application/json", "x-trio-pool": "1"}
TIMEOUT_S = 10.0


def browser_missing(chromium: Path = CHROMIUM) -> str | None:
    if not chromium.exists():
        return f"{chromium} is missing (apt-get install -y chromium)"
    if importlib.util.find_spec("playwright") is None:
        return "the Python package playwright is missing (pip install playwright)"
    return None


def require_browser(chromium: Path = CHROMIUM) -> None:
    """Skip without a browser; under CI (env CI set), fail instead: CI never skips these."""
    reason = browser_missing(chromium)
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the browser tests, but {reason}", pytrace=False)
    pytest.skip(reason)


def dashboard_config(sim_base: str, workdir: Path) -> Config:
    """The demo config in shared (friends) mode, with an admin password where supported."""
    config = demo_config(sim_base, workdir, "127.0.0.1:0")
    config = attrs.evolve(
        config,
        routing=attrs.evolve(config.routing, queue_wait_s=0.0),
        admin_token=ADMIN_TOKEN,
    )
    # Keys the lead is adding for issue 7; set only those the Config has already.
    wanted: dict[str, Any] = {
        "friend_code": FRIEND_CODE,
        "friend_name": FRIEND_NAME,
        "admin_password": ADMIN_PASSWORD,
    }
    return attrs.evolve(config, **{k: v for k, v in wanted.items() if hasattr(config, k)})


@attrs.define(eq=False)
class DashboardServer:
    """Simulator + proxy under ``trio.run`` in one background thread."""

    workdir: Path
    running: Running = attrs.field(init=False)
    state: SimState = attrs.field(init=False)
    _token: trio.lowlevel.TrioToken = attrs.field(init=False, repr=False)
    _cancel: trio.CancelScope = attrs.field(init=False, repr=False)
    _thread: threading.Thread | None = attrs.field(default=None, repr=False)
    _started: queue.Queue[BaseException | None] = attrs.field(factory=queue.Queue, repr=False)
    error: BaseException | None = None

    @property
    def base_url(self) -> str:
        return self.running.base_url

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._main, name="dashboard-proxy", daemon=True)
        self._thread.start()
        try:
            failed = self._started.get(timeout=START_S)
        except queue.Empty:
            raise AssertionError(f"the proxy did not start within {START_S}s") from None
        if failed is not None:
            raise AssertionError("the proxy failed to start") from failed

    def call(self, afn: Callable[[Unpack[Ts]], Awaitable[T]], *args: *Ts) -> T:
        """Run ``afn(*args)`` in the proxy's trio thread (bounded) and return its result."""

        async def bounded() -> T:
            with trio.fail_after(START_S):
                return await afn(*args)

        return trio.from_thread.run(bounded, trio_token=self._token)

    def shutdown(self) -> None:
        """Graceful stop (grace 0); cancels outright if that does not end the thread."""
        thread = self._thread
        if thread is None or not thread.is_alive():
            return
        try:
            trio.from_thread.run_sync(self.running.shutdown.begin, 0.0, trio_token=self._token)
            thread.join(START_S)
            if thread.is_alive():
                trio.from_thread.run_sync(self._cancel.cancel, trio_token=self._token)
        except trio.RunFinishedError:
            pass
        thread.join(START_S)
        if thread.is_alive():
            raise AssertionError(f"the proxy thread did not stop within {2 * START_S}s")
        if self.error is not None:
            raise AssertionError("the proxy's trio run failed") from self.error

    def _main(self) -> None:
        try:
            trio.run(self._serve)
        except BaseException as exc:  # reported to the test thread, never lost in this one
            self.error = exc
            self._started.put(exc)

    async def _serve(self) -> None:
        now = clock.now()
        state = SimState.with_accounts(new_account(p, n, now=now) for p, n in ACCOUNTS)  # type: ignore[arg-type]
        async with trio.open_nursery() as nursery:
            self._cancel = nursery.cancel_scope
            sim_base: str = await nursery.start(serve_simulator, state)
            await trio.to_thread.run_sync(
                partial(write_pool, self.workdir / "pool", state, now=now)
            )
            config = dashboard_config(sim_base, self.workdir)

            async def proxy(*, task_status: trio.TaskStatus[Running]) -> None:
                try:
                    await serve_proxy(config, task_status=task_status)
                finally:
                    nursery.cancel_scope.cancel()  # the simulator goes with the proxy

            self.running = await nursery.start(proxy)
            self.state = state
            self._token = trio.lowlevel.current_trio_token()
            self._started.put(None)


@contextmanager
def dashboard_server(workdir: Path) -> Iterator[DashboardServer]:
    server = DashboardServer(workdir)
    server.start()
    try:
        yield server
    finally:
        server.shutdown()


# -- HTTP ------------------------------------------------------------------------------


@attrs.frozen
class Answer:
    status: int
    body: bytes
    headers: list[tuple[str, str]]

    def json(self) -> Any:
        return json.loads(self.body)

    def cookie(self, name: str) -> str:
        for key, value in self.headers:
            if key == "set-cookie" and value.startswith(name + "="):
                return value.split(";", 1)[0].split("=", 1)[1]
        raise AssertionError(f"no {name} cookie in the answer")


def api(
    base: str,
    method: str,
    path: str,
    body: Any = None,
    *,
    cookie: str | None = None,
    headers: dict[str, str] | None = None,
) -> Answer:
    """One request with the page's CSRF headers (blocking: the page's thread calls it)."""
    sent = {**CSRF, **(headers or {})}
    if cookie is not None:
        sent["cookie"] = f"tp_session={cookie}"
    content = None if body is None else json.dumps(body).encode()
    url = urllib.parse.urlsplit(base + path)
    conn = http.client.HTTPConnection(url.netloc, timeout=TIMEOUT_S)
    try:
        target = url.path + (f"?{url.query}" if url.query else "")
        conn.request(method, target, body=content, headers=sent)
        response = conn.getresponse()
        return Answer(
            response.status,
            response.read(),
            [(k.lower(), v) for k, v in response.getheaders()],
        )
    finally:
        conn.close()


def join(base: str, name: str) -> tuple[str, str]:
    """Sign up a friend over the API: (pool key, session cookie)."""
    answer = api(base, "POST", "/api/join", {"code": FRIEND_CODE, "name": name})
    assert answer.status == 201, answer.body
    return answer.json()["key"], answer.cookie("tp_session")


def admin_cookie(base: str) -> str:
    """An admin session cookie, from POST /api/session with the admin password."""
    answer = api(base, "POST", "/api/session", {"password": ADMIN_PASSWORD})
    assert answer.status == 200, answer.body
    return answer.cookie("tp_session")


def ensure_admin_password(server: DashboardServer) -> None:
    """Give the pool an admin password, the way ``trio-pool password`` does (the directory)."""
    if hasattr(server.running.config, "admin_password"):
        return
    directory: Any = getattr(server.running.services, "directory", None)
    assert directory is not None, "the proxy has no directory yet (issue 7's auth)"
    server.call(directory.set_password, ADMIN_PASSWORD)


# -- the ledger ------------------------------------------------------------------------

SEED_USERS = ("seed-alice", "seed-bob", "seed-carol")
SEED_HOURS = 6
MODELS = {"codex": "gpt-5", "claude": "claude-opus-5-5", "gemini": "gemini-2.5-pro"}


def seed_rows(now: float, hours: int = SEED_HOURS) -> list[LedgerRow]:
    """A few users over several accounts and hours, some errors among them."""
    rows = []
    for hour in range(1, hours + 1):
        for i, user in enumerate(SEED_USERS):
            provider, name = ACCOUNTS[(hour + i) % len(ACCOUNTS)]
            rows.append(
                LedgerRow(
                    at=now - hour * 3600 + 60 * i,
                    provider=provider,
                    account=f"{provider}/{name}",
                    model=MODELS[provider],
                    conversation=None,
                    status=429 if (hour + i) % 5 == 0 else 200,
                    attempts=1,
                    failures=(),
                    ttfb_ms=120.0,
                    duration_ms=900.0,
                    usage=TokenUsage(input=1000 * (i + 1), cached=100, output=200 * hour),
                    bytes=2048,
                    user=user,
                )
            )
    return rows


async def seed_ledger(running: Running) -> int:
    """Write seed_rows() into the proxy's ledger and flush them to state.db; rows written."""
    services = running.services
    assert services.ledger is not None, "the proxy has no ledger (no state db?)"
    store = getattr(services, "state", None) or services.refresher.state
    assert store is not None, "the proxy has no state store"
    for row in seed_rows(clock.now()):
        services.ledger.record(row)
    return await services.ledger.flush(store)


async def served(state: SimState) -> dict[str, int]:
    """Model replies per simulated account ("claude/a" -> count)."""
    return {key: account.generations for key, account in state.accounts.items()}


# -- pages -----------------------------------------------------------------------------


def tid(name: str) -> str:
    return f'[data-testid="{name}"]'


def open_route(page: Page, base: str, route: str, ready: str) -> None:
    """Go to ``#/route`` and wait (bounded) until its ``ready`` test id is there."""
    page.goto(f"{base}/#/{route}")
    page.locator(tid(ready)).first.wait_for(timeout=WAIT_MS)


def shoot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)


@attrs.define(eq=False)
class Watch:
    """What a page did that it should not: console errors, uncaught exceptions, requests
    to anything but the proxy's origin."""

    origin: str
    errors: list[str] = attrs.field(factory=list)
    foreign: list[str] = attrs.field(factory=list)

    def attach(self, page: Page) -> Watch:
        # Lambdas: Playwright tags its handlers with attributes, which slotted methods refuse.
        page.on("console", lambda message: self._console(message))
        page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))
        page.on("request", lambda request: self._request(request))
        return self

    def _console(self, message: ConsoleMessage) -> None:
        # Chrome's own automatic /favicon.ico probe is not the page's doing.
        if message.type == "error" and not message.location.get("url", "").endswith("/favicon.ico"):
            self.errors.append(f"console: {message.text} at {message.location}")

    def _request(self, request: Request) -> None:
        url = request.url
        if url.startswith(("data:", "blob:", "about:")):
            return
        if url != self.origin and not url.startswith(self.origin + "/"):
            self.foreign.append(url)
