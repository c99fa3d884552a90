"""Encrypt stored secrets (webhook secrets, CRM credentials) with a key from the app secret.

The key can be rotated: the box encrypts with the newest key and still decrypts with the old
ones (`PUENTE_OLD_SECRET_KEYS`) until `python -m web.cli rotate-secret-key` has re-encrypted
everything stored (`reencrypt_all`).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Iterable
from typing import Protocol

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import Column, MetaData, Table, select, update
from sqlalchemy.orm import Session

# Columns holding what a SecretBox encrypted end in one of these: rotation finds them by name.
SEALED_SUFFIXES = ("_encrypted", "_sealed")


def _fernet(secret_key: str) -> Fernet:
    digest = hashlib.sha256(b"puente/secrets/v1:" + secret_key.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


class SecretBox:
    """Symmetric encryption for secrets at rest (Fernet: AES-128-CBC + HMAC-SHA256).

    `secret_key` encrypts; it and `old_keys` decrypt (new first, as MultiFernet tries them).
    """

    def __init__(self, secret_key: str, old_keys: Iterable[str] = ()) -> None:
        keys = [secret_key, *(k for k in old_keys if k and k != secret_key)]
        self._fernet = MultiFernet([_fernet(k) for k in keys])
        self.key_count = len(keys)

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str, ttl: int | None = None) -> str:
        """The secret; with `ttl`, only when it was encrypted less than `ttl` seconds ago."""
        try:
            return self._fernet.decrypt(token.encode(), ttl).decode()
        except InvalidToken:
            raise ValueError(
                "a stored secret cannot be decrypted: PUENTE_SECRET_KEY differs from the key it "
                "was encrypted with (keep the previous key in PUENTE_OLD_SECRET_KEYS until "
                "`python -m web.cli rotate-secret-key` has run) / un secreto guardado no se "
                "puede descifrar: PUENTE_SECRET_KEY no es la clave con la que se cifró (deja la "
                "anterior en PUENTE_OLD_SECRET_KEYS hasta ejecutar rotate-secret-key)"
            ) from None

    def rotate(self, token: str) -> str:
        """The same secret encrypted with the newest key (ValueError when no key opens it)."""
        try:
            return self._fernet.rotate(token.encode()).decode()
        except InvalidToken:
            raise ValueError(
                "a stored secret cannot be decrypted with PUENTE_SECRET_KEY nor any key in "
                "PUENTE_OLD_SECRET_KEYS / un secreto guardado no se puede descifrar con "
                "PUENTE_SECRET_KEY ni con ninguna clave de PUENTE_OLD_SECRET_KEYS"
            ) from None

    @classmethod
    def for_settings(cls, settings: _KeySettings) -> SecretBox:
        """The box for an installation: its key, and its previous keys while rotating."""
        return cls(settings.secret_key, settings.old_secret_keys)


class _KeySettings(Protocol):  # connector.settings.Settings
    @property
    def secret_key(self) -> str: ...

    @property
    def old_secret_keys(self) -> tuple[str, ...]: ...


def sealed_columns(metadata: MetaData) -> list[tuple[Table, Column[str]]]:
    """Every column of `metadata` that holds encrypted text, by the SEALED_SUFFIXES names."""
    return [
        (table, column)
        for table in metadata.sorted_tables
        for column in table.columns
        if column.name.endswith(SEALED_SUFFIXES)
    ]


def reencrypt_all(s: Session, box: SecretBox, metadata: MetaData) -> dict[str, int]:
    """Re-encrypt every stored secret with the box's newest key; count them per column.

    Run it in one transaction: a failure (a value no key opens) leaves everything as it was.
    """
    counts: dict[str, int] = {}
    for table, column in sealed_columns(metadata):
        [key] = table.primary_key.columns
        rows = s.execute(select(key, column).where(column.is_not(None))).all()
        for ident, token in rows:
            s.execute(update(table).where(key == ident).values({column.name: box.rotate(token)}))
        counts[f"{table.name}.{column.name}"] = len(rows)
    return counts


def new_webhook_secret() -> str:
    """A Standard Webhooks secret: 'whsec_' + base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def new_token() -> str:
    return secrets.token_urlsafe(24)
