"""Answers the proxy makes itself when no upstream answer can be passed on: errors in the
client's provider's own shape (the plan's give-up included), and the request log line."""

from __future__ import annotations

import logging
import math

import trio

from trio_pool.logs import info_line
from trio_pool.providers import PROVIDER_REGISTRY
from trio_pool.providers.base import ErrorShape, Route
from trio_pool.proxy.attempts import GiveUp
from trio_pool.proxy.chat_shape import CHAT_SHAPE
from trio_pool.proxy.relay import RelayResult
from trio_pool.server.connection import Exchange
from trio_pool.server.messages import RequestHead

log = logging.getLogger(__name__)


async def send_error(
    exchange: Exchange,
    shape: ErrorShape,
    status: int,
    message: str,
    kind: str,
    retry_after_s: float | None = None,
) -> int:
    """Answer with ``shape``'s error shape (the client's provider); the status sent."""
    headers, payload = shape.error_response(status, message, kind=kind)
    if retry_after_s is not None:
        headers.append(("retry-after", str(max(1, math.ceil(retry_after_s)))))
    await exchange.respond(status, headers, payload)
    log_done(exchange.head, status, None)
    return status


async def send_give_up(exchange: Exchange, shape: ErrorShape, give_up: GiveUp) -> int:
    """No account answered, or none could take the request: the plan's answer."""
    return await send_error(
        exchange, shape, give_up.status, give_up.message, give_up.kind, give_up.retry_after_s
    )


def client_shape(route: Route) -> ErrorShape:
    """The error shape the client of ``route`` understands: its own API's. A translated
    route (translation.md §0.5) answers in its client's format, not its upstream's."""
    match route.client_format:
        case "messages":
            return PROVIDER_REGISTRY["claude"]
        case "responses":
            return PROVIDER_REGISTRY["codex"]
        case "chat":
            return CHAT_SHAPE
    return PROVIDER_REGISTRY[route.provider]


def log_done(
    head: RequestHead, status: int, started: float | None, result: RelayResult | None = None
) -> None:
    # The account is already in the log context (bind) when one was chosen.
    if not log.isEnabledFor(logging.INFO):
        return
    ms = (trio.current_time() - started) * 1000 if started is not None else 0.0
    extra = ""
    if result is not None:
        usage = result.usage
        extra = f" bytes={result.bytes_sent} complete={result.complete}"
        if usage is not None:
            extra += f" tokens_in={usage.input} tokens_out={usage.output}"
    info_line(
        log,
        f"request.done method={head.method} path={head.path} status={status} ms={ms:.1f}{extra}",
    )
