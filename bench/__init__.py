"""The trio-pool benchmark: the same load sent directly to the simulator and through the proxy.

Run with ``make bench`` (``python -m bench``). Results are printed as a table and written to
``bench/results/latest.json``.
"""

from __future__ import annotations
