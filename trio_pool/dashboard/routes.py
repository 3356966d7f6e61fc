"""The dashboard's front door: the page, its assets, and who is calling the API.

Who is calling is ``auth.callers.caller_of``. A cookie or implicit caller must send
``x-trio-pool: 1`` on changes, which a cross-site form or fetch cannot do without a CORS
preflight we never answer.
"""

from __future__ import annotations

import logging
import urllib.parse
from importlib import resources

from trio_pool import clock
from trio_pool.auth.callers import caller_of
from trio_pool.auth.model import Caller
from trio_pool.dashboard import accounts_api, auth_api, data_api
from trio_pool.dashboard.context import DashboardServices
from trio_pool.dashboard.http import error
from trio_pool.server.connection import Exchange

log = logging.getLogger(__name__)

ASSET_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}
# The page loads nothing from anywhere else and cannot be framed.
PAGE_HEADERS = [
    (
        "content-security-policy",
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    ),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("x-frame-options", "DENY"),
    ("cache-control", "no-cache"),
]
CHANGES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_assets: dict[str, bytes] = {}


def is_dashboard_path(path: str) -> bool:
    return path in ("/", "/index.html", "/favicon.ico") or path.startswith(("/assets/", "/api/"))


async def handle(ex: Exchange, services: DashboardServices) -> None:
    path = ex.head.path
    if not path.startswith("/api/"):
        await _asset(ex, path)
        return
    caller, by_header = caller_of(
        ex.head, ex.client, services.config, services.directory, clock.now()
    )
    parts = [urllib.parse.unquote(p) for p in path.strip("/").split("/")]
    # A cookie or the implicit local admin could be ridden by another site's form; so could
    # sign-in and sign-up. (A stranger's other changes are refused below as unauthorized.)
    exposed = caller.can_view or parts[:2] in (["api", "join"], ["api", "session"])
    if (
        ex.head.method in CHANGES
        and exposed
        and not by_header
        and ex.head.get("x-trio-pool") != "1"
    ):
        await error(ex, 403, "forbidden", "changes need the header x-trio-pool: 1")
        return
    if await auth_api.handle(ex, services, caller, parts):
        return
    if accounts_api.is_admin_path(path):
        if not caller.is_admin:
            await _refuse(ex, caller)
            return
        await accounts_api.handle(ex, services)
        return
    if not caller.can_view:
        await _refuse(ex, caller)
        return
    if not await data_api.handle(ex, services, caller, parts):
        await error(ex, 404, "not_found", f"no dashboard API {ex.head.method} {path}")


async def _refuse(ex: Exchange, caller: Caller) -> None:
    if caller.can_view:
        await error(ex, 403, "forbidden", "this needs the pool's admin")
        return
    log.warning("admin.unauthorized reason=no_session client=%s path=%s", ex.client, ex.head.path)
    await error(ex, 401, "unauthorized", "sign in first")


async def _asset(ex: Exchange, path: str) -> None:
    name = "index.html" if path in ("/", "/index.html") else path.removeprefix("/assets/")
    if path == "/favicon.ico":
        name = "favicon.svg"
    body = _load(name)
    if body is None:
        await error(ex, 404, "not_found", f"no such file {path}")
        return
    kind = ASSET_TYPES.get("." + name.rpartition(".")[2], "application/octet-stream")
    await ex.respond(200, [("content-type", kind), *PAGE_HEADERS], body)


def _load(name: str) -> bytes | None:
    """A file of the packaged page (kept in memory after the first read)."""
    if name in _assets:
        return _assets[name]
    if "/" in name or name.startswith(".") or "." not in name:
        return None
    try:
        body = resources.files("trio_pool.dashboard").joinpath("static", name).read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None
    _assets[name] = body
    return body
