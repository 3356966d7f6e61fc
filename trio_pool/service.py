"""`trio-pool service install | uninstall | status`: run the proxy as a per-user service.

Linux gets a systemd user unit (logs in the journal), macOS a launchd agent (logs in
~/Library/Logs/trio-pool.log). Both run ``trio-pool serve --config <config dir>/config.toml``;
the config dir holds config.toml, pool/ and data/. packaging/ holds the same files for manual
installs; tests keep them equal to what this module writes. Every systemctl / launchctl call
goes through ``ServiceHost.runner`` so tests never touch the real service manager.
"""

from __future__ import annotations

import os
import plistlib
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs

from trio_pool.errors import TrioPoolError

UNIT_NAME = "trio-pool.service"
AGENT_LABEL = "local.trio-pool"
LINUX, MACOS = "linux", "darwin"
JOURNAL = "journalctl --user -u trio-pool -f"

DEFAULT_CONFIG = """\
# trio-pool configuration; every key is optional (see the README's configuration reference).
# Relative paths resolve against this file's directory.
listen = "127.0.0.1:8989"
pool_dir = "pool"
data_dir = "data"
"""

UNIT_TEMPLATE = """\
# trio-pool as a systemd user service. `trio-pool service install` (or packaging/install.sh)
# writes this file to ~/.config/systemd/user/ with absolute paths in place of %h.
# Logs: {journal}
[Unit]
Description=trio-pool: pooled Codex, Claude and Gemini accounts on one local address

[Service]
Type=exec
ExecStart={exec_start}
WorkingDirectory={workdir}
# SIGTERM starts a graceful shutdown: in-flight streams get shutdown_grace_s (10 s by default).
KillSignal=SIGTERM
TimeoutStopSec=30
Restart=on-failure
RestartSec=2

[Install]
WantedBy=default.target
"""


class ServiceError(TrioPoolError):
    """The service manager is missing or refused; ``hint`` says what to do instead."""

    def __init__(self, message: str, hint: str) -> None:
        self.hint = hint
        super().__init__(message)


@attrs.frozen
class Completed:
    returncode: int
    output: str


Runner = Callable[[Sequence[str]], Completed]


def run_command(argv: Sequence[str]) -> Completed:
    """Run a service-manager command; a missing program is returncode 127, not an exception."""
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=30, check=False)
    except FileNotFoundError:
        return Completed(127, f"{argv[0]}: command not found")
    except subprocess.TimeoutExpired:
        return Completed(124, f"{argv[0]}: no answer within 30 s")
    return Completed(done.returncode, (done.stdout + done.stderr).strip())


@attrs.frozen
class ServiceHost:
    """Where the service's files go and how trio-pool is started; see ``current_host``."""

    platform: str
    home: Path
    program: tuple[str, ...]  # the absolute command that runs trio-pool
    uid: int
    runner: Runner
    config_home: Path  # $XDG_CONFIG_HOME or ~/.config (Linux only)

    @property
    def config_dir(self) -> Path:
        if self.platform == MACOS:
            return self.home / "Library" / "Application Support" / "trio-pool"
        return self.config_home / "trio-pool"

    @property
    def config_file(self) -> Path:
        return self.config_dir / "config.toml"

    @property
    def service_file(self) -> Path:
        if self.platform == MACOS:
            return self.home / "Library" / "LaunchAgents" / f"{AGENT_LABEL}.plist"
        return self.config_home / "systemd" / "user" / UNIT_NAME

    @property
    def log_file(self) -> Path:  # macOS; on Linux the journal has the logs (JOURNAL)
        return self.home / "Library" / "Logs" / "trio-pool.log"

    @property
    def logs(self) -> str:
        return str(self.log_file) if self.platform == MACOS else JOURNAL

    @property
    def serve_argv(self) -> list[str]:
        return [*self.program, "serve", "--config", str(self.config_file)]

    def run(self, *argv: str) -> Completed:
        return self.runner(argv)


def current_host(runner: Runner | None = None) -> ServiceHost:
    # A frozen binary is its own program; from a venv, run this interpreter with -m. absolute(),
    # not resolve(): resolving a venv's python symlink would leave the venv.
    frozen = getattr(sys, "frozen", False)
    executable = str(Path(sys.executable).absolute())
    xdg = os.environ.get("XDG_CONFIG_HOME", "")
    return ServiceHost(
        platform=sys.platform,
        home=Path.home(),
        program=(executable,) if frozen else (executable, "-m", "trio_pool"),
        uid=os.getuid(),
        runner=runner or run_command,
        config_home=Path(xdg) if os.path.isabs(xdg) else Path.home() / ".config",
    )


# -- the files --------------------------------------------------------------------------------


def systemd_unit(exec_start: str, workdir: str) -> str:
    return UNIT_TEMPLATE.format(exec_start=exec_start, workdir=workdir, journal=JOURNAL)


def _systemd_arg(arg: str) -> str:
    # systemd expands %specifiers and $VARIABLES in ExecStart; quotes keep spaces in one word.
    arg = arg.replace("%", "%%").replace("$", "$$")
    if any(c in arg for c in " \t\"\\'"):
        return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return arg


def render_unit(host: ServiceHost) -> str:
    exec_start = " ".join(_systemd_arg(arg) for arg in host.serve_argv)
    return systemd_unit(exec_start, str(host.config_dir).replace("%", "%%"))


def launchd_plist(program_args: list[str], workdir: str, log_file: str) -> bytes:
    return plistlib.dumps(
        {
            "Label": AGENT_LABEL,
            "ProgramArguments": program_args,
            "WorkingDirectory": workdir,
            "RunAtLoad": True,
            # Restart after a crash, not after a clean stop.
            "KeepAlive": {"SuccessfulExit": False},
            # launchd sends SIGTERM, then waits this long (in-flight streams) before SIGKILL.
            "ExitTimeOut": 30,
            "StandardOutPath": log_file,
            "StandardErrorPath": log_file,
        }
    )


def render_plist(host: ServiceHost) -> bytes:
    return launchd_plist(host.serve_argv, str(host.config_dir), str(host.log_file))


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_bytes(data)
    temp.replace(path)


def prepare_config(host: ServiceHost) -> None:
    """The config dir with a default config.toml and pool/<provider>/; never overwrites."""
    for provider in ("codex", "claude", "gemini"):
        (host.config_dir / "pool" / provider).mkdir(mode=0o700, parents=True, exist_ok=True)
    host.config_dir.chmod(0o700)
    if not host.config_file.exists():
        _write_atomic(host.config_file, DEFAULT_CONFIG.encode())


# -- the service manager ----------------------------------------------------------------------


def check_manager(host: ServiceHost) -> None:
    """Raise ServiceError unless systemd (user session) or launchd can take the service."""
    by_hand = f"run `{' '.join(host.serve_argv)}` under your own supervisor instead"
    if host.platform == LINUX:
        done = host.run("systemctl", "--user", "show-environment")
        if done.returncode == 127:
            raise ServiceError("systemd is not available: systemctl not found", by_hand)
        if done.returncode != 0:
            reason = done.output.splitlines()[0] if done.output else f"exit {done.returncode}"
            raise ServiceError(
                f"no systemd user session here (systemctl --user: {reason})",
                "containers and some SSH or WSL logins have none; log in normally or "
                f"`loginctl enable-linger`, or {by_hand}",
            )
    elif host.platform == MACOS:
        done = host.run("launchctl", "print", f"gui/{host.uid}")
        if done.returncode != 0:
            raise ServiceError(
                f"launchd cannot reach your login session gui/{host.uid} "
                f"({done.output.splitlines()[0] if done.output else done.returncode})",
                f"log in on the Mac's desktop (not only over SSH), or {by_hand}",
            )
    else:
        raise ServiceError(
            f"`trio-pool service` supports Linux (systemd) and macOS (launchd), not {host.platform}",
            by_hand,
        )


def _must(host: ServiceHost, *argv: str) -> None:
    done = host.run(*argv)
    if done.returncode != 0:
        raise ServiceError(
            f"`{' '.join(argv)}` failed: {done.output or done.returncode}",
            f"see `trio-pool service status` and the logs: {host.logs}",
        )


def install(host: ServiceHost) -> list[str]:
    """Config dir, unit or agent file, then enable and (re)start; the lines to show."""
    prepare_config(host)
    check_manager(host)
    target = f"gui/{host.uid}/{AGENT_LABEL}"
    if host.platform == MACOS:
        host.log_file.parent.mkdir(parents=True, exist_ok=True)
        _write_atomic(host.service_file, render_plist(host))
        host.run("launchctl", "bootout", target)  # fails when not loaded yet: fine
        _must(host, "launchctl", "enable", target)
        _must(host, "launchctl", "bootstrap", f"gui/{host.uid}", str(host.service_file))
    else:
        _write_atomic(host.service_file, render_unit(host).encode())
        _must(host, "systemctl", "--user", "daemon-reload")
        _must(host, "systemctl", "--user", "enable", UNIT_NAME)
        # restart, not start: a re-install after an upgrade runs the new binary.
        _must(host, "systemctl", "--user", "restart", UNIT_NAME)
    return [
        f"wrote {host.service_file}",
        f"config: {host.config_file} (pool: {host.config_dir / 'pool'})",
        f"enabled and started; logs: {host.logs}",
    ]


def uninstall(host: ServiceHost) -> list[str]:
    """Stop, disable and remove the unit or agent; the config dir and pool stay."""
    check_manager(host)
    if host.platform == MACOS:
        host.run("launchctl", "bootout", f"gui/{host.uid}/{AGENT_LABEL}")
    else:
        host.run("systemctl", "--user", "disable", "--now", UNIT_NAME)
    removed = host.service_file.exists()
    host.service_file.unlink(missing_ok=True)
    if host.platform == LINUX:
        _must(host, "systemctl", "--user", "daemon-reload")
    first = f"removed {host.service_file}" if removed else "the service was not installed"
    return [first, f"kept {host.config_dir} (config and pool); delete it yourself if unwanted"]


@attrs.frozen
class ServiceStatus:
    manager: str
    available: bool
    installed: bool  # the unit / agent file exists
    running: bool
    pid: int | None
    state: str  # the manager's own words, or why it cannot be asked
    hint: str
    service_file: str
    config_file: str
    logs: str

    def as_json(self) -> dict[str, Any]:
        return attrs.asdict(self)

    def describe(self) -> str:
        running = f"running (pid {self.pid})" if self.running else "not running"
        running = running if self.available else "unavailable"
        missing = "" if self.installed else " (not installed)"
        return (
            f"{self.manager}: {running}; {self.state}\nservice file: {self.service_file}"
            f"{missing}\nconfig: {self.config_file}\nlogs: {self.logs}"
        )


def status(host: ServiceHost) -> ServiceStatus:
    """What the service manager says about trio-pool; ``available`` is False when it cannot."""
    manager = "launchd" if host.platform == MACOS else "systemd"
    paths = (str(host.service_file), str(host.config_file), host.logs)
    base = ServiceStatus(manager, False, host.service_file.exists(), False, None, "", "", *paths)
    try:
        check_manager(host)
    except ServiceError as exc:
        return attrs.evolve(base, state=str(exc), hint=exc.hint)
    if host.platform == MACOS:
        done = host.run("launchctl", "print", f"gui/{host.uid}/{AGENT_LABEL}")
        info = _key_values(done.output, " = ") if done.returncode == 0 else {}
        state = info.get("state", "not loaded")
        running = state == "running"
    else:
        done = host.run(
            "systemctl", "--user", "show", UNIT_NAME, "--property=ActiveState,SubState,MainPID"
        )
        info = _key_values(done.output, "=")
        running = info.get("ActiveState") == "active"
        state = f"{info.get('ActiveState', 'unknown')} ({info.get('SubState', 'unknown')})"
    pid_text = info.get("pid", info.get("MainPID", "0"))
    pid = int(pid_text) if pid_text.isdigit() and int(pid_text) > 0 else None
    return attrs.evolve(base, available=True, running=running, pid=pid, state=state)


def _key_values(output: str, separator: str) -> dict[str, str]:
    # The first occurrence wins: launchctl repeats keys like `state` in nested blocks.
    found: dict[str, str] = {}
    for line in output.splitlines():
        key, sep, value = line.strip().partition(separator)
        if sep:
            found.setdefault(key, value.strip())
    return found
