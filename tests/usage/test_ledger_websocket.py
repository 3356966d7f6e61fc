"""A Codex WebSocket session is one ledger row: the socket's account, attempts and status."""

from __future__ import annotations

from typing import Any

import trio

from tests.proxy.conftest import Env
from tests.proxy.test_websocket import CODEX, client_headers, url
from tests.testing.test_websocket import connect, create, turn
from tests.usage.conftest import ledger_rows


async def test_a_socket_is_one_row_with_its_failover(make_env: Any) -> None:
    """Two turns on one socket after a handshake failover: one row, two attempts, 101, and
    the tokens of both turns."""
    env: Env = await make_env(accounts=CODEX)
    for account in env.state.of("codex"):
        account.force("quota", 1)
    env.state.of("codex")[1].forced.clear()
    with trio.fail_after(10):
        async with connect(url(env), client_headers("thread-9")) as ws:
            await turn(ws, create())
            await turn(ws, create())
    (row,) = await ledger_rows(env, 1)
    assert row.provider == "codex"
    assert row.status == 101
    assert row.account is not None
    assert row.conversation is not None
    assert "thread-9" not in row.conversation
    assert row.attempts == len(row.failures) + 1
    # The turns' usage events are summed into the socket's row.
    assert row.usage.input > 0
    assert row.usage.output > 0
