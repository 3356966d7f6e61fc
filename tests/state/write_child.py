"""Writes a credential file in a tight loop until killed: ``python -m tests.state.write_child``.

Argument: PATH. Each version is ``{"version": n, "pad": ...}`` written with the same
``write_document_atomic`` the refresher uses; "started" is written once the loop runs.
"""

from __future__ import annotations

import sys
from pathlib import Path

from trio_pool.credentials.store import write_document_atomic

PAD = "x" * 20000  # several pages, so a torn write would show


def main(path: Path) -> None:
    version = 0
    while True:
        version += 1
        write_document_atomic(path, {"version": version, "pad": PAD})
        if version == 1:
            sys.stdout.write("started\n")
            sys.stdout.flush()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
