"""Configuration: frozen values loaded from config.toml, every key defaulted.

Unknown keys and wrong types are errors that name the key (``ConfigError.problems``).
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from pathlib import Path
from typing import Any, Literal

import attrs
import cattrs

from trio_pool.errors import ConfigError
from trio_pool.serde import converter, describe_errors

Sticky = Literal["auto", "always", "off"]
FastMode = Literal["auto", "always", "off"]
LogLevel = Literal["debug", "info", "warning", "error"]
SystemMessages = Literal["developer", "reminder"]

CONFIG_ENV = "TRIO_POOL_CONFIG"
STATE_URL_ENV = "TRIO_POOL_STATE_URL"
INMEM_BODY_ENV = "PROXY_MAX_INMEM_BODY_BYTES"
MIN_FRIEND_CODE = 8
MAX_LIMIT = 10**9  # the largest rpm / streams a limit may name (SQLite INTEGER and sanity)


@attrs.frozen
class RoutingConfig:
    sticky: Sticky = "auto"
    sticky_strength: float = 1.0
    pin_idle_ttl_s: float = 3600.0
    max_attempts: int = 4
    queue_wait_s: float = 10.0
    dormant_touch: bool = True
    fast_mode: FastMode = "off"
    # At most this many requests (and body bytes) wait for an account at once; more get a
    # 429 at once rather than holding their bodies in memory for the whole wait.
    max_queued: int = 64
    max_queued_bytes: int = 64 * 1024 * 1024


@attrs.frozen
class CodexConfig:
    upstream: str = "https://chatgpt.com/backend-api/codex"
    backend: str = "https://chatgpt.com/backend-api"
    token_url: str = "https://auth.openai.com/oauth/token"
    # Login (protocols.md §1.5): the issuer hosts the device page and the device redirect.
    issuer: str = "https://auth.openai.com"
    authorize_url: str = "https://auth.openai.com/oauth/authorize"
    device_url: str = "https://auth.openai.com/api/accounts/deviceauth"


@attrs.frozen
class ClaudeConfig:
    upstream: str = "https://api.anthropic.com"
    token_url: str = "https://platform.claude.com/v1/oauth/token"
    # Login (protocols.md §2.5); the manual redirect shows the user a code#state to paste.
    authorize_url: str = "https://claude.com/cai/oauth/authorize"
    manual_redirect_url: str = "https://platform.claude.com/oauth/code/callback"
    profile_url: str = "https://api.anthropic.com/api/oauth/profile"


@attrs.frozen
class GeminiConfig:
    upstream: str = "https://cloudcode-pa.googleapis.com"
    token_url: str = "https://oauth2.googleapis.com/token"
    # Login (protocols.md §3.5); the headless redirect shows the user a code to paste.
    authorize_url: str = "https://accounts.google.com/o/oauth2/v2/auth"
    manual_redirect_url: str = "https://codeassist.google.com/authcode"
    userinfo_url: str = "https://www.googleapis.com/oauth2/v2/userinfo"
    # The Google Cloud project for Code Assist Standard/Enterprise accounts whose pool file
    # names none ("project_id"); the CLI's GOOGLE_CLOUD_PROJECT. "" = none.
    project: str = ""


@attrs.frozen
class StateConfig:
    """Multi-host mode (``state_url`` set): how this host talks to the shared PostgreSQL."""

    # The environment variable holding the credentials key(s): "ID:BASE64[,ID:BASE64...]"
    # or one bare base64 key; the first encrypts, all decrypt (rotation, README).
    key_env: str = "TRIO_POOL_STATE_KEY"
    host_id: str = ""  # names this host in leases and ledger rows; default hostname:pid
    connect_timeout_s: float = 3.0
    # Below every client-side wait, so the server gives up first (better-ccflare's rule).
    statement_timeout_ms: int = 2000
    # A refresh lease outlives one token call; a host that dies holding it is replaced
    # after this long. The token call itself is bounded by what is left of the lease.
    refresh_lease_s: float = 60.0
    # A holder that sent its refresh and vanished: wait this long for its write-back
    # before spending the (maybe already spent) refresh token again.
    refresh_doubt_wait_s: float = 120.0
    sync_interval_s: float = 1.0  # read the others' changes at least this often


@attrs.frozen
class ModelRule:
    """One ``[translate.models]`` entry: where a client model name goes (translation.md §1)."""

    to: str  # "codex:MODEL" or "claude:MODEL"
    effort: str | None = None  # used when the request sets no effort of its own


@attrs.frozen
class TranslateConfig:
    """Cross-format translation switches (translation.md §0, §1)."""

    claude_code_on_codex: bool = True
    # Foreign traffic on Claude subscription accounts risks the account (§0.2): opt-in.
    codex_on_claude: bool = False
    chat_completions: bool = True
    reasoning_replay: bool = True
    system_messages: SystemMessages = "developer"  # mid-conversation system messages
    models: dict[str, ModelRule] = attrs.field(factory=dict)  # glob -> rule, first match wins


@attrs.frozen
class JoinConfig:
    """Friend sign-ups (shared mode): the limits a new user starts with, and how many
    sign-ups the pool takes per hour (all addresses together; 5 at most from one)."""

    rpm: int | None = 60
    streams: int | None = 8
    share_pct: float | None = 50.0
    signups_per_hour: int = 20


@attrs.frozen
class AccountSettings:
    priority: int = 0
    disabled: bool = False


@attrs.frozen
class Config:
    listen: str = "127.0.0.1:8989"
    pool_dir: Path = Path("pool")
    data_dir: Path = Path("data")
    max_inmem_body_bytes: int = 16 * 1024 * 1024
    max_body_bytes: int = 64 * 1024 * 1024
    head_timeout_s: float = 30.0
    keepalive_idle_s: float = 75.0
    # Open client connections at most; 0 sizes it from the open-files limit, with a reserve.
    max_connections: int = 0
    shutdown_grace_s: float = 10.0
    log_level: LogLevel = "info"
    # Outbound timeouts: connecting, waiting for the response head, and the longest silence
    # between two chunks of a body (Codex itself gives up on a stream after 300 s idle).
    upstream_connect_timeout_s: float = 10.0
    upstream_first_byte_timeout_s: float = 120.0
    upstream_idle_timeout_s: float = 300.0
    # The usage ledger in data/state.db (one row per proxied request) and how long it keeps rows.
    ledger: bool = True
    ledger_retention_days: float = 90.0
    routing: RoutingConfig = RoutingConfig()
    codex: CodexConfig = CodexConfig()
    claude: ClaudeConfig = ClaudeConfig()
    gemini: GeminiConfig = GeminiConfig()
    translate: TranslateConfig = TranslateConfig()
    accounts: dict[str, AccountSettings] = attrs.field(factory=dict)
    # Scripts send it as a Bearer token to the management API (/api/*).
    admin_token: str | None = attrs.field(default=None, repr=False)
    # Shared mode: friends who know the code sign up on the dashboard for their own pool key.
    friend_code: str | None = attrs.field(default=None, repr=False)
    friend_name: str = "trio-pool"  # what the dashboard calls this pool
    # Several hosts share one pool through PostgreSQL ("postgresql://user@host/db"; the
    # password comes from PGPASSWORD or ~/.pgpass, never from here). Unset: data/state.db.
    state_url: str | None = attrs.field(default=None, repr=False)
    state: StateConfig = StateConfig()
    join: JoinConfig = JoinConfig()
    # Reverse proxies whose X-Forwarded-For is believed (addresses or networks). Off by
    # default: then every caller is its TCP peer, and a same-host nginx makes every
    # internet client look like "this machine" (README: "Behind a reverse proxy").
    trusted_proxies: tuple[str, ...] = ()

    @property
    def listen_host(self) -> str:
        return parse_listen(self.listen)[0]

    @property
    def listen_port(self) -> int:
        return parse_listen(self.listen)[1]

    @property
    def local_url(self) -> str:
        """Where the proxy is, seen from this machine (status, setup, the CLI's admin calls)."""
        return local_url(self.listen_host, self.listen_port)

    def account_settings(self, name: str) -> AccountSettings:
        return self.accounts.get(name, AccountSettings())


def local_url(host: str, port: int) -> str:
    """``http://host:port`` for a listener on ``host``: a wildcard listen is reached on
    loopback, and an IPv6 address goes in brackets (``[::]:8989`` -> ``http://[::1]:8989``)."""
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def parse_listen(value: str) -> tuple[str, int]:
    """'HOST:PORT' or '[v6]:PORT' -> (host, port); raises ValueError with a reason."""
    host, sep, port_text = value.rpartition(":")
    if not sep or not host:
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    host = host.removeprefix("[").removesuffix("]")
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"port must be a number from 0 to 65535, got {port_text!r}")
    return host, int(port_text)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def non_loopback_problem(host: str) -> str:
    return (
        f"listen: {host!r} is not a loopback address; trio-pool only listens beyond this "
        "machine in shared mode, where every caller needs a pool key (set friend_code, or add "
        "a user: trio-pool users add NAME, then start it again)"
    )


def _validate(config: Config) -> list[str]:
    problems = []
    try:
        parse_listen(config.listen)
    except ValueError as exc:
        problems.append(f"listen: {exc}")
    # Beyond loopback only in shared mode: a friend code or a user. Users live in state.db,
    # so serve_proxy decides once it has read them (non_loopback_problem).
    for key in ("max_inmem_body_bytes", "max_body_bytes", "max_connections"):
        if getattr(config, key) < 0:
            problems.append(f"{key}: must not be negative")
    for key in (
        "head_timeout_s",
        "keepalive_idle_s",
        "upstream_connect_timeout_s",
        "upstream_first_byte_timeout_s",
        "upstream_idle_timeout_s",
    ):
        if getattr(config, key) <= 0:
            problems.append(f"{key}: must be greater than 0")
    if config.shutdown_grace_s < 0:
        problems.append("shutdown_grace_s: must not be negative")
    if config.ledger_retention_days <= 0:
        problems.append("ledger_retention_days: must be greater than 0")
    if config.routing.max_attempts < 1:
        problems.append("routing.max_attempts: must be at least 1")
    if config.routing.max_queued < 0 or config.routing.max_queued_bytes < 0:
        problems.append("routing.max_queued and routing.max_queued_bytes: must not be negative")
    if config.routing.sticky_strength < 0:
        problems.append("routing.sticky_strength: must not be negative")
    if config.friend_code is not None and len(config.friend_code.strip()) < MIN_FRIEND_CODE:
        problems.append(
            f"friend_code: must be at least {MIN_FRIEND_CODE} characters (it is guessable "
            "otherwise; try `openssl rand -hex 6`)"
        )
    if config.admin_token is not None and len(config.admin_token.strip()) < 16:
        problems.append("admin_token: must be at least 16 characters (try `openssl rand -hex 24`)")
    if config.state_url is not None and not config.state_url.startswith(
        ("postgresql://", "postgres://")
    ):
        problems.append("state_url: expected a postgresql:// URL")
    st = config.state
    for key in ("connect_timeout_s", "refresh_lease_s", "sync_interval_s"):
        if getattr(st, key) <= 0:
            problems.append(f"state.{key}: must be greater than 0")
    if st.refresh_doubt_wait_s < 0:
        problems.append("state.refresh_doubt_wait_s: must not be negative")
    if st.statement_timeout_ms < 100:
        problems.append("state.statement_timeout_ms: must be at least 100")
    problems.extend(_translate_problems(config.translate))
    join = config.join
    for key in ("rpm", "streams"):
        value = getattr(join, key)
        if value is not None and not 1 <= value <= MAX_LIMIT:
            problems.append(f"join.{key}: must be from 1 to {MAX_LIMIT} (or leave it out)")
    if join.share_pct is not None and not 0 < join.share_pct <= 100:
        problems.append("join.share_pct: must be more than 0 and at most 100")
    if not 1 <= join.signups_per_hour <= MAX_LIMIT:
        problems.append(f"join.signups_per_hour: must be from 1 to {MAX_LIMIT}")
    for entry in config.trusted_proxies:
        try:
            ipaddress.ip_network(entry.strip("[]"), strict=False)
        except ValueError:
            problems.append(
                f"trusted_proxies: {entry!r} is not an IP address or network (e.g. 127.0.0.1)"
            )
    for name in config.accounts:
        provider, _, stem = name.partition("/")
        if provider not in ("codex", "claude", "gemini") or not stem:
            problems.append(
                f'accounts."{name}": expected "codex/NAME", "claude/NAME" or "gemini/NAME"'
            )
    return problems


EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")


def _translate_problems(translate: TranslateConfig) -> list[str]:
    problems = []
    for glob, rule in translate.models.items():
        provider, _, model = rule.to.partition(":")
        if provider not in ("codex", "claude") or not model.strip():
            problems.append(
                f'translate.models."{glob}".to: expected "codex:MODEL" or "claude:MODEL"'
            )
        if rule.effort is not None and rule.effort not in EFFORTS:
            problems.append(
                f'translate.models."{glob}".effort: expected one of {", ".join(EFFORTS)}'
            )
    return problems


def structure_config(raw: dict[str, Any], *, base_dir: Path) -> Config:
    """Turn a parsed TOML document into a Config, or raise ConfigError listing every problem."""
    try:
        config = converter.structure(raw, Config)
    except (cattrs.BaseValidationError, TypeError, ValueError) as exc:
        raise ConfigError(describe_errors(exc)) from None
    env_inmem = os.environ.get(INMEM_BODY_ENV)
    if env_inmem is not None:
        if not env_inmem.strip().isdigit():
            raise ConfigError([f"{INMEM_BODY_ENV}: expected a number of bytes, got {env_inmem!r}"])
        config = attrs.evolve(config, max_inmem_body_bytes=int(env_inmem))
    env_state = os.environ.get(STATE_URL_ENV)
    if env_state:
        config = attrs.evolve(config, state_url=env_state)
    problems = _validate(config)
    if problems:
        raise ConfigError(problems)
    return attrs.evolve(
        config,
        pool_dir=(base_dir / config.pool_dir).resolve(),
        data_dir=(base_dir / config.data_dir).resolve(),
    )


def find_config_file(explicit: str | None) -> Path | None:
    """--config, else $TRIO_POOL_CONFIG, else ./config.toml if present, else None (defaults)."""
    if explicit:
        return Path(explicit)
    env = os.environ.get(CONFIG_ENV)
    if env:
        return Path(env)
    default = Path("config.toml")
    return default if default.is_file() else None


def load_config(path: Path | None, overrides: dict[str, Any] | None = None) -> Config:
    """Read and validate a config file; ``None`` means all defaults relative to the cwd.

    ``overrides`` (command-line options) replace top-level keys before validation, so they
    are checked like the file's own values.
    """
    if path is None:
        return structure_config(dict(overrides or {}), base_dir=Path.cwd())
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read ({exc.strerror})"]) from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: not valid TOML ({exc})"]) from None
    return structure_config({**raw, **(overrides or {})}, base_dir=path.resolve().parent)
