"""Check the service files: the systemd unit with `systemd-analyze verify` (where it exists),
the launchd plists with plistlib. Both the packaged files and what `trio-pool service install`
writes for a temporary home running BINARY are checked.

Usage: python build/check_packaging.py [BINARY]   (default dist/trio-pool). Exits 1 on a problem.
"""

# ruff: noqa: T201  (a command-line report: printing is its job)
from __future__ import annotations

import plistlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from trio_pool import service

ROOT = Path(__file__).resolve().parent.parent
PACKAGED_UNIT = ROOT / "packaging" / "trio-pool.service"
PACKAGED_PLIST = ROOT / "packaging" / "local.trio-pool.plist"
PLIST_TYPES = {
    "Label": str,
    "ProgramArguments": list,
    "WorkingDirectory": str,
    "RunAtLoad": bool,
    "KeepAlive": dict,
    "ExitTimeOut": int,
    "StandardOutPath": str,
    "StandardErrorPath": str,
}


def verify_unit(path: Path) -> list[str]:
    # systemd-analyze exits 0 on many warnings ("ignoring"), so any output is a problem.
    done = subprocess.run(
        ["systemd-analyze", "verify", str(path)], capture_output=True, text=True, timeout=60
    )
    output = (done.stdout + done.stderr).strip()
    return (
        [f"{path.name}: {output or f'exit {done.returncode}'}"] if done.returncode or output else []
    )


def check_plist(data: bytes, name: str) -> list[str]:
    try:
        agent = plistlib.loads(data)
    except Exception as exc:
        return [f"{name}: not a plist: {exc}"]
    problems = [
        f"{name}: {key} should be a {kind.__name__}"
        for key, kind in PLIST_TYPES.items()
        if not isinstance(agent.get(key), kind)
    ]
    if agent.get("Label") != service.AGENT_LABEL:
        problems.append(f"{name}: Label is not {service.AGENT_LABEL}")
    if agent.get("ProgramArguments", [])[1:2] != ["serve"]:
        problems.append(f"{name}: ProgramArguments do not run `serve`")
    return problems


def main() -> int:
    binary = Path(sys.argv[1] if len(sys.argv) > 1 else "dist/trio-pool").resolve()
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="trio-pool-packaging-") as tmp:
        home = Path(tmp) / "home dir"  # a space, as in "Application Support"
        linux = service.ServiceHost(
            platform=service.LINUX,
            home=home,
            program=(str(binary),),
            uid=1000,
            runner=service.run_command,
            config_home=home / ".config",
        )
        service.prepare_config(linux)
        rendered = Path(tmp) / service.UNIT_NAME
        rendered.write_text(service.render_unit(linux))
        # The packaged unit runs %h/.local/bin/trio-pool: give it a home (no space, as %h is
        # not quoted there) where that exists.
        plain_home = Path(tmp) / "home"
        (plain_home / ".local" / "bin").mkdir(parents=True)
        (plain_home / ".local" / "bin" / "trio-pool").symlink_to(binary)
        (plain_home / ".config" / "trio-pool").mkdir(parents=True)
        packaged = Path(tmp) / "packaged" / service.UNIT_NAME
        packaged.parent.mkdir()
        packaged.write_text(PACKAGED_UNIT.read_text().replace("%h", str(plain_home)))
        if shutil.which("systemd-analyze"):
            problems += verify_unit(rendered) + verify_unit(packaged)
            print("systemd-analyze verify: rendered and packaged unit checked")
        else:
            print("systemd-analyze not found: unit files not verified")
        macos = service.ServiceHost(
            service.MACOS, home, (str(binary),), 501, service.run_command, home
        )
        problems += check_plist(PACKAGED_PLIST.read_bytes(), PACKAGED_PLIST.name)
        problems += check_plist(service.render_plist(macos), "rendered plist")
        print("plistlib: packaged and rendered plist checked")
    for problem in problems:
        print(f"FAIL {problem}", file=sys.stderr)
    print("packaging checks passed" if not problems else "packaging checks FAILED")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
