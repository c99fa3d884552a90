"""Invoices as A4 PDF, in Spanish: what art. 6 RD 1619/2012 asks of a complete invoice.

Each issued invoice carries its number and series, issue date, the issuer's and the customer's
name, NIF and address, its lines (quantity, unit price without IVA, discount), the taxable base,
IVA rate and amount per rate, the total, the legal mention of any exemption, and, as art. 6.5
RD 1619/2012 and the AEAT's QR specification ask of a VERI*FACTU system, the QR at the start of
the first page (35 mm, level M) with the words "VERI*FACTU" and "Factura verificable en la sede
electrónica de la AEAT". Drafts say they have no fiscal value and carry no QR.

Pure Python (reportlab). The font, embedded, is DejaVu Sans where the system has it (fonts-dejavu:
wide coverage of European names), else Bitstream Vera, which reportlab ships (same design and
metrics, fewer characters).
"""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import reportlab
from PIL import Image as PILImage
from PIL import ImageOps
from reportlab.lib import colors
from reportlab.lib.enums import TA_RIGHT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.lib.utils import ImageReader
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    BaseDocTemplate,
    Flowable,
    Frame,
    KeepTogether,
    LongTable,
    NextPageTemplate,
    PageTemplate,
    Paragraph,
    Spacer,
    Table,
    TableStyle,
)
from sqlalchemy import select
from sqlalchemy.orm import object_session

from invoicing import catalog, chain, verifactu
from invoicing.errors import Said
from invoicing.models import (
    Customer,
    DocumentKind,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    InvoiceTax,
    InvoiceWithholding,
    Issuer,
)

# --- Text the law fixes ----------------------------------------------------------------------

VERIFACTU = "VERI*FACTU"
QR_LEGEND = "Factura verificable en la sede electrónica de la AEAT"
QR_LABEL = "QR tributario:"  # Orden HAC/1177/2024: the text that precedes the QR
DRAFT_WATERMARK = "BORRADOR — sin validez fiscal"
QR_SIZE_MM = 35  # the symbol itself; the AEAT asks for 30 to 40 mm
QR_DPI = 300

# Art. 6.1 j) RD 1619/2012: an exempt operation cites the provision of Ley 37/1992 (or says it
# is exempt). The full mention is the catalog's; this is the short one for the IVA breakdown.
EXEMPTION_ARTICLES = {"E1": "art. 20", "E2": "art. 21", "E3": "art. 22", "E4": "arts. 23 y 24"}
EXEMPTION_ARTICLES["E5"] = "art. 25"  # E6: "other causes", no single article
EXEMPTION_ARTICLES["N2"] = "arts. 68-70"  # not subject: where the operation takes place

TITLES = {
    "F1": "FACTURA",
    "F2": "FACTURA SIMPLIFICADA",
    "R1": "FACTURA RECTIFICATIVA",
    "R2": "FACTURA RECTIFICATIVA",
    "R3": "FACTURA RECTIFICATIVA",
    "R4": "FACTURA RECTIFICATIVA",
    "R5": "FACTURA RECTIFICATIVA",
}
RECTIFICATION_METHODS = {"S": "por sustitución", "I": "por diferencias"}


exemption_mention = catalog.exemption_mention


# --- Spanish formats -------------------------------------------------------------------------


def _grouped(text: str) -> str:
    """'1,234.56' (Python's grouping) → '1.234,56'."""
    return text.replace(",", "_").replace(".", ",").replace("_", ".")


def money(value: Decimal, currency: str = "EUR") -> str:
    """1234.5 → '1.234,50 €'; other currencies keep their code: '1.234,50 USD'."""
    text = _grouped(f"{value:,.2f}")
    return f"{text} €" if currency == "EUR" else f"{text} {currency}"


def number(value: Decimal) -> str:
    """A quantity or rate as written: 20 → '20', 1.5 → '1,5', 1500 → '1.500'."""
    exact = value.normalize()
    if exact == exact.to_integral_value():
        exact = exact.quantize(Decimal(1))
    return _grouped(f"{exact:,f}")


def price(value: Decimal) -> str:
    """A unit price: two decimals at least, more only when it has them ('12,3456')."""
    exact = value.normalize()
    exponent = exact.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -2:
        return _grouped(f"{exact:,f}")
    return _grouped(f"{value:,.2f}")


def percent(value: Decimal) -> str:
    return f"{number(value)} %"


def day(value: date | None) -> str:
    return value.strftime("%d/%m/%Y") if value else "—"


def exemption_of(tax: InvoiceTax, lines: list[InvoiceLine]) -> str | None:
    """The exemption cause of a tax row: its own, or the one its 0 % lines share."""
    if tax.exemption_cause is not None or tax.rate != 0:
        return tax.exemption_cause
    causes = {line.exemption_cause for line in lines if line.tax_rate == 0}
    return causes.pop() if len(causes) == 1 else None


def tax_label(tax: InvoiceTax, lines: list[InvoiceLine]) -> str:
    """ "IVA 21 %", or "Exenta (art. 20 LIVA)" for an exempt row."""
    cause = exemption_of(tax, lines)
    if cause is None:
        return f"IVA {percent(tax.rate)}"
    if cause == catalog.REVERSE_CHARGE:
        return "Inversión del sujeto pasivo"
    word = catalog.without_iva(cause)
    article = EXEMPTION_ARTICLES.get(cause)
    return f"{word} ({article} LIVA)" if article else word


def surcharge_label(tax: InvoiceTax) -> str:
    """ "Recargo de equivalencia 5,2 %": the surcharge of an IVA row, stated apart from it."""
    return f"Recargo de equivalencia {percent(tax.surcharge_rate or Decimal(0))}"


def withholding_label(withholding: InvoiceWithholding) -> str:
    return f"Retención IRPF {percent(withholding.rate)}"


def shows_surcharge(tax: InvoiceTax) -> bool:
    """A row has a surcharge to print: a rate above 0 (a 0 % IVA row has none to state)."""
    return bool(tax.surcharge_rate)


def address_lines(party: Issuer | Customer) -> list[str]:
    """Street; postal code and town; province when it differs; country when not Spain."""
    out = [party.street or ""]
    out.append(" ".join(x for x in (party.postal_code, party.city) if x))
    if party.province and party.province != party.city:
        out.append(party.province)
    if party.country and party.country != "ES":
        out.append(party.country)
    return [line for line in out if line.strip()]


def tax_id_label(customer: Customer) -> str:
    if customer.tax_id_kind == "VAT":
        return "NIF-IVA"
    if customer.tax_id_kind == "OTHER":
        return "Nº id. fiscal"
    return "NIF"


def due_text(invoice: Invoice) -> str | None:
    """ "Vencimiento: 28/12/2026"; a draft says how many days after its issue it will be due."""
    if invoice.due_date is not None:
        return f"Vencimiento: {day(invoice.due_date)}"
    days = invoice.billed_customer.payment_days if invoice.billed_customer is not None else 0
    if is_draft(invoice) and days:
        return f"Vencimiento: a {days} días de la fecha de expedición"
    return None


def filename(invoice: Invoice) -> str:
    """'F2026-00042.pdf', or 'borrador-17.pdf' for a draft (only safe characters)."""
    if not invoice.number:
        return f"borrador-{invoice.id}.pdf"
    safe = "".join(
        c if c.isascii() and (c.isalnum() or c in "-_.") else "-" for c in invoice.number
    )
    return f"{safe}.pdf"


# --- Look ------------------------------------------------------------------------------------

FONT, BOLD, ITALIC = "PuenteVera", "PuenteVera-Bold", "PuenteVera-Italic"
INK = colors.HexColor("#1d2433")
MUTED = colors.HexColor("#5b6475")
RULE = colors.HexColor("#d5dae3")
SHADE = colors.HexColor("#eef1f5")
ACCENT = colors.HexColor("#1f5fbf")
ALERT = colors.HexColor("#c62828")

PAGE_W, PAGE_H = A4
MARGIN_X = 18 * mm
MARGIN_TOP = 16 * mm
MARGIN_BOTTOM = 20 * mm
WIDTH = PAGE_W - 2 * MARGIN_X
RUNNING_HEADER = 12 * mm  # room for the header repeated on pages after the first

_fonts_lock = threading.Lock()
_fonts_ready = False


FONT_FILES = (
    (
        Path("/usr/share/fonts/truetype/dejavu"),
        ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf"),
    ),
    (Path(reportlab.__file__).parent / "fonts", ("Vera.ttf", "VeraBd.ttf", "VeraIt.ttf")),
)


def _register_fonts() -> None:
    global _fonts_ready
    with _fonts_lock:
        if _fonts_ready:
            return
        folder, files = next(
            (folder, files)
            for folder, files in FONT_FILES
            if all((folder / file).is_file() for file in files)
        )
        for name, file in zip((FONT, BOLD, ITALIC), files, strict=True):
            pdfmetrics.registerFont(TTFont(name, str(folder / file)))
        pdfmetrics.registerFontFamily(FONT, normal=FONT, bold=BOLD, italic=ITALIC)
        _fonts_ready = True


def _style(name: str, parent: ParagraphStyle | None = None, **kw: Any) -> ParagraphStyle:
    """A paragraph style: the house defaults, or ``parent``'s, with ``kw`` on top."""
    if parent is None:
        kw = {"fontName": FONT, "fontSize": 8.5, "leading": 11, "textColor": INK, **kw}
    return ParagraphStyle(name, parent=parent, **kw)


@dataclass(frozen=True)
class _Styles:
    body: ParagraphStyle
    small: ParagraphStyle
    label: ParagraphStyle
    name: ParagraphStyle
    title: ParagraphStyle
    cell: ParagraphStyle
    cell_note: ParagraphStyle
    head: ParagraphStyle
    head_right: ParagraphStyle
    legend_brand: ParagraphStyle
    legend: ParagraphStyle
    alert: ParagraphStyle


def _styles() -> _Styles:
    return _Styles(
        body=_style("body"),
        small=_style("small", fontSize=7.5, leading=9.5, textColor=MUTED),
        label=_style("label", fontName=BOLD, fontSize=7, leading=9, textColor=MUTED),
        name=_style("name", fontName=BOLD, fontSize=10, leading=13),
        title=_style(
            "title", fontName=BOLD, fontSize=18, leading=22, alignment=TA_RIGHT, textColor=ACCENT
        ),
        cell=_style("cell", fontSize=8, leading=10),
        cell_note=_style("cell_note", fontName=ITALIC, fontSize=7, leading=9, textColor=MUTED),
        head=_style("head", fontName=BOLD, fontSize=7.5, leading=9, textColor=MUTED),
        head_right=_style(
            "head_right",
            fontName=BOLD,
            fontSize=7.5,
            leading=9,
            textColor=MUTED,
            alignment=TA_RIGHT,
        ),
        legend_brand=_style("legend_brand", fontName=BOLD, fontSize=10, leading=12),
        legend=_style("legend", fontSize=7, leading=8.5, textColor=INK),
        alert=_style("alert", fontName=BOLD, fontSize=9, leading=12, textColor=ALERT),
    )


def _p(text: str, style: ParagraphStyle) -> Paragraph:
    return Paragraph(escape(text), style)


# --- Building blocks -------------------------------------------------------------------------


class _QrCode(Flowable):
    """The QR PNG at its own resolution, so the symbol keeps the millimetres qr_png gave it.

    Its white quiet zone reaches into the page margin on the left, so that the symbol lines
    up with the text above it.
    """

    def __init__(self, png: bytes) -> None:
        super().__init__()
        self.png = ImageReader(io.BytesIO(png))
        width, _ = self.png.getSize()
        self.side = width * 72 / QR_DPI
        with PILImage.open(io.BytesIO(png)) as image:
            symbol = ImageOps.invert(image.convert("L")).getbbox()
        self.quiet = (symbol[0] if symbol else 0) * 72 / QR_DPI

    def wrap(self, available_width: float, available_height: float) -> tuple[float, float]:
        return self.side - self.quiet, self.side

    def draw(self) -> None:
        self.canv.drawImage(self.png, -self.quiet, 0, self.side, self.side)


def _qr_block(qr_url: str, st: _Styles) -> list[Any]:
    """ "QR tributario:", the QR (a 35 mm symbol, level M) and, only on a VERI*FACTU invoice,
    "VERI*FACTU" and the AEAT's legend below it."""
    png = verifactu.qr_png(qr_url, size_mm=QR_SIZE_MM, dpi=QR_DPI)
    block: list[Any] = [_p(QR_LABEL, st.legend), _QrCode(png)]
    if verifactu.is_verifactu_qr(qr_url):
        block += [_p(VERIFACTU, st.legend_brand), _p(QR_LEGEND, st.legend)]
    return block


def _meta_rows(invoice: Invoice) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    if invoice.number:
        rows.append(("Nº de factura", invoice.number))
        if invoice.series is not None:
            rows.append(("Serie", invoice.series.code))
        rows.append(("Fecha de expedición", day(invoice.issue_date)))
        if invoice.operation_date not in (None, invoice.issue_date):
            rows.append(("Fecha de operación", day(invoice.operation_date)))
        if invoice.due_date is not None:
            rows.append(("Vencimiento", day(invoice.due_date)))
    else:
        rows.append(("Nº de factura", "—"))
        rows.append(("Fecha de expedición", "—"))
    if invoice.invoice_type not in ("F1", "F2"):
        rows.append(("Tipo", f"Rectificativa {invoice.invoice_type}"))
    if invoice.currency != "EUR":
        rows.append(("Moneda", invoice.currency))
    return rows


def _meta_block(invoice: Invoice, st: _Styles) -> list[Any]:
    title = TITLES.get(invoice.invoice_type, "FACTURA")
    value_style = _style("meta_value", parent=st.body, fontName=BOLD, alignment=TA_RIGHT)
    rows = [[_p(label, st.small), _p(value, value_style)] for label, value in _meta_rows(invoice)]
    table = Table(rows, colWidths=[34 * mm, 46 * mm], hAlign="RIGHT")
    table.setStyle(
        TableStyle(
            [
                ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
                ("LEFTPADDING", (0, 0), (-1, -1), 0),
                ("RIGHTPADDING", (0, 0), (-1, -1), 0),
                ("TOPPADDING", (0, 0), (-1, -1), 1.5),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5),
                ("LINEBELOW", (0, 0), (-1, -2), 0.4, RULE),
            ]
        )
    )
    block: list[Any] = [_p(title, st.title), Spacer(1, 3 * mm), table]
    if invoice.status == InvoiceStatus.CANCELLED:
        block += [Spacer(1, 2 * mm), _p("ANULADA", st.alert)]
    return block


def _draft_block(st: _Styles) -> list[Any]:
    box = Table(
        [
            [_p(DRAFT_WATERMARK, st.alert)],
            [_p("Sin número, fecha de expedición ni código QR hasta que se emita.", st.small)],
        ],
        colWidths=[70 * mm],
        hAlign="LEFT",
    )
    box.setStyle(
        TableStyle(
            [
                ("BOX", (0, 0), (-1, -1), 1, ALERT),
                ("LEFTPADDING", (0, 0), (-1, -1), 3 * mm),
                ("TOPPADDING", (0, 0), (0, 0), 2.5 * mm),
                ("BOTTOMPADDING", (0, -1), (-1, -1), 2.5 * mm),
            ]
        )
    )
    return [box]


def _top_band(invoice: Invoice, qr_url: str | None, st: _Styles) -> Table:
    left = _qr_block(qr_url, st) if qr_url else _draft_block(st)
    band = Table([[left, _meta_block(invoice, st)]], colWidths=[WIDTH - 80 * mm, 80 * mm])
    band.setStyle(
        TableStyle(
            [
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("LEFTPADDING", (0, 0), (-1, -1), 0),
                ("RIGHTPADDING", (0, 0), (-1, -1), 0),
                ("TOPPADDING", (0, 0), (-1, -1), 0),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 0),
            ]
        )
    )
    return band


def _party(
    heading: str,
    name: str,
    id_label: str,
    tax_id: str,
    lines: list[str],
    email: str | None,
    st: _Styles,
) -> list[Any]:
    out: list[Any] = [_p(heading, st.label), Spacer(1, 1.2 * mm), _p(name, st.name)]
    out.append(Paragraph(f"{escape(id_label)}: <b>{escape(tax_id)}</b>", st.body))
    out += [_p(line, st.body) for line in lines]
    if email:
        out.append(_p(email, st.small))
    return out


def _parties(invoice: Invoice, issuer: Issuer | None, st: _Styles) -> Table:
    customer = invoice.billed_customer
    if issuer is None:
        left = [
            _p("EMISOR", st.label),
            _p("Sin configurar (Ajustes: datos de la empresa).", st.small),
        ]
    else:
        left = _party(
            "EMISOR",
            issuer.name,
            "NIF",
            issuer.tax_id,
            address_lines(issuer),
            issuer.email,
            st,
        )
    right = _party(
        "CLIENTE",
        customer.name,
        tax_id_label(customer),
        customer.tax_id,
        address_lines(customer),
        customer.email,
        st,
    )
    gap = 6 * mm
    half = (WIDTH - gap) / 2
    table = Table([[left, "", right]], colWidths=[half, gap, half])
    table.setStyle(
        TableStyle(
            [
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("BOX", (0, 0), (0, 0), 0.6, RULE),
                ("BOX", (2, 0), (2, 0), 0.6, RULE),
                ("LEFTPADDING", (0, 0), (-1, -1), 3.5 * mm),
                ("RIGHTPADDING", (0, 0), (-1, -1), 3.5 * mm),
                ("TOPPADDING", (0, 0), (-1, -1), 3 * mm),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 3.5 * mm),
                ("LEFTPADDING", (1, 0), (1, 0), 0),
                ("RIGHTPADDING", (1, 0), (1, 0), 0),
            ]
        )
    )
    return table


def _rectification(invoice: Invoice, st: _Styles) -> list[Any]:
    """Art. 15 RD 1619/2012: say it rectifies, which invoice, why and how."""
    if invoice.invoice_type not in ("R1", "R2", "R3", "R4", "R5"):
        return []
    parts = ["<b>Factura rectificativa</b>"]
    target = invoice.rectifies
    if target is not None and target.number:
        parts.append(
            f"de la factura <b>{escape(target.number)}</b> de fecha {day(target.issue_date)}"
        )
    method = RECTIFICATION_METHODS.get(invoice.rectification_method or "")
    if method:
        parts.append(f"({method})")
    text = " ".join(parts) + "."
    if invoice.rectification_reason:
        text += f" Motivo: {escape(invoice.rectification_reason)}"
    return [Spacer(1, 4 * mm), Paragraph(text, st.body)]


def _lines_table(invoice: Invoice, st: _Styles) -> LongTable:
    with_sku = any(line.sku for line in invoice.lines)
    right = _style("r", parent=st.cell, alignment=TA_RIGHT)
    head = [
        _p("Descripción", st.head),
        _p("Cantidad", st.head_right),
        Paragraph("Precio unit.<br/>sin IVA", st.head_right),
        _p("Dto.", st.head_right),
        _p("IVA", st.head_right),
        Paragraph("Importe<br/>sin IVA", st.head_right),
    ]
    widths = [None, 17 * mm, 23 * mm, 13 * mm, 15 * mm, 25 * mm]
    if with_sku:
        head.insert(0, _p("Ref.", st.head))
        widths.insert(0, 20 * mm)
    fixed = sum(w for w in widths if w is not None)
    widths = [WIDTH - fixed if w is None else w for w in widths]
    rows: list[list[Any]] = [head]
    for line in invoice.lines:
        description: list[Any] = [_p(line.description, st.cell)]
        if line.exemption_cause:
            description.append(_p(exemption_mention(line.exemption_cause), st.cell_note))
        row: list[Any] = [
            description,
            _p(number(line.quantity), right),
            _p(price(line.unit_price), right),
            _p(percent(line.discount_percent) if line.discount_percent else "", right),
            _p(
                catalog.without_iva(line.exemption_cause)
                if line.exemption_cause
                else percent(line.tax_rate),
                right,
            ),
            _p(money(line.base, invoice.currency), right),
        ]
        if with_sku:
            row.insert(0, _p(line.sku or "", st.cell))
        rows.append(row)
    table = LongTable(rows, colWidths=widths, repeatRows=1)
    table.setStyle(
        TableStyle(
            [
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("VALIGN", (0, 0), (-1, 0), "BOTTOM"),
                ("BACKGROUND", (0, 0), (-1, 0), SHADE),
                ("LINEBELOW", (0, 0), (-1, 0), 0.8, MUTED),
                ("LINEBELOW", (0, 1), (-1, -1), 0.3, RULE),
                ("LEFTPADDING", (0, 0), (-1, -1), 1.8 * mm),
                ("RIGHTPADDING", (0, 0), (-1, -1), 1.8 * mm),
                ("TOPPADDING", (0, 0), (-1, -1), 1.3 * mm),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 1.3 * mm),
            ]
        )
    )
    return table


def _totals(invoice: Invoice, st: _Styles) -> Table:
    """Per IVA rate its base and cuota, each recargo de equivalencia apart; then the totals,
    the general discount before them, and the IRPF withheld and what is paid after them."""
    cur = invoice.currency
    right = _style("tr", parent=st.body, alignment=TA_RIGHT)
    head_right = st.head_right
    rows: list[list[Any]] = [
        [_p("Desglose IVA", st.head), _p("Base imponible", head_right), _p("Cuota", head_right)]
    ]
    for tax in invoice.taxes:
        rows.append(
            [
                _p(tax_label(tax, invoice.lines), st.body),
                _p(money(tax.base, cur), right),
                _p(money(tax.amount, cur), right),
            ]
        )
        if shows_surcharge(tax):
            rows.append(
                [
                    _p(surcharge_label(tax), st.body),
                    _p(money(tax.base, cur), right),
                    _p(money(tax.surcharge_amount, cur), right),
                ]
            )
    first_total = len(rows)
    big = _style("big", parent=st.body, fontName=BOLD, fontSize=11, leading=14)
    big_right = _style("bigr", parent=big, alignment=TA_RIGHT)

    def line(label: str, value: str, style: ParagraphStyle = st.body) -> list[Any]:
        return [_p(label, style), "", _p(value, right if style is st.body else big_right)]

    if invoice.discount_total:
        gross = invoice.base_total + invoice.discount_total
        rows.append(line("Suma de importes", money(gross, cur)))
        rows.append(
            line(
                f"Descuento general {percent(invoice.discount_percent)}",
                money(-invoice.discount_total, cur),
            )
        )
    rows.append(line("Total base imponible", money(invoice.base_total, cur)))
    rows.append(line("Total cuota IVA", money(invoice.tax_total, cur)))
    if invoice.surcharge_total:
        rows.append(line("Total recargo de equivalencia", money(invoice.surcharge_total, cur)))
    grand = len(rows)
    rows.append(line("TOTAL FACTURA", money(invoice.total, cur), big))
    for withholding in invoice.withholdings:
        rows.append(
            [
                _p(withholding_label(withholding), st.body),
                _p(money(withholding.base, cur), right),
                _p(money(-withholding.amount, cur), right),
            ]
        )
    if invoice.withholdings:
        rows.append(line("TOTAL A PAGAR", money(invoice.amount_due, cur), big))
    table = Table(rows, colWidths=[56 * mm, 28 * mm, 34 * mm], hAlign="RIGHT")
    style: list[Any] = [
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
        ("LINEBELOW", (0, 0), (-1, 0), 0.8, MUTED),
        ("LINEBELOW", (0, 1), (-1, first_total - 1), 0.3, RULE),
        ("LINEABOVE", (0, first_total), (-1, first_total), 0.8, MUTED),
        # Tighter rows when recargo or IRPF add lines, so the block stays on one page.
        ("TOPPADDING", (0, 0), (-1, -1), (1.6 if len(rows) <= 8 else 1.1) * mm),
        ("BOTTOMPADDING", (0, 0), (-1, -1), (1.6 if len(rows) <= 8 else 1.1) * mm),
    ]
    style += [("SPAN", (0, r), (1, r)) for r in range(first_total, grand + 1)]
    highlighted = [grand] + ([len(rows) - 1] if invoice.withholdings else [])
    for r in highlighted:
        style += [
            ("BACKGROUND", (0, r), (-1, r), SHADE),
            ("LINEABOVE", (0, r), (-1, r), 1.2, ACCENT),
            ("TOPPADDING", (0, r), (-1, r), 2.5 * mm),
            ("BOTTOMPADDING", (0, r), (-1, r), 2.5 * mm),
        ]
    if invoice.withholdings:
        style.append(("SPAN", (0, -1), (1, -1)))
    table.setStyle(TableStyle(style))
    return table


def _payments(invoice: Invoice, st: _Styles) -> list[Any]:
    if not invoice.payments:
        return []
    right = _style("pr", parent=st.body, alignment=TA_RIGHT)
    rows: list[list[Any]] = [
        [
            _p("Fecha de cobro", st.head),
            _p("Forma de pago", st.head),
            _p("Referencia", st.head),
            _p("Importe", st.head_right),
        ]
    ]
    for p in invoice.payments:
        rows.append(
            [
                _p(day(p.paid_on), st.body),
                _p(p.method or "—", st.body),
                _p(p.reference or "—", st.body),
                _p(money(p.amount, invoice.currency), right),
            ]
        )
    outstanding = invoice.outstanding
    rows += [
        [
            _p("Total cobrado", st.body),
            "",
            "",
            _p(money(invoice.paid_total, invoice.currency), right),
        ],
        [
            Paragraph("<b>Pendiente de cobro</b>", st.body),
            "",
            "",
            Paragraph(f"<b>{money(outstanding, invoice.currency)}</b>", right),
        ],
    ]
    table = Table(rows, colWidths=[30 * mm, 55 * mm, WIDTH - 119 * mm, 34 * mm], hAlign="LEFT")
    table.setStyle(
        TableStyle(
            [
                ("LINEBELOW", (0, 0), (-1, 0), 0.8, MUTED),
                ("LINEBELOW", (0, 1), (-1, -3), 0.3, RULE),
                ("LINEABOVE", (0, -2), (-1, -2), 0.8, MUTED),
                ("SPAN", (0, -2), (2, -2)),
                ("SPAN", (0, -1), (2, -1)),
                ("TOPPADDING", (0, 0), (-1, -1), 1.2 * mm),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 1.2 * mm),
            ]
        )
    )
    return [Spacer(1, 7 * mm), _p("COBROS", st.label), Spacer(1, 1.5 * mm), table]


def _remarks(invoice: Invoice, issuer: Issuer | None, st: _Styles) -> list[Any]:
    out: list[Any] = []
    if issuer is not None and issuer.iban and invoice.outstanding > 0:
        out.append(
            Paragraph(
                f"Forma de pago: transferencia a la cuenta IBAN <b>{escape(issuer.iban)}</b>",
                st.body,
            )
        )
    due = due_text(invoice)
    if due and invoice.outstanding > 0:
        out.append(_p(due, st.body))
    if invoice.notes and invoice.notes.strip():
        out.append(Spacer(1, 4 * mm))
        out.append(_p("OBSERVACIONES", st.label))
        out.append(Spacer(1, 1 * mm))
        out += [_p(text, st.body) for text in invoice.notes.strip().splitlines() if text.strip()]
    return [Spacer(1, 6 * mm), *out] if out else []


# --- Pages -----------------------------------------------------------------------------------


class _Decorations:
    """What every page carries: footer, running header after the first, draft watermark."""

    def __init__(self, invoice: Invoice, issuer: Issuer | None) -> None:
        self.draft = is_draft(invoice)
        title = TITLES.get(invoice.invoice_type, "FACTURA").capitalize()
        self.reference = (
            f"{title} {invoice.number}"
            if invoice.number
            else f"Borrador de factura nº {invoice.id}"
        )
        if issuer is not None:
            place = ", ".join(address_lines(issuer))
            self.footer = f"{issuer.name} · NIF {issuer.tax_id} · {place}"
            self.issuer_name = issuer.name
        else:
            self.footer = self.issuer_name = ""

    def first(self, canvas: Canvas, doc: Any) -> None:
        self._common(canvas)

    def later(self, canvas: Canvas, doc: Any) -> None:
        self._common(canvas)
        canvas.saveState()
        top = PAGE_H - MARGIN_TOP
        canvas.setFont(BOLD, 8.5)
        canvas.setFillColor(INK)
        canvas.drawString(MARGIN_X, top - 4 * mm, self.issuer_name)
        canvas.setFont(FONT, 8.5)
        canvas.drawRightString(PAGE_W - MARGIN_X, top - 4 * mm, f"{self.reference} (continuación)")
        canvas.setStrokeColor(RULE)
        canvas.setLineWidth(0.6)
        canvas.line(MARGIN_X, top - 6.5 * mm, PAGE_W - MARGIN_X, top - 6.5 * mm)
        canvas.restoreState()

    def _common(self, canvas: Canvas) -> None:
        canvas.saveState()
        if self.draft:
            self._watermark(canvas)
        canvas.setStrokeColor(RULE)
        canvas.setLineWidth(0.6)
        y = MARGIN_BOTTOM - 7 * mm
        canvas.line(MARGIN_X, y + 3.5 * mm, PAGE_W - MARGIN_X, y + 3.5 * mm)
        canvas.setFont(FONT, 7)
        canvas.setFillColor(MUTED)
        canvas.drawString(MARGIN_X, y, self.footer)
        canvas.restoreState()

    @staticmethod
    def _watermark(canvas: Canvas) -> None:
        canvas.saveState()
        canvas.translate(PAGE_W / 2, PAGE_H / 2)
        canvas.rotate(54.7)  # A4's diagonal
        size = 44
        width = pdfmetrics.stringWidth(DRAFT_WATERMARK, BOLD, size)
        diagonal = (PAGE_W**2 + PAGE_H**2) ** 0.5
        size = min(size, size * 0.8 * diagonal / width)
        canvas.setFont(BOLD, size)
        canvas.setFillColor(ALERT)
        canvas.setFillAlpha(0.13)
        canvas.drawCentredString(0, -size / 3, DRAFT_WATERMARK)
        canvas.restoreState()


def _numbered_canvas(reference: str) -> type[Canvas]:
    """A canvas that writes "Página n de N" once it knows N."""

    class NumberedCanvas(Canvas):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._pages: list[dict[str, Any]] = []

        def showPage(self) -> None:  # reportlab's name
            self._pages.append(dict(self.__dict__))
            self._startPage()

        def save(self) -> None:
            total = len(self._pages)
            for n, state in enumerate(self._pages, start=1):
                self.__dict__.update(state)
                self.saveState()
                self.setFont(FONT, 7)
                self.setFillColor(MUTED)
                y = MARGIN_BOTTOM - 7 * mm
                self.drawRightString(PAGE_W - MARGIN_X, y, f"{reference} · Página {n} de {total}")
                self.restoreState()
                super().showPage()
            super().save()

    return NumberedCanvas


def invoice_pdf(invoice: Invoice, qr_url: str | None, *, issuer: Issuer | None = None) -> bytes:
    """The invoice as an A4 PDF in Spanish.

    ``qr_url`` is the AEAT's cotejo URL (``chain.qr_url_of(invoice)``), required for an issued
    invoice (the VERI*FACTU legend only when it is VERI*FACTU's ValidarQR); a draft gets the
    "BORRADOR — sin validez fiscal" watermark and no QR.
    ``issuer`` shows on a draft, which gets its own issuer only when it is issued; an issued
    invoice always shows the issuer it was issued by.
    """
    if (invoice.kind or DocumentKind.INVOICE) != DocumentKind.INVOICE:  # None: not saved yet
        raise ValueError(
            Said(
                f"document {invoice.id} is a {invoice.kind}, not an invoice",
                f"El documento {invoice.id} no es una factura: no se imprime como factura.",
            )
        )
    draft = is_draft(invoice)
    if not draft and not qr_url:
        raise ValueError(
            Said(
                f"invoice {invoice.number} is issued: its PDF needs the VERI*FACTU QR URL "
                "(chain.qr_url_of(invoice))",
                f"La factura {invoice.number} está emitida: su PDF necesita el código QR de "
                "VERI*FACTU.",
            )
        )
    _register_fonts()
    st = _styles()
    issuer = invoice.billed_issuer or issuer
    decorations = _Decorations(invoice, issuer)
    out = io.BytesIO()
    doc = BaseDocTemplate(
        out,
        pagesize=A4,
        leftMargin=MARGIN_X,
        rightMargin=MARGIN_X,
        topMargin=MARGIN_TOP,
        bottomMargin=MARGIN_BOTTOM,
        title=decorations.reference,
        author=decorations.issuer_name or "Puente",
        subject=DRAFT_WATERMARK
        if draft
        else f"{VERIFACTU} · {QR_LEGEND}"
        if qr_url and verifactu.is_verifactu_qr(qr_url)
        else "Factura",
        creator="Puente",
        lang="es-ES",
    )
    height = PAGE_H - MARGIN_TOP - MARGIN_BOTTOM
    doc.addPageTemplates(
        [
            PageTemplate(
                "first",
                [Frame(MARGIN_X, MARGIN_BOTTOM, WIDTH, height, 0, 0, 0, 0, id="first")],
                onPage=decorations.first,
            ),
            PageTemplate(
                "later",
                [
                    Frame(
                        MARGIN_X,
                        MARGIN_BOTTOM,
                        WIDTH,
                        height - RUNNING_HEADER,
                        0,
                        0,
                        0,
                        0,
                        id="later",
                    )
                ],
                onPage=decorations.later,
            ),
        ]
    )
    story: list[Any] = [
        NextPageTemplate("later"),
        _top_band(invoice, None if draft else qr_url, st),
        Spacer(1, 5 * mm),
        _parties(invoice, issuer, st),
        *_rectification(invoice, st),
        Spacer(1, 7 * mm),
        _lines_table(invoice, st),
        Spacer(1, 5 * mm),
        KeepTogether([_totals(invoice, st)]),
        *_remarks(invoice, issuer, st),
        *_payments(invoice, st),
    ]
    doc.build(story, canvasmaker=_numbered_canvas(decorations.reference))
    return out.getvalue()


def is_draft(invoice: Invoice) -> bool:
    return invoice.status == InvoiceStatus.DRAFT or not invoice.number


def shown_issuer(invoice: Invoice) -> Issuer | None:
    """The issuer an invoice was issued by; for a draft, the configured one that would issue it."""
    if invoice.billed_issuer is not None:
        return invoice.billed_issuer
    session = object_session(invoice)
    if session is None:
        return None
    return session.scalar(select(Issuer).order_by(Issuer.id).limit(1))


def pdf_of(invoice: Invoice) -> bytes:
    """The PDF of a stored invoice: with the QR of its VERI*FACTU record, or a draft's preview."""
    if is_draft(invoice):
        return invoice_pdf(invoice, None, issuer=shown_issuer(invoice))
    return invoice_pdf(invoice, chain.qr_url_of(invoice))


__all__ = [
    "DRAFT_WATERMARK",
    "EXEMPTION_ARTICLES",
    "QR_LABEL",
    "QR_LEGEND",
    "VERIFACTU",
    "address_lines",
    "due_text",
    "exemption_mention",
    "exemption_of",
    "filename",
    "invoice_pdf",
    "is_draft",
    "money",
    "pdf_of",
    "shown_issuer",
    "shows_surcharge",
    "surcharge_label",
    "tax_label",
    "withholding_label",
]
