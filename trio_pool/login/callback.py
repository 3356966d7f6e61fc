"""The loopback listener the browser is redirected to at the end of an OAuth login.

It serves one path; the first redirect that reaches it ends the wait, with the code when its
``state`` matches, else with the error to show. ``/cancel`` ends a stale listener (a second
``codex login`` does the same to the first). Served by trio-pool's own h11 server.
"""

from __future__ import annotations

import errno
import html
import logging
import urllib.parse
from collections.abc import Sequence
from functools import partial

import attrs
import trio

from trio_pool.errors import LoginError
from trio_pool.server.connection import Exchange, ServerLimits
from trio_pool.server.server import Shutdown, serve_listeners

log = logging.getLogger(__name__)

PAGE = """<!doctype html><meta charset="utf-8"><title>trio-pool login</title>
<body style="font-family:sans-serif;margin:4em"><h2>{title}</h2><p>{text}</p></body>"""
HTML = [("content-type", "text/html; charset=utf-8"), ("cache-control", "no-store")]


def describe_oauth_error(error: str, description: str) -> str:
    """One line for an ``error=`` redirect; the provider's description is shortened and escaped."""
    shown = "".join(c for c in description if c.isprintable())[:160]
    if "missing_codex_entitlement" in f"{error} {description}":
        return (
            "this ChatGPT workspace has no Codex access (missing_codex_entitlement); "
            "log in with another account or ask the workspace admin"
        )
    if error == "access_denied":
        return "the login was denied in the browser (access_denied)" + (
            f": {shown}" if shown else ""
        )
    return f"the login failed: {error[:60]}" + (f" ({shown})" if shown else "")


@attrs.define(eq=False)
class Callback:
    """What one login waits for: a redirect to ``path`` carrying ``state``."""

    path: str
    state: str = attrs.field(repr=False)
    port: int = 0
    _code: str | None = attrs.field(default=None, repr=False)
    _error: str | None = None
    _done: trio.Event = attrs.field(factory=trio.Event)

    async def wait(self) -> str:
        """The authorization code; raises LoginError for a denial or a state mismatch."""
        await self._done.wait()
        if self._code is None:
            raise LoginError(self._error or "the login ended without a code")
        return self._code

    def _finish(self, *, code: str | None = None, error: str | None = None) -> None:
        if not self._done.is_set():
            self._code, self._error = code, error
            self._done.set()

    async def __call__(self, ex: Exchange) -> None:
        if ex.head.path == "/cancel":
            await self._answer(ex, 200, "Login cancelled", error="cancelled by another login")
            return
        if ex.head.path != self.path or ex.head.method != "GET":
            await ex.respond(404, [("content-type", "text/plain")], b"not found\n")
            return
        params = dict(urllib.parse.parse_qsl(ex.head.query, keep_blank_values=True))
        if "error" in params:
            message = describe_oauth_error(params["error"], params.get("error_description", ""))
            await self._answer(ex, 400, "Login failed", error=message)
        elif params.get("state") != self.state:
            log.warning("login.callback.state_mismatch path=%s", ex.head.path)
            message = (
                "state mismatch: the browser answered a different login attempt "
                "(a stale tab?); run the login again"
            )
            await self._answer(ex, 400, "Login failed", error=message)
        elif not params.get("code"):
            await self._answer(ex, 400, "Login failed", error="the redirect carried no code")
        else:
            await self._answer(ex, 200, "Signed in", code=params["code"])

    async def _answer(
        self, ex: Exchange, status: int, title: str, *, code: str | None = None, error: str = ""
    ) -> None:
        """Show the page, then end the wait (ending it first would cut the page off)."""
        text = error or "trio-pool has the login. You can close this tab."
        try:
            await _page(ex, status, title, text)
        finally:
            self._finish(code=code, error=error or None)


async def _page(ex: Exchange, status: int, title: str, text: str) -> None:
    body = PAGE.format(title=html.escape(title), text=html.escape(text)).encode()
    await ex.respond(status, HTML, body)


async def _bind(ports: Sequence[int], host: str) -> list[trio.SocketListener]:
    """Listen on the first free port of ``ports`` (Codex: 1455, else 1457)."""
    for index, port in enumerate(ports):
        try:
            return await trio.open_tcp_listeners(port, host=host)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE or index == len(ports) - 1:
                raise LoginError(
                    f"cannot listen on {host}:{port} for the login redirect "
                    f"({exc.strerror or exc}); try --no-browser"
                ) from None
            log.info("login.callback.port_busy port=%d", port)
    raise LoginError("no port to listen on for the login redirect")


async def serve_callback(
    callback: Callback,
    ports: Sequence[int],
    *,
    host: str = "127.0.0.1",
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``callback`` until cancelled; reports the bound port."""
    listeners = await _bind(ports, host)
    callback.port = listeners[0].socket.getsockname()[1]
    limits = ServerLimits(max_body_bytes=64 * 1024, head_timeout_s=30.0, keepalive_idle_s=30.0)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(
                partial(serve_listeners, callback, listeners, limits=limits, shutdown=Shutdown())
            )
            task_status.started(callback.port)
    finally:
        # Cancelled (not shut down), serve_listeners leaves the sockets open: close them.
        for listener in listeners:
            listener.socket.close()
