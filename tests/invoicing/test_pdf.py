"""The invoice PDF: every mention of art. 6 RD 1619/2012, the VERI*FACTU QR, drafts, pages."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from PIL import Image, ImageOps
from pypdf import PdfReader
from pypdf.generic import IndirectObject

from invoicing import chain, corrections, issuing, pdf, verifactu
from invoicing.models import Customer, Invoice, InvoiceLine, InvoiceTax, Issuer, Series
from invoicing.payments import record_payment
from invoicing.service import CustomerData, Invoicing, LineData
from tests.factories import ISSUER, deal, make_draft, make_issuer

WHEN = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)  # issue date 01/07/2026 in Madrid
MM = 72 / 25.4  # points per millimetre


# --- Reading PDFs back ------------------------------------------------------------------------


def reader(data: bytes) -> PdfReader:
    assert data.startswith(b"%PDF-")
    return PdfReader(io.BytesIO(data))


def flat(text: str) -> str:
    """Text with every run of whitespace as one space (table cells wrap lines)."""
    return " ".join(text.split())


def pages_text(data: bytes) -> list[str]:
    return [flat(page.extract_text()) for page in reader(data).pages]


def image_xobjects(page: Any) -> list[str]:
    resources = page.get("/Resources") or {}
    if isinstance(resources, IndirectObject):
        resources = resources.get_object()
    xobjects = resources.get("/XObject") or {}
    return [name for name, ref in xobjects.items() if ref.get_object()["/Subtype"] == "/Image"]


def drawn_images(page: Any) -> list[tuple[float, float, float, float]]:
    """(x, y, width, height) in points of each image the page paints (from the CTM at `Do`)."""
    found: list[tuple[float, float, float, float]] = []

    def visit(operator: bytes, operands: list[Any], cm: list[float], tm: list[float]) -> None:
        if operator == b"Do":
            found.append((cm[4], cm[5], cm[0], cm[3]))

    page.extract_text(visitor_operand_before=visit)
    return found


def symbol_mm(image: Image.Image, drawn_width: float) -> float:
    """How wide the dark QR symbol prints, without its white quiet zone."""
    box = ImageOps.invert(image.convert("L")).getbbox()
    assert box is not None
    return (box[2] - box[0]) / image.width * drawn_width / MM


# --- Making invoices --------------------------------------------------------------------------


def issue(rt, draft: int) -> None:
    with rt.sessions.begin() as s:
        issuing.issue(s, draft, now=WHEN)


def render(rt, invoice_id: int) -> tuple[bytes, dict[str, Any]]:
    """The PDF of a stored invoice, and the facts to look for in it."""
    with rt.sessions() as s:
        invoice = s.get_one(Invoice, invoice_id)
        facts = {
            "number": invoice.number,
            "total": pdf.money(invoice.total),
            "qr_url": chain.qr_url_of(invoice) if invoice.number else None,
            "lines": [line.description for line in invoice.lines],
        }
        return pdf.pdf_of(invoice), facts


def issued(rt, **changes: Any) -> int:
    if not changes.pop("no_issuer", False):
        make_issuer(rt)
    draft = make_draft(rt, **changes)
    issue(rt, draft)
    return draft


# --- Content ---------------------------------------------------------------------------------


def test_an_issued_invoice_carries_every_mention_the_law_asks_for(rt, verifactu_mode):
    invoice_id = issued(rt)
    data, facts = render(rt, invoice_id)
    document = reader(data)
    [text] = pages_text(data)

    box = document.pages[0].mediabox
    assert (round(float(box.width)), round(float(box.height))) == (595, 842)  # A4
    assert facts["number"] == "F2026-00001"
    for expected in (
        "FACTURA",
        "Nº de factura F2026-00001",  # number, and its series
        "Serie F",
        "Fecha de expedición 01/07/2026",
        # Issuer: name, NIF, address
        "Puente Demo SL",
        "NIF: A58818501",
        "Gran Vía 1",
        "28013 Madrid",
        # Customer: name, NIF, address
        "Acme Soluciones SL",
        "NIF: B12345674",
        "Calle Mayor 1",
        # Lines: description, quantity, unit price without IVA, discount, IVA, amount
        "Consultoría (horas)",
        "Licencia ERP anual",
        "CONS-H Consultoría (horas) 20 95,00 10 % 21 % 1.710,00 €",
        "LIC-ERP Licencia ERP anual 1 770,50 21 % 770,50 €",
        # Base and IVA per rate, and the totals
        "IVA 21 % 2.480,50 € 520,91 €",
        "Total base imponible 2.480,50 €",
        "Total cuota IVA 520,91 €",
        "TOTAL FACTURA 3.001,41 €",
        # The QR's label, and below it, in VERI*FACTU mode, both legends
        "QR tributario:",
        "VERI*FACTU",
        "Factura verificable en la sede electrónica de la AEAT",
    ):
        assert expected in text, expected
    assert text.index("QR tributario:") < text.index("VERI*FACTU") < text.index("verificable")
    assert "BORRADOR" not in text
    assert "Página 1 de 1" in text


def test_without_verifactu_the_qr_checks_a_kept_record_and_no_legend_claims_otherwise(rt):
    invoice_id = issued(rt)  # the default mode: no VERI*FACTU
    data, facts = render(rt, invoice_id)
    page = reader(data).pages[0]
    [text] = pages_text(data)

    assert facts["qr_url"].startswith(
        "https://www2.agenciatributaria.gob.es/wlpl/TIKE-CONT/ValidarQRNoVerifactu?nif=A58818501"
    )
    [image] = page.images
    expected = Image.open(io.BytesIO(verifactu.qr_png(facts["qr_url"], size_mm=35)))
    assert image.image.convert("L").tobytes() == expected.convert("L").tobytes()
    assert "QR tributario:" in text
    assert "VERI*FACTU" not in text and "sede electrónica" not in text
    assert "VERI*FACTU" not in (reader(data).metadata.subject or "")


def test_the_qr_is_the_verifactu_url_at_30_to_40_mm_at_the_top_of_the_first_page(
    rt, verifactu_mode
):
    invoice_id = issued(rt)
    data, facts = render(rt, invoice_id)
    page = reader(data).pages[0]

    [image] = page.images
    assert len(image_xobjects(page)) == 1
    expected = Image.open(io.BytesIO(verifactu.qr_png(facts["qr_url"], size_mm=35)))
    assert image.image.convert("L").tobytes() == expected.convert("L").tobytes()
    [(x, y, width, height)] = drawn_images(page)
    assert width == pytest.approx(height)
    assert 30 <= symbol_mm(image.image, width) <= 40
    # At the start of the invoice, near the top-left margin (AEAT: before the content).
    page_height = float(page.mediabox.height)
    assert y > page_height - 75 * MM and x < 25 * MM
    text = flat(page.extract_text())
    assert facts["qr_url"].startswith("https://prewww2.aeat.es/wlpl/TIKE-CONT/ValidarQR?")
    assert text.index("QR tributario:") < text.index("EMISOR") < text.index("Descripción")


def test_a_draft_is_watermarked_and_has_no_qr(rt):
    make_issuer(rt)
    draft = make_draft(rt)
    data, _ = render(rt, draft)
    document = reader(data)
    [text] = pages_text(data)

    assert pdf.DRAFT_WATERMARK == "BORRADOR — sin validez fiscal"
    assert text.count("BORRADOR — sin validez fiscal") >= 2  # the notice and the watermark
    assert "VERI*FACTU" not in text and "sede electrónica" not in text
    assert len(document.pages[0].images) == 0 and image_xobjects(document.pages[0]) == []
    assert "TOTAL FACTURA 3.001,41 €" in text
    assert "Puente Demo SL" in text  # the issuer that would issue it
    assert "Nº de factura —" in text


def test_a_draft_renders_before_the_company_is_set_up(rt):
    data, _ = render(rt, make_draft(rt))
    [text] = pages_text(data)
    assert "Sin configurar" in text and "Acme Soluciones SL" in text


def test_an_exempt_line_states_its_exemption(rt):
    make_issuer(rt)
    data = deal()
    with rt.sessions.begin() as s:
        draft = (
            Invoicing(s)
            .create_draft_invoice(
                customer=CustomerData.from_json(data["customer"]),
                lines=[
                    LineData.from_json(data["lines"][0]),
                    LineData(
                        description="Curso de formación reglada",
                        quantity=1,
                        unit_price="300",
                        tax_rate=0,
                        exemption_cause="E1",
                    ),
                ],
            )
            .invoice.id
        )
    issue(rt, draft)
    [text] = pages_text(render(rt, draft)[0])

    assert "Curso de formación reglada" in text
    assert "Operación exenta por el artículo 20 de la Ley 37/1992 del IVA" in text
    assert "Exenta 300,00 €" in text  # the line: IVA column, then its amount
    assert "Exenta (art. 20 LIVA) 300,00 € 0,00 €" in text
    assert "IVA 21 % 1.710,00 € 359,10 €" in text
    assert "TOTAL FACTURA 2.369,10 €" in text


def test_payments_and_what_is_outstanding_are_summarised(rt):
    invoice_id = issued(rt)
    with rt.sessions.begin() as s:
        record_payment(s, invoice_id, "1000", date(2026, 7, 15), method="transferencia")
    [text] = pages_text(render(rt, invoice_id)[0])

    assert "COBROS" in text
    assert "15/07/2026 transferencia — 1.000,00 €" in text
    assert "Total cobrado 1.000,00 €" in text
    assert "Pendiente de cobro 2.001,41 €" in text


def test_without_payments_there_is_no_payment_summary(rt):
    [text] = pages_text(render(rt, issued(rt))[0])
    assert "COBROS" not in text and "Pendiente" not in text


def test_a_rectifying_invoice_says_what_it_corrects_and_why(rt):
    original = issued(rt)
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
    issue(rt, draft)
    data, facts = render(rt, draft)
    [text] = pages_text(data)

    assert facts["number"].startswith("R2026-")
    assert "FACTURA RECTIFICATIVA" in text
    assert (
        "Factura rectificativa de la factura F2026-00001 de fecha 01/07/2026 (por diferencias)."
        " Motivo: descuento no aplicado"
    ) in text
    assert "-100,00 €" in text and "TOTAL FACTURA -121,00 €" in text
    assert len(reader(data).pages[0].images) == 1


def test_a_cancelled_invoice_says_so(rt):
    invoice_id = issued(rt)
    with rt.sessions.begin() as s:
        corrections.cancel(s, invoice_id, "emitida por error", now=WHEN)
    data, _ = render(rt, invoice_id)
    [text] = pages_text(data)
    assert "ANULADA" in text and "QR tributario:" in text


# --- Long invoices ---------------------------------------------------------------------------


def long_lines(count: int) -> list[dict[str, Any]]:
    return [
        {
            "sku": f"SKU-{i:03d}",
            "description": f"Partida {i:03d}: servicio de implantación y soporte",
            "quantity": str(i % 5 + 1),
            "unit_price": f"{10 + i}.25",
            "discount_percent": "5" if i % 7 == 0 else "0",
            "tax_rate": 21 if i % 3 else 10,
        }
        for i in range(1, count + 1)
    ]


def test_a_long_invoice_paginates_and_shows_the_total_once_on_its_last_page(rt):
    invoice_id = issued(rt, lines=long_lines(120))
    data, facts = render(rt, invoice_id)
    document = reader(data)
    texts = pages_text(data)
    count = len(texts)

    assert count >= 3
    for n, text in enumerate(texts, start=1):
        assert f"Página {n} de {count}" in text
        assert "Descripción" in text and "Cantidad" in text  # the table head repeats
        if n > 1:
            assert "Factura F2026-00001 (continuación)" in text
    everything = " ".join(texts)
    for description in facts["lines"]:
        assert everything.count(description) == 1, description
    # The total: once, on the last page, after the last line.
    assert [text.count(facts["total"]) for text in texts] == [0] * (count - 1) + [1]
    last = texts[-1]
    assert last.index(facts["lines"][-1]) < last.index("TOTAL FACTURA " + facts["total"])
    # The QR: on the first page only.
    assert [len(page.images) for page in document.pages] == [1] + [0] * (count - 1)


# --- Pieces ----------------------------------------------------------------------------------


def test_spanish_formats():
    assert pdf.money(Decimal("1234.56")) == "1.234,56 €"
    assert pdf.money(Decimal("1234567.8")) == "1.234.567,80 €"
    assert pdf.money(Decimal("-121")) == "-121,00 €"
    assert pdf.money(Decimal("0.5"), "USD") == "0,50 USD"
    assert pdf.number(Decimal("20.00000000")) == "20"
    assert pdf.number(Decimal("1.50000000")) == "1,5"
    assert pdf.number(Decimal("1500")) == "1.500"
    assert pdf.price(Decimal("95.00000000")) == "95,00"
    assert pdf.price(Decimal("12.34560000")) == "12,3456"
    assert pdf.exemption_mention("E5").startswith("Entrega intracomunitaria exenta")
    assert pdf.exemption_mention("E9") == "Operación exenta de IVA"


def _transient(number: str | None) -> Invoice:
    issuer = Issuer(tax_id=ISSUER["tax_id"], name=ISSUER["name"], street="Gran Vía 1")
    customer = Customer(tax_id="B12345674", tax_id_kind="CIF", name="Acme <Soluciones> & Co")
    line = InvoiceLine(
        position=1,
        description="Soporte <premium> & más",
        quantity=Decimal(1),
        unit_price=Decimal(100),
        discount_percent=Decimal(0),
        tax_rate=Decimal(21),
        base=Decimal("100.00"),
    )
    return Invoice(
        id=9,
        kind="invoice",
        status="issued" if number else "draft",
        invoice_type="F1",
        currency="EUR",
        number=number,
        issue_date=date(2026, 7, 1) if number else None,
        issuer=issuer if number else None,
        series=Series(code="F") if number else None,
        customer=customer,
        lines=[line],
        taxes=[InvoiceTax(rate=Decimal(21), base=Decimal("100.00"), amount=Decimal("21.00"))],
        base_total=Decimal("100.00"),
        tax_total=Decimal("21.00"),
        total=Decimal("121.00"),
        paid_total=Decimal("0.00"),
    )


def test_an_issued_invoice_is_never_printed_without_its_qr():
    with pytest.raises(ValueError, match="QR"):
        pdf.invoice_pdf(_transient("F2026-00001"), None)


def test_text_is_printed_as_written_not_as_markup():
    url = verifactu.qr_url("A58818501", "F2026-00001", date(2026, 7, 1), Decimal("121"), True)
    [text] = pages_text(pdf.invoice_pdf(_transient("F2026-00001"), url))
    assert "Acme <Soluciones> & Co" in text and "Soporte <premium> & más" in text


def test_file_names():
    assert pdf.filename(_transient("F2026-00001")) == "F2026-00001.pdf"
    assert pdf.filename(_transient('A/2026 "7"')) == "A-2026--7-.pdf"
    assert pdf.filename(_transient(None)) == "borrador-9.pdf"
