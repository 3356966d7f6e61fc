"""claude-code-router 2.0.0, the Node peer measured beside trio-pool in the same run.

It is installed from npm into ``bench/.cache/ccr`` (ignored by git) the first time, and run
with its own HOME in the run's scratch folder, so the user's ``~/.claude-code-router`` is
never read or written. Its configuration is a pass-through: one provider whose only
transformer is ``Anthropic`` (ccr then forwards the Messages request and the stream as they
are, swapping in the provider's key as ``x-api-key``), pointing at the fake upstream on
loopback. Logging is off (``"LOG": false``): its pino log files would cost it disk writes
that trio-pool's log does not make.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from bench import procs, upstream

PACKAGE = "@musistudio/claude-code-router"
VERSION = "2.0.0"
CACHE = Path(__file__).resolve().parent / ".cache" / "ccr"
MODEL = "claude-sonnet-4-5"


def cli_path(cache: Path = CACHE) -> Path:
    return cache / "node_modules" / PACKAGE / "dist" / "cli.js"


def installed_version(cache: Path = CACHE) -> str | None:
    try:
        manifest = json.loads((cache / "node_modules" / PACKAGE / "package.json").read_text())
    except (OSError, ValueError):
        return None
    version = manifest.get("version")
    return version if isinstance(version, str) else None


def install(cache: Path = CACHE) -> Path | str:
    """The installed CLI, or why it cannot run (the benchmark then skips ccr with that line)."""
    if not shutil.which("node") or not shutil.which("npm"):
        return "node/npm not available"
    if installed_version(cache) == VERSION and cli_path(cache).exists():
        return cli_path(cache)
    cache.mkdir(parents=True, exist_ok=True)
    print(f"installing {PACKAGE}@{VERSION} into {cache} (npm)")
    command = ["npm", "install", "--prefix", str(cache), "--no-audit", "--no-fund"]
    done = subprocess.run(
        [*command, f"{PACKAGE}@{VERSION}"], capture_output=True, text=True, check=False
    )
    if done.returncode != 0 or installed_version(cache) != VERSION:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        return f"npm install failed: {tail[0]}"
    return cli_path(cache)


def config(port: int, upstream_port: int) -> dict[str, Any]:
    """A pass-through Anthropic provider on the fake upstream, as the only route."""
    return {
        "LOG": False,
        "HOST": "127.0.0.1",
        "PORT": port,
        "API_TIMEOUT_MS": 600000,
        "Providers": [
            {
                "name": "bench",
                "api_base_url": f"http://127.0.0.1:{upstream_port}/v1/messages",
                "api_key": upstream.API_KEY,
                "models": [MODEL],
                "transformer": {"use": ["Anthropic"]},
            }
        ],
        "Router": {"default": f"bench,{MODEL}"},
    }


def start(cli: Path, workdir: Path, port: int, upstream_port: int) -> procs.Child:
    """``ccr start`` in the foreground (it serves in this process; ``ccr code`` would daemonize)."""
    home = workdir / "ccr-home"
    settings = home / ".claude-code-router"
    settings.mkdir(parents=True, exist_ok=True)
    (settings / "config.json").write_text(json.dumps(config(port, upstream_port), indent=2))
    return procs.spawn("ccr", [str(cli), "start"], home, program="node", env={"HOME": str(home)})
