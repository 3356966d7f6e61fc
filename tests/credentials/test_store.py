from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from trio_pool.credentials.store import read_document, scan_pool, write_document_atomic
from trio_pool.errors import CredentialsError

SECRET = "sk-ant-oat01-DONOTLEAKthisTOKEN0123456789"


def write(path: Path, content: str | bytes, mode: int = 0o600) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    path.chmod(mode)
    return path


def test_scan_reads_each_provider_and_reports_bad_files(tmp_path: Path) -> None:
    """Good files load by provider/stem; malformed ones are named with a reason and skipped."""
    write(tmp_path / "claude" / "work.json", json.dumps({"claudeAiOauth": {"accessToken": SECRET}}))
    write(tmp_path / "codex" / "home.json", json.dumps({"tokens": {}}), mode=0o644)
    write(tmp_path / "codex" / "broken.json", '{"tokens": {"access_token": "' + SECRET)
    write(tmp_path / "gemini" / "list.json", "[1, 2]")
    write(tmp_path / "gemini" / "binary.json", b"\xff\xfe\x00")
    write(tmp_path / "gemini" / ".hidden.json.tmp", "{}")
    write(tmp_path / "gemini" / ".hidden.json", "{}")
    write(tmp_path / "gemini" / "notes.txt", "{}")
    write(tmp_path / "other" / "x.json", "{}")
    scan = scan_pool(tmp_path)
    assert [(d.name, d.insecure_mode) for d in scan.documents] == [
        ("codex/home", True),
        ("claude/work", False),
    ]
    assert scan.documents[1].document["claudeAiOauth"]["accessToken"] == SECRET
    reasons = {e.path.name: e.reason for e in scan.errors}
    assert set(reasons) == {"broken.json", "list.json", "binary.json"}
    assert reasons["broken.json"].startswith("not valid JSON (line 1")
    assert reasons["list.json"] == "expected a JSON object at the top level"
    for value in (repr(scan), *reasons.values()):
        assert SECRET not in value


def test_scan_of_missing_pool_is_empty(tmp_path: Path) -> None:
    """A pool directory that does not exist is an empty pool, not an error."""
    scan = scan_pool(tmp_path / "absent")
    assert scan.documents == ()
    assert scan.errors == ()


def test_read_document_refuses_large_and_missing_files(tmp_path: Path) -> None:
    """Oversized or unreadable files raise CredentialsError naming the path."""
    big = write(tmp_path / "big.json", b"{" + b" " * (1024 * 1024 + 1) + b"}")
    with pytest.raises(CredentialsError, match="larger than"):
        read_document(big)
    with pytest.raises(CredentialsError, match="cannot read"):
        read_document(tmp_path / "nope.json")


def test_write_atomic_mode_roundtrip_no_temp_left(tmp_path: Path) -> None:
    """The file is replaced with mode 0600, pretty JSON that round-trips, no temp file left."""
    target = write(tmp_path / "acct.json", "{}", mode=0o644)
    document = {
        "tokens": {"access_token": SECRET, "nested": [1, "é"]},
        "last_refresh": "2026-01-01T00:00:00Z",
    }
    write_document_atomic(target, document)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    text = target.read_text(encoding="utf-8")
    assert json.loads(text) == document
    assert text.startswith('{\n  "tokens": {\n    "access_token"')
    assert "é" in text
    assert os.listdir(tmp_path) == ["acct.json"]
    write_document_atomic(tmp_path / "new.json", {"a": 1})
    assert stat.S_IMODE((tmp_path / "new.json").stat().st_mode) == 0o600


def test_write_atomic_failure_leaves_old_file_and_no_temp(tmp_path: Path) -> None:
    """When the rename cannot happen the old file is intact and the temp file is removed."""
    target = tmp_path / "acct.json"
    target.mkdir()  # a directory in the way makes os.replace fail
    (target / "keep").write_text("x")
    with pytest.raises(CredentialsError, match="cannot write"):
        write_document_atomic(target, {"a": SECRET})
    assert sorted(os.listdir(tmp_path)) == ["acct.json"]
    with pytest.raises(CredentialsError, match="cannot write"):
        write_document_atomic(tmp_path / "missing-dir" / "x.json", {})
