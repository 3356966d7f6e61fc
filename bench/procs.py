"""Starting, watching and stopping the simulator and proxy processes (Linux /proc readings)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import attrs

from trio_pool.testing.server import urls

ROOT = Path(__file__).resolve().parent.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# "trio.BrokenResourceError: ...", "KeyboardInterrupt": the last line of each traceback.
EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Disconnected|Interrupt)\b")


def free_port() -> int:
    """A loopback port that was free a moment ago (the child binds it right after)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float:
    """User plus system CPU of the process (all its threads, living and ended)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    # The command name may contain spaces: the fields start after its closing parenthesis.
    fields = text[text.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / CLOCK_TICKS


def thread_cpu_seconds(pid: int) -> dict[int, float]:
    """CPU of each living thread of the process (nanosecond schedstat), by thread id."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out[int(task.name)] = int((task / "schedstat").read_text().split()[0]) / 1e9
        except (OSError, ValueError, IndexError):
            continue  # the thread ended meanwhile
    return out


def tree_cpu_seconds(pid: int) -> float:
    """CPU of the process and of its living children (a Node server may fork helpers)."""
    total = cpu_seconds(pid)
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        try:
            total += tree_cpu_seconds(int(child))
        except (OSError, ValueError):
            continue  # it ended meanwhile
    return total


def memory_mb(pid: int) -> dict[str, float]:
    """VmRSS (now) and VmHWM (peak) in MiB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            out[name] = int(value.split()[0]) / 1024
    return out


def proxy_config(
    listen_port: int,
    sim_base: str,
    workdir: Path,
    *,
    log_level: str,
    extra: tuple[str, ...] = (),
    data: str = "data",
    claude_base: str | None = None,
    codex_base: str | None = None,
) -> str:
    """The proxy's config.toml: every upstream on the simulator, except Claude's Messages
    API on ``claude_base`` and Codex's Responses API on ``codex_base`` when given (the fast
    fake upstream; tokens, usage polls and Codex's WebSocket stay the simulator's)."""
    lines = [
        f'listen = "127.0.0.1:{listen_port}"',
        f'pool_dir = "{workdir / "pool"}"',
        f'data_dir = "{workdir / data}"',
        f'log_level = "{log_level}"',
        "shutdown_grace_s = 1",
        *extra,  # top-level keys from --set, e.g. "ledger = false"
    ]
    upstreams = urls(sim_base)
    if claude_base is not None:
        upstreams["claude"] = {**upstreams["claude"], "upstream": claude_base}
    if codex_base is not None:
        codex = {**upstreams["codex"], "upstream": f"{codex_base}/backend-api/codex"}
        upstreams["codex"] = codex
    for provider, values in upstreams.items():
        lines.append(f"[{provider}]")
        lines += [f'{key} = "{value}"' for key, value in values.items()]
    return "\n".join(lines) + "\n"


@attrs.define(eq=False)
class Child:
    """A child process with its stderr in a file (shown when something goes wrong)."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def check_alive(self) -> None:
        """Raise, with what its log says, when the process has exited."""
        if self.process.poll() is not None:
            raise RuntimeError(
                f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}\n"
                f"exceptions in its log: {'; '.join(self.exceptions()) or 'none'} "
                f"(--keep keeps {self.log_path})"
            )

    def exceptions(self, most: int = 8) -> list[str]:
        """The distinct exception lines of the log (a traceback's tail may hide its cause)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return []
        found: dict[str, None] = {}
        for line in text.splitlines():
            line = line.strip(" |+")
            if EXCEPTION_LINE.match(line):
                found[line[:200]] = None
        return list(found)[:most]

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGINT (the proxy shuts down gracefully, a profiler writes its output), then kill."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def spawn(
    name: str,
    args: list[str],
    workdir: Path,
    *,
    program: str = sys.executable,
    env: dict[str, str] | None = None,
) -> Child:
    """Start ``program args`` in ``workdir``, its output in ``<name>.log`` beside it."""
    log_path = workdir / f"{name}.log"
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), full_env.get("PYTHONPATH")]))
    full_env.update(env or {})
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [program, *args],
            cwd=workdir,
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    return Child(name, process, log_path)


def start_simulator(workdir: Path, port: int, accounts: int) -> Child:
    pool = workdir / "pool"
    args = ["-m", "bench.sim", "--port", str(port), "--pool-dir", str(pool)]
    return spawn("simulator", [*args, "--accounts", str(accounts)], workdir)


def start_upstream(workdir: Path, port: int) -> Child:
    """The fast fake upstream, accepting the Claude and Codex tokens of the run's pool."""
    pool = workdir / "pool"
    return spawn(
        "upstream", ["-m", "bench.upstream", "--port", str(port), "--pool-dir", str(pool)], workdir
    )


def start_relay(workdir: Path, port: int, upstream_port: int) -> Child:
    args = ["-m", "bench.relay", "--port", str(port), "--upstream-port", str(upstream_port)]
    return spawn("relay", args, workdir)


def start_proxy(
    workdir: Path,
    port: int,
    sim_base: str,
    *,
    claude_base: str | None = None,
    codex_base: str | None = None,
    extra: tuple[str, ...] = (),
    name: str = "proxy",
    tree: Path = ROOT,
) -> Child:
    """A proxy on the simulator's pool; ``name`` names its config, log and data dir (one
    state.db per proxy, so that two proxies of one run never share a write lock).

    It logs at the default level, "info": whatever it logs per request is part of its cost.
    ``tree`` is the checkout whose ``trio_pool`` runs (another branch can be measured with
    this branch's benchmark).
    """
    config = workdir / f"{name}.toml"
    text = proxy_config(
        port,
        sim_base,
        workdir,
        log_level="info",
        extra=extra,
        data=f"{name}-data",
        claude_base=claude_base,
        codex_base=codex_base,
    )
    config.write_text(text)
    args = ["-m", "trio_pool", "serve", "--config", str(config)]
    env = {"PYTHONPATH": str(tree)}
    if tree.resolve() != ROOT:
        env["PYTHONDONTWRITEBYTECODE"] = "1"  # leave another checkout as it was
    return spawn(name, args, workdir, env=env)
