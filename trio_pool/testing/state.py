"""The simulator's registry: every account, looked up by token, plus the clock and counters.

The clock defaults to ``trio_pool.clock.now`` (unix seconds that move with trio's clock, so
``MockClock`` drives quota resets and token expiry); tests may pass any callable.
"""

from __future__ import annotations

import secrets
from collections import deque
from collections.abc import Callable, Iterable

import attrs

from trio_pool.clock import now as trio_unix_now
from trio_pool.testing.accounts import Provider, SimAccount
from trio_pool.testing.faults import FaultKind, SimConfig
from trio_pool.testing.scripts import TurnScripts


@attrs.define(eq=False)
class SimState:
    """All simulated accounts of one simulator (any mix of providers)."""

    config: SimConfig = attrs.field(factory=SimConfig)
    clock: Callable[[], float] = trio_unix_now
    accounts: dict[str, SimAccount] = attrs.field(factory=dict)  # by "provider/name"
    _by_access: dict[tuple[Provider, str], SimAccount] = attrs.field(factory=dict, repr=False)
    # Every refresh token ever issued (current and retired) -> its account.
    _by_refresh: dict[tuple[Provider, str], SimAccount] = attrs.field(factory=dict, repr=False)
    _login_codes: dict[str, str] = attrs.field(factory=dict, repr=False)
    # Token endpoint behaviour for the multi-host tests: a delay after the rotation (the
    # answer is slow, the rotation already happened), the lifetime of new access tokens,
    # and whether presenting a spent refresh token revokes the whole account (providers
    # that detect reuse end the token family: the user must log in again).
    token_delay_s: float = 0.0
    token_lifetime_s: float | None = None
    revoke_on_reuse: bool = False
    unknown_token_requests: int = 0  # API requests with no or an unknown credential
    settings_changed: list[str] = attrs.field(factory=list)  # Gemini setCodeAssist... calls
    requests_total: int = 0  # every request the simulator served
    # (method, target) of the last requests served, for "nothing reached upstream" checks.
    seen: deque[tuple[str, str]] = attrs.field(factory=lambda: deque(maxlen=1000))
    # Scripted turns, and the reasoning and signatures the simulated models issued.
    scripts: TurnScripts = attrs.field(factory=TurnScripts)
    _request_ids: int = 0

    @classmethod
    def with_accounts(
        cls, accounts: Iterable[SimAccount], *, config: SimConfig | None = None
    ) -> SimState:
        state = cls(config=config or SimConfig())
        for account in accounts:
            state.add(account)
        return state

    def now(self) -> float:
        return self.clock()

    def add(self, account: SimAccount) -> SimAccount:
        if account.key in self.accounts:
            raise ValueError(f"duplicate simulated account {account.key}")
        self.accounts[account.key] = account
        self._index(account)
        return account

    def account(self, key: str) -> SimAccount:
        """The account ``provider/name``."""
        return self.accounts[key]

    def of(self, provider: Provider) -> list[SimAccount]:
        return [a for a in self.accounts.values() if a.provider == provider]

    def by_access(self, provider: Provider, token: str | None) -> SimAccount | None:
        if not token:
            return None
        return self._by_access.get((provider, token))

    def by_refresh(self, provider: Provider, token: str | None) -> SimAccount | None:
        if not token:
            return None
        return self._by_refresh.get((provider, token))

    def rotate(
        self,
        account: SimAccount,
        *,
        access_token: str,
        refresh_token: str | None,
        expires_at: float,
    ) -> None:
        """New tokens for ``account``; the old access token stops working at once.

        (Real providers keep an old access token valid until it expires; revoking it here
        catches a proxy that keeps using a token it has replaced.)
        """
        self._by_access.pop((account.provider, account.access_token), None)
        account.rotate(
            access_token=access_token, refresh_token=refresh_token, expires_at=expires_at
        )
        self._index(account)

    def revoke(self, account: SimAccount) -> None:
        """End the account's token family: every refresh token and the access token die."""
        account.revoked = True
        self._by_access.pop((account.provider, account.access_token), None)

    def _index(self, account: SimAccount) -> None:
        self._by_access[(account.provider, account.access_token)] = account
        self._by_refresh[(account.provider, account.refresh_token)] = account

    def config_for(self, account: SimAccount | None) -> SimConfig:
        if account is not None and account.config is not None:
            return account.config
        return self.config

    def force(self, key: str, kind: FaultKind, count: int = 1) -> None:
        """Answer the next ``count`` requests of account ``key`` with fault ``kind``."""
        self.accounts[key].force(kind, count)

    def fail_refresh(
        self, key: str, status: int, count: int = 1, *, retry_after_s: int = 1
    ) -> None:
        """Answer the next ``count`` refresh calls of account ``key`` with ``status``
        (a 429 says ``Retry-After: retry_after_s``)."""
        self.accounts[key].forced_refresh.extend([status] * count)
        self.accounts[key].refresh_retry_after_s = retry_after_s

    def new_login_code(self, key: str) -> str:
        """An authorization code that the token endpoint exchanges for ``key``'s tokens."""
        code = f"sim-code-{secrets.token_urlsafe(16)}"
        self._login_codes[code] = key
        return code

    def redeem_login_code(self, code: str | None) -> SimAccount | None:
        key = self._login_codes.pop(code or "", None)
        return self.accounts.get(key) if key else None

    def next_request_id(self, prefix: str) -> str:
        self._request_ids += 1
        return f"{prefix}{self._request_ids:012d}"
