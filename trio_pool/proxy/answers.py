"""Answers the proxy makes itself when no upstream answer can be passed on: errors in the
provider's own shape, the pool-exhausted 429 naming every account, and the request log line."""

from __future__ import annotations

import logging
import math

import trio

from trio_pool import clock
from trio_pool.accounts.pool import Exhausted
from trio_pool.providers.base import Outcome, OutcomeKind, Provider
from trio_pool.proxy.relay import RelayResult
from trio_pool.server.connection import Exchange
from trio_pool.server.messages import RequestHead

log = logging.getLogger(__name__)


async def send_error(
    exchange: Exchange,
    provider: Provider,
    status: int,
    message: str,
    kind: str,
    retry_after_s: float | None = None,
) -> int:
    """Answer with the provider's error shape; the status sent."""
    headers, payload = provider.error_response(status, message, kind=kind)
    if retry_after_s is not None:
        headers.append(("retry-after", str(max(1, math.ceil(retry_after_s)))))
    await exchange.respond(status, headers, payload)
    log_done(exchange.head, status, None)
    return status


async def send_exhausted(
    exchange: Exchange,
    provider: Provider,
    decision: Exhausted,
    failures: list[tuple[str, str]],
) -> int:
    """No account can take the request: 429 with Retry-After, naming each account and why."""
    reasons = dict(decision.reasons)
    reasons.update(failures)
    if not reasons:
        message = (
            f"no {provider.name} accounts in the pool (add login files to pool/{provider.name}/)"
        )
        return await send_error(exchange, provider, 503, message, "no_accounts")
    retry_after = None if decision.retry_at is None else max(1.0, decision.retry_at - clock.now())
    detail = "; ".join(f"{name}: {why}" for name, why in sorted(reasons.items()))
    message = f"every {provider.name} account in the pool is unavailable: {detail}"
    return await send_error(exchange, provider, 429, message, "pool_exhausted", retry_after)


async def send_give_up(
    exchange: Exchange,
    provider: Provider,
    failures: list[tuple[str, str]],
    last: Outcome | None,
) -> int:
    """Every attempt failed: 429 when the last failure was quota or throttling, else 502/504."""
    detail = "; ".join(f"{name}: {why}" for name, why in failures)
    message = f"{len(failures)} account(s) tried, none answered: {detail}"
    if last is not None and last.kind in (OutcomeKind.QUOTA, OutcomeKind.THROTTLED):
        retry_after = None if last.retry_at is None else max(1.0, last.retry_at - clock.now())
        return await send_error(
            exchange, provider, 429, message, "pool_exhausted", retry_after or 1.0
        )
    status = 504 if last is not None and "timed out" in last.reason else 502
    return await send_error(exchange, provider, status, message, "upstream_error")


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
    log.info(
        "request.done method=%s path=%s status=%d ms=%.1f%s",
        head.method,
        head.path,
        status,
        ms,
        extra,
    )
