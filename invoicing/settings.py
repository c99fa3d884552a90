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
from urllib.parse import urlsplit

from invoicing.errors import InvoicingError, Said

# The official XSDs shipped with the project (standards/SOURCES.md).
DEFAULT_STANDARDS = Path(__file__).resolve().parents[1] / "standards"

# The two ways the regulation (RD 1007/2023, Orden HAC/1177/2024) lets an invoicing system work:
# VERI*FACTU sends every record to the AEAT as it is made; "no VERI*FACTU" keeps the records,
# chained and signed, with an event log, for the AEAT to ask for.
VERIFACTU = "verifactu"
NO_VERIFACTU = "no_verifactu"
MODES = (VERIFACTU, NO_VERIFACTU)
# Our SistemaInformatico: the system's name and two-character id (IdSistemaInformatico).
SYSTEM_NAME = "Puente"
SYSTEM_ID = "PU"
SYSTEM_VERSION = "0.1.0"


class SettingsError(InvoicingError, ValueError):
    """A setting that cannot work as given: the message says which and how to fix it."""


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
    # VERI*FACTU or not: explicit, "no VERI*FACTU" unless PUENTE_VERIFACTU_MODE says otherwise.
    verifactu_mode: str = NO_VERIFACTU
    # Who produced this invoicing system (SistemaInformatico/NombreRazon and NIF) and the number
    # of this installation. Required in VERI*FACTU mode; unset without it, the business running
    # its own installation stands as its producer (the records are kept, not sent).
    sif_producer_name: str | None = None
    sif_producer_nif: str | None = None
    sif_installation: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> InvoicingSettings:
        """Build settings from the `PUENTE_FACTURAE_*`, `PUENTE_SMTP_*`, `PUENTE_MAIL_FROM`
        `PUENTE_VERIFACTU_*` and `PUENTE_SIF_*` variables."""
        env = os.environ if environ is None else environ
        settings = cls(
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
            verifactu_mode=(env.get("PUENTE_VERIFACTU_MODE") or NO_VERIFACTU).strip().lower(),
            sif_producer_name=env.get("PUENTE_SIF_PRODUCER_NAME") or None,
            sif_producer_nif=(env.get("PUENTE_SIF_PRODUCER_NIF") or "").strip().upper() or None,
            sif_installation=env.get("PUENTE_SIF_INSTALLATION") or None,
        )
        settings.check()
        return settings

    def check(self) -> None:
        """Refuse a mode that cannot work: VERI*FACTU without an endpoint queues forever."""
        if self.verifactu_mode not in MODES:
            raise SettingsError(
                Said(
                    f"PUENTE_VERIFACTU_MODE={self.verifactu_mode!r} is not a mode: use "
                    "'verifactu' or 'no_verifactu'",
                    f"PUENTE_VERIFACTU_MODE={self.verifactu_mode!r} no es un modo: usa "
                    "'verifactu' (se envía cada registro a la AEAT) o 'no_verifactu' (se "
                    "conservan firmados).",
                )
            )
        if self.verifactu_mode == VERIFACTU and not self.verifactu_url:
            raise SettingsError(
                Said(
                    "VERI*FACTU mode needs PUENTE_VERIFACTU_URL (the AEAT endpoint) and its "
                    "certificate: without them records would never be sent",
                    "El modo VERI*FACTU necesita PUENTE_VERIFACTU_URL (la dirección de la AEAT) "
                    "y su certificado: sin ellos los registros no se enviarían nunca.",
                )
            )
        if self.verifactu_mode == VERIFACTU and self.sif_producer_nif is None:
            raise SettingsError(
                Said(
                    "VERI*FACTU mode needs PUENTE_SIF_PRODUCER_NAME and PUENTE_SIF_PRODUCER_NIF: "
                    "the records sent to the AEAT name who produced this invoicing system",
                    "El modo VERI*FACTU necesita PUENTE_SIF_PRODUCER_NAME y "
                    "PUENTE_SIF_PRODUCER_NIF: los registros que recibe la AEAT dicen quién "
                    "produjo este sistema de facturación (quien lo instala y mantiene).",
                )
            )
        if (self.sif_producer_name is None) != (self.sif_producer_nif is None):
            raise SettingsError(
                Said(
                    "set both PUENTE_SIF_PRODUCER_NAME and PUENTE_SIF_PRODUCER_NIF, or neither",
                    "Indica a la vez PUENTE_SIF_PRODUCER_NAME y PUENTE_SIF_PRODUCER_NIF (nombre "
                    "y NIF del productor del sistema), o ninguno.",
                )
            )

    @property
    def sends_records(self) -> bool:
        """VERI*FACTU: every record goes to the AEAT."""
        return self.verifactu_mode == VERIFACTU

    @property
    def aeat_tests(self) -> bool:
        """The records go to the AEAT's test environment (or a local one), not production:
        their QR points at the test portal."""
        if not self.sends_records or not self.verifactu_url:
            return False
        host = (urlsplit(self.verifactu_url).hostname or "").lower()
        return not host.endswith("agenciatributaria.gob.es")

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
