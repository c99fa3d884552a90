"""Encrypt stored secrets (webhook secrets, CRM credentials) with a key from the app secret."""

from __future__ import annotations

import base64
import hashlib
import secrets

from cryptography.fernet import Fernet, InvalidToken


class SecretBox:
    """Symmetric encryption for secrets at rest (Fernet: AES-128-CBC + HMAC-SHA256)."""

    def __init__(self, secret_key: str) -> None:
        digest = hashlib.sha256(b"puente/secrets/v1:" + secret_key.encode()).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(digest))

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise ValueError(
                "a stored secret cannot be decrypted: PUENTE_SECRET_KEY differs from the key "
                "it was encrypted with"
            ) from None


def new_webhook_secret() -> str:
    """A Standard Webhooks secret: 'whsec_' + base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def new_token() -> str:
    return secrets.token_urlsafe(24)
