"""Cross-format translation between the clients' and the providers' APIs (translation.md).

Sans-IO and deterministic: requests are dict -> dict functions, streams are state machines
fed parsed SSE events (``feed(event) -> events``, ``finish() -> events``). The same input
gives the same bytes (no clock, no random ids, insertion-ordered keys), because the
upstream prompt cache keys on the exact request bytes. Nothing here imports trio, h11,
sockets or sqlite3; ``tests/translate/test_purity.py`` checks it.
"""
