from __future__ import annotations

from trio_pool.cli import main

raise SystemExit(main())
