"""The error shape of OpenAI Chat Completions clients, which no provider serves natively.

``{"error": {"message", "type", "param", "code"}}``, the OpenAI API's; a 429 is
``rate_limit_error`` / ``rate_limit_exceeded`` whatever made the pool give up
(translation.md §6, T39), so the SDKs' retry logic recognises it.
"""

from __future__ import annotations

import json

from trio_pool.translate.errors import chat_error_body

# OpenAI's error types by status (the SDKs map statuses to exception classes themselves).
TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}


class ChatShape:
    """Errors the proxy answers itself, as Chat Completions clients read them."""

    def error_response(
        self, status: int, message: str, *, kind: str = "proxy_error"
    ) -> tuple[list[tuple[str, str]], bytes]:
        body = chat_error_body(message, *self._type_and_code(status, kind))
        return [("content-type", "application/json")], json.dumps(body).encode()

    def stream_error_event(self, message: str, *, kind: str = "proxy_error") -> bytes:
        # A Chat stream has no event names: the error is a bare data line (CPA).
        body = chat_error_body(message, "server_error", kind)
        return b"data: " + json.dumps(body).encode() + b"\n\n"

    @staticmethod
    def _type_and_code(status: int, kind: str) -> tuple[str, str]:
        if status == 429:
            return "rate_limit_error", "rate_limit_exceeded"
        return TYPES.get(status, "server_error"), kind


CHAT_SHAPE = ChatShape()
