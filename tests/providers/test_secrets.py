from __future__ import annotations

import json

import pytest

from tests.providers.samples import NOW, PLANTED, head
from trio_pool.errors import TrioPoolError
from trio_pool.providers import PROVIDER_REGISTRY
from trio_pool.providers.base import PROVIDERS, ProviderName, Route, RouteKind

DOCUMENTS: dict[ProviderName, dict[str, object]] = {
    "codex": {"tokens": {"access_token": PLANTED, "refresh_token": PLANTED, "account_id": "acct"}},
    "claude": {"claudeAiOauth": {"accessToken": PLANTED, "refreshToken": PLANTED, "expiresAt": 1}},
    "gemini": {"access_token": PLANTED, "refresh_token": PLANTED, "expiry_date": 1},
}
BROKEN: dict[ProviderName, dict[str, object]] = {
    "codex": {"tokens": {"access_token": 5, "refresh_token": PLANTED}},
    "claude": {"claudeAiOauth": {"accessToken": ["x"], "refreshToken": PLANTED}},
    "gemini": {"access_token": "", "refresh_token": PLANTED},
}


@pytest.mark.parametrize("name", PROVIDERS)
def test_planted_token_never_in_reprs_or_errors(name: ProviderName) -> None:
    """A token appears in no repr of Credentials, requests or results, nor in any error."""
    provider = PROVIDER_REGISTRY[name]
    creds = provider.parse_credentials(DOCUMENTS[name])
    assert creds.access_token == PLANTED
    request = provider.refresh_request(creds, "http://127.0.0.1:9/token")
    route = Route(name, RouteKind.PROXY, "http://127.0.0.1:9/x")
    prepared = provider.prepare(route, head("POST", "/x"), b"{}", creds)
    answer = json.dumps({"access_token": PLANTED, "refresh_token": PLANTED}).encode()
    result = provider.refresh_result(200, answer, DOCUMENTS[name], NOW)
    failed = provider.refresh_result(
        400, json.dumps({"error": PLANTED}).encode(), DOCUMENTS[name], NOW
    )
    for value in (creds, request, result, failed):
        assert PLANTED not in repr(value)
    assert PLANTED not in repr(prepared.body)
    with pytest.raises(TrioPoolError) as info:
        provider.parse_credentials(BROKEN[name])
    assert PLANTED not in str(info.value)
    assert PLANTED not in repr(info.value)


def test_upstream_error_message_with_token_is_masked() -> None:
    """An upstream error message echoing a token is masked in the outcome's reason."""
    body = json.dumps(
        {
            "type": "error",
            "error": {"type": "authentication_error", "message": f"bad token {PLANTED}"},
        }
    ).encode()
    outcome = PROVIDER_REGISTRY["claude"].classify(401, (), body, NOW)
    assert PLANTED not in outcome.reason
    assert "bad token" in outcome.reason
