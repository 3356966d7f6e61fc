"""The pool directory as a list of accounts: reading rows, naming and adding logins.

Synchronous file I/O (call through ``trio.to_thread`` from async code). Adding refuses a
second copy of an account that is already in the pool: two files sharing one login would
spend each other's single-use refresh tokens.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from trio_pool.config import Config
from trio_pool.credentials.store import (
    list_pool_files,
    read_document,
    scan_pool,
    write_document_atomic,
)
from trio_pool.errors import CredentialsError, LoginError
from trio_pool.logs import mask
from trio_pool.providers import PROVIDER_REGISTRY
from trio_pool.providers.base import PROVIDERS, Credentials, ProviderName
from trio_pool.providers.jwt import decode_jwt_payload
from trio_pool.providers.wire import as_str, dig

NAME = re.compile(r"[A-Za-z0-9@+_\-][A-Za-z0-9@+_.\-]{0,99}")


@attrs.frozen
class AccountRow:
    """One pool file as ``accounts list`` shows it; tokens only in masked form."""

    name: str  # "codex/alice@example.com"
    provider: ProviderName
    path: Path
    email: str | None = None
    plan: str | None = None
    expires_at: float | None = None
    disabled: bool = False
    problem: str | None = None  # why the file cannot be used
    access: str = ""  # masked
    refresh: str = ""  # masked
    version: int | None = None  # multi-host: the credential version in the shared store

    def state(self, now: float) -> str:
        if self.problem is not None:
            return "unreadable"
        if self.disabled:
            return "disabled"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired" if self.refresh else "needs-login"
        return "ok"


def email_of(
    provider: ProviderName, document: Mapping[str, Any], credentials: Credentials
) -> str | None:
    """The account's email: from the token claims, or what the login stored beside them."""
    return credentials.email or as_str(dig(document, "oauthAccount", "emailAddress"))


def identity_of(
    provider: ProviderName, document: Mapping[str, Any], credentials: Credentials
) -> str | None:
    """What makes two files the same account (None when the file does not say)."""
    if provider == "codex":
        claims = decode_jwt_payload(as_str(dig(document, "tokens", "id_token")) or "") or {}
        user = as_str(dig(claims, "https://api.openai.com/auth", "chatgpt_user_id"))
        who = user or credentials.email
        return f"{who}|{credentials.account_id}" if who else None
    if provider == "claude":
        return as_str(dig(document, "oauthAccount", "accountUuid")) or email_of(
            provider, document, credentials
        )
    claims = decode_jwt_payload(as_str(document.get("id_token")) or "") or {}
    return as_str(claims.get("sub")) or credentials.email


def check_name(name: str) -> str:
    if not NAME.fullmatch(name):
        raise LoginError(
            f"bad account name {name[:40]!r}: use letters, digits, '@', '.', '+', '_' or '-'"
        )
    return name


def split_name(name: str) -> tuple[ProviderName | None, str]:
    """``codex/alice`` -> ("codex", "alice"); ``alice`` -> (None, "alice")."""
    provider, sep, stem = name.partition("/")
    if sep and provider in PROVIDERS:
        return provider, stem
    return None, name


def list_accounts(config: Config) -> list[AccountRow]:
    scan = scan_pool(config.pool_dir)
    rows = [
        AccountRow(
            f"{error.path.parent.name}/{error.path.stem}",
            error.path.parent.name,
            error.path,
            problem=error.reason,
        )
        for error in scan.errors
        if error.path.parent.name in PROVIDERS
    ]
    for item in scan.documents:
        disabled = config.account_settings(item.name).disabled
        try:
            credentials = PROVIDER_REGISTRY[item.provider].parse_credentials(item.document)
        except CredentialsError as exc:
            rows.append(AccountRow(item.name, item.provider, item.path, problem=str(exc)))
            continue
        rows.append(
            AccountRow(
                item.name,
                item.provider,
                item.path,
                email=email_of(item.provider, item.document, credentials),
                plan=credentials.plan,
                expires_at=credentials.expires_at,
                disabled=disabled,
                access=mask(credentials.access_token),
                refresh=mask(credentials.refresh_token) if credentials.refresh_token else "",
            )
        )
    return sorted(rows, key=lambda row: (PROVIDERS.index(row.provider), row.name))


def find_account(config: Config, name: str) -> AccountRow:
    """The account called ``provider/name``, or ``name`` when only one provider has it."""
    provider, stem = split_name(name)
    rows = [
        row
        for row in list_accounts(config)
        if row.name.split("/", 1)[1] == stem and provider in (None, row.provider)
    ]
    if not rows:
        raise LoginError(
            f"no account {name!r} in {config.pool_dir} (see `trio-pool accounts list`)"
        )
    if len(rows) > 1:
        choices = ", ".join(row.name for row in rows)
        raise LoginError(f"{name!r} is ambiguous ({choices}): say which, e.g. {rows[0].name}")
    return rows[0]


def add_account(
    pool_dir: Path,
    provider: ProviderName,
    document: Mapping[str, Any],
    name: str | None = None,
) -> tuple[str, Path, bool]:
    """Write a login into the pool as ``provider/name`` (default: its email).

    Returns (account name, path, replaced). Writing over the file of the same account is a
    re-login and allowed; a second file for an account already in the pool is refused, and
    so is a name that another account uses.
    """
    try:
        credentials = PROVIDER_REGISTRY[provider].parse_credentials(document)
    except CredentialsError as exc:
        raise LoginError(f"not a usable {provider} login: {exc}") from None
    email = email_of(provider, document, credentials)
    identity = identity_of(provider, document, credentials)
    if not (name or email):
        raise LoginError("the login names no email: give the account a name with --name")
    stem = check_name(name or email or "")
    directory = pool_dir / provider
    replaced = False
    entries, _errors = list_pool_files(pool_dir)
    for path in [entry.path for entry in entries if entry.provider == provider]:
        same = _same_account(provider, path, identity, credentials)
        if path.stem == stem:
            if same is False:
                raise LoginError(
                    f"{provider}/{stem} is another account already; pick another --name"
                )
            replaced = True
        elif same:
            raise LoginError(
                f"this account is already in the pool as {provider}/{path.stem}; "
                f"to replace its login, use --name {path.stem}"
            )
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{stem}.json"
    write_document_atomic(path, document)
    return f"{provider}/{stem}", path, replaced


def _same_account(
    provider: ProviderName, path: Path, identity: str | None, credentials: Credentials
) -> bool | None:
    """True/False when the file is/is not the same account; None when it cannot tell."""
    try:
        document, _info = read_document(path)
        other = PROVIDER_REGISTRY[provider].parse_credentials(document)
    except CredentialsError:
        return None
    if credentials.refresh_token and other.refresh_token == credentials.refresh_token:
        return True
    other_identity = identity_of(provider, document, other)
    if identity is None or other_identity is None:
        return None
    return other_identity == identity
