"""The command line (``trio-pool``); the only package that prints. See ``cli.main``."""

from __future__ import annotations

from trio_pool.cli.main import main as main  # the console script's entry point
