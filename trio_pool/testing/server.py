"""One HTTP server (one port) that simulates all three upstreams and their token endpoints.

Paths do not collide, so routing is by path alone:
``/backend-api/...`` (or any prefix ending in ``/responses``, ``/models``...) -> Codex,
``/v1/messages*`` and ``/api/oauth/usage`` -> Claude, ``/v1internal...`` -> Gemini,
``/oauth/token`` -> Codex tokens, ``/v1/oauth/token`` -> Claude tokens, ``/token`` -> Google.
"""

from __future__ import annotations

import logging
from functools import partial

import trio

from trio_pool.server.connection import Exchange, ServerLimits
from trio_pool.server.server import Shutdown, serve_listeners
from trio_pool.testing import claude, codex, gemini, oauth, tokens, websocket, wire
from trio_pool.testing.state import SimState

log = logging.getLogger(__name__)

WS_SUFFIXES = ("/responses", "/realtime")
CODEX_SUFFIXES = ("/responses", "/responses/compact", "/models", "/wham/usage", "/api/codex/usage")


class SimUpstream:
    """The request handler of the simulator (usable with any ``serve_*`` of trio_pool.server)."""

    def __init__(self, state: SimState) -> None:
        self.state = state

    async def __call__(self, ex: Exchange) -> None:
        state = self.state
        state.requests_total += 1
        state.seen.append((ex.head.method, ex.head.target))
        path = ex.head.path
        try:
            if path in oauth.PATHS:
                await oauth.handle(state, ex)
            elif path.startswith("/v1internal"):
                await gemini.handle(state, ex)
            elif path.startswith("/v1/messages") or path == "/api/oauth/usage":
                await claude.handle(state, ex)
            elif path == "/oauth/token":
                await tokens.handle_codex(state, ex)
            elif path == "/v1/oauth/token":
                await tokens.handle_claude(state, ex)
            elif path == "/token":
                await tokens.handle_gemini(state, ex)
            elif ex.head.wants_upgrade("websocket") and path.rstrip("/").endswith(WS_SUFFIXES):
                await websocket.handle(state, ex)
            elif path.rstrip("/").endswith(CODEX_SUFFIXES):
                await codex.handle(state, ex)
            elif path == "/api/hello":
                # Claude Code's preconnect (HEAD /api/hello): any answer will do.
                await ex.respond(200, [("content-type", "text/plain")], b"")
            else:
                body = {"error": {"code": 404, "message": f"no simulated endpoint at {path}"}}
                await wire.respond_json(ex, 404, body)
        except wire.BadBody as exc:
            if not ex.response_started:
                await wire.respond_json(ex, 400, {"error": {"code": 400, "message": str(exc)}})


def urls(base: str) -> dict[str, dict[str, str]]:
    """The config values that point each provider of the proxy at a simulator at ``base``."""
    base = base.rstrip("/")
    return {
        "codex": {
            "upstream": f"{base}/backend-api/codex",
            "backend": f"{base}/backend-api",
            "token_url": f"{base}/oauth/token",
        },
        "claude": {"upstream": base, "token_url": f"{base}/v1/oauth/token"},
        "gemini": {"upstream": base, "token_url": f"{base}/token"},
    }


async def serve_simulator(
    state: SimState,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the simulator until cancelled; reports its base URL ``http://host:port``."""
    shutdown = Shutdown()
    limits = ServerLimits(head_timeout_s=30.0, keepalive_idle_s=300.0)
    # We open (and close) the listeners ourselves: serve_http leaves its listening sockets
    # open when it is cancelled rather than shut down, and the simulator is usually
    # stopped by cancelling its nursery.
    listeners = await trio.open_tcp_listeners(port, host=host)
    try:
        async with trio.open_nursery() as nursery:
            addresses = await nursery.start(
                partial(
                    serve_listeners, SimUpstream(state), listeners, limits=limits, shutdown=shutdown
                )
            )
            bound_host, bound_port = addresses[0]
            shown = f"[{bound_host}]" if ":" in bound_host else bound_host
            base = f"http://{shown}:{bound_port}"
            log.info("sim.listening base=%s accounts=%d", base, len(state.accounts))
            task_status.started(base)
    finally:
        for listener in listeners:
            listener.socket.close()
