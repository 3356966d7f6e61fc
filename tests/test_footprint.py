"""A single-host proxy stays small: multi-host machinery loads only with ``state_url``.

Issue 12 holds the idle proxy to 40 MB of resident memory. The PostgreSQL driver and
``cryptography`` (credential sealing) add about 20 MB between them, so the modules a
single-host ``serve`` imports must name them only under ``TYPE_CHECKING`` or inside the
multi-host branch (``backend.open_backend``, ``app.serve_proxy``).
"""

from __future__ import annotations

import json
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
