"""Credential files in each CLI's real format, and the demo accounts."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from trio_pool.testing import issue
from trio_pool.testing.pool_files import demo_state, write_pool
from trio_pool.testing.state import SimState

NOW = 1_900_000_000.0


def test_write_pool_writes_each_cli_format_with_mode_0600(tmp_path: Path) -> None:
    """Codex auth.json, Claude .credentials.json and Gemini oauth_creds.json, all 0600."""
    state = SimState(clock=lambda: NOW)
    for provider in ("codex", "claude", "gemini"):
        state.add(issue.new_account(provider, "a", now=NOW))
    paths = write_pool(tmp_path, state)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in paths) == [
        "claude/a.json",
        "codex/a.json",
        "gemini/a.json",
    ]
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in paths)
    codex = json.loads((tmp_path / "codex/a.json").read_text())
    account = state.account("codex/a")
    assert codex["auth_mode"] == "chatgpt"
    assert codex["OPENAI_API_KEY"] is None
    assert codex["tokens"]["access_token"] == account.access_token
    assert codex["tokens"]["account_id"] == account.account_id
    assert codex["last_refresh"].endswith("Z")
    claims = issue.decode_jwt_payload(codex["tokens"]["id_token"])
    assert claims["email"] == account.email
    assert claims[issue.OPENAI_AUTH]["chatgpt_plan_type"] == "plus"
    assert claims["exp"] == int(account.expires_at)
    claude = json.loads((tmp_path / "claude/a.json").read_text())["claudeAiOauth"]
    assert claude["accessToken"].startswith("sk-ant-oat01-")
    assert claude["refreshToken"].startswith("sk-ant-ort01-")
    assert claude["expiresAt"] == int(state.account("claude/a").expires_at * 1000)
    assert "user:inference" in claude["scopes"]
    gemini = json.loads((tmp_path / "gemini/a.json").read_text())
    assert gemini["access_token"].startswith("ya29.")
    assert gemini["refresh_token"].startswith("1//")
    assert gemini["expiry_date"] == int((NOW + 3599) * 1000)


def test_demo_state_has_three_varied_accounts_per_provider() -> None:
    """demo_state: 3 accounts per provider, with different plans and usage levels."""
    state = demo_state(NOW)
    for provider in ("codex", "claude", "gemini"):
        accounts = state.of(provider)
        assert len(accounts) == 3
        assert len({a.plan for a in accounts}) >= 2
        assert len({a.windows[0].fraction for a in accounts}) == 3
