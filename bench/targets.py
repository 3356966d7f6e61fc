"""Starting the comparison's targets: the three relays in front of the fast fake upstream.

The simulator (``bench.sim``) and the fake upstream are already running: the simulator wrote
the pool, and stays the proxy's token endpoint and its Codex and Gemini upstream (the
WebSocket figures use it); the fake upstream serves Claude's Messages API to every target.

A second trio-pool (``ON_CODEX``) has its Codex Responses API on the fake upstream as well:
the translated-stream workload (a Messages client on a Codex account) and its native twin
run there, leaving the first trio-pool's Codex (and its WebSocket) on the simulator.
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
from bench.compare import CCR, DIRECT, ON_CODEX, POOL, RELAY, Server
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
) -> Iterator[tuple[list[Server], dict[str, str], Server]]:
    """Start the relays in front of the running fake upstream; yield (targets, skipped, the
    trio-pool whose Codex is on the fake upstream)."""
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

        on_codex_port = procs.free_port()
        fake = f"http://{HOST}:{upstream_port}"
        on_codex = procs.start_proxy(
            workdir,
            on_codex_port,
            f"http://{HOST}:{sim_port}",
            claude_base=fake,
            codex_base=fake,
            extra=extra,
            name="proxy-on-codex",
            tree=tree,
        )
        children.append(on_codex)
        translated = Server(ON_CODEX, on_codex_port, on_codex, PLACEHOLDER)

        for server in [*servers, translated]:
            wait_accepting(server.child, server.port, 60)
        trio.run(proxy_ready, proxy, proxy_port)
        trio.run(proxy_ready, on_codex, on_codex_port)
        yield servers, skipped, translated
    finally:
        for child in reversed(children):
            child.stop()
