"""The trio-pool benchmark: trio-pool beside direct, a bare trio+h11 relay and claude-code-router.

Run with ``make bench`` (``python -m bench``; ``--quick`` for a short run, ``--profile
small|stream`` for py-spy's view of trio-pool). See bench/run.py for the parts. Results are
printed and written to ``bench/results/latest.json``.
"""

from __future__ import annotations
