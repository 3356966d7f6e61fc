"""Reading a JWT's claims without verifying it (the CLIs do the same: they only decode)."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any


def decode_jwt_payload(token: str) -> dict[str, Any] | None:
    """The payload of ``token`` as a dict, or None when it is not a JWT with a JSON payload."""
    parts = token.split(".")
    if len(parts) != 3 or not parts[1]:
        return None
    segment = parts[1]
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        payload = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError):
        return None
    return payload if isinstance(payload, dict) else None
