"""A single-host proxy stays small: what it seldom needs loads only when it is needed.

Issue 12 holds the idle proxy to 40 MB of resident memory. The PostgreSQL driver and
``cryptography`` (credential sealing) add about 20 MB between them, so the modules a
single-host ``serve`` imports must name them only under ``TYPE_CHECKING`` or inside the
multi-host branch (``backend.open_backend``, ``app.serve_proxy``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

# Loaded only by multi-host mode (and the commands that manage its shared state).
MULTI_HOST_ONLY = ("psycopg", "psycopg_binary", "cryptography", "trio_pool.state.pg")


def test_serving_on_one_host_loads_no_postgresql_driver_or_cryptography() -> None:
    """What ``trio-pool serve`` imports pulls in neither psycopg nor cryptography."""
    code = (
        "import json, sys\n"
        "import trio_pool.cli.main, trio_pool.app, trio_pool.backend\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.startswith({MULTI_HOST_ONLY!r}))))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert json.loads(result.stdout) == []


def test_serving_loads_the_toml_editor_only_when_a_config_is_edited() -> None:
    """tomlkit (about 1 MB) loads with the first config.toml edit, not with ``serve``."""
    code = (
        "import sys\n"
        "import trio_pool.cli.main, trio_pool.app\n"
        "before = 'tomlkit' in sys.modules\n"
        "from trio_pool.setup.edits import codex_config\n"
        "codex_config('', 'http://127.0.0.1:1')\n"
        "print(before, 'tomlkit' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.split() == ["False", "True"]


def test_serving_loads_websockets_and_urllib_request_only_when_used() -> None:
    """trio-websocket with wsproto (about 2.8 MB) load with the first WebSocket, and
    urllib.request with http.client and email (about 1 MB) only when a *_proxy variable is
    set; serving plain HTTP needs neither."""
    code = (
        "import sys\n"
        "import trio_pool.cli.main, trio_pool.app\n"
        "from trio_pool.upstream.connect import NetworkConnector\n"
        "NetworkConnector()\n"
        "print(sorted({'trio_websocket', 'wsproto', 'urllib.request', 'http.client'}"
        " & set(sys.modules)))\n"
        "import os\n"
        "os.environ['HTTPS_PROXY'] = 'http://127.0.0.1:9'\n"
        "print(NetworkConnector()._proxies)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env=env,
    )
    assert result.stdout.splitlines() == ["[]", "{'https': 'http://127.0.0.1:9'}"]
