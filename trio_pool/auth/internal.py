"""The proxy's calls to itself (the dashboard's Try it): one contract for caller and checker.

The dashboard sends ``INTERNAL_HEADER`` with the process's secret and ``USER_HEADER`` with
whose call it is; the proxy answers such calls (and only those) with ``ACCOUNT_HEADER``
naming the account that answered. Pure: the token is passed in.
"""

from __future__ import annotations

import hmac

from trio_pool.server.messages import RequestHead

INTERNAL_HEADER = "x-trio-pool-internal"
USER_HEADER = "x-trio-pool-user"
ACCOUNT_HEADER = "x-trio-pool-account"


def is_internal(token: str, head: RequestHead) -> bool:
    """A call the proxy made to itself: it carries this process's secret."""
    internal = head.get(INTERNAL_HEADER)
    return internal is not None and hmac.compare_digest(internal.encode(), token.encode())


def internal_user(head: RequestHead) -> str | None:
    """Whose Try it call this is (None: the local admin's, or nobody's)."""
    return head.get(USER_HEADER) or None
