"""The interface's gettext catalogs: complete in both languages, and every key the code names,
written or built from data, is in them."""

from __future__ import annotations

import re
import string
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po
from flask import Flask

from connector.accounts import ROLES
from connector.admin import SCOPES
from connector.errors import FailureClass
from connector.models import RunStatus, StepStatus
from invoicing import aeat
from invoicing.models import DocumentKind, InvoiceStatus
from web import i18n
from web.audit import CHANGES, LOOKS_ONLY
from web.ui.builder import PREFIX
from web.ui.session import NOTIFY_CHOICES

ROOT = Path(__file__).resolve().parents[2]


def texts(lang: str) -> dict[str, str]:
    with (i18n.CATALOGS / lang / "LC_MESSAGES" / "messages.po").open("rb") as source:
        catalog = read_po(source)
    assert not [m.id for m in catalog if m.id and m.fuzzy], f"fuzzy texts in {lang}"
    return {str(m.id): str(m.string) for m in catalog if m.id}


def fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def test_both_catalogs_have_every_key_with_a_text_and_the_same_placeholders():
    spanish, english = texts("es"), texts("en")

    assert len(spanish) > 600
    assert spanish.keys() == english.keys()
    assert not [k for k, v in {**spanish, **english}.items() if not v.strip()]
    assert not [k for k in spanish if fields(spanish[k]) != fields(english[k])]
    assert not [k for k in spanish if spanish[k] == k or english[k] == k]


def test_a_key_is_said_in_the_asked_language_and_spanish_stands_in_for_a_missing_one():
    assert i18n.translate("flows", "es") == "Flujos"
    assert i18n.translate("flows", "en") == "Flows"
    english = i18n.catalog("en")
    assert english.gettext("builder_title_new") == "New flow"
    # A key only Spanish has (a text added and not yet translated) is shown in Spanish.
    del english._catalog["builder_title_new"]  # type: ignore[attr-defined]
    try:
        assert i18n.translate("builder_title_new", "en") == "Nuevo flujo"
    finally:
        i18n.catalog.cache_clear()


def test_every_key_the_code_names_is_in_the_catalogs():
    """What Babel's extractor finds in the templates and views: t(), translate() and flash()."""
    method_map = [("web/templates/**.html", "jinja2"), ("web/**.py", "python")]
    keywords = {"t": None, "translate": None, "flash": None}
    named = {
        str(message)
        for _file, _line, message, _comments, _context in extract_from_dir(
            str(ROOT), method_map, keywords=keywords
        )
    }
    known = texts("es")

    assert len(named) > 350  # the extractor does read our templates and views
    assert sorted(named - known.keys()) == []


def test_the_builder_script_names_only_texts_it_is_given():
    script = (ROOT / "web" / "static" / "builder.js").read_text()
    used = set(re.findall(r"\bT\.([a-z_]+)", script))
    given = {key.removeprefix(PREFIX) for key in i18n.keys(PREFIX)}

    assert len(used) > 30
    assert sorted(used - given) == []


FAMILIES = {
    "status_": [*RunStatus, *StepStatus, *InvoiceStatus],
    "role_": ROLES,
    "role_help_": ROLES,
    "scope_": SCOPES,
    "scope_help_": SCOPES,
    "doc_kind_": list(DocumentKind),
    "class_": [*FailureClass, "stopped"],
    "notify_": NOTIFY_CHOICES,
    "error_title_": [400, 403, 404, 405, 413, 500, 503],
    "error_text_": [400, 403, 404, 405, 413, 500, 503],
    "vf_status_": list(aeat.STATUSES),
    "record_": ["alta", "anulacion"],
    "record_correct_help_": ["alta", "anulacion"],
}


@pytest.mark.parametrize("prefix", FAMILIES)
def test_every_key_built_from_data_is_in_the_catalogs(prefix):
    missing = [f"{prefix}{value}" for value in FAMILIES[prefix]]
    assert [key for key in missing if key not in texts("es")] == []


def test_every_change_the_audit_log_records_has_its_words(app: Flask):
    audited = {
        rule.endpoint
        for rule in app.url_map.iter_rules()
        if (rule.methods or set()) & CHANGES
        and rule.rule.startswith(("/ui/", "/api/v1/"))
        and rule.endpoint not in LOOKS_ONLY
        and rule.endpoint != "session.login"
    }
    known = texts("es")

    assert len(audited) > 50
    assert sorted(e for e in audited if f"audit_{e}" not in known) == []


def test_numbers_money_and_dates_are_written_as_each_language_writes_them(app: Flask):
    from datetime import UTC, date, datetime
    from decimal import Decimal

    from web import filters

    moment = datetime(2026, 7, 1, 8, 5, tzinfo=UTC)
    with app.test_request_context("/ui/invoices?lang=es"):
        app.preprocess_request()
        assert filters.money(Decimal("3001.41")) == "3.001,41\u00a0€"
        assert filters.money(Decimal("12"), "USD") == "12,00\u00a0US$"
        assert filters.number(Decimal("1.50")) == "1,50"
        assert filters.number(Decimal("2500.125")) == "2.500,125"
        assert filters.price(Decimal("95")) == "95,00"
        assert filters.price(Decimal("0.0125")) == "0,0125"
        assert filters.local_time(moment) == "1 jul 2026, 10:05:00"  # Madrid, summer
        assert filters.day(date(2026, 12, 5)) == "5 dic 2026"
    with app.test_request_context("/ui/invoices?lang=en"):
        app.preprocess_request()
        assert filters.money(Decimal("3001.41")) == "€3,001.41"
        assert filters.number(Decimal("2500.125")) == "2,500.125"
        assert filters.local_time(moment) == "1 Jul 2026, 10:05:00"
        assert filters.day(date(2026, 12, 5)) == "5 Dec 2026"


def test_a_core_refusal_names_its_fields_in_words_never_by_their_keys(app: Flask):
    from invoicing.errors import InvalidDocumentError, Said
    from web import filters

    refused = InvalidDocumentError(
        [
            ("lines.0.quantity", Said("must be more than 0", "debe ser mayor que 0")),
            ("customer.tax_id", Said("is not a NIF", "no es un NIF")),
            ("internal_thing", Said("cannot be", "no puede ser")),
        ]
    )
    with app.test_request_context("/ui/invoices?lang=es"):
        app.preprocess_request()
        assert filters.refusal(refused) == (
            "Línea 1 · Cantidad: debe ser mayor que 0; Cliente · NIF: no es un NIF; no puede ser"
        )
    with app.test_request_context("/ui/invoices?lang=en"):
        app.preprocess_request()
        assert filters.refusal(refused).startswith("Line 1 · Quantity: must be more than 0;")
