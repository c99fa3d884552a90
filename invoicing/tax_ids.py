"""Validate and normalize customers' tax ids: Spanish NIF/CIF/NIE, EU VAT numbers, others."""

from __future__ import annotations

from dataclasses import dataclass

from stdnum import exceptions as stdnum_errors
from stdnum.es import cif, dni, nie, nif
from stdnum.eu import vat

from invoicing.errors import Said
from invoicing.fields import countries

EU_COUNTRIES = frozenset(
    [
        "AT",
        "BE",
        "BG",
        "CY",
        "CZ",
        "DE",
        "DK",
        "EE",
        "EL",
        "ES",
        "FI",
        "FR",
        "GR",
        "HR",
        "HU",
        "IE",
        "IT",
        "LT",
        "LU",
        "LV",
        "MT",
        "NL",
        "PL",
        "PT",
        "RO",
        "SE",
        "SI",
        "SK",
        "XI",
    ]
)


class TaxIdError(ValueError):
    """A tax id that fails validation; the message says why and how to fix it."""


@dataclass(frozen=True)
class TaxId:
    value: str  # normalized: no spaces or dashes, upper case; Spanish ids without "ES"
    country: str
    kind: str  # "NIF" (DNI), "NIE", "CIF", "VAT" (EU) or "OTHER"


def parse_tax_id(raw: str, country: str | None = "ES") -> TaxId:
    """Validate a tax id for `country` (ES by default) and return it normalized."""
    country = (country or "ES").upper()
    compact = "".join(ch for ch in raw if ch.isalnum()).upper()
    if not compact:
        raise TaxIdError(
            Said("the tax id is empty", "falta el NIF/CIF: escríbelo (p. ej. B12345674)")
        )
    # An EU VAT number names its own state: "ES…" is Spanish whatever the address says.
    if country in EU_COUNTRIES and compact.startswith("ES") and len(compact) == 11:
        compact, country = compact[2:], "ES"
    if country == "ES":
        return _spanish(compact, raw)
    if country in EU_COUNTRIES:
        # Greece is "EL" in VAT numbers although its ISO code is "GR".
        prefix = "EL" if country == "GR" else country
        if country == "GR" and compact.startswith("GR"):
            compact = compact[2:]
        number = compact if compact.startswith(prefix) else prefix + compact
        try:
            return TaxId(vat.validate(number), country, "VAT")
        except stdnum_errors.ValidationError as exc:
            why = _why(exc)
            raise TaxIdError(
                Said(
                    f"{raw!r} is not a valid {country} VAT number ({why})",
                    f"«{raw}» no es un NIF-IVA válido de {countries().get(country, country)} "
                    f"({why.es}): revísalo con tu cliente",
                )
            ) from None
    if len(compact) > 30:
        raise TaxIdError(
            Said(
                f"{raw!r} is too long for a tax id (30 characters at most)",
                f"«{raw}» es demasiado largo para un número fiscal: como mucho 30 caracteres",
            )
        )
    return TaxId(compact, country, "OTHER")


def _spanish(compact: str, raw: str) -> TaxId:
    try:
        value = nif.validate(compact)
    except stdnum_errors.ValidationError as exc:
        why = _why(exc)
        raise TaxIdError(
            Said(
                f"{raw!r} is not a valid Spanish NIF/CIF/NIE ({why}); "
                "check the digits and the control letter",
                f"«{raw}» no es un NIF/CIF español válido ({why.es}): revisa sus cifras "
                "y la letra de control (p. ej. B12345674)",
            )
        ) from None
    if dni.is_valid(value):
        kind = "NIF"
    elif nie.is_valid(value):
        kind = "NIE"
    elif cif.is_valid(value):
        kind = "CIF"
    else:
        kind = "NIF"  # special NIFs (K, L, M) validated by nif but not by the others
    return TaxId(value, "ES", kind)


# Why stdnum refused a number, in English and Spanish (other reasons: stdnum's own text).
_WHY = {
    stdnum_errors.InvalidChecksum: (
        "the control digit or letter does not match",
        "la letra o cifra de control no cuadra",
    ),
    stdnum_errors.InvalidLength: ("wrong number of characters", "le sobran o le faltan caracteres"),
    stdnum_errors.InvalidFormat: ("wrong format", "el formato no es correcto"),
}


def _why(exc: stdnum_errors.ValidationError) -> Said:
    for kind, (english, spanish) in _WHY.items():
        if isinstance(exc, kind):
            return Said(english, spanish)
    return Said(str(exc), "alguna de sus partes no es válida")
