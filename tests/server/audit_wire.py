"""Replaying the security audit's HTTP attacks byte for byte against a running proxy.

A raw client sends a script of pieces, pauses, trickles and half-closes, and reads back
whole responses (1xx, Content-Length, chunked or until the close) without ever normalising
what goes out; no client library would send these bytes. ``check_attack`` then holds the
proxy to the outcome the table promises: the exact statuses, a close or a reusable
connection, what reached the simulated upstream, a healthy next connection, and every
descriptor of the attack's connection freed.
"""

from __future__ import annotations

import enum
import logging
import os
import re
from typing import Literal

import attrs
import pytest
import trio

from tests.proxy.conftest import Env

_STATUS_LINE = re.compile(rb"HTTP/1\.[01] (\d{3}) ")
_LENGTH = re.compile(rb"\r\ncontent-length: *(\d+)", re.IGNORECASE)
_CHUNKED = re.compile(rb"\r\ntransfer-encoding: *chunked", re.IGNORECASE)
# The usage pollers' own requests: background traffic, not the attack's.
_POLLS = ("/api/oauth/usage", "/wham/usage", ":retrieveUserQuota", ":loadCodeAssist")
HEALTH_AND_CLOSE = b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n"


class Step(enum.Enum):
    HALF_CLOSE = "half-close"  # shutdown(SHUT_WR): the client is done sending, still reads
    READ = "read"  # read one response before sending on (100-continue)


@attrs.frozen
class Pause:
    seconds: float


@attrs.frozen
class Trickle:
    """Send ``data`` a byte every ``every_s`` seconds, until the server answers or closes."""

    data: bytes
    every_s: float


Script = tuple[bytes | Pause | Trickle | Step, ...]


@attrs.frozen
class Attack:
    """One row of the audit's table: what the attacker sends and what must come of it."""

    name: str
    audit: str  # where security-audit.md lists it
    script: Script
    statuses: tuple[int, ...]  # every response the connection gets, in order
    then: Literal["close", "reusable"] = "close"  # after those responses
    upstream: tuple[str, ...] = ()  # targets the simulator sees (nothing, for a refusal)

    def __str__(self) -> str:
        return self.name


@attrs.frozen
class Response:
    status: int
    head: bytes
    body: bytes


class RawConnection:
    """One client socket and what it has received but not yet parsed."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buffer = b""
        self.eof = False

    @classmethod
    async def open(cls, port: int) -> RawConnection:
        return cls(await trio.open_tcp_stream("127.0.0.1", port))

    async def fill(self) -> bool:
        """One read into the buffer; False at the end of the stream (FIN or RST)."""
        if self.eof:
            return False
        try:
            data = await self.stream.receive_some(65536)
        except trio.BrokenResourceError:
            data = b""
        if not data:
            self.eof = True
            return False
        self.buffer += data
        return True

    async def _take(self, count: int) -> bytes | None:
        while len(self.buffer) < count:
            if not await self.fill():
                return None
        taken, self.buffer = self.buffer[:count], self.buffer[count:]
        return taken

    async def _take_through(self, needle: bytes) -> bytes | None:
        while (end := self.buffer.find(needle)) < 0:
            if not await self.fill():
                return None
        return await self._take(end + len(needle))

    async def response(self) -> Response | None:
        """The next whole response, or None when the server closed first."""
        head = await self._take_through(b"\r\n\r\n")
        if head is None:
            return None
        found = _STATUS_LINE.match(head)
        assert found is not None, head[:200]
        status = int(found[1])
        if status < 200:
            return Response(status, head, b"")
        if (length := _LENGTH.search(head)) is not None:
            body = await self._take(int(length[1]))
        elif _CHUNKED.search(head) is not None:
            body = await self._take_through(b"\r\n0\r\n\r\n")
        else:
            while await self.fill():
                pass
            body, self.buffer = self.buffer, b""
        assert body is not None, "the server closed mid-body"
        return Response(status, head, body)

    async def wait_closed(self) -> bytes:
        """Read until the server ends the connection; what it sent meanwhile."""
        while await self.fill():
            pass
        return self.buffer

    async def send(self, data: bytes) -> None:
        try:
            await self.stream.send_all(data)
        except trio.BrokenResourceError:
            # The server may refuse and close before it has read all we send (431, 413).
            pass

    async def play(self, script: Script) -> list[int]:
        """Send the script; the statuses of the responses its READ steps read."""
        statuses = []
        for step in script:
            if isinstance(step, bytes):
                await self.send(step)
            elif isinstance(step, Pause):
                await trio.sleep(step.seconds)
            elif isinstance(step, Trickle):
                await self._trickle(step)
            elif step is Step.HALF_CLOSE:
                await self.stream.send_eof()
            else:
                response = await self.response()
                statuses.append(0 if response is None else response.status)
        return statuses

    async def _trickle(self, trickle: Trickle) -> None:
        for at in range(len(trickle.data)):
            await self.send(trickle.data[at : at + 1])
            with trio.move_on_after(trickle.every_s):
                await self.fill()
                return  # the server answered (or closed): the trickle was cut

    async def aclose(self) -> None:
        await self.stream.aclose()


def port_of(base: str) -> int:
    return int(base.rpartition(":")[2])


def upstream_targets(env: Env) -> list[str]:
    """What the simulator was asked for, apart from the background usage polls."""
    return [t for _, t in env.state.seen if not t.split("?")[0].endswith(_POLLS)]


def _socket_ports() -> dict[str, set[int]]:
    """inode -> {local port, remote port} of the TCP sockets in this network namespace."""
    ports: dict[str, set[int]] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                local, remote = (int(a.rpartition(":")[2], 16) for a in fields[1:3])
                ports[fields[9]] = {local, remote}
    return ports


def held_fds(ignore_ports: set[int]) -> int:
    """Descriptors this process holds (the proxy and the simulator run in it), leaving out
    sockets to or from ``ignore_ports``: the upstream pool's keep-alive connections to the
    simulator come and go with the usage pollers, attack or not."""
    ports = _socket_ports()
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except FileNotFoundError:  # the directory listing's own descriptor
            continue
        if target.startswith("socket:[") and ports.get(target[8:-1], set()) & ignore_ports:
            continue
        count += 1
    return count


async def health_status(port: int) -> int:
    """GET /healthz on a fresh connection."""
    connection = await RawConnection.open(port)
    try:
        await connection.send(HEALTH_AND_CLOSE)
        response = await connection.response()
    finally:
        await connection.aclose()
    return 0 if response is None else response.status


async def check_attack(env: Env, attack: Attack, *, key: str = "") -> None:
    """Replay ``attack`` on a fresh connection and hold the proxy to its row."""
    port, sim_port = port_of(env.base), port_of(env.sim_base)
    with trio.fail_after(15):
        assert await health_status(port) == 200  # warm: what a first request opens is open
        await trio.sleep(0.05)  # and the warm-up connection's server side is closed
        fds_before = held_fds({sim_port})
        targets_before = len(upstream_targets(env))
        connection = await RawConnection.open(port)
        try:
            script = tuple(
                s.replace(b"@KEY@", key.encode()) if isinstance(s, bytes) else s
                for s in attack.script
            )
            statuses = await connection.play(script)
            while len(statuses) < len(attack.statuses):
                response = await connection.response()
                statuses.append(0 if response is None else response.status)
            assert statuses == list(attack.statuses), statuses
            if attack.then == "close":
                assert await connection.wait_closed() == b"", "more after the last answer"
            else:
                # The connection is still in step: a plain request on it is answered.
                await connection.send(HEALTH_AND_CLOSE)
                response = await connection.response()
                assert response is not None
                assert response.status == 200, response
                assert await connection.wait_closed() == b""
        finally:
            await connection.aclose()
        assert upstream_targets(env)[targets_before:] == list(attack.upstream)
        assert await health_status(port) == 200
        # Every descriptor the attack's connection took is given back (the proxy closes
        # its side a moment after the client has seen the end).
        with trio.move_on_after(5):
            while held_fds({sim_port}) > fds_before:
                await trio.sleep(0.01)
        assert held_fds({sim_port}) <= fds_before, "descriptors left open after the attack"


def errors_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    """What the in-process proxy logged at ERROR or above (a handler crash, a traceback)."""
    return [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]
