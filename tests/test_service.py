"""`trio-pool service`: the unit and agent files, and what is asked of systemctl / launchctl.

No test runs the real service manager: ``FakeManager`` answers every command and records it.
"""

from __future__ import annotations

import json
import os
import plistlib
import shutil
import stat
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import attrs
import pytest

from trio_pool import service
from trio_pool.cli import main
from trio_pool.service import Completed, ServiceError, ServiceHost

PACKAGING = Path(__file__).resolve().parent.parent / "packaging"
NO_BUS = "Failed to connect to bus: No medium found"


@attrs.define
class FakeManager:
    """Answers systemctl / launchctl: a command line starting with a key of ``fail`` gets that
    result, one starting with a key of ``answers`` gets rc 0 and that output, the rest rc 0."""

    fail: dict[str, Completed] = attrs.field(factory=dict)
    answers: dict[str, str] = attrs.field(factory=dict)
    calls: list[tuple[str, ...]] = attrs.field(factory=list)

    def __call__(self, argv: Sequence[str]) -> Completed:
        self.calls.append(tuple(argv))
        line = " ".join(argv)
        for prefix, result in self.fail.items():
            if line.startswith(prefix):
                return result
        for prefix, output in self.answers.items():
            if line.startswith(prefix):
                return Completed(0, output)
        return Completed(0, "")


def make_host(home: Path, manager: FakeManager, platform: str = "linux") -> ServiceHost:
    return ServiceHost(
        platform=platform,
        home=home,
        program=(str(home / "bin" / "trio-pool"),),
        uid=501,
        runner=manager,
        config_home=home / ".config",
    )


def test_packaged_unit_is_what_install_writes() -> None:
    """packaging/trio-pool.service is the unit `service install` writes, with %h for the home."""
    unit = service.systemd_unit(
        "%h/.local/bin/trio-pool serve --config %h/.config/trio-pool/config.toml",
        "%h/.config/trio-pool",
    )
    assert (PACKAGING / "trio-pool.service").read_text() == unit


def test_packaged_plist_is_what_install_writes() -> None:
    """packaging/local.trio-pool.plist is the agent `service install` writes for /Users/YOU."""
    host = make_host(Path("/Users/YOU"), FakeManager(), platform="darwin")
    host = attrs.evolve(host, program=("/Users/YOU/.local/bin/trio-pool",))
    data = (PACKAGING / "local.trio-pool.plist").read_bytes()
    assert data == service.render_plist(host)
    agent = plistlib.loads(data)
    assert agent["Label"] == service.AGENT_LABEL
    assert agent["ProgramArguments"][1:3] == ["serve", "--config"]
    assert agent["StandardErrorPath"] == "/Users/YOU/Library/Logs/trio-pool.log"


def test_install_on_linux_writes_unit_config_and_enables(tmp_path: Path) -> None:
    """install writes an absolute-path unit and a 0700 config dir, then enables and restarts."""
    manager = FakeManager()
    lines = service.install(make_host(tmp_path, manager))
    unit = (tmp_path / ".config/systemd/user/trio-pool.service").read_text()
    config = tmp_path / ".config/trio-pool"
    assert f"ExecStart={tmp_path}/bin/trio-pool serve --config {config}/config.toml\n" in unit
    assert f"WorkingDirectory={config}\n" in unit
    assert (config / "config.toml").read_text() == service.DEFAULT_CONFIG
    assert all((config / "pool" / p).is_dir() for p in ("codex", "claude", "gemini"))
    assert stat.S_IMODE(config.stat().st_mode) == 0o700
    assert manager.calls == [
        ("systemctl", "--user", "show-environment"),
        ("systemctl", "--user", "daemon-reload"),
        ("systemctl", "--user", "enable", "trio-pool.service"),
        ("systemctl", "--user", "restart", "trio-pool.service"),
    ]
    assert "journalctl --user -u trio-pool -f" in "\n".join(lines)


def test_install_keeps_an_existing_config(tmp_path: Path) -> None:
    """A re-install (an upgrade) never overwrites the user's config.toml."""
    config = tmp_path / ".config/trio-pool/config.toml"
    config.parent.mkdir(parents=True)
    config.write_text('listen = "127.0.0.1:9000"\n')
    service.install(make_host(tmp_path, FakeManager()))
    assert config.read_text() == 'listen = "127.0.0.1:9000"\n'


def test_unit_quotes_paths_with_spaces_and_specifiers(tmp_path: Path) -> None:
    """A home with spaces, % and $ stays one literal word in ExecStart."""
    home = tmp_path / "My 100% $HOME"
    service.install(make_host(home, FakeManager()))
    unit = (home / ".config/systemd/user/trio-pool.service").read_text()
    escaped = str(home).replace("%", "%%").replace("$", "$$")
    assert f'ExecStart="{escaped}/bin/trio-pool" serve --config "{escaped}/' in unit
    assert f"WorkingDirectory={str(home).replace('%', '%%')}/.config/trio-pool\n" in unit


def test_install_without_systemd_user_session_fails_clearly(tmp_path: Path) -> None:
    """No user bus: a clear error with a way forward, no unit written, nothing else asked."""
    manager = FakeManager(fail={"systemctl --user": Completed(1, NO_BUS)})
    with pytest.raises(ServiceError) as caught:
        service.install(make_host(tmp_path, manager))
    assert "no systemd user session" in str(caught.value)
    assert NO_BUS in str(caught.value)
    assert "serve --config" in caught.value.hint
    assert not (tmp_path / ".config/systemd").exists()
    assert manager.calls == [("systemctl", "--user", "show-environment")]


def test_install_without_systemctl_fails_clearly(tmp_path: Path) -> None:
    """A Linux without systemd at all says so."""
    manager = FakeManager(fail={"systemctl": Completed(127, "systemctl: command not found")})
    with pytest.raises(ServiceError, match="systemctl not found"):
        service.install(make_host(tmp_path, manager))


def test_a_refused_enable_names_the_command(tmp_path: Path) -> None:
    """When systemctl refuses a step, the error names that step and its output."""
    fail = {"systemctl --user enable": Completed(1, "Unit file is masked.")}
    with pytest.raises(
        ServiceError, match=r"enable trio-pool\.service` failed: Unit file is masked"
    ):
        service.install(make_host(tmp_path, FakeManager(fail=fail)))


def test_uninstall_on_linux_removes_unit_and_keeps_config(tmp_path: Path) -> None:
    """uninstall stops, disables and removes the unit; the config and pool stay."""
    host = make_host(tmp_path, FakeManager())
    service.install(host)
    manager = FakeManager()
    lines = service.uninstall(attrs.evolve(host, runner=manager))
    assert not host.service_file.exists()
    assert host.config_file.exists()
    assert ("systemctl", "--user", "disable", "--now", "trio-pool.service") in manager.calls
    assert lines[0] == f"removed {host.service_file}"


def test_status_on_linux_reads_systemctl_show(tmp_path: Path) -> None:
    """status reports running and the main pid from `systemctl --user show`."""
    show = "ActiveState=active\nSubState=running\nMainPID=4242\n"
    answers = {"systemctl --user show trio-pool.service": show}
    state = service.status(make_host(tmp_path, FakeManager(answers=answers)))
    assert (state.available, state.running, state.pid) == (True, True, 4242)
    assert state.state == "active (running)"
    assert "running (pid 4242)" in state.describe()


def test_install_on_macos_writes_agent_and_bootstraps(tmp_path: Path) -> None:
    """On macOS the agent runs serve with absolute paths, logs to ~/Library/Logs, and is loaded."""
    manager = FakeManager()
    host = make_host(tmp_path, manager, platform="darwin")
    service.install(host)
    agent = plistlib.loads((tmp_path / "Library/LaunchAgents/local.trio-pool.plist").read_bytes())
    config = tmp_path / "Library/Application Support/trio-pool/config.toml"
    assert agent["ProgramArguments"] == [*host.program, "serve", "--config", str(config)]
    assert agent["StandardOutPath"] == str(tmp_path / "Library/Logs/trio-pool.log")
    assert agent["KeepAlive"] == {"SuccessfulExit": False}
    assert config.is_file()
    assert manager.calls == [
        ("launchctl", "print", "gui/501"),
        ("launchctl", "bootout", "gui/501/local.trio-pool"),
        ("launchctl", "enable", "gui/501/local.trio-pool"),
        ("launchctl", "bootstrap", "gui/501", str(host.service_file)),
    ]


def test_status_on_macos_reads_launchctl_print(tmp_path: Path) -> None:
    """The top-level state and pid of `launchctl print` win over nested blocks."""
    output = (
        "gui/501/local.trio-pool = {\n\tstate = running\n\tpid = 77\n"
        "\tendpoints = {\n\t\tstate = active\n\t}\n}\n"
    )
    answers = {"launchctl print gui/501/local.trio-pool": output}
    state = service.status(make_host(tmp_path, FakeManager(answers=answers), platform="darwin"))
    assert (state.manager, state.running, state.pid) == ("launchd", True, 77)


def test_macos_without_a_login_session_fails_clearly(tmp_path: Path) -> None:
    """Over SSH only, launchd has no gui domain: say so."""
    fail = {"launchctl print": Completed(113, "Could not find domain for port identifier")}
    host = make_host(tmp_path, FakeManager(fail=fail), platform="darwin")
    with pytest.raises(ServiceError, match="launchd cannot reach your login session gui/501"):
        service.install(host)


def test_other_platforms_are_refused(tmp_path: Path) -> None:
    """Windows and the rest get a clear 'not supported' with the manual command."""
    with pytest.raises(ServiceError, match=r"supports Linux .* and macOS .*, not win32"):
        service.install(make_host(tmp_path, FakeManager(), platform="win32"))


def test_run_command_reports_a_missing_program() -> None:
    """A missing systemctl is an answer (127), not an exception."""
    assert service.run_command(["/nonexistent/systemctl"]).returncode == 127


@pytest.fixture
def cli_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The CLI sees a fresh home and a systemctl without a user bus."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.setattr(sys, "platform", "linux")
    manager = FakeManager(fail={"systemctl --user": Completed(1, NO_BUS)})
    monkeypatch.setattr(service, "run_command", manager)
    return tmp_path


def test_cli_install_without_systemd_exits_1_with_a_hint(
    cli_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`trio-pool service install` on this kind of machine says why and exits 1."""
    assert main(["service", "install"]) == 1
    err = capsys.readouterr().err
    assert "trio-pool: no systemd user session here" in err
    assert "hint:" in err
    assert "Traceback" not in err
    assert (cli_home / ".config/trio-pool/config.toml").is_file()


def test_cli_status_json_without_systemd(
    cli_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`service status --json` still prints its document, with available false, and exits 1."""
    assert main(["service", "status", "--json"]) == 1
    document = json.loads(capsys.readouterr().out)
    assert document["available"] is False
    assert document["service_file"] == str(cli_home / ".config/systemd/user/trio-pool.service")


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_install_sh_copies_the_binary_and_installs_the_service(tmp_path: Path) -> None:
    """install.sh puts the binary in ~/.local/bin and hands over to `trio-pool service install`."""
    fake = tmp_path / "trio-pool"
    fake.write_text('#!/bin/sh\necho "$*" >> "$HOME/calls"\necho "trio-pool 0.0"\n')
    fake.chmod(0o755)
    home = tmp_path / "home"
    home.mkdir()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home)}
    done = subprocess.run(
        ["bash", str(PACKAGING / "install.sh"), str(fake)],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert (home / ".local/bin/trio-pool").read_bytes() == fake.read_bytes()
    assert (home / "calls").read_text() == "--version\nservice install\n"
    assert "not on your PATH" in done.stdout
