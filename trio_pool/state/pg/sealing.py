"""Credentials at rest: AES-256-GCM per row, with a key id, bound to its row and version.

A sealed document is ``b"v1:" + key_id + b":" + nonce(12) + ciphertext‖tag``. The
associated data is ``account‖version``, so a ciphertext copied into another account's row,
or an older version replayed into a newer one, fails to open. A fresh random 96-bit nonce
per write (at most one write per rotation: far below GCM's 2^32 messages per key).

The key ring comes from the environment (``TRIO_POOL_STATE_KEY`` by default):
``ID:BASE64[,ID:BASE64...]`` or one bare base64 key (its id is then a digest of the key, so
every host derives the same). The first key seals; every key listed opens. Rotation: put
the new key first on every host, run ``trio-pool state rekey``, then drop the old one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets

import attrs
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from trio_pool.errors import ConfigError, CredentialsError

FORMAT = b"v1"
NONCE_BYTES = 12
KEY_BYTES = 32


def _key_id(key: bytes) -> str:
    return "k" + hashlib.sha256(b"trio-pool key id\0" + key).hexdigest()[:8]


def associated_data(account: str, version: int) -> bytes:
    return f"{account}\0{version}".encode()


@attrs.frozen
class Keyring:
    current: str  # the id of the key that seals
    keys: dict[str, bytes] = attrs.field(repr=False)

    @classmethod
    def parse(cls, text: str, *, source: str = "the key") -> Keyring:
        """Keys from ``ID:BASE64,...`` or one bare base64 key; ConfigError names the problem
        (never the key)."""
        keys: dict[str, bytes] = {}
        first = ""
        for index, item in enumerate(p.strip() for p in text.split(",") if p.strip()):
            label, sep, encoded = item.rpartition(":")
            if not sep:
                label, encoded = "", item
            try:
                key = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                raise ConfigError([f"{source}: key {index + 1} is not base64"]) from None
            if len(key) != KEY_BYTES:
                raise ConfigError(
                    [f"{source}: key {index + 1} must be {KEY_BYTES} bytes (try "
                     "`openssl rand -base64 32`)"]
                )  # fmt: skip
            key_id = label or _key_id(key)
            if not key_id.isascii() or ":" in key_id or len(key_id) > 32:
                raise ConfigError([f"{source}: key id {key_id!r} must be short ASCII without ':'"])
            keys[key_id] = key
            first = first or key_id
        if not keys:
            raise ConfigError([f"{source}: empty (set it to `openssl rand -base64 32`)"])
        return cls(first, keys)

    @classmethod
    def from_env(cls, name: str) -> Keyring:
        value = os.environ.get(name)
        if not value:
            raise ConfigError(
                [f"state_url is set but ${name} is not: it holds the key that encrypts the "
                 "credentials (`openssl rand -base64 32`, the same on every host)"]
            )  # fmt: skip
        return cls.parse(value, source=f"${name}")

    @staticmethod
    def generate() -> str:
        return base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()

    def seal(self, plaintext: bytes, account: str, version: int) -> tuple[bytes, str]:
        """The sealed blob and the id of the key that sealed it."""
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = AESGCM(self.keys[self.current]).encrypt(
            nonce, plaintext, associated_data(account, version)
        )
        return FORMAT + b":" + self.current.encode() + b":" + nonce + sealed, self.current

    def open(self, blob: bytes, account: str, version: int) -> bytes:
        """The plaintext; CredentialsError (naming the account, never the data) otherwise."""
        fmt, _, rest = bytes(blob).partition(b":")
        key_id_raw, _, body = rest.partition(b":")
        key_id = key_id_raw.decode("ascii", "replace")
        if fmt != FORMAT or len(body) < NONCE_BYTES + 16:
            raise CredentialsError(f"{account}: stored credentials are not in a known format")
        key = self.keys.get(key_id)
        if key is None:
            raise CredentialsError(
                f"{account}: stored credentials are sealed with key {key_id!r}, which this "
                "host does not have (add it to the key list)"
            )
        try:
            return AESGCM(key).decrypt(
                body[:NONCE_BYTES], body[NONCE_BYTES:], associated_data(account, version)
            )
        except InvalidTag:
            raise CredentialsError(
                f"{account}: stored credentials do not open with key {key_id!r} (wrong key, "
                "or the row was altered)"
            ) from None
