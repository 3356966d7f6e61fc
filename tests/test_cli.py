"""The command line: exit codes, config errors, selftest and the status table."""

from __future__ import annotations

from pathlib import Path

import pytest

from trio_pool import __version__
from trio_pool.cli import main
from trio_pool.config import Config
from trio_pool.status import render_status


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    """--version prints the version and exits 0."""
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert __version__ in capsys.readouterr().out


def test_bad_config_exits_2_naming_every_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A config with several problems names each one and exits 2, without a traceback."""
    config = tmp_path / "config.toml"
    config.write_text(
        'listen = 5\nhead_timeout_s = "soon"\nbogus = 1\n[routing]\nsticky = "sometimes"\n'
        '[accounts."nobody"]\npriority = 1\n'
    )
    assert main(["serve", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    for key in ("listen", "head_timeout_s", "bogus", "routing.sticky"):
        assert key in err
    assert "Traceback" not in err


def test_invalid_toml_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A file that is not TOML is a configuration error, named with the file."""
    config = tmp_path / "config.toml"
    config.write_text("listen = [")
    assert main(["serve", "--config", str(config)]) == 2
    assert "not valid TOML" in capsys.readouterr().err


def test_listening_beyond_loopback_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without caller authentication (no friend code, no user), a public listen address is
    a configuration error; the message names both ways into shared mode."""
    monkeypatch.chdir(tmp_path)
    assert main(["serve", "--listen", "0.0.0.0:8989"]) == 2
    err = capsys.readouterr().err
    assert "loopback" in err
    assert "friend_code" in err
    assert "users add" in err


def test_a_user_is_enough_to_listen_beyond_loopback(tmp_path: Path) -> None:
    """README: shared mode is a friend code *or* a user, and either lets it listen widely
    (L9: the config check used to demand a friend code)."""
    from trio_pool.config import load_config

    config = tmp_path / "config.toml"
    config.write_text('listen = "0.0.0.0:8989"\n')
    assert load_config(config).listen_host == "0.0.0.0"


def test_accounts_config_names_bad_account_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Per-account settings must be keyed provider/NAME."""
    config = tmp_path / "config.toml"
    config.write_text('[accounts."nobody"]\npriority = 1\n')
    assert main(["serve", "--config", str(config)]) == 2
    assert 'accounts."nobody"' in capsys.readouterr().err


def test_selftest_passes(capsys: pytest.CaptureFixture[str]) -> None:
    """selftest proxies one request per provider through the simulator and exits 0."""
    assert main(["selftest"]) == 0
    out = capsys.readouterr().out
    assert "selftest passed" in out
    assert out.count("ok  ") == 3


def test_status_table_is_aligned_and_shows_states() -> None:
    """The status table has one aligned row per account with its state and window bars."""
    document = {
        "accounts": [
            {
                "name": "claude/work",
                "plan": "max",
                "state": "ok",
                "requests_today": 12,
                "tokens_today": {"input": 1500, "output": 500},
                "windows": [{"name": "5h", "used": 0.42, "resets_at": None}],
            },
            {
                "name": "codex/home",
                "plan": "plus",
                "state": "cooling",
                "state_reason": "usage_limit_reached",
                "requests_today": 3,
                "tokens_today": {},
                "windows": [],
            },
        ],
        "problems": [{"account": "gemini/broken", "reason": "not valid JSON"}],
    }
    text = render_status(document)
    lines = text.splitlines()
    assert lines[0].startswith("ACCOUNT")
    assert lines[1].index("max") == lines[2].index("plus")
    assert "42%" in text
    assert "cooling" in text
    assert "usage_limit_reached" in text
    assert "gemini/broken" in text
    assert "\x1b[" not in text  # no colour unless asked for (a TTY)


@pytest.mark.parametrize(
    ("listen", "url"),
    [
        ("127.0.0.1:8989", "http://127.0.0.1:8989"),
        ("0.0.0.0:8989", "http://127.0.0.1:8989"),
        ("[::]:8989", "http://[::1]:8989"),
        ("[::1]:9000", "http://[::1]:9000"),
        ("localhost:1", "http://localhost:1"),
    ],
)
def test_local_url_is_where_the_proxy_is_from_this_machine(listen: str, url: str) -> None:
    """One rule for status, setup and admin calls: wildcards become loopback, IPv6 is bracketed."""
    assert Config(listen=listen).local_url == url
