"""The text edits that point each CLI at the proxy: old file text in, new file text out. Pure.

Without a pool key each edit is the local-mode one (the CLI keeps its own login, the proxy
swaps the credential). With a key (shared mode) the CLI carries the key where it sends its
credential, and needs no account of its own. Checked against the real CLIs
(e2e/real_clis.py, e2e/real_clis.py --keys):

- Codex, local mode: ``openai_base_url`` (and ``chatgpt_base_url``) move the built-in
  ``openai`` provider. Codex files its sessions under the provider's id, so a new
  ``model_provider`` would hide the sessions made before set-up from ``codex resume``
  (real-clients.md §4). The built-in provider then opens a WebSocket first and sends
  zstd-compressed bodies; the proxy takes both.
- Codex, shared mode (or ``--custom-provider``): a ``trio-pool`` provider. The built-in one
  cannot carry the key: it always asks for a ChatGPT login (``requires_openai_auth`` is fixed
  to true) and adds no header of ours (only ``OpenAI-Organization``/``OpenAI-Project`` from
  the environment). So: ``requires_openai_auth = false`` (with ``true`` and no auth.json the
  TUI stops at its sign-in screen) and ``http_headers = { "x-trio-pool-key" = KEY }``, which
  Codex sends on the HTTP POST and on the WebSocket upgrade alike.
- Claude Code: ``CLAUDE_CODE_OAUTH_TOKEN`` in settings.json's ``env`` (the key, or any value
  in local mode) -> ``Authorization: Bearer …`` with the OAuth betas: Claude Code stays a
  subscriber (1-hour prompt cache), where ``ANTHROPIC_AUTH_TOKEN`` would make it an API user
  (5-minute cache, more cache writes). It also keeps Claude Code from refreshing a login of
  its own that may be one of the pool's accounts (single-use refresh tokens).
- Gemini CLI: ``GOOGLE_GENAI_USE_GCA=true`` + ``GOOGLE_CLOUD_ACCESS_TOKEN`` -> ``Authorization:
  Bearer KEY``; it wins over a cached ``oauth_creds.json`` login and needs no Google call.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from trio_pool.errors import LoginError

if TYPE_CHECKING:
    import tomlkit

PROVIDER_ID = "trio-pool"
KEY_HEADER = "x-trio-pool-key"
NEXT_STEPS: dict[str, str] = {
    "codex": "Codex still needs a login of its own in auth.json (any ChatGPT login; the proxy "
    "replaces it with a pooled account's). Start `codex` as usual.",
    "claude": "Start `claude` as usual: it runs as a subscriber on the pool's accounts and "
    "needs no Claude login of its own.",
    "gemini": "Start `gemini` from a directory without its own .env. Without a Google login of "
    "its own, also set GOOGLE_GENAI_USE_GCA=true GOOGLE_CLOUD_ACCESS_TOKEN=pool.",
}
NEXT_STEPS["chat"] = (
    "Put these in your client's OpenAI-compatible provider settings (base URL, API key, "
    "model). Codex models are served by the pool's Codex accounts."
)
KEY_NEXT_STEPS: dict[str, str] = {
    "codex": "Start `codex`: no ChatGPT login needed, your pool key admits you.",
    "claude": "Start `claude`: no Claude login needed, your pool key admits you.",
    "gemini": "Start `gemini` from a directory without its own .env: no Google login needed.",
    "chat": "Put these in your client's OpenAI-compatible provider settings: your pool key "
    "admits you.",
}


def codex_config(
    text: str, url: str, key: str | None = None, *, custom_provider: bool = False
) -> str:
    """config.toml: the built-in provider moved to the proxy (local mode), or the trio-pool
    provider selected (a key, or ``custom_provider``); comments and other settings kept."""
    # Imported here: the proxy serves the set-up page but seldom edits a config.toml, and
    # tomlkit is about 1 MB of its resident memory (issue 12 holds it to 40 MB idle).
    import tomlkit
    import tomlkit.exceptions

    try:
        document = tomlkit.parse(text)
    except tomlkit.exceptions.ParseError as exc:
        raise LoginError(f"config.toml is not valid TOML ({exc}); fix it first") from None
    if key is None and not custom_provider:
        return _codex_builtin(document, url)
    document["model_provider"] = PROVIDER_ID
    document["chatgpt_base_url"] = f"{url}/backend-api"
    providers = document.get("model_providers")
    if providers is None:
        providers = tomlkit.table(is_super_table=True)
        document["model_providers"] = providers
    block = providers.get(PROVIDER_ID)
    if block is None:
        block = tomlkit.table()
        providers[PROVIDER_ID] = block
    values: dict[str, Any] = {
        "name": PROVIDER_ID,
        "base_url": f"{url}/v1",
        "wire_api": "responses",
        "requires_openai_auth": key is None,
        "supports_websockets": True,
    }
    for name, value in values.items():
        if block.get(name) != value:
            block[name] = value
    if key is not None:
        headers = block.get("http_headers")
        if not isinstance(headers, dict):
            headers = tomlkit.inline_table()
            block["http_headers"] = headers
        if headers.get(KEY_HEADER) != key:
            headers[KEY_HEADER] = key
    return tomlkit.dumps(document)


def _codex_builtin(document: tomlkit.TOMLDocument, url: str) -> str:
    """The built-in ``openai`` provider pointed at the proxy; its sessions stay resumable."""
    import tomlkit  # loaded by codex_config already (see there)

    selected = document.get("model_provider")
    if selected == PROVIDER_ID:
        del document["model_provider"]  # an earlier set-up's provider: back to the built-in
    elif selected not in (None, "openai"):
        raise LoginError(
            f"config.toml selects model_provider = {selected!r}, which openai_base_url does not "
            "move; remove that line, or use --custom-provider"
        )
    for name, value in (
        ("openai_base_url", f"{url}/v1"),
        ("chatgpt_base_url", f"{url}/backend-api"),
    ):
        if document.get(name) != value:
            document[name] = value
    return tomlkit.dumps(document)


# Claude Code's credential variables, strongest first: a stale ANTHROPIC_AUTH_TOKEN (written by
# an older set-up) would make Claude Code an API user again, so it goes.
CLAUDE_TOKEN = "CLAUDE_CODE_OAUTH_TOKEN"
CLAUDE_DROPPED = ("ANTHROPIC_AUTH_TOKEN",)
LOCAL_TOKEN = "pool"  # any value: the proxy replaces it with an account's token
# Codex CLI 0.169.0's default model, and the small model for Claude Code's side requests [prop].
CODEX_DEFAULT_MODEL = "gpt-6.1-sol"
CODEX_SMALL_MODEL = "gpt-5.4-mini"
CODEX_MODEL = re.compile(r"^(gpt-|codex|o\d)", re.IGNORECASE)  # as translate.routing


def chat_settings(url: str, key: str | None = None) -> str:
    """What a Chat Completions client (opencode, aider, an editor) needs: the OpenAI base URL
    and a key. Local mode takes any key; ``GET /v1/models`` lists what the pool serves."""
    return (
        f"OPENAI_BASE_URL={url}/v1\n"
        f"OPENAI_API_KEY={key if key is not None else LOCAL_TOKEN}\n"
        f"# model: {CODEX_DEFAULT_MODEL} (or any model GET {url}/v1/models lists)\n"
    )


def claude_models(
    model: str | None, small_model: str | None = None, *, on: str | None = None
) -> dict[str, str]:
    """The model variables of Claude Code's ``env`` for ``setup claude --model/--on``.

    ``ANTHROPIC_MODEL`` is the main model; the small/fast one (titles, summaries, the quota
    probe) is ``ANTHROPIC_DEFAULT_HAIKU_MODEL`` in Claude Code 2.x, and 2.1.330 still reads
    the older ``ANTHROPIC_SMALL_FAST_MODEL``: both are set. A Codex model gets a Codex small
    model, so no request of the session needs a Claude account (translation.md §1).
    """
    if on == "codex" and model is None:
        model = CODEX_DEFAULT_MODEL
    if model is None:
        return {}
    if small_model is None and CODEX_MODEL.match(model):
        small_model = CODEX_SMALL_MODEL
    found = {"ANTHROPIC_MODEL": model}
    if small_model is not None:
        found |= {
            "ANTHROPIC_DEFAULT_HAIKU_MODEL": small_model,
            "ANTHROPIC_SMALL_FAST_MODEL": small_model,
        }
    return found


def claude_settings(
    text: str, url: str, key: str | None = None, models: dict[str, str] | None = None
) -> str:
    """settings.json: ``env.ANTHROPIC_BASE_URL`` and ``env.CLAUDE_CODE_OAUTH_TOKEN`` (the key,
    or a placeholder the proxy replaces), and the ``models`` of :func:`claude_models`."""
    try:
        document = json.loads(text) if text.strip() else {}
    except ValueError:
        raise LoginError("settings.json is not valid JSON; fix it first") from None
    if not isinstance(document, dict) or not isinstance(document.get("env", {}), dict):
        raise LoginError("settings.json: expected an object with an object `env`")
    wanted = {"ANTHROPIC_BASE_URL": url, CLAUDE_TOKEN: key if key is not None else LOCAL_TOKEN}
    wanted |= models or {}
    env = document.get("env", {})
    stale = [name for name in CLAUDE_DROPPED if name in env]
    if not stale and all(env.get(name) == value for name, value in wanted.items()):
        return text  # already set: keep the user's formatting
    kept = {name: value for name, value in env.items() if name not in CLAUDE_DROPPED}
    document["env"] = kept | wanted
    return json.dumps(document, indent=2) + "\n"


def gemini_env(text: str, url: str, key: str | None = None) -> str:
    """.env: ``CODE_ASSIST_ENDPOINT`` (and the key as a Code Assist access token)."""
    wanted = {"CODE_ASSIST_ENDPOINT": url}
    if key is not None:
        wanted |= {"GOOGLE_GENAI_USE_GCA": "true", "GOOGLE_CLOUD_ACCESS_TOKEN": key}
    lines = text.splitlines()
    for name, value in wanted.items():
        pattern = re.compile(rf"^\s*(?:export\s+)?{name}\s*=")
        found = [i for i, existing in enumerate(lines) if pattern.match(existing)]
        line = f"{name}={value}"
        if found:  # the first one is replaced in place, later duplicates dropped
            lines[found[0]] = line
            lines = [existing for i, existing in enumerate(lines) if i not in found[1:]]
        else:
            lines.append(line)
    return "\n".join(lines) + "\n"
