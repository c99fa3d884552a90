"""Quotes, orders and delivery notes for people: lists, one document with what is left of each
line, and converting it (all or part of it) into the next kind."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from invoicing import documents as chain
from invoicing.errors import DocumentStateError, InvalidDocumentError
from invoicing.models import DocumentKind, Invoice, InvoiceLine, InvoiceStatus
from web.filters import number, refusal
from web.i18n import translate
from web.ui.common import (
    HELPERS,
    KINDS,
    PAGE,
    PLURALS,
    allow,
    blueprint,
    doc_url,
    page_number,
    sessions,
    typed_amount,
)

bp = blueprint("documents", __name__)

KIND = "<any(quotes, orders, 'delivery-notes'):kind>"
QUANTITY_DECIMALS = 8  # what an InvoiceLine.quantity keeps


@dataclass
class Row:
    """One line of the document as a conversion form shows it."""

    line: InvoiceLine
    left: Decimal
    value: str
    error: str | None = None

    @property
    def done(self) -> Decimal:
        return self.line.quantity - self.left

    @property
    def open(self) -> Decimal:
        """What is left, never shown below zero."""
        return max(self.left, Decimal(0))


@dataclass
class Conversion:
    to: str
    rows: list[Row] = field(default_factory=list)

    @property
    def anything_left(self) -> bool:
        return any(row.left > 0 for row in self.rows)


@bp.get("/documents")
def documents_index() -> Any:
    return redirect(url_for("documents.documents", kind="quotes"))


@bp.get(f"/documents/{KIND}", endpoint="documents")
def document_list(kind: str) -> Any:
    page = page_number()
    query = select(Invoice).where(Invoice.kind == KINDS[kind])
    with sessions()() as s:
        total = s.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = s.scalars(
            query.options(selectinload(Invoice.customer), selectinload(Invoice.converted_from))
            .order_by(Invoice.id.desc())
            .limit(PAGE)
            .offset((page - 1) * PAGE)
        ).all()
        return render_template(
            "ui/documents.html",
            kind=kind,
            doc_kind=KINDS[kind].value,
            kinds=KINDS,
            docs=rows,
            page=page,
            has_next=page * PAGE < total,
            **HELPERS,
        )


@bp.get(f"/documents/{KIND}/<int:doc_id>")
def document_detail(kind: str, doc_id: int) -> Any:
    return _page(kind, doc_id)


@bp.post(f"/documents/{KIND}/<int:doc_id>/convert")
@allow("billing")
def document_convert(kind: str, doc_id: int) -> Any:
    """Carry what the form says of each line into a new draft of the chosen kind."""
    to = request.form.get("to", "")
    entered = {
        int(key[4:]): (value or "").strip()
        for key, value in request.form.items()
        if key.startswith("qty-") and key[4:].isdigit()
    }
    takes, problems = _takes(entered)
    if problems:
        flash("doc_err_quantities", "error")
        return _page(kind, doc_id, to, entered, problems, status=422)
    try:
        with sessions().begin() as s:
            # Lock the document so two people converting it at once cannot both take the rest.
            doc = s.get(Invoice, doc_id, with_for_update=True)
            if doc is None or doc.kind != KINDS[kind]:
                abort(404)
            # The core's default note names kinds in English ("Procede de quote 1").
            origin = f"{translate(f'doc_kind_{doc.kind}', 'es').lower()} {doc.number or doc.id}"
            draft = chain.convert(s, [doc.id], to, takes, notes=f"Procede de {origin}")
            new_id, new_kind = draft.id, draft.kind
    except InvalidDocumentError as exc:
        flash(_explain(exc, takes, problems), "error")
        return _page(kind, doc_id, to, entered, problems, status=422)
    except DocumentStateError as exc:
        flash(refusal(exc), "error")
        return _page(kind, doc_id, to, entered, problems, status=409)
    flash(f"doc_created_{new_kind}", "ok")
    if new_kind == DocumentKind.INVOICE:
        return redirect(url_for("invoices.invoice_detail", invoice_id=new_id))
    return redirect(
        url_for("documents.document_detail", kind=PLURALS[DocumentKind(new_kind)], doc_id=new_id)
    )


def _takes(entered: dict[int, str]) -> tuple[list[chain.Take], dict[int, str]]:
    """The lines to carry (0 or empty skips one) and those whose quantity is not a number."""
    takes: list[chain.Take] = []
    problems: dict[int, str] = {}
    for line_id, text in entered.items():
        if not text:
            continue
        try:
            quantity = Decimal(typed_amount(text))
        except InvalidOperation:
            problems[line_id] = "format"
            continue
        exponent = quantity.as_tuple().exponent
        if not isinstance(exponent, int) or -exponent > QUANTITY_DECIMALS:
            problems[line_id] = "format"
        elif quantity != 0:
            takes.append(chain.Take(line_id, quantity))
    return takes, problems


def _explain(exc: InvalidDocumentError, takes: list[chain.Take], problems: dict[int, str]) -> str:
    """The message key for a refused conversion; marks each line whose quantity is wrong."""
    paths = [path for path, _ in exc.errors]
    for path in paths:
        if path.startswith("lines[") and path.endswith("].quantity"):
            n = int(path[len("lines[") : -len("].quantity")])
            problems[takes[n].line_id] = "range"
    if problems:
        return "doc_err_quantities"
    if "to" in paths:
        return "doc_err_target"
    if "lines" in paths:
        return "doc_err_nothing_taken"
    return refusal(exc)


def _page(
    kind: str,
    doc_id: int,
    to: str | None = None,
    entered: dict[int, str] | None = None,
    problems: dict[int, str] | None = None,
    status: int = 200,
) -> Any:
    with sessions()() as s:
        doc = s.get(Invoice, doc_id)
        if doc is None:
            abort(404)
        if doc.kind != KINDS[kind]:
            return redirect(doc_url(doc))
        conversions = [
            _conversion(s, doc, target, entered if target == to else None, problems or {})
            for target in chain.NEXT[DocumentKind(doc.kind)]
        ]
        children = s.scalars(
            select(Invoice).where(Invoice.converted_from_id == doc.id).order_by(Invoice.id)
        ).all()
        return render_template(
            "ui/document.html",
            kind=kind,
            doc=doc,
            conversions=conversions,
            children=children,
            convertible=doc.status != InvoiceStatus.CANCELLED,
            **HELPERS,
        ), status


def _conversion(
    s: Session, doc: Invoice, to: str, entered: dict[int, str] | None, problems: dict[int, str]
) -> Conversion:
    left = chain.remaining(s, doc.lines, to)
    conversion = Conversion(to)
    for line in doc.lines:
        row = Row(line, left[line.id], number(left[line.id]) if left[line.id] > 0 else "")
        if entered is not None:
            row.value = entered.get(line.id, "")
            if line.id in problems:
                error = "doc_err_quantity_format" if problems[line.id] == "format" else None
                row.error = translate(error or "doc_err_quantity").format(left=number(row.open))
        conversion.rows.append(row)
    return conversion
