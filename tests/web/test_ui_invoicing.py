"""From the invoice page, people set up the issuer, issue drafts and record payments."""

from __future__ import annotations

import re

from sqlalchemy import select

from invoicing import corrections, issuing
from invoicing.models import Invoice, Issuer, Payment
from tests.factories import ISSUER, csrf, make_draft, make_issuer, signed_in


def test_a_form_posted_without_its_token_is_refused(rt, client):
    signed_in(rt, client)
    draft = make_draft(rt)

    response = client.post(f"/ui/invoices/{draft}/issue", data={"csrf_token": "forged"})

    assert response.status_code == 400
    with rt.sessions() as s:
        assert s.get_one(Invoice, draft).status == "draft"


def test_a_draft_cannot_be_issued_before_the_company_is_set_up(rt, client):
    signed_in(rt, client)
    draft = make_draft(rt)

    page = client.get(f"/ui/invoices/{draft}").get_data(as_text=True)
    assert "Configura antes los datos de tu empresa" in page
    assert f"/ui/invoices/{draft}/issue" not in page


def test_settings_save_the_issuer_and_explain_a_bad_nif_next_to_the_field(rt, client):
    signed_in(rt, client)
    bad = client.post(
        "/ui/settings", data={**ISSUER, "tax_id": "A58818502", "csrf_token": csrf(client)}
    )
    assert bad.status_code == 422
    assert "no es un NIF/CIF español válido" in bad.get_data(as_text=True)  # in Spanish

    good = client.post(
        "/ui/settings", data={**ISSUER, "csrf_token": csrf(client)}, follow_redirects=True
    )
    page = good.get_data(as_text=True)
    assert "Datos guardados." in page
    assert "Rectificativas" in page  # the default series are listed
    with rt.sessions() as s:
        assert s.scalar(select(Issuer.tax_id)) == ISSUER["tax_id"]


def test_issuing_from_the_page_shows_the_number_qr_and_verifactu_legend(rt, client, verifactu_mode):
    signed_in(rt, client)
    make_issuer(rt)
    draft = make_draft(rt)

    page = client.post(
        f"/ui/invoices/{draft}/issue", data={"csrf_token": csrf(client)}, follow_redirects=True
    ).get_data(as_text=True)

    assert "Factura emitida." in page
    assert re.search(r"F\d{4}-00001", page)
    assert "Factura verificable en la sede electrónica de la AEAT" in page
    assert "Registro de alta: <strong>pendiente de enviar a la AEAT</strong>" in page
    assert f"/ui/invoices/{draft}/qr.svg" in page
    qr = client.get(f"/ui/invoices/{draft}/qr.svg")
    assert qr.mimetype == "image/svg+xml" and b"<svg" in qr.data


def test_payments_recorded_from_the_page_settle_the_invoice_and_refuse_too_much(rt, client):
    signed_in(rt, client)
    make_issuer(rt)
    draft = make_draft(rt)
    client.post(f"/ui/invoices/{draft}/issue", data={"csrf_token": csrf(client)})

    too_much = client.post(
        f"/ui/invoices/{draft}/payments",
        data={"amount": "5000,00", "csrf_token": csrf(client)},
        follow_redirects=True,
    ).get_data(as_text=True)
    assert "es más de lo que queda por cobrar de" in too_much

    client.post(
        f"/ui/invoices/{draft}/payments",
        data={"amount": "1000,00", "method": "transferencia", "csrf_token": csrf(client)},
    )
    page = client.post(
        f"/ui/invoices/{draft}/payments",
        data={"amount": "2001,41", "paid_on": "2026-11-27", "csrf_token": csrf(client)},
        follow_redirects=True,
    ).get_data(as_text=True)

    assert "Cobro registrado." in page
    assert "Cobrada" in page
    with rt.sessions() as s:
        amounts = [str(p.amount) for p in s.scalars(select(Payment).order_by(Payment.id))]
        assert amounts == ["1000.00", "2001.41"]
        assert s.get_one(Invoice, draft).status == "paid"


def issued(rt, client) -> int:
    signed_in(rt, client)
    make_issuer(rt)
    draft = make_draft(rt)
    client.post(f"/ui/invoices/{draft}/issue", data={"csrf_token": csrf(client)})
    return draft


def test_an_invoice_issued_in_error_is_cancelled_from_its_page(rt, client):
    invoice_id = issued(rt, client)
    page = client.post(
        f"/ui/invoices/{invoice_id}/cancel",
        data={"reason": "emitida por error", "csrf_token": csrf(client)},
        follow_redirects=True,
    ).get_data(as_text=True)
    assert "Factura anulada." in page and "Anulada" in page
    with rt.sessions() as s:
        assert s.get_one(Invoice, invoice_id).status == "cancelled"


def test_rectifying_from_the_page_opens_the_new_draft_that_points_at_the_original(rt, client):
    invoice_id = issued(rt, client)
    response = client.post(
        f"/ui/invoices/{invoice_id}/rectify",
        data={"invoice_type": "R4", "reason": "razón social", "csrf_token": csrf(client)},
    )
    assert response.status_code == 302
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Borrador de rectificativa creado" in page
    assert "Rectifica la factura" in page and "razón social" in page
    no_reason = client.post(
        f"/ui/invoices/{invoice_id}/rectify",
        data={"invoice_type": "R4", "reason": " ", "csrf_token": csrf(client)},
        follow_redirects=True,
    )
    assert "Motivo: di qué se corrige" in no_reason.get_data(as_text=True)  # no "reason:" key


def test_sending_from_the_page_mails_the_customer_and_lists_the_attempt(settings):
    from actions.invoicing import INVOICING_SETTINGS
    from connector.runtime import build_runtime
    from invoicing.settings import InvoicingSettings
    from tests.smtp import SENDER, smtp_server
    from web import create_app

    with smtp_server() as smtp:
        mail = InvoicingSettings(
            smtp_host="127.0.0.1", smtp_port=smtp.port, smtp_starttls=False, mail_from=SENDER
        )
        mailing = build_runtime(settings, services={INVOICING_SETTINGS: mail})
        try:
            client = create_app(runtime=mailing).test_client()
            invoice_id = issued(mailing, client)
            page = client.post(
                f"/ui/invoices/{invoice_id}/send",
                data={"csrf_token": csrf(client)},
                follow_redirects=True,
            ).get_data(as_text=True)
        finally:
            mailing.close()
        assert "Factura enviada." in page
        assert "facturas@acme.example" in page  # the attempt is listed
        [message] = smtp.inbox.messages
        assert message.rcpt_tos == ["facturas@acme.example"]


def test_a_payment_form_sent_twice_records_one_payment(rt, client):
    signed_in(rt, client)
    make_issuer(rt)
    draft = make_draft(rt)
    client.post(f"/ui/invoices/{draft}/issue", data={"csrf_token": csrf(client)})
    page = client.get(f"/ui/invoices/{draft}").get_data(as_text=True)
    [once] = re.findall(r'name="once" value="([0-9a-f]{32})"', page)[:1]

    form = {"amount": "100,00", "once": once, "csrf_token": csrf(client)}
    for _ in range(2):  # a double click
        client.post(f"/ui/invoices/{draft}/payments", data=form)

    with rt.sessions() as s:
        assert [str(p.amount) for p in s.scalars(select(Payment))] == ["100.00"]


def _refused(rt, invoice_id: int, kind: str, code: int, text: str) -> int:
    """The AEAT's answer as aeat.submit_pending stores it (tests/invoicing/test_aeat.py sends
    records to a simulated AEAT; here only the page is under test)."""
    from invoicing.models import VerifactuRecord

    with rt.sessions.begin() as s:
        record = s.scalars(
            select(VerifactuRecord).where(
                VerifactuRecord.invoice_id == invoice_id, VerifactuRecord.kind == kind
            )
        ).one()
        record.status, record.error_code, record.error_description = "rejected", code, text
        return record.id


def test_a_rejected_record_shows_the_aeat_error_and_an_admin_sends_its_correction(
    rt, client, verifactu_mode
):
    from invoicing.models import VerifactuRecord

    make_issuer(rt)
    draft = make_draft(rt)
    with rt.sessions.begin() as s:
        issuing.issue(s, draft)
    record_id = _refused(rt, draft, "alta", 4109, "El NIF no está identificado en el censo.")
    billing = client.application.test_client()
    signed_in(rt, billing, role="editor")
    page = billing.get(f"/ui/invoices/{draft}").get_data(as_text=True)
    assert "rechazado por la AEAT" in page
    assert "[4109] El NIF no está identificado en el censo." in page
    assert "Corregir y reenviar" not in page  # only admins correct records
    assert (
        billing.post(
            f"/ui/invoices/{draft}/records/{record_id}/correct", data={"csrf_token": csrf(billing)}
        ).status_code
        == 403
    )

    signed_in(rt, client)
    page = client.get(f"/ui/invoices/{draft}").get_data(as_text=True)
    assert "Corregir y reenviar" in page
    done = client.post(
        f"/ui/invoices/{draft}/records/{record_id}/correct",
        data={"csrf_token": csrf(client)},
        follow_redirects=True,
    ).get_data(as_text=True)

    assert "Corrección encadenada" in done
    assert "Registro de alta: <strong>pendiente de enviar a la AEAT</strong>" in done
    with rt.sessions() as s:
        statuses = s.execute(
            select(VerifactuRecord.status, VerifactuRecord.subsanacion).order_by(
                VerifactuRecord.sequence
            )
        ).all()
    assert [tuple(r) for r in statuses] == [("corrected", False), ("pending", True)]


def test_an_invoice_whose_cancellation_the_aeat_refused_is_not_shown_as_cancelled(
    rt, client, verifactu_mode
):
    make_issuer(rt)
    draft = make_draft(rt)
    with rt.sessions.begin() as s:
        issuing.issue(s, draft)
        corrections.cancel(s, draft, "emitida por error")
    _refused(rt, draft, "anulacion", 3002, "No existe el registro de facturación.")
    signed_in(rt, client)

    page = client.get(f"/ui/invoices/{draft}").get_data(as_text=True)

    status = re.search(r'data-testid="status">([^<]+)<', page)
    assert status is not None and status.group(1) == "Anulación rechazada por la AEAT"
    assert "Registro de anulación: <strong>rechazado por la AEAT</strong>" in page
    assert "[3002] No existe el registro de facturación." in page
