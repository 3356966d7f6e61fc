"""One pending-copy mechanism for both modes (``credentials/pending.py``): a multi-host copy
is sealed with the state key and names the credential version it replaces; single-host
recovery never takes it (nor deletes it: tests/credentials/test_refresh_service.py), and it
does not open without the key."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from tests.credentials.test_refresh_service import NAME
from trio_pool.credentials.pending import is_shared_copy, load_pending, save_pending
from trio_pool.errors import CredentialsError
from trio_pool.state.pg.sealing import Keyring

KEYRING = Keyring.parse("k1:" + base64.b64encode(bytes(range(32))).decode())
OTHER = Keyring.parse("k2:" + base64.b64encode(bytes(32)).decode())
DOCUMENT = {"claudeAiOauth": {"accessToken": "sk-ant-oat01-planted-access"}}


def test_a_sealed_copy_round_trips_with_the_key_and_hides_the_tokens(tmp_path: Path) -> None:
    """Saved sealed (mode 0600), it opens with the key to the same document and version;
    the file holds no token; another key raises CredentialsError naming the file."""
    path = save_pending(tmp_path, NAME, DOCUMENT, None, base_version=7, sealer=KEYRING)
    assert path.stat().st_mode & 0o777 == 0o600
    assert b"planted" not in path.read_bytes()
    found = load_pending(tmp_path, NAME, sealer=KEYRING)
    assert found is not None
    assert (found.document, found.base_version) == (DOCUMENT, 7)
    assert is_shared_copy(tmp_path, NAME)
    with pytest.raises(CredentialsError, match=str(path)):
        load_pending(tmp_path, NAME, sealer=OTHER)
    assert load_pending(tmp_path, NAME) is None  # no key: it cannot help


def test_a_sealed_copy_cannot_be_moved_to_another_version(tmp_path: Path) -> None:
    """The version is bound into the seal: editing ``base_version`` makes it unreadable."""
    path = save_pending(tmp_path, NAME, DOCUMENT, None, base_version=7, sealer=KEYRING)
    record = json.loads(path.read_text())
    path.write_text(json.dumps({**record, "base_version": 8}))
    with pytest.raises(CredentialsError):
        load_pending(tmp_path, NAME, sealer=KEYRING)
