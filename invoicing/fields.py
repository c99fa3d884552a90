"""The issuer's and customers' fields checked as the documents they go on need them: an ISO
3166-1 country code, a postal code of that country, an e-mail address, an IBAN with a right
check number. Each problem is said in English and in Spanish (invoicing.errors.Said).

Country names come from pycountry (ISO 3166-1 and its translations), the IBAN lengths from
the SWIFT IBAN registry.
"""

from __future__ import annotations

import gettext
import re
from functools import cache

import pycountry

from invoicing.errors import Said

# Spain's 52 provinces: a postal code starts with the province's number, 01 to 52.
_ES_POSTAL = re.compile(r"^(0[1-9]|[1-4]\d|5[0-2])\d{3}$")
_POSTAL = {
    "ES": _ES_POSTAL,
    "PT": re.compile(r"^\d{4}-\d{3}$"),
    "FR": re.compile(r"^\d{5}$"),
    "DE": re.compile(r"^\d{5}$"),
    "IT": re.compile(r"^\d{5}$"),
    "AD": re.compile(r"^AD\d{3}$"),
}
_POSTAL_ANY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 -]{1,9}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# CR and LF (which could add headers to a mail), NUL and the other C0 and C1 control characters.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# IBAN lengths of the SEPA countries and the neighbours most invoices go to (SWIFT registry).
IBAN_LENGTHS = {
    "AD": 24, "AT": 20, "BE": 16, "BG": 22, "CH": 21, "CY": 28, "CZ": 24, "DE": 22, "DK": 18,
    "EE": 20, "ES": 24, "FI": 18, "FR": 27, "GB": 22, "GI": 23, "GR": 27, "HR": 21, "HU": 28,
    "IE": 22, "IS": 26, "IT": 27, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MT": 31,
    "NL": 18, "NO": 15, "PL": 28, "PT": 25, "RO": 24, "SE": 24, "SI": 19, "SK": 24, "SM": 27,
}  # fmt: skip


# The province of a Spanish postal code, by its first two digits (the INE province codes).
PROVINCES = {
    "01": "Araba/Álava", "02": "Albacete", "03": "Alicante", "04": "Almería", "05": "Ávila",
    "06": "Badajoz", "07": "Illes Balears", "08": "Barcelona", "09": "Burgos", "10": "Cáceres",
    "11": "Cádiz", "12": "Castellón", "13": "Ciudad Real", "14": "Córdoba", "15": "A Coruña",
    "16": "Cuenca", "17": "Girona", "18": "Granada", "19": "Guadalajara", "20": "Gipuzkoa",
    "21": "Huelva", "22": "Huesca", "23": "Jaén", "24": "León", "25": "Lleida",
    "26": "La Rioja", "27": "Lugo", "28": "Madrid", "29": "Málaga", "30": "Murcia",
    "31": "Navarra", "32": "Ourense", "33": "Asturias", "34": "Palencia", "35": "Las Palmas",
    "36": "Pontevedra", "37": "Salamanca", "38": "Santa Cruz de Tenerife", "39": "Cantabria",
    "40": "Segovia", "41": "Sevilla", "42": "Soria", "43": "Tarragona", "44": "Teruel",
    "45": "Toledo", "46": "Valencia", "47": "Valladolid", "48": "Bizkaia", "49": "Zamora",
    "50": "Zaragoza", "51": "Ceuta", "52": "Melilla",
}  # fmt: skip
# An addressee's domicile as a complete invoice and Facturae state it (art. 6.1.e RD
# 1619/2012): English and Spanish names of each part.
ADDRESS_PARTS = {
    "street": ("street", "la dirección"),
    "postal_code": ("postal code", "el código postal"),
    "city": ("city", "la población"),
}


def province_of(postal_code: str | None, country: str | None = "ES") -> str | None:
    """The province a Spanish postal code belongs to; None abroad or for a wrong code."""
    code = (postal_code or "").strip()
    if (country or "ES") != "ES" or not _ES_POSTAL.match(code):
        return None
    return PROVINCES[code[:2]]


def address_missing(
    street: str | None, postal_code: str | None, city: str | None, country: str | None
) -> list[str]:
    """The parts of ADDRESS_PARTS an address lacks (a postal code only in Spain: not every
    country has them); the province is not asked for, a Spanish postal code names it."""
    given = {"street": street, "postal_code": postal_code, "city": city}
    missing = [name for name, value in given.items() if not (value or "").strip()]
    return [n for n in missing if n != "postal_code" or (country or "ES") == "ES"]


@cache
def countries(lang: str = "es") -> dict[str, str]:
    """ISO 3166-1 alpha-2 code → the country's name in `lang` ("es" or "en"), by name."""
    names = {c.alpha_2: c.name for c in pycountry.countries}
    if lang == "es":
        spanish = gettext.translation("iso3166-1", pycountry.LOCALES_DIR, languages=["es"])
        names = {code: spanish.gettext(name) for code, name in names.items()}
    return dict(sorted(names.items(), key=lambda item: item[1]))


def country_problem(code: str | None) -> Said | None:
    if code and code in countries():
        return None
    return Said(
        f"{code!r} is not a country code: use the ISO 3166-1 two letters (ES for Spain)",
        f"«{code or ''}» no es un código de país: usa las dos letras ISO 3166-1 (ES para España)",
    )


def postal_code_problem(code: str | None, country: str) -> Said | None:
    text = (code or "").strip()
    pattern = _POSTAL.get(country, _POSTAL_ANY)
    if pattern.match(text):
        return None
    if country == "ES":
        return Said(
            f"{text!r} is not a Spanish postal code: five digits starting with the province's "
            "number (01 to 52), e.g. 28013",
            f"«{text}» no es un código postal español: cinco cifras que empiezan por el número "
            "de la provincia (01 a 52), p. ej. 28013",
        )
    return Said(
        f"{text!r} is not a postal code of {country}",
        f"«{text}» no es un código postal de {countries().get(country, country)}",
    )


def has_control_character(text: str) -> bool:
    return _CONTROL.search(text) is not None


def email_problem(address: str | None) -> Said | None:
    if address is None:
        return None
    # Looked for before trimming: a line break, even at an end, is no slip of the keyboard but
    # text pasted from elsewhere or a try at adding mail headers; refused, never cut off.
    if has_control_character(address):
        return Said(
            f"{address!r} is not an e-mail address: it has a line break or another control "
            "character",
            "el correo electrónico tiene un salto de línea u otro carácter de control: "
            "escríbelo como nombre@empresa.es",
        )
    if _EMAIL.match(address.strip()):
        return None
    return Said(
        f"{address!r} is not an e-mail address: write it as name@company.com",
        f"«{address}» no es un correo electrónico: escríbelo como nombre@empresa.es",
    )


def normal_iban(iban: str) -> str:
    """The IBAN as stored: capitals, no spaces."""
    return re.sub(r"\s+", "", iban).upper()


def iban_problem(iban: str | None) -> Said | None:
    """None for a right IBAN (country, length, ISO 7064 mod 97-10 check digits)."""
    if iban is None:
        return None
    value = normal_iban(iban)
    length = IBAN_LENGTHS.get(value[:2])
    if not re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9]+", value) or length is None:
        return Said(
            f"{iban!r} is not an IBAN: two country letters, two check digits and the account "
            "(ES91 2100 0418 4502 0005 1332)",
            f"«{iban}» no es un IBAN: dos letras del país, dos cifras de control y la cuenta "
            "(ES91 2100 0418 4502 0005 1332)",
        )
    if len(value) != length:
        return Said(
            f"an IBAN of {value[:2]} has {length} characters; this one has {len(value)}",
            f"un IBAN de {value[:2]} tiene {length} caracteres; este tiene {len(value)}",
        )
    digits = "".join(str(int(ch, 36)) for ch in value[4:] + value[:4])
    if int(digits) % 97 != 1:
        return Said(
            f"{iban!r} has a wrong check number: a digit is mistyped",
            f"«{iban}» tiene mal las cifras de control: alguna cifra está mal escrita",
        )
    return None


def customer_problems(
    country: str, email: str | None, postal_code: str | None
) -> list[tuple[str, str]]:
    """What the core refuses in a customer's contact data, whoever sends it (API, CRM, UI):
    an ISO 3166-1 country, a postal code of that country's form, a well-formed e-mail."""
    problems: list[tuple[str, str]] = []
    if (problem := country_problem(country)) is not None:
        problems.append(("address.country", problem))
    elif (postal_code or "").strip() and (
        problem := postal_code_problem(postal_code, country)
    ) is not None:
        problems.append(("address.postal_code", problem))
    if (problem := email_problem(email or None)) is not None:
        problems.append(("email", problem))
    return problems
