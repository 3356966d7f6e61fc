"""Starting the comparison's targets: the three relays in front of the fast fake upstream.

The simulator (``bench.sim``) and the fake upstream are already running: the simulator wrote
the pool, and stays the proxy's token endpoint and its Codex and Gemini upstream (the
WebSocket figures use it); the fake upstream serves Claude's Messages API to every target.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import trio

from bench import ccr, procs
from bench.client import Connection, ConnectionLost, encode_request
from bench.compare import CCR, DIRECT, POOL, RELAY, Server
from bench.workloads import HOST, PLACEHOLDER, oauth_credentials


def claude_tokens(pool_dir: Path) -> list[str]:
    """The access tokens the simulator wrote into the pool (what the proxy will send)."""
    files = sorted((pool_dir / "claude").glob("*.json"))
    return [json.loads(f.read_text())["claudeAiOauth"]["accessToken"] for f in files]


def wait_accepting(child: procs.Child, port: int, timeout_s: float) -> None:
    """Until ``port`` accepts a TCP connection (the child must stay alive meanwhile)."""
    end = time.monotonic() + timeout_s
    while True:
        child.check_alive()
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=1):
            return
        if time.monotonic() > end:
            raise RuntimeError(f"{child.name} did not listen on {port} within {timeout_s:.0f} s")
        time.sleep(0.05)


async def wait_until_answers(child: procs.Child, port: int, raw: bytes, timeout_s: float) -> None:
    """Until ``raw`` sent to ``port`` is answered 200."""
    with trio.fail_after(timeout_s):
        while True:
            child.check_alive()
            conn = Connection(HOST, port)
            try:
                if (await conn.request(raw)).status == 200:
                    return
            except (OSError, ConnectionLost):
                pass
            finally:
                await conn.aclose()
            await trio.sleep(0.05)


async def proxy_ready(child: procs.Child, port: int) -> None:
    await wait_until_answers(
        child, port, encode_request("GET", "/healthz", f"{HOST}:{port}", []), 30.0
    )


@contextlib.contextmanager
def open_targets(
    workdir: Path,
    sim_port: int,
    upstream: procs.Child,
    upstream_port: int,
    extra: tuple[str, ...],
    *,
    with_ccr: bool = True,
    tree: Path = procs.ROOT,
) -> Iterator[tuple[list[Server], dict[str, str]]]:
    """Start the relays in front of the running fake upstream; yield (targets, skipped)."""
    children: list[procs.Child] = []
    skipped: dict[str, str] = {}
    try:
        account = oauth_credentials(claude_tokens(workdir / "pool")[0])
        servers = [Server(DIRECT, upstream_port, upstream, account)]

        relay_port = procs.free_port()
        relay = procs.start_relay(workdir, relay_port, upstream_port)
        children.append(relay)
        servers.append(Server(RELAY, relay_port, relay, account))

        cli = ccr.install() if with_ccr else "left out (--no-ccr)"
        if isinstance(cli, Path):
            ccr_port = procs.free_port()
            node = ccr.start(cli, workdir, ccr_port, upstream_port)
            children.append(node)
            servers.append(Server(CCR, ccr_port, node, PLACEHOLDER))
        else:
            skipped[CCR] = cli

        proxy_port = procs.free_port()
        proxy = procs.start_proxy(
            workdir,
            proxy_port,
            f"http://{HOST}:{sim_port}",
            claude_base=f"http://{HOST}:{upstream_port}",
            extra=extra,
            tree=tree,
        )
        children.append(proxy)
        servers.append(Server(POOL, proxy_port, proxy, PLACEHOLDER))

        for server in servers:
            wait_accepting(server.child, server.port, 60)
        trio.run(proxy_ready, proxy, proxy_port)
        yield servers, skipped
    finally:
        for child in reversed(children):
            child.stop()
