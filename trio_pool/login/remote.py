"""Talking to a trio-pool's management API from the command line: send a login made on
this machine to a remote pool (``accounts login --server``), or tell a running local proxy
about an enable/disable."""

from __future__ import annotations

import json
from typing import Any

from trio_pool.errors import LoginError, UpstreamError
from trio_pool.providers.base import ProviderName
from trio_pool.providers.wire import as_str, dig, json_object
from trio_pool.upstream.client import UpstreamClient


async def admin_call(
    client: UpstreamClient,
    server: str,
    token: str | None,
    method: str,
    path: str,
    body: Any = None,
) -> dict[str, Any]:
    """One management call; LoginError with one line for every refusal."""
    url = server.rstrip("/") + path
    headers = [("accept", "application/json")]
    if token:
        headers.append(("authorization", f"Bearer {token}"))
    data = b""
    if body is not None:
        headers.append(("content-type", "application/json"))
        data = json.dumps(body).encode()
    try:
        status, _headers, answer = await client.request(method, url, headers, data)
    except UpstreamError as exc:
        raise LoginError(f"cannot reach {server}: {exc}") from None
    payload = json_object(answer) or {}
    if 200 <= status < 300:
        return payload
    message = as_str(dig(payload, "error", "message")) or f"HTTP {status}"
    if status == 401:
        raise LoginError(
            f"{server} refused the admin token (401): pass --admin-token or set $TRIO_POOL_ADMIN_TOKEN"
        )
    if status == 404 and path.startswith("/api/accounts") and "management API is off" in message:
        raise LoginError(
            f"{server} has no management API: set admin_token in its config.toml and restart it"
        )
    raise LoginError(f"{server} answered {status}: {message}")


async def send_login(
    client: UpstreamClient,
    server: str,
    token: str | None,
    provider: ProviderName,
    document: dict[str, Any],
    name: str | None,
) -> dict[str, Any]:
    """POST the new login to the remote pool; returns its answer (``name``, ``replaced``)."""
    body = {"provider": provider, "name": name, "document": document}
    return await admin_call(client, server, token, "POST", "/api/accounts", body)
