"""Who the simulated endpoints let in, and the refusals the real ones send to anyone else.

The vendors' token and usage endpoints are fronted by bot protection that looks at who is
calling (real-services.md §1, §2, §4):

* Anthropic's token endpoint (refresh and login code exchange) answers **429** to a request
  without a User-Agent from a datacenter (earendil-works/pi#9369), **429** to a
  ``claude-code/`` UA and **404** to a ``claude-cli/`` one (NousResearch/hermes-agent#48534,
  #58178). Claude Code itself calls it through axios: ``axios/<version>``, which passes.
* auth.openai.com and chatgpt.com put Cloudflare challenges (an HTML 403 with
  ``cf-mitigated: challenge``) in front of clients that do not look like a known one
  (openai/codex#16052). Whether a request without ``originator``/User-Agent is challenged is
  UNVERIFIED; the simulator follows the real client, which always sends both, and challenges
  anything that does not.
* ``api.anthropic.com/api/oauth/usage`` 429s readily even for Claude Code
  (anthropics/claude-code#31021). UNVERIFIED what it does without a ``claude-code/`` UA; the
  simulator follows the real client and answers 429 to anything else.

Each check returns None (let it in) or the refusal to send.
"""

from __future__ import annotations

import attrs

from trio_pool.server.connection import Exchange
from trio_pool.server.messages import RequestHead
from trio_pool.testing import wire

CF_CHALLENGE_PAGE = (
    b'<!DOCTYPE html><html lang="en-US"><head><title>Just a moment...</title>'
    b'<meta http-equiv="Content-Type" content="text/html; charset=UTF-8"></head>'
    b"<body><noscript>Enable JavaScript and cookies to continue</noscript></body></html>"
)


@attrs.frozen
class Refusal:
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


async def refuse(ex: Exchange, refusal: Refusal | None) -> bool:
    """Send the refusal, if any; True when the request was refused. The edge answers before
    any grant or token is looked at: a refused refresh spends nothing."""
    if refusal is None:
        return False
    await ex.respond(refusal.status, list(refusal.headers), refusal.body)
    return True


def cloudflare_challenge() -> Refusal:
    """Cloudflare's managed challenge: an HTML 403, not the API's JSON."""
    headers = (
        ("content-type", "text/html; charset=UTF-8"),
        ("cf-mitigated", "challenge"),
        ("server", "cloudflare"),
        ("cache-control", "private, max-age=0, no-store, no-cache, must-revalidate"),
    )
    return Refusal(403, headers, CF_CHALLENGE_PAGE)


def _anthropic_error(status: int, kind: str, message: str) -> Refusal:
    body = {"type": "error", "error": {"type": kind, "message": message}}
    return Refusal(status, wire.JSON_HEADERS, wire.dumps(body))


def anthropic_token_refusal(head: RequestHead) -> Refusal | None:
    """Claude's token endpoint lets through only an axios-like caller, as Claude Code is."""
    agent = (head.get("user-agent") or "").strip()
    if agent.startswith("claude-cli/"):
        return _anthropic_error(404, "not_found_error", "Not Found")
    if not agent.startswith("axios/"):
        return _anthropic_error(429, "rate_limit_error", "Rate limited. Please try again later.")
    return None


def codex_identity_refusal(head: RequestHead) -> Refusal | None:
    """Codex's own calls (refresh, wham/usage) carry ``originator`` and a UA that starts with
    it; anything else gets the Cloudflare challenge."""
    originator = (head.get("originator") or "").strip()
    agent = (head.get("user-agent") or "").strip()
    if not originator or not agent.startswith(f"{originator}/"):
        return cloudflare_challenge()
    return None


def claude_usage_refusal(head: RequestHead) -> Refusal | None:
    """``/api/oauth/usage`` as Claude Code calls it: ``claude-code/<version>``."""
    if not (head.get("user-agent") or "").startswith("claude-code/"):
        return _anthropic_error(429, "rate_limit_error", "Rate limited. Please try again later.")
    return None
