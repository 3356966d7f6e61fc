"""The identity headers trio-pool puts on its own calls (token refresh, usage polls)."""

from __future__ import annotations

from trio_pool.providers import identity
from trio_pool.providers.identity import Platform
from trio_pool.providers.tokens import token_retry_after_s

LINUX = Platform("Linux", "6.1.0-18-amd64", "x86_64")
MAC = Platform("Darwin", "15.0.1", "arm64")


def test_codex_user_agent_names_the_cli_version_os_and_arch() -> None:
    """Codex's own calls say codex_cli_rs/<version> (<os>; <arch>), as its default client."""
    linux_ua = "codex_cli_rs/0.169.0 (Linux 6.1.0-18-amd64; x86_64)"
    assert identity.codex_user_agent(LINUX) == linux_ua
    assert identity.codex_user_agent(MAC) == "codex_cli_rs/0.169.0 (Mac OS 15.0.1; arm64)"
    assert dict(identity.codex_headers(LINUX))["originator"] == "codex_cli_rs"


def test_anthropic_token_calls_look_like_axios_never_like_claude_code() -> None:
    """The Anthropic token endpoint gets axios's UA and Accept, no claude-code/claude-cli UA."""
    headers = dict(identity.anthropic_token_headers())
    assert headers["user-agent"] == f"axios/{identity.AXIOS_VERSION}"
    assert headers["accept"] == "application/json, text/plain, */*"
    assert not headers["user-agent"].startswith(("claude-code/", "claude-cli/"))


def test_claude_usage_poll_user_agent_is_claude_code() -> None:
    """api/oauth/usage is called the way Claude Code calls it: claude-code/<version>."""
    assert identity.claude_code_user_agent() == "claude-code/2.1.330"


def test_gemini_user_agent_uses_node_platform_names() -> None:
    """Gemini CLI's UA names the platform as node does (linux/darwin, x64/arm64)."""
    assert identity.gemini_user_agent("gemini-2.5-pro", LINUX) == (
        "GeminiCLI/0.61.0/gemini-2.5-pro (linux; x64; terminal) google-api-nodejs-client/10.9.0"
    )
    assert "(darwin; arm64; terminal)" in identity.gemini_user_agent(host=MAC)


def test_odd_platform_strings_are_made_header_safe() -> None:
    """A platform name with non-ASCII or control characters is sanitised, as Codex does."""
    odd = Platform("Linux", "6.1\u00e9\x07x", "x86_64")
    assert identity.codex_user_agent(odd) == "codex_cli_rs/0.169.0 (Linux 6.1__x; x86_64)"


def test_this_machine_yields_header_safe_values() -> None:
    """Whatever machine runs the proxy, the UA is printable ASCII (a valid header value)."""
    for value in (identity.codex_user_agent(), identity.gemini_user_agent()):
        assert value.isascii()
        assert value.isprintable()


def test_token_retry_after_reads_seconds_or_milliseconds() -> None:
    """Retry-After (seconds) or Retry-After-Ms, the larger wins; nonsense is ignored."""
    assert token_retry_after_s((("retry-after", "900"),)) == 900
    assert token_retry_after_s((("retry-after-ms", "1500"),)) == 1.5
    assert (
        token_retry_after_s(
            (
                ("retry-after", "2"),
                ("retry-after-ms", "5000"),
            )
        )
        == 5
    )
    assert token_retry_after_s((("retry-after", "soon"),)) is None
    assert token_retry_after_s(()) is None
