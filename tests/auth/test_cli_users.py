"""`trio-pool users` and `trio-pool password` against the state db in the working directory."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from trio_pool.cli import main


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TRIO_POOL_CONFIG", raising=False)
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_users_add_list_key_revoke_remove(capsys: pytest.CaptureFixture[str]) -> None:
    """A user's key is printed once; list shows ids and limits, never the key."""
    code, out, _ = run(capsys, "users", "add", "ann", "--rpm", "30", "--share", "25")
    assert code == 0
    key = out.split()[-1]
    assert key.startswith("tp-")
    code, out, _ = run(capsys, "users", "list", "--json")
    (user,) = json.loads(out)["users"]
    assert user["limits"] == {"rpm": 30, "streams": None, "share_pct": 25.0}
    assert key not in out
    key_id = user["keys"][0]["id"]
    code, out, _ = run(capsys, "users", "key", "ann")
    assert code == 0
    assert "tp-" in out
    assert run(capsys, "users", "revoke", key_id)[0] == 0
    code, out, _ = run(capsys, "users", "list", "--json")
    revoked = {k["id"]: k["revoked"] for k in json.loads(out)["users"][0]["keys"]}
    assert revoked[key_id] is True
    assert list(revoked.values()).count(False) == 1
    assert run(capsys, "users", "limits", "ann", "--streams", "2")[0] == 0
    assert run(capsys, "users", "remove", "ann")[0] == 0
    code, out, _ = run(capsys, "users", "list")
    assert "local mode" in out


def test_users_refuses_bad_names_duplicates_and_unknown_users(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Each refusal is one line naming the problem, exit 1, nothing changed."""
    assert run(capsys, "users", "add", "ann")[0] == 0
    code, _, err = run(capsys, "users", "add", "ann")
    assert (code, "already exists" in err) == (1, True)
    code, _, err = run(capsys, "users", "add", "a/b")
    assert (code, "a name is" in err) == (1, True)
    code, _, err = run(capsys, "users", "remove", "nobody")
    assert (code, "no user named" in err) == (1, True)
    code, _, err = run(capsys, "users", "limits", "ann", "--rpm", "0")
    assert (code, "rpm: must be from 1" in err) == (1, True)


def test_password_from_stdin_is_stored_as_scrypt(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, in_tmp: Path
) -> None:
    """Too short is refused; a good one is stored hashed, never as typed."""
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    code, _, err = run(capsys, "password", "--stdin")
    assert (code, "at least 10" in err) == (1, True)
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough password\n"))
    assert run(capsys, "password", "--stdin")[0] == 0
    db = (in_tmp / "data" / "state.db").read_bytes()
    assert b"a long enough password" not in db
    assert b"scrypt$" in db
