"""What the ChatGPT Codex backend refuses in a ``POST …/responses`` body, with its own words.

The backend is not the public Responses API: it answers FastAPI-style ``{"detail": …}`` 400s
(translation.md §2, real-services.md §1):

* ``{"detail":"Instructions are required"}`` without ``instructions`` (CPA#2422,
  PwnKit-Labs/pwnkit#330). Codex 0.169 itself sends no top-level ``instructions`` in its
  "responses-lite" shape, marked by ``x-openai-internal-codex-responses-lite: true`` (on a
  WebSocket, by the same key in ``client_metadata``; real-clients.md §4), and the real service
  takes it: such a request is let through. UNVERIFIED against the real service beyond that
  the real client works; the simulator follows the real client.
* ``{"detail":"Store must be set to false"}`` unless ``store`` is false (CPA#41).
* ``{"detail":"Stream must be set to true"}`` unless ``stream`` is true (cleo#1079).
* ``{"detail":"Unsupported parameter: <name>"}`` for the sampling and limit parameters of the
  public API (suna#5124, ChatMock#103, askalf/dario#1009, CPA codex executor).
* ``{"detail":"The '<model>' model is not supported when using Codex with a ChatGPT
  account."}`` for a model the account's plan does not include (openai/codex#17642,
  #19654; CPA#3647: the free plan has only some models).

Pure: each check returns the ``detail`` text of the refusal, or None.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

LITE_HEADER = "x-openai-internal-codex-responses-lite"
LITE_METADATA_KEY = "ws_request_header_x_openai_internal_codex_responses_lite"
# Refused with "Unsupported parameter: X" (in this order of checking).
UNSUPPORTED_PARAMETERS = (
    "max_output_tokens",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "presence_penalty",
    "frequency_penalty",
    "seed",
    "top_logprobs",
    "truncation",
    "metadata",
    "context_management",
)
# Models only some plans include; any other model is open to every plan. A research preview
# that only Pro has (openai/codex#17642) stands in for the real, changing list.
PLAN_MODELS: dict[str, frozenset[str]] = {"gpt-5.3-codex-spark": frozenset({"pro"})}


def is_lite(lite_header: str | None, request: Mapping[str, Any]) -> bool:
    """Codex's responses-lite shape, said in the header (HTTP) or client_metadata (WS)."""
    metadata = request.get("client_metadata")
    in_metadata = isinstance(metadata, dict) and metadata.get(LITE_METADATA_KEY) == "true"
    return (lite_header or "").strip().lower() == "true" or in_metadata


def body_refusal(request: Mapping[str, Any], *, lite: bool, websocket: bool = False) -> str | None:
    """The ``detail`` of the 400 the backend gives this body, or None when it takes it."""
    if not isinstance(request.get("instructions"), str) and not lite:
        return "Instructions are required"
    if request.get("store") is not False:
        return "Store must be set to false"
    if not websocket and request.get("stream") is not True:
        return "Stream must be set to true"
    for name in UNSUPPORTED_PARAMETERS:
        if name in request:
            return f"Unsupported parameter: {name}"
    return None


def plan_refusal(model: Any, plan: str) -> str | None:
    """The ``detail`` when the account's plan does not include ``model``."""
    if not isinstance(model, str):
        return None
    plans = PLAN_MODELS.get(model)
    if plans is None or plan in plans:
        return None
    return f"The '{model}' model is not supported when using Codex with a ChatGPT account."
