"""The simulator's scripted turns and what its "models" issued (reasoning, signatures).

Queues of :class:`~trio_pool.testing.turns.Turn` per provider, for one conversation (Codex
``prompt_cache_key`` or ``session-id``; Claude Code's ``x-claude-code-session-id``), for one
account (``codex/a``) or for any request. A request takes the head of the first queue that
applies, conversation before account before any; a head with ``match`` is taken only by a
request whose body contains that text, so side requests (titles, quota probes) get the
plain reply instead. An empty or unmatched queue leaves the simulator's plain reply.

Python::

    state.scripts.add("codex", [Turn(items=(Reasoning("rs_1", "E1", ("plan",)),
                                           FunctionCall("Bash", '{"command":"echo hi"}'))),
                                Turn(items=(Message("DONE"),))], account="codex/a")

File (``trio-pool demo --sim-script FILE`` or ``TRIO_POOL_SIM_SCRIPT=FILE``)::

    {"codex": {"default": [turn, …], "accounts": {"codex/ada": [turn, …]},
               "conversations": {"<prompt_cache_key>": [turn, …]}},
     "claude": {…the same…}}

What the simulated models issued is remembered so later requests can be checked as the
real services check them: Codex only decrypts reasoning ``encrypted_content`` its own
organisation issued (per account here), and Anthropic only takes thinking signatures it
made (an HMAC of the thinking text with this simulator's secret).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections import deque
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import attrs

from trio_pool.testing.turns import ScriptError, Turn, turn_from_json

ScriptedProvider = Literal["codex", "claude"]
PROVIDERS: tuple[ScriptedProvider, ...] = ("codex", "claude")
ANY = "*"
# Anthropic's signatures are base64 protobuf that starts with these bytes ("EqQB…"); ours
# look the same so that nothing downstream can tell them apart by shape.
_SIGNATURE_HEAD = b"\x12\xa4\x01"
# OpenAI's encrypted reasoning is a Fernet token ("gAAAAB…", CPA gpt_validation.go).
_FERNET_HEAD = b"\x80\x00\x00\x00\x00"


@attrs.define(eq=False)
class TurnScripts:
    """Scripted turns and issued reasoning of one simulator."""

    _queues: dict[tuple[ScriptedProvider, str], deque[Turn]] = attrs.field(factory=dict)
    # Encrypted reasoning each Codex account issued (account key -> values).
    _issued: dict[str, set[str]] = attrs.field(factory=dict, repr=False)
    _signing_key: bytes = attrs.field(factory=lambda: secrets.token_bytes(32), repr=False)
    played: int = 0  # scripted turns served

    # -- scripting --------------------------------------------------------------------

    def add(
        self,
        provider: ScriptedProvider,
        turns: Iterable[Turn],
        *,
        account: str | None = None,
        conversation: str | None = None,
    ) -> None:
        """Queue ``turns`` for one conversation, one account (``codex/a``) or any request."""
        if account is not None and conversation is not None:
            raise ValueError("script a conversation or an account, not both")
        scope = _scope(account, conversation)
        self._queues.setdefault((provider, scope), deque()).extend(turns)

    def pending(self, provider: ScriptedProvider) -> int:
        """Turns not yet played."""
        return sum(len(q) for (p, _), q in self._queues.items() if p == provider)

    def take(
        self,
        provider: ScriptedProvider,
        *,
        account: str,
        conversation: str | None,
        body: bytes,
    ) -> Turn | None:
        """The turn this request plays, removed from its queue, or None."""
        text: str | None = None
        scopes = [_scope(None, conversation)] if conversation else []
        for scope in (*scopes, _scope(account, None), ANY):
            queue = self._queues.get((provider, scope))
            if not queue:
                continue
            head = queue[0]
            if head.match is not None:
                text = body.decode("utf-8", "replace") if text is None else text
                if head.match not in text:
                    continue
            self.played += 1
            return queue.popleft()
        return None

    def load(self, document: Any) -> None:
        """Queue the turns of a script document (module docstring); raises ScriptError."""
        if not isinstance(document, Mapping):
            raise ScriptError("a script must be a JSON object")
        unknown = sorted(set(document) - set(PROVIDERS))
        if unknown:
            raise ScriptError(f"unknown providers in the script: {', '.join(unknown)}")
        # Everything is parsed before anything is queued: a bad script changes nothing.
        queued: list[tuple[ScriptedProvider, list[Turn], str | None, str | None]] = []
        for provider in PROVIDERS:
            section = document.get(provider, {})
            if not isinstance(section, Mapping):
                raise ScriptError(f"{provider!r} must be an object")
            extra = sorted(set(section) - {"default", "accounts", "conversations"})
            if extra:
                raise ScriptError(f"unknown keys under {provider!r}: {', '.join(extra)}")
            queued.append(
                (provider, _turns(section.get("default", []), f"{provider}.default"), None, None)
            )
            for kind in ("accounts", "conversations"):
                scoped = section.get(kind, {})
                if not isinstance(scoped, Mapping):
                    raise ScriptError(f"{provider}.{kind} must be an object")
                for key, turns in scoped.items():
                    parsed = _turns(turns, f"{provider}.{kind}.{key}")
                    if kind == "accounts":
                        queued.append((provider, parsed, str(key), None))
                    else:
                        queued.append((provider, parsed, None, str(key)))
        for provider, turns, account, conversation in queued:
            self.add(provider, turns, account=account, conversation=conversation)

    # -- Codex reasoning --------------------------------------------------------------

    def issue_encrypted(self, account: str, item_id: str, given: str | None) -> str:
        """The ``encrypted_content`` of a reasoning item ``account`` sends (``given``, or a
        Fernet-shaped one of our own), remembered as that account's."""
        if given is None:
            mac = hmac.new(self._signing_key, f"{account}\0{item_id}".encode(), hashlib.sha256)
            given = base64.urlsafe_b64encode(_FERNET_HEAD + mac.digest()).decode()
        self._issued.setdefault(account, set()).add(given)
        return given

    def issued_by(self, account: str, encrypted_content: str) -> bool:
        return encrypted_content in self._issued.get(account, ())

    # -- Claude thinking --------------------------------------------------------------

    def sign_thinking(self, thinking: str) -> str:
        mac = hmac.new(self._signing_key, thinking.encode(), hashlib.sha256).digest()
        return base64.b64encode(_SIGNATURE_HEAD + mac).decode()

    def signature_valid(self, thinking: str, signature: str) -> bool:
        return hmac.compare_digest(self.sign_thinking(thinking), signature)


def _scope(account: str | None, conversation: str | None) -> str:
    if conversation is not None:
        return f"conversation:{conversation}"
    if account is not None:
        return f"account:{account}"
    return ANY


def _turns(value: Any, where: str) -> list[Turn]:
    if not isinstance(value, list):
        raise ScriptError(f"{where} must be a list of turns")
    turns = []
    for i, turn in enumerate(value):
        try:
            turns.append(turn_from_json(turn))
        except ScriptError as exc:
            raise ScriptError(f"{where}[{i}]: {exc}") from exc
    return turns


def read_script(path: Path) -> Any:
    """The JSON document of a script file (blocking: call it before trio starts or from a
    thread); raises ScriptError with the path on a missing or malformed file."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScriptError(f"cannot read the script {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise ScriptError(f"the script {path} is not JSON: {exc}") from exc
