"""Issuing: correlative numbers without gaps and one unbroken VERI*FACTU chain, even in a race."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from lxml import etree
from sqlalchemy import func, select

from invoicing import chain, issuing, verifactu
from invoicing.errors import DocumentStateError, InvalidDocumentError
from invoicing.issuing import IssuerData, configure_issuer
from invoicing.models import Invoice, OutboxEvent, Series, VerifactuRecord
from tests.factories import ISSUER, csrf, make_draft, make_issuer, signed_in

SUMMER = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)


def issue(rt, invoice_id: int, **kwargs) -> Invoice:
    with rt.sessions.begin() as s:
        return issuing.issue(s, invoice_id, **kwargs).invoice


def records(rt) -> list[VerifactuRecord]:
    with rt.sessions() as s:
        return list(s.scalars(select(VerifactuRecord).order_by(VerifactuRecord.sequence)))


def test_issuing_needs_the_issuer_configured_first(rt):
    draft = make_draft(rt)
    with pytest.raises(DocumentStateError, match="no issuer is configured"):
        issue(rt, draft)


def test_the_issuer_needs_a_valid_nif_and_gets_three_default_series(rt):
    with rt.sessions.begin() as s, pytest.raises(InvalidDocumentError) as exc:
        configure_issuer(s, IssuerData(**{**ISSUER, "tax_id": "A58818502"}))
    assert exc.value.errors[0][0] == "tax_id"
    make_issuer(rt)
    with rt.sessions() as s:
        assert sorted(s.scalars(select(Series.code))) == ["F", "R", "S"]


def test_issuing_numbers_dates_and_chains_the_invoice(rt):
    make_issuer(rt)
    first, second = make_draft(rt), make_draft(rt)

    one = issue(rt, first, now=SUMMER)
    two = issue(rt, second, now=SUMMER)

    assert (one.number, one.serial, one.issue_date) == ("F2026-00001", 1, date(2026, 7, 1))
    assert two.number == "F2026-00002"
    assert one.status == "issued" and one.issued_at == SUMMER
    a, b = records(rt)
    assert (a.sequence, a.previous_huella, a.num_serie) == (1, None, "F2026-00001")
    assert (b.sequence, b.previous_huella) == (2, a.huella)
    assert len(a.huella) == 64 and a.huella == a.huella.upper()
    assert "<sum1:PrimerRegistro>S</sum1:PrimerRegistro>" in a.xml
    assert f"<sum1:Huella>{a.huella}</sum1:Huella>" in b.xml  # RegistroAnterior
    assert "2026-07-01T12:00:00+02:00" in a.xml  # generation time in Madrid, summer offset


def test_an_issued_invoice_s_record_validates_against_the_aeat_schema(rt):
    make_issuer(rt)
    issue(rt, make_draft(rt))
    invoice_id = issue(rt, make_draft(rt)).id

    with rt.sessions() as s:
        document = chain.document_for(s, s.get_one(Invoice, invoice_id))

    verifactu.validate(document)
    root = etree.fromstring(document)
    assert root.tag.endswith("RegFactuSistemaFacturacion")


def test_the_huella_stored_is_the_one_the_aeat_rules_give(rt):
    make_issuer(rt)
    issue(rt, make_draft(rt), now=SUMMER)
    [record] = records(rt)
    # Recompute from the stored fields with the AEAT's rule, independently of the XML.
    text = (
        f"IDEmisorFactura={ISSUER['tax_id']}&NumSerieFactura=F2026-00001"
        "&FechaExpedicionFactura=01-07-2026&TipoFactura=F1&CuotaTotal=520.91"
        "&ImporteTotal=3001.41&Huella=&FechaHoraHusoGenRegistro=2026-07-01T12:00:00+02:00"
    )
    import hashlib

    assert record.huella == hashlib.sha256(text.encode()).hexdigest().upper()


def test_issuing_twice_changes_nothing(rt):
    make_issuer(rt)
    draft = make_draft(rt)
    first = issue(rt, draft)
    with rt.sessions.begin() as s:
        again = issuing.issue(s, draft)
        assert again.issued_now is False
        assert again.invoice.number == first.number
    assert len(records(rt)) == 1


def test_numbers_follow_dates_within_a_series(rt):
    make_issuer(rt)
    issue(rt, make_draft(rt), now=SUMMER)
    draft = make_draft(rt)
    with pytest.raises(InvalidDocumentError, match="numbers must follow dates"):
        issue(rt, draft, issue_date=date(2026, 6, 30), now=SUMMER)
    with pytest.raises(InvalidDocumentError, match="in the future"):
        issue(rt, draft, issue_date=date(2026, 7, 2), now=SUMMER)


def test_each_year_starts_its_own_numbering(rt):
    make_issuer(rt)
    old = issue(rt, make_draft(rt), now=datetime(2025, 12, 31, 12, tzinfo=UTC))
    new = issue(rt, make_draft(rt), now=datetime(2026, 1, 1, 12, tzinfo=UTC))
    assert (old.number, new.number) == ("F2025-00001", "F2026-00001")


def test_a_rolled_back_issue_gives_its_number_back(rt):
    make_issuer(rt)
    draft = make_draft(rt)
    with rt.sessions() as s, s.begin():
        assert issuing.issue(s, draft).invoice.number.endswith("00001")
        s.rollback()
    assert issue(rt, make_draft(rt)).number.endswith("00001")
    assert len(records(rt)) == 1


def test_issuing_writes_the_invoice_issued_event_in_the_same_transaction(rt):
    make_issuer(rt)
    invoice = issue(rt, make_draft(rt))
    with rt.sessions() as s:
        topics = list(s.scalars(select(OutboxEvent.topic).order_by(OutboxEvent.id)))
        issued = s.scalar(select(OutboxEvent).where(OutboxEvent.topic == "invoice.issued"))
    assert topics == ["customer.created", "invoice.drafted", "invoice.issued"]
    assert issued.payload["number"] == invoice.number
    assert issued.payload["total"] == "3001.41"


def test_parallel_issues_get_every_number_once_and_one_unbroken_chain(rt):
    make_issuer(rt)
    drafts = [make_draft(rt) for _ in range(10)]
    barrier = threading.Barrier(len(drafts), timeout=30)
    numbers: list[str] = []
    errors: list[BaseException] = []

    def work(invoice_id: int) -> None:
        try:
            barrier.wait()
            numbers.append(issue(rt, invoice_id).number)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(d,)) for d in drafts]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    assert errors == []
    year = datetime.now(UTC).year
    assert sorted(numbers) == [f"F{year}-{n:05d}" for n in range(1, 11)]
    chained = records(rt)
    assert [r.sequence for r in chained] == list(range(1, 11))
    assert [r.previous_huella for r in chained] == [None] + [r.huella for r in chained[:-1]]
    with rt.sessions() as s:
        assert (
            s.scalar(select(func.count()).select_from(Invoice).where(Invoice.status == "issued"))
            == 10
        )


def test_a_record_waiting_for_the_chain_is_timed_when_it_joins_it(rt):
    """An issue that waits for another's chain lock is timed after it: never earlier than a
    record chained before it (the AEAT reads FechaHoraHusoGenRegistro in the chain's order)."""
    make_issuer(rt)
    invoice_id = make_draft(rt)
    done: list[Invoice] = []
    holder = rt.sessions()
    holder.begin()
    issuing.default_issuer(holder, lock=True)  # another issue holds the chain
    waiting = threading.Thread(target=lambda: done.append(issue(rt, invoice_id)))
    waiting.start()
    waiting.join(timeout=0.5)  # it starts and waits for the lock
    released_at = datetime.now(UTC)
    holder.commit()
    holder.close()
    waiting.join(timeout=30)

    assert len(done) == 1
    [record] = records(rt)
    assert record.generated_at >= released_at
    assert done[0].issued_at == record.generated_at


def test_totals_in_the_record_match_the_invoice(rt):
    make_issuer(rt)
    invoice = issue(rt, make_draft(rt))
    [record] = records(rt)
    assert (record.cuota_total, record.importe_total) == (invoice.tax_total, invoice.total)
    assert record.importe_total == Decimal("3001.41")


def test_a_new_draft_announces_itself_with_its_customer_total_and_deal(rt):
    draft = make_draft(rt, deal_id="D-77")
    with rt.sessions() as s:
        event = s.scalar(select(OutboxEvent).where(OutboxEvent.topic == "invoice.drafted"))
        invoice = s.get_one(Invoice, draft)
    assert event.payload == {
        "invoice_id": draft,
        "customer_id": invoice.customer_id,
        "total": "3001.41",
        "external_ref": "D-77",
        "source": "test",
    }


@pytest.mark.parametrize("kind", ["quote", "order", "delivery_note"])
def test_a_quote_order_or_delivery_note_is_never_numbered_as_an_invoice(rt, client, kind):
    make_issuer(rt)
    document_id = make_draft(rt, kind=kind)

    with pytest.raises(DocumentStateError, match="not an invoice"):
        issue(rt, document_id)
    # Nor through the UI's button, which calls the same core.
    signed_in(rt, client)
    client.post(f"/ui/invoices/{document_id}/issue", data={"csrf_token": csrf(client)})

    with rt.sessions() as s:
        document = s.get_one(Invoice, document_id)
        assert (document.status, document.number) == ("draft", None)
        assert s.scalar(select(func.count()).select_from(VerifactuRecord)) == 0


@pytest.mark.parametrize(
    ("changes", "field", "spanish"),
    [
        ({"country": "España"}, "country", "no es un código de país"),
        ({"postal_code": "99013"}, "postal_code", "no es un código postal español"),
        ({"postal_code": "2801"}, "postal_code", "cinco cifras"),
        ({"country": "PT", "postal_code": "28013"}, "postal_code", "de Portugal"),
        ({"email": "facturas.puente.es"}, "email", "no es un correo electrónico"),
        ({"email": "facturas@puente.es\r\n"}, "email", "salto de línea"),
        ({"iban": "ES91 2100 0418 4502 0005 1333"}, "iban", "cifras de control"),
        ({"iban": "ES91 2100 0418 4502 0005"}, "iban", "tiene 24 caracteres"),
        ({"tax_id": "B1234567X"}, "tax_id", "no es un NIF/CIF español válido"),
    ],
)
def test_the_issuer_s_data_is_checked_in_the_core_in_english_and_spanish(
    rt, changes, field, spanish
):
    with rt.sessions.begin() as s, pytest.raises(InvalidDocumentError) as refused:
        configure_issuer(s, IssuerData(**{**ISSUER, **changes}))

    [(path, message)] = refused.value.errors
    assert path == field
    assert spanish in message.es and message.es != str(message)


def test_a_right_iban_and_country_are_kept_tidy(rt):
    with rt.sessions.begin() as s:
        issuer = configure_issuer(
            s,
            IssuerData(
                **{**ISSUER, "country": "es", "iban": "es91 2100 0418 4502 0005 1332"},
                email=" facturas@puente.es ",
            ),
        )
        assert (issuer.country, issuer.iban, issuer.email) == (
            "ES",
            "ES9121000418450200051332",
            "facturas@puente.es",
        )


def test_a_complete_invoice_needs_the_customer_s_address_before_it_is_issued(rt):
    """Art. 6.1.e RD 1619/2012: a complete invoice states the addressee's domicile."""
    make_issuer(rt)
    nameless = {"name": "Sin Señas SL", "tax_id": "B87654323", "address": {"street": " "}}
    draft = make_draft(rt, customer=nameless)

    with pytest.raises(InvalidDocumentError) as refused:
        issue(rt, draft)

    assert [path for path, _ in refused.value.errors] == [
        "customer.street",
        "customer.postal_code",
        "customer.city",
    ]
    [(_, street), _, (_, city)] = refused.value.errors
    assert "Sin Señas SL has no street" in street
    assert street.es.startswith("Una factura completa lleva la dirección del cliente: falta")
    assert "falta la población de Sin Señas SL" in city.es
    with rt.sessions() as s:
        assert s.get_one(Invoice, draft).number is None  # nothing numbered, nothing chained
    assert records(rt) == []


def test_a_simplified_invoice_or_a_foreign_customer_without_postal_code_is_issued(rt):
    make_issuer(rt)
    coffee = [{"description": "Café", "quantity": 2, "unit_price": "1.50", "tax_rate": 10}]
    walk_in = make_draft(
        rt, customer={"name": "Cliente de mostrador", "tax_id": "12345678Z"}, lines=coffee
    )
    with rt.sessions.begin() as s:
        s.get_one(Invoice, walk_in).invoice_type = "F2"
    dublin = {
        "name": "Emerald Ltd",
        "tax_id": "IE6388047V",
        "address": {"street": "1 Main Street", "city": "Ballymore", "country": "IE"},
    }
    abroad = make_draft(rt, customer=dublin)

    assert issue(rt, walk_in).number is not None
    assert issue(rt, abroad).number is not None


CANARIAS = {
    "name": "Atlántica Canarias SL",
    "tax_id": "B87654323",
    "address": {"street": "Calle Triana 10", "postal_code": "35002", "city": "Las Palmas"},
}


def test_a_customer_in_canarias_is_never_charged_iva(rt):
    make_issuer(rt)
    charged = make_draft(rt, customer=CANARIAS)  # the sample deal's lines carry 21 % IVA

    with pytest.raises(InvalidDocumentError) as refused:
        issue(rt, charged)

    [(path, message)] = refused.value.errors
    assert path == "lines" and "is in Canarias, outside the IVA" in message
    assert "fuera del ámbito del IVA: no se le puede cobrar IVA" in message.es
    exported = [
        {"description": "Sillas", "quantity": 4, "unit_price": "80", "tax_rate": 0,
         "exemption_cause": "E2"},
    ]  # fmt: skip
    assert issue(rt, make_draft(rt, customer=CANARIAS, lines=exported)).number is not None


@pytest.mark.parametrize(("postal_code", "where"), [("38001", "Canarias"), ("51001", "Ceuta")])
def test_an_issuer_outside_the_iva_is_told_igic_and_ipsi_invoices_are_not_made(
    rt, postal_code, where
):
    with rt.sessions.begin() as s:
        configure_issuer(s, IssuerData(**{**ISSUER, "postal_code": postal_code}))
    draft = make_draft(rt)

    with pytest.raises(DocumentStateError) as refused:
        issue(rt, draft)

    assert f"the issuer is in {where}" in str(refused.value)
    assert "Puente todavía no hace facturas con IGIC ni IPSI" in refused.value.args[0].es
    assert records(rt) == []


def test_a_simplified_invoice_above_400_euros_needs_the_art_4_2_setting(rt):
    from dataclasses import replace as changed

    from invoicing.issuing import IssuerData, configure_issuer
    from invoicing.service import Invoicing, LineData
    from tests.factories import ACME, ISSUER

    make_issuer(rt)
    with rt.sessions.begin() as s:
        draft = (
            Invoicing(s)
            .create_draft_invoice(
                customer=ACME,
                invoice_type="F2",
                lines=[
                    LineData(
                        description="Cena de empresa", quantity=1, unit_price="400", tax_rate=10
                    )
                ],
            )
            .invoice.id
        )
    with pytest.raises(InvalidDocumentError) as refused, rt.sessions.begin() as s:
        issuing.issue(s, draft)
    [(field, message)] = refused.value.errors
    assert field == "invoice_type" and "440.00 €" in message.es and "art. 4.2" in message.es

    with rt.sessions.begin() as s:
        configure_issuer(s, changed(IssuerData(**ISSUER), simplified_art_4_2=True))
    with rt.sessions.begin() as s:
        assert issuing.issue(s, draft).invoice.number == f"S{issuing.today().year}-00001"
