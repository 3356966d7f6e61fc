"""Who trio-pool says it is on the calls it makes itself (token refresh, login code
exchange, usage polls, Code Assist set-up): the real CLIs' own identity headers.

The vendors' token and usage endpoints sit behind bot protection that refuses a request with
no User-Agent, or with the wrong one (real-services.md §4): Anthropic's token endpoint answers
429 to a UA-less request from a datacenter and 429/404 to a ``claude-code/`` or ``claude-cli/``
one, while Claude Code itself sends ``axios/<version>`` there. So each call carries exactly what
the CLI sends on the same call.

The versions are the CLI releases we test against (real-clients.md; ``make e2e`` runs them).
Keep them here and nowhere else. Pure: the platform is read once, at import, from ``platform``
(no files), and every builder also takes it as an argument for tests.
"""

from __future__ import annotations

import platform

import attrs

CODEX_VERSION = "0.169.0"
CLAUDE_CODE_VERSION = "2.1.330"
GEMINI_CLI_VERSION = "0.61.0"
# The axios release bundled in Claude Code 2.1.330: its token calls say `axios/1.15.2`.
AXIOS_VERSION = "1.15.2"
# google-auth-library-nodejs as pinned by Gemini CLI 0.61.0 (its UA suffix).
GOOGLE_API_NODEJS_CLIENT_VERSION = "10.9.0"

# Codex's originator for its own default client (login, refresh, backend calls). `codex exec`
# says `codex_exec` on model calls, but those are the client's and pass through unchanged.
CODEX_ORIGINATOR = "codex_cli_rs"
# What axios (Claude Code's token calls) sends as Accept.
AXIOS_ACCEPT = "application/json, text/plain, */*"


@attrs.frozen
class Platform:
    """The machine, in the words each CLI uses for it."""

    system: str  # platform.system(): "Linux", "Darwin", "Windows"
    release: str  # platform.release(): kernel or OS version
    machine: str  # platform.machine(): "x86_64", "arm64", "AMD64", "aarch64"


def current_platform() -> Platform:
    system = platform.system()
    # On macOS the kernel release (24.0.0) is not what Codex shows: it names the OS version.
    release = (platform.mac_ver()[0] if system == "Darwin" else "") or platform.release()
    return Platform(system, release, platform.machine())


HOST = current_platform()


def header_safe(value: str) -> str:
    """Non-printable or non-ASCII characters replaced by ``_`` (Codex's sanitize_user_agent)."""
    return "".join(ch if " " <= ch <= "~" else "_" for ch in value)


def codex_os(host: Platform) -> str:
    """Codex's ``<os type> <os version>`` (the Rust ``os_info`` crate): "Mac OS 15.0.1"."""
    if host.system == "Darwin":
        return f"Mac OS {host.release}".strip()
    return f"{host.system or 'Unknown'} {host.release}".strip()


def codex_user_agent(host: Platform = HOST, version: str = CODEX_VERSION) -> str:
    """``codex_cli_rs/<version> (<os>; <arch>)``, as Codex's default client sends it
    (its terminal token is left out: we are not in a terminal)."""
    arch = host.machine or "unknown"
    return header_safe(f"{CODEX_ORIGINATOR}/{version} ({codex_os(host)}; {arch})")


def codex_headers(host: Platform = HOST) -> tuple[tuple[str, str], ...]:
    """The identity headers of Codex's own calls (token refresh, ``wham/usage``)."""
    return (("originator", CODEX_ORIGINATOR), ("user-agent", codex_user_agent(host)))


def anthropic_token_headers() -> tuple[tuple[str, str], ...]:
    """Claude Code's token endpoint call (refresh and login code exchange) goes through
    axios: ``axios/<version>`` and axios's Accept. Never a ``claude-code/`` or ``claude-cli/``
    UA there: the endpoint answers those with 429 or 404."""
    return (("user-agent", f"axios/{AXIOS_VERSION}"), ("accept", AXIOS_ACCEPT))


def claude_code_user_agent(version: str = CLAUDE_CODE_VERSION) -> str:
    """Claude Code's own calls to api.anthropic.com/api/oauth/* (profile, usage)."""
    return f"claude-code/{version}"


def node_platform(host: Platform = HOST) -> tuple[str, str]:
    """Node's ``process.platform`` and ``process.arch`` for this machine."""
    system = {"Darwin": "darwin", "Windows": "win32"}.get(host.system, host.system.lower())
    machine = host.machine.lower()
    arch = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "i686": "ia32"}.get(
        machine, machine
    )
    return system or "linux", arch or "x64"


def gemini_user_agent(
    model: str = "gemini-2.5-pro", host: Platform = HOST, version: str = GEMINI_CLI_VERSION
) -> str:
    """``GeminiCLI/<version>/<model> (<platform>; <arch>; terminal) google-api-nodejs-client/…``
    as Gemini CLI sends on Code Assist calls (real-clients.md §6; the model in it is
    whatever the CLI started with, not the request's)."""
    system, arch = node_platform(host)
    return header_safe(
        f"GeminiCLI/{version}/{model} ({system}; {arch}; terminal) "
        f"google-api-nodejs-client/{GOOGLE_API_NODEJS_CLIENT_VERSION}"
    )
