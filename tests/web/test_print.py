"""The printable invoice page and the PDF downloads (UI and API): content, auth and 404s."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime

from pypdf import PdfReader

from invoicing import issuing
from invoicing.service import CustomerData, Invoicing, LineData
from tests.factories import deal, make_api_key, make_draft, make_issuer, signed_in

WHEN = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)


def issued(rt) -> int:
    make_issuer(rt)
    draft = make_draft(rt)
    with rt.sessions.begin() as s:
        issuing.issue(s, draft, now=WHEN)
    return draft


def pdf_text(data: bytes) -> str:
    assert data.startswith(b"%PDF-")
    return " ".join(
        " ".join(page.extract_text().split()) for page in PdfReader(io.BytesIO(data)).pages
    )


def test_the_print_page_shows_the_legal_content_and_the_qr_as_inline_svg(
    rt, client, verifactu_mode
):
    invoice_id = issued(rt)
    signed_in(rt, client)

    response = client.get(f"/ui/invoices/{invoice_id}/print")

    assert response.status_code == 200 and response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    for expected in (
        "F2026-00001",
        "1 jul 2026",  # issued on 2026-07-01
        "Puente Demo SL",
        "A58818501",
        "Gran Vía 1",
        "Acme Soluciones SL",
        "B12345674",
        "Calle Mayor 1",
        "Consultoría (horas)",
        "Licencia ERP anual",
        "1.710,00\u00a0€",
        "2.480,50\u00a0€",
        "520,91\u00a0€",
        "3.001,41\u00a0€",
        "VERI*FACTU",
        "Factura verificable en la sede electrónica de la AEAT",
    ):
        assert expected in page, expected
    # The QR, inline: an <svg> element (no XML declaration inside HTML), 30–40 mm symbol.
    assert "<?xml" not in page
    svg = re.search(r'<svg [^>]*width="([\d.]+)mm"', page)
    assert svg is not None and 30 <= float(svg.group(1)) <= 50  # the symbol plus its margin
    assert "<title>QR tributario</title>" in page
    # "QR tributario:", the QR, then (VERI*FACTU mode) the legend below it.
    assert (
        page.index("QR tributario:")
        < page.index("<svg")
        < page.index("VERI*FACTU")
        < page.index("Consultoría (horas)")
    )
    assert "@media print" in page and "@page" in page
    assert "BORRADOR" not in page
    # Standalone: the application's navigation is not printed.
    assert "/ui/runs" not in page
    assert f"/ui/invoices/{invoice_id}/pdf" in page


def test_without_verifactu_the_print_page_labels_the_qr_and_claims_no_verifactu(rt, client):
    invoice_id = issued(rt)
    signed_in(rt, client)

    page = client.get(f"/ui/invoices/{invoice_id}/print").get_data(as_text=True)

    assert page.index("QR tributario:") < page.index("<svg")
    assert "VERI*FACTU" not in page and "sede electrónica" not in page


def test_a_draft_print_page_is_watermarked_and_has_no_qr(rt, client):
    make_issuer(rt)
    draft = make_draft(rt)
    signed_in(rt, client)

    page = client.get(f"/ui/invoices/{draft}/print").get_data(as_text=True)

    assert "BORRADOR — sin validez fiscal" in page
    assert "<svg" not in page and "VERI*FACTU" not in page
    assert "3.001,41\u00a0€" in page


def test_the_print_page_speaks_english_but_keeps_the_legal_legend(rt, client, verifactu_mode):
    invoice_id = issued(rt)
    signed_in(rt, client)

    page = client.get(f"/ui/invoices/{invoice_id}/print?lang=en").get_data(as_text=True)

    assert "Invoice no." in page and "€3,001.41" in page
    assert "Factura verificable en la sede electrónica de la AEAT" in page


def test_an_exempt_line_shows_its_legal_mention_on_the_print_page(rt, client):
    make_issuer(rt)
    data = deal()
    with rt.sessions.begin() as s:
        draft = (
            Invoicing(s)
            .create_draft_invoice(
                customer=CustomerData.from_json(data["customer"]),
                lines=[
                    LineData(
                        description="Curso de formación reglada",
                        quantity=1,
                        unit_price="300",
                        tax_rate=0,
                        exemption_cause="E1",
                    )
                ],
            )
            .invoice.id
        )
    signed_in(rt, client)

    page = client.get(f"/ui/invoices/{draft}/print").get_data(as_text=True)

    assert "Operación exenta por el artículo 20 de la Ley 37/1992 del IVA" in page
    assert "Exenta (art. 20 LIVA)" in page


def test_the_pdf_downloads_named_after_its_number(rt, client):
    invoice_id = issued(rt)
    signed_in(rt, client)

    response = client.get(f"/ui/invoices/{invoice_id}/pdf")

    assert response.status_code == 200 and response.mimetype == "application/pdf"
    assert response.headers["Content-Disposition"] == 'attachment; filename="F2026-00001.pdf"'
    text = pdf_text(response.data)
    assert "F2026-00001" in text and "TOTAL FACTURA 3.001,41 €" in text
    assert "QR tributario:" in text
    assert "VERI*FACTU" not in text  # the default mode keeps its records: no VERI*FACTU legend


def test_a_draft_pdf_is_named_borrador(rt, client):
    draft = make_draft(rt)
    signed_in(rt, client)

    response = client.get(f"/ui/invoices/{draft}/pdf")

    assert response.status_code == 200
    disposition = response.headers["Content-Disposition"]
    assert disposition == f'attachment; filename="borrador-{draft}.pdf"'
    assert "BORRADOR — sin validez fiscal" in pdf_text(response.data)


def test_people_who_have_not_signed_in_are_sent_to_sign_in(rt, client):
    invoice_id = issued(rt)
    for path in (f"/ui/invoices/{invoice_id}/print", f"/ui/invoices/{invoice_id}/pdf"):
        response = client.get(path)
        assert response.status_code == 302, path
        assert response.headers["Location"] == f"/ui/login?next={path}"


def test_unknown_invoices_and_other_documents_are_not_found_in_the_ui(rt, client):
    signed_in(rt, client)
    assert client.get("/ui/invoices/999/print").status_code == 404
    assert client.get("/ui/invoices/999/pdf").status_code == 404
    data = deal()
    with rt.sessions.begin() as s:
        quote = (
            Invoicing(s)
            .create_draft_invoice(
                customer=CustomerData.from_json(data["customer"]),
                lines=[LineData.from_json(line) for line in data["lines"]],
                kind="quote",
            )
            .invoice.id
        )
    assert client.get(f"/ui/invoices/{quote}/pdf").status_code == 404


def test_the_api_serves_the_pdf_to_api_keys_only(rt, client):
    invoice_id = issued(rt)
    key = make_api_key(rt)
    path = f"/api/v1/invoices/{invoice_id}/pdf"

    anonymous = client.get(path)
    assert anonymous.status_code == 401 and anonymous.json["error"] == "unauthorized"
    wrong = client.get(path, headers={"Authorization": "Bearer not-a-key"})
    assert wrong.status_code == 401

    response = client.get(path, headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    assert response.headers["Content-Disposition"] == 'attachment; filename="F2026-00001.pdf"'
    assert "TOTAL FACTURA 3.001,41 €" in pdf_text(response.data)

    missing = client.get("/api/v1/invoices/999/pdf", headers={"Authorization": f"Bearer {key}"})
    assert missing.status_code == 404
    assert missing.json == {"error": "not_found", "message": "invoice 999 does not exist"}
