"""Standard Webhooks signatures (https://www.standardwebhooks.com): sign and verify.

The signed content is `{webhook-id}.{webhook-timestamp}.{body}`; the signature header holds
space-separated `v1,<base64 HMAC-SHA256>` entries (several during a secret rotation); the
secret is `whsec_` + base64 of the key bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping

SECRET_PREFIX = "whsec_"


class SignatureError(Exception):
    """The delivery is not authentic; the message is safe to return to the sender."""


def _key(secret: str) -> bytes:
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        return base64.b64decode(encoded, validate=True)
    except binascii.Error:
        raise ValueError("the webhook secret is not valid base64 after 'whsec_'") from None


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """Return the `v1,<signature>` value for a message."""
    content = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers_for(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three headers a sender adds to a delivery."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
    }


def verify(
    secret: str, headers: Mapping[str, str], body: bytes, now: int, tolerance: int = 300
) -> str:
    """Check a delivery's signature and timestamp; return its webhook-id or raise SignatureError."""
    msg_id = headers.get("webhook-id")
    timestamp = headers.get("webhook-timestamp")
    signatures = headers.get("webhook-signature")
    missing = [
        name
        for name, value in (
            ("webhook-id", msg_id),
            ("webhook-timestamp", timestamp),
            ("webhook-signature", signatures),
        )
        if not value
    ]
    if missing or msg_id is None or timestamp is None or signatures is None:
        raise SignatureError(f"missing header(s): {', '.join(missing)}")
    try:
        ts = int(timestamp)
    except ValueError:
        raise SignatureError("webhook-timestamp must be a Unix time in seconds") from None
    if ts < now - tolerance:
        raise SignatureError(f"webhook-timestamp is more than {tolerance} s old")
    if ts > now + tolerance:
        raise SignatureError(f"webhook-timestamp is more than {tolerance} s in the future")
    expected = sign(secret, msg_id, ts, body).encode()
    for candidate in signatures.split():
        version, _, _value = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(candidate.encode(), expected):
            return msg_id
    raise SignatureError("no valid v1 signature in webhook-signature")
