"""The invoicing core's own settings, read from the environment in one place.

The engine's settings (database, Redis, webhooks...) are `connector/settings.py`; what only
the invoicing side needs (the Facturae signing certificate, outgoing mail, the VERI*FACTU
endpoint, the XSD folder) is read here. The runtime gets these as the `INVOICING_SETTINGS`
service (actions/invoicing.py), built with `InvoicingSettings.from_env()` unless the runtime
is given its own (`build_runtime(..., services={INVOICING_SETTINGS: ...})`, as tests do).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

# The official XSDs shipped with the project (standards/SOURCES.md).
DEFAULT_STANDARDS = Path(__file__).resolve().parents[1] / "standards"


@dataclass(frozen=True)
class InvoicingSettings:
    """Invoicing configuration; build it with `InvoicingSettings.from_env()`."""

    # A PKCS#12 certificate to sign Facturae files with (XAdES-EPES); unsigned without one.
    facturae_p12: Path | None = None
    facturae_p12_password: str | None = None
    # Outgoing mail for sending invoices; no host means sending is refused with a clear error.
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = True
    mail_from: str | None = None
    # VERI*FACTU submission: the AEAT endpoint and the client certificate (PEM) to present.
    verifactu_url: str | None = None
    verifactu_cert: Path | None = None
    verifactu_key: Path | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> InvoicingSettings:
        """Build settings from the `PUENTE_FACTURAE_*`, `PUENTE_SMTP_*`, `PUENTE_MAIL_FROM`
        and `PUENTE_VERIFACTU_*` variables."""
        env = os.environ if environ is None else environ
        return cls(
            facturae_p12=_path(env.get("PUENTE_FACTURAE_P12")),
            facturae_p12_password=env.get("PUENTE_FACTURAE_P12_PASSWORD") or None,
            smtp_host=env.get("PUENTE_SMTP_HOST") or None,
            smtp_port=int(env.get("PUENTE_SMTP_PORT", 587)),
            smtp_user=env.get("PUENTE_SMTP_USER") or None,
            smtp_password=env.get("PUENTE_SMTP_PASSWORD") or None,
            smtp_starttls=env.get("PUENTE_SMTP_STARTTLS", "true").lower()
            not in ("0", "false", "no"),
            mail_from=env.get("PUENTE_MAIL_FROM") or None,
            verifactu_url=env.get("PUENTE_VERIFACTU_URL") or None,
            verifactu_cert=_path(env.get("PUENTE_VERIFACTU_CERT")),
            verifactu_key=_path(env.get("PUENTE_VERIFACTU_KEY")),
        )

    def with_(self, **changes: object) -> InvoicingSettings:
        """Return a copy with some fields changed (tests)."""
        return replace(self, **changes)  # type: ignore[arg-type]


def standards_root(environ: Mapping[str, str] | None = None) -> Path:
    """The `standards` folder holding the official XSDs: PUENTE_STANDARDS_DIR, else the one
    shipped with the project. Read when a schema is needed (invoicing.xsd), not with the rest
    of the settings: validating a document needs no runtime."""
    env = os.environ if environ is None else environ
    override = env.get("PUENTE_STANDARDS_DIR")
    return Path(override) if override else DEFAULT_STANDARDS


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None
