"""The security audit's attacks on HTTP connections rather than single heads: pipelining,
``Expect: 100-continue``, clients that hang up halfway or trickle (slowloris, M3), upgrade
tricks, and in shared mode requests that try to ride on another's key. Same table form and
checks as test_audit_http_parsing.py (tests/server/audit_wire.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.proxy.test_shared_mode import join, shared
from tests.server.audit_requests import (
    CHUNKED,
    CLAUDE,
    FORWARDED,
    HOST,
    LENGTH,
    MESSAGE,
    POST,
    SMUGGLED,
    chunked,
    fast_timeouts,
    get,
    row,
)
from tests.server.audit_wire import (
    Attack,
    Pause,
    Step,
    Trickle,
    check_attack,
    errors_logged,
)
from trio_pool.config import Config

HEALTH = get()
EXPECT = b"expect: 100-continue\r\n"
WEBSOCKET = (
    b"upgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-version: 13\r\n"
    b"openai-beta: responses_websockets=2026-02-06\r\n"
)
WS_KEY = b"sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
CODEX_WS = ("/backend-api/codex/responses",)

PIPELINES = [
    row("three_pipelined_gets", "parsing: pipelined", HEALTH * 3, 200, 200, 200, then="reusable"),
    row("a_post_and_a_get_pipelined", "parsing: pipelined",
        POST + LENGTH + b"\r\n" + MESSAGE + HEALTH, 200, 200, then="reusable", upstream=FORWARDED),
    row("a_chunked_post_and_a_get_pipelined", "parsing: pipelined",
        POST + CHUNKED + b"\r\n" + chunked() + HEALTH, 200, 200, then="reusable",
        upstream=FORWARDED),
    row("a_refused_request_and_one_behind_it", "L7",
        get(line=b"G@T /healthz HTTP/1.1") + SMUGGLED, 400),
    # Fixed by this suite: bytes behind a request waited for the rest with no deadline.
    row("a_request_and_the_start_of_another_then_silence", "M3",
        HEALTH + b"GET /healthz HTTP/1.1\r\nho", 200, 408),
]  # fmt: skip

EXPECTS = [
    row("expect_100_continue", "parsing: 100 then 200",
        (POST + EXPECT + LENGTH + b"\r\n", Step.READ, MESSAGE), 100, 200, then="reusable",
        upstream=FORWARDED),
    row("expect_100_continue_from_http10_gets_no_100", "parsing",
        (b"POST /v1/messages HTTP/1.0\r\n" + CLAUDE + EXPECT + LENGTH + b"\r\n", Pause(0.2),
         MESSAGE), 200, upstream=FORWARDED),
    # Answered without the body: the client may still send it; it is read and dropped.
    row("expect_answered_before_the_body_then_the_body", "parsing: body discarded",
        (get(HOST + EXPECT + b"content-length: 5\r\n", b"POST /healthz HTTP/1.1"), Step.READ,
         b"hello"), 200, then="reusable"),
]  # fmt: skip

SLOW_AND_HALF = [
    row("hang_up_mid_head", "C2 (half-close)",
        (b"POST /v1/messages HTTP/1.1\r\nhost: 12", Step.HALF_CLOSE), 400),
    row("hang_up_mid_body", "C2 (half-close)",
        (POST + LENGTH + b"\r\n" + MESSAGE[:10], Step.HALF_CLOSE), 400),
    row("a_trickled_head", "M3", (Trickle(b"GET /healthz HTTP/1.1\r\n" + HOST * 100, 0.05),), 408),
    row("a_trickled_body", "M3", (POST + LENGTH + b"\r\n", Trickle(MESSAGE, 0.1)), 408),
    row("a_connection_that_never_sends", "M3", (), then="close"),
    row("an_idle_kept_alive_connection", "M3", HEALTH, 200, then="close"),
]  # fmt: skip

UPGRADES = [
    row("websocket_upgrade_on_healthz_is_a_plain_get", "upgrade",
        get(HOST + WEBSOCKET + WS_KEY), 200, then="reusable"),
    row("h2c_upgrade_is_ignored", "upgrade",
        get(HOST + b"upgrade: h2c\r\nconnection: upgrade, http2-settings\r\n"
            b"http2-settings: AAMAAABkAAQAAP__\r\n"), 200, then="reusable"),
    row("websocket_without_a_key", "upgrade",
        get(HOST + WEBSOCKET, b"GET /v1/responses HTTP/1.1"), 400, then="reusable"),
    row("websocket_upgrade_on_a_post_is_plain_http", "upgrade",
        b"POST /v1/responses HTTP/1.1\r\n" + HOST + WEBSOCKET + WS_KEY
        + b"content-length: 2\r\n\r\n{}", 400, then="reusable", upstream=CODEX_WS),
    row("websocket_with_dot_segments", "upgrade",
        get(HOST + WEBSOCKET + WS_KEY, b"GET /v1/realtime/../x HTTP/1.1"), 400, then="reusable"),
    row("websocket_over_http_1_0", "upgrade",
        get(HOST + WEBSOCKET + WS_KEY, b"GET /v1/responses HTTP/1.0"), 400, then="close"),
    row("websocket_handshake_with_a_body", "upgrade",
        get(HOST + WEBSOCKET + WS_KEY + b"content-length: 2\r\n", b"GET /v1/responses HTTP/1.1")
        + b"{}", 400, then="reusable"),
]  # fmt: skip

ATTACKS = PIPELINES + EXPECTS + SLOW_AND_HALF + UPGRADES


@pytest.mark.parametrize("attack", ATTACKS, ids=str)
async def test_each_connection_attack_gets_its_answer_and_nothing_more(
    make_env: Callable[..., Any], attack: Attack, caplog: pytest.LogCaptureFixture
) -> None:
    """The audit's row: the exact statuses, then a close (quiet, for a silent client) or a
    connection still in step; only what the row names reaches upstream; descriptors freed;
    nothing is logged as an error."""
    env = await make_env(tweak=fast_timeouts)
    await check_attack(env, attack)
    assert errors_logged(caplog) == []


KEYED = b"x-api-key: @KEY@\r\n"
SHARED = [
    row("a_keyed_and_a_keyless_request_pipelined", "parsing: 200 then 401",
        POST + KEYED + LENGTH + b"\r\n" + MESSAGE + POST + LENGTH + b"\r\n" + MESSAGE, 200, 401,
        then="reusable", upstream=FORWARDED),
    row("a_key_in_a_trailer_does_not_authenticate", "parsing: trailers",
        POST + CHUNKED + b"trailer: x-api-key\r\n\r\n" + chunked(trailer=KEYED), 401,
        then="reusable"),
    row("expect_100_continue_without_a_key_gets_no_100", "parsing: 401 with no 100",
        (POST + EXPECT + LENGTH + b"\r\n", Step.READ, MESSAGE), 401, then="reusable"),
    row("expect_100_continue_with_a_key", "parsing: 100 then 200",
        (POST + KEYED + EXPECT + LENGTH + b"\r\n", Step.READ, MESSAGE), 100, 200,
        then="reusable", upstream=FORWARDED),
]  # fmt: skip


def shared_with_fast_timeouts(config: Config) -> Config:
    return fast_timeouts(shared(config))


@pytest.mark.parametrize("attack", SHARED, ids=str)
async def test_each_shared_pool_attack_gets_its_answer_and_nothing_more(
    make_env: Callable[..., Any], attack: Attack, caplog: pytest.LogCaptureFixture
) -> None:
    """In shared mode a request needs its own key: none rides on a neighbour's or a trailer."""
    env = await make_env(tweak=shared_with_fast_timeouts)
    key, _ = await join(env, "mallory")
    await check_attack(env, attack, key=key)
    assert errors_logged(caplog) == []
