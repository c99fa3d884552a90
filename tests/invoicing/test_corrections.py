"""Corrections: anulación chains a record; rectifying invoices (R1–R5) and simplified ones (F2)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import select

from invoicing import chain, corrections, exports, facturae, verifactu
from invoicing.errors import DocumentStateError, InvalidDocumentError
from invoicing.issuing import issue
from invoicing.models import Invoice, OutboxEvent, VerifactuRecord
from invoicing.payments import record_payment
from invoicing.service import LineData
from tests.factories import make_api_key, make_draft, make_issued, make_issuer


def chain_rows(rt) -> list[VerifactuRecord]:
    with rt.sessions() as s:
        return list(s.scalars(select(VerifactuRecord).order_by(VerifactuRecord.sequence)))


def test_cancelling_chains_a_valid_anulacion_record_once(rt):
    invoice_id = make_issued(rt)
    with rt.sessions.begin() as s:
        corrections.cancel(s, invoice_id, "emitida por error")
    with rt.sessions.begin() as s:
        corrections.cancel(s, invoice_id, "otra vez")  # repeating changes nothing

    alta, anulacion = chain_rows(rt)
    assert (anulacion.kind, anulacion.sequence, anulacion.previous_huella) == (
        "anulacion",
        2,
        alta.huella,
    )
    assert anulacion.num_serie == alta.num_serie
    with rt.sessions() as s:
        invoice = s.get_one(Invoice, invoice_id)
        assert invoice.status == "cancelled" and invoice.cancelled_at is not None
        verifactu.validate(chain.document_for(s, invoice, kind="anulacion"))
        topics = list(s.scalars(select(OutboxEvent.topic)))
    assert topics.count("invoice.cancelled") == 1


def test_only_unpaid_issued_invoices_are_cancelled_and_a_reason_is_required(rt):
    invoice_id = make_issued(rt)
    draft = make_draft(rt)
    with rt.sessions.begin() as s, pytest.raises(DocumentStateError, match="draft"):
        corrections.cancel(s, draft, "x")
    with rt.sessions.begin() as s, pytest.raises(InvalidDocumentError, match="say why"):
        corrections.cancel(s, invoice_id, "  ")
    with rt.sessions.begin() as s:
        record_payment(s, invoice_id, "100", date.today())
    with rt.sessions.begin() as s, pytest.raises(DocumentStateError, match="rectifying"):
        corrections.cancel(s, invoice_id, "x")


def test_a_rectification_by_differences_gets_its_own_series_and_references_the_original(rt):
    original = make_issued(rt)
    with rt.sessions() as s:
        original_number = s.get_one(Invoice, original).number
    with rt.sessions.begin() as s:
        draft = corrections.rectify(
            s,
            original,
            invoice_type="R1",
            method="I",
            reason="descuento no aplicado",
            lines=[
                LineData(
                    description="Descuento pactado", quantity=-1, unit_price="100", tax_rate=21
                )
            ],
        ).id
    with rt.sessions.begin() as s:
        rectifying = issue(s, draft).invoice
        assert rectifying.number.startswith("R")
        assert (rectifying.base_total, rectifying.total) == (Decimal("-100.00"), Decimal("-121.00"))
        record = chain.alta_of(rectifying)
        assert "<sum1:TipoRectificativa>I</sum1:TipoRectificativa>" in record.xml
        assert f"<sum1:NumSerieFactura>{original_number}</sum1:NumSerieFactura>" in record.xml
        verifactu.validate(chain.document_for(s, rectifying))
        document = exports.facturae_xml(rectifying)
    facturae.validate(document)
    assert b"<InvoiceClass>OR</InvoiceClass>" in document
    assert b"<CorrectionMethod>02</CorrectionMethod>" in document


def test_a_rectification_by_substitution_copies_the_lines_and_states_the_replaced_amounts(rt):
    original = make_issued(rt)
    with rt.sessions.begin() as s:
        draft = corrections.rectify(
            s, original, invoice_type="R4", method="S", reason="razón social corregida"
        )
        assert [line.description for line in draft.lines] == [
            "Consultoría (horas)",
            "Licencia ERP anual",
        ]
        draft_id = draft.id
    with rt.sessions.begin() as s:
        rectifying = issue(s, draft_id).invoice
        xml = chain.alta_of(rectifying).xml
        assert "<sum1:BaseRectificada>2480.50</sum1:BaseRectificada>" in xml
        assert "<sum1:CuotaRectificada>520.91</sum1:CuotaRectificada>" in xml
        verifactu.validate(chain.document_for(s, rectifying))


def test_bad_rectifications_are_explained(rt):
    original = make_issued(rt)
    with rt.sessions.begin() as s, pytest.raises(InvalidDocumentError) as exc:
        corrections.rectify(s, original, invoice_type="R5", method="X", reason="")
    assert [path for path, _ in exc.value.errors] == ["invoice_type", "method", "reason"]
    with rt.sessions.begin() as s, pytest.raises(InvalidDocumentError, match="lines that differ"):
        corrections.rectify(s, original, invoice_type="R1", method="I", reason="x")
    draft = make_draft(rt)
    with rt.sessions.begin() as s, pytest.raises(DocumentStateError, match="only issued"):
        corrections.rectify(s, draft, invoice_type="R1", method="S", reason="x")


def test_a_simplified_invoice_has_its_own_series_and_no_recipient_in_its_record(rt):
    make_issuer(rt)
    from invoicing.service import CustomerData, Invoicing

    with rt.sessions.begin() as s:
        draft = (
            Invoicing(s)
            .create_draft_invoice(
                customer=CustomerData(name="Cliente Mostrador", tax_id="12345678Z"),
                lines=[LineData(description="Café", quantity=2, unit_price="1.50", tax_rate=10)],
                invoice_type="F2",
            )
            .invoice.id
        )
    with rt.sessions.begin() as s:
        invoice = issue(s, draft).invoice
        assert invoice.number.startswith("S")
        xml = chain.alta_of(invoice).xml
        assert "<sum1:TipoFactura>F2</sum1:TipoFactura>" in xml
        assert "Destinatarios" not in xml
        verifactu.validate(chain.document_for(s, invoice))
    with rt.sessions.begin() as s, pytest.raises(InvalidDocumentError, match="at most 3000"):
        Invoicing(s).create_draft_invoice(
            customer=CustomerData(name="Cliente Mostrador", tax_id="12345678Z"),
            lines=[LineData(description="Equipo", quantity=1, unit_price="3000", tax_rate=21)],
            invoice_type="F2",
        )


def test_the_api_cancels_and_rectifies(rt, client):
    key = make_api_key(rt)
    headers = {"Authorization": f"Bearer {key}"}
    original = make_issued(rt)

    rectified = client.post(
        f"/api/v1/invoices/{original}/rectify",
        headers=headers,
        json={
            "invoice_type": "R1",
            "method": "I",
            "reason": "precio",
            "lines": [
                {"description": "Ajuste", "quantity": -1, "unit_price": "10", "tax_rate": 21}
            ],
        },
    )
    assert rectified.status_code == 201, rectified.json
    assert (rectified.json["status"], rectified.json["rectifies"]) == ("draft", original)
    bad = client.post(
        f"/api/v1/invoices/{original}/rectify",
        headers=headers,
        json={
            "invoice_type": "R1",
            "method": "I",
            "reason": "precio",
            "lines": [{"quantity": "x"}],
        },
    )
    assert bad.status_code == 422 and bad.json["field"].startswith("lines[0]")

    no_reason = client.post(f"/api/v1/invoices/{original}/cancel", headers=headers, json={})
    assert (no_reason.status_code, no_reason.json["field"]) == (422, "reason")
    assert (
        client.get(
            f"/api/v1/invoices/{original}/verifactu-anulacion.xml", headers=headers
        ).status_code
        == 409
    )
    cancelled = client.post(
        f"/api/v1/invoices/{original}/cancel", headers=headers, json={"reason": "emitida por error"}
    )
    assert cancelled.status_code == 200 and cancelled.json["status"] == "cancelled"
    document = client.get(f"/api/v1/invoices/{original}/verifactu-anulacion.xml", headers=headers)
    assert document.status_code == 200
    verifactu.validate(document.data)


def test_a_rectification_repeated_with_its_idempotency_key_makes_one_draft(rt):
    invoice_id = make_issued(rt)
    made = []
    for _ in range(2):
        with rt.sessions.begin() as s:
            draft = corrections.rectify(
                s, invoice_id, invoice_type="R1", method="S", reason="precio", idempotency_key="r-1"
            )
            made.append(draft.id)
    assert made[0] == made[1]
    with rt.sessions() as s:
        assert len(s.scalars(select(Invoice).where(Invoice.rectifies_id == invoice_id)).all()) == 1


def test_a_rectifying_draft_of_an_invoice_cancelled_since_is_not_issued(rt):
    invoice_id = make_issued(rt)
    with rt.sessions.begin() as s:
        draft_id = corrections.rectify(
            s, invoice_id, invoice_type="R1", method="S", reason="precio"
        ).id
    with rt.sessions.begin() as s:
        corrections.cancel(s, invoice_id, "emitida por error")

    with rt.sessions.begin() as s, pytest.raises(DocumentStateError, match="was cancelled"):
        issue(s, draft_id)
    with rt.sessions() as s:
        assert s.get_one(Invoice, draft_id).number is None


def test_an_invoice_with_an_issued_rectifying_invoice_is_not_cancelled(rt):
    invoice_id = make_issued(rt)
    with rt.sessions.begin() as s:
        pending = corrections.rectify(s, invoice_id, invoice_type="R1", method="S", reason="p")
    with rt.sessions.begin() as s:
        rectifying = issue(s, pending.id).invoice.number

    with rt.sessions.begin() as s, pytest.raises(DocumentStateError) as refused:
        corrections.cancel(s, invoice_id, "emitida por error")

    assert f"has been rectified by {rectifying}" in str(refused.value)
    assert "ya tiene una rectificativa emitida" in refused.value.args[0].es
    with rt.sessions() as s:
        assert s.get_one(Invoice, invoice_id).status == "issued"
    assert [r.kind for r in chain_rows(rt)] == ["alta", "alta"]  # no anulación chained


def test_a_substitution_after_a_rectification_by_differences_replaces_the_current_state(rt):
    original = make_issued(rt)
    with rt.sessions.begin() as s:
        by_difference = corrections.rectify(
            s,
            original,
            invoice_type="R1",
            method="I",
            reason="descuento no aplicado",
            lines=[
                LineData(
                    description="Descuento pactado", quantity=-1, unit_price="100", tax_rate=21
                )
            ],
        ).id
    with rt.sessions.begin() as s:
        issue(s, by_difference)
    with rt.sessions.begin() as s:
        draft = corrections.rectify(
            s, original, invoice_type="R1", method="S", reason="se factura todo de nuevo"
        )
        # The invoice as it stands: its two lines and the difference issued since.
        assert [line.description for line in draft.lines] == [
            "Consultoría (horas)",
            "Licencia ERP anual",
            "Descuento pactado",
        ]
        assert draft.base_total == Decimal("2380.50")
        draft_id = draft.id
    with rt.sessions.begin() as s:
        substitution = issue(s, draft_id).invoice
        xml = chain.alta_of(substitution).xml
        # 2,480.50 + (-100.00) and 520.91 + (-21.00): not the first amounts.
        assert "<sum1:BaseRectificada>2380.50</sum1:BaseRectificada>" in xml
        assert "<sum1:CuotaRectificada>499.91</sum1:CuotaRectificada>" in xml
        verifactu.validate(chain.document_for(s, substitution))
