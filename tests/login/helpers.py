"""A simulator with login endpoints, a config pointing at it, and a scripted browser."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import trio

from tests.http_client import HttpClient, Reply
from trio_pool import clock
from trio_pool.config import Config
from trio_pool.demo import demo_config
from trio_pool.login.flows import LoginUI
from trio_pool.testing.issue import new_account
from trio_pool.testing.oauth import login_urls
from trio_pool.testing.server import serve_simulator
from trio_pool.testing.state import SimState


@attrs.define
class Sim:
    state: SimState
    base: str
    config: Config


async def start_sim(nursery: trio.Nursery, workdir: Path, **config_changes: Any) -> Sim:
    now = clock.now()
    state = SimState.with_accounts(
        new_account(provider, name, now=now)
        for provider in ("codex", "claude", "gemini")
        for name in ("alice", "bob")
    )
    base = await nursery.start(serve_simulator, state)
    config = demo_config(base, workdir, "127.0.0.1:0")
    extra = login_urls(base)
    config = attrs.evolve(
        config,
        codex=attrs.evolve(config.codex, **extra["codex"]),
        claude=attrs.evolve(config.claude, **extra["claude"]),
        gemini=attrs.evolve(config.gemini, **extra["gemini"]),
        **config_changes,
    )
    return Sim(state, base, config)


def _loopback(url: str) -> str:
    return url.replace("://localhost:", "://127.0.0.1:")


def _location(response: Reply) -> str:
    for key, value in response.headers:
        if key.lower() == b"location":
            return value.decode()
    raise AssertionError(f"no redirect (status {response.status})")


async def get(url: str) -> Reply:
    async with HttpClient() as http:
        return await http.request("GET", _loopback(url))


async def follow_authorize(url: str, *, tamper: Callable[[str], str] = lambda u: u) -> str:
    """Play the browser: open the authorize URL, then follow its redirect; returns the page."""
    response = await get(url)
    final = await get(tamper(_location(response)))
    return final.content.decode()


async def pasted_code(url: str) -> str:
    """Play the browser of the code-paste variants: the code shown on the provider's page."""
    page = await follow_authorize(url)
    found = re.search(r'<code id="code">([^<]*)</code>', page)
    assert found is not None, page
    return found.group(1).replace("&amp;", "&").replace("&#x27;", "'")


def browser_ui(
    nursery: trio.Nursery, *, tamper: Callable[[str], str] = lambda u: u
) -> tuple[LoginUI, list[str]]:
    """A UI whose 'browser' follows the authorize URL in a task; returns the messages too."""
    messages: list[str] = []
    pages: list[str] = []

    def open_browser(url: str) -> None:
        async def play() -> None:
            pages.append(await follow_authorize(url, tamper=tamper))

        nursery.start_soon(play)

    async def no_paste(prompt: str) -> str:
        raise AssertionError("the browser flow asked for a pasted code")

    return LoginUI(notify=messages.append, read_code=no_paste, open_browser=open_browser), messages


def paste_ui() -> tuple[LoginUI, list[str]]:
    """A UI for the paste variants: reads the URL from the message and 'pastes' the code."""
    messages: list[str] = []

    async def read_code(prompt: str) -> str:
        url = re.search(r"(http://\S+)", messages[-1])
        assert url is not None
        return await pasted_code(url.group(1))

    return LoginUI(notify=messages.append, read_code=read_code), messages
