"""Quotes, orders and delivery notes: same shape as invoices, plus conversions."""

from __future__ import annotations

from typing import Any

from flask import jsonify
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from invoicing import documents
from invoicing.models import DocumentKind, Invoice
from web.api import ApiError, bp, is_id, json_body, listing, page, sessions
from web.api.idempotency import idempotent, request_key
from web.api.invoices import PLURALS, _load, create_draft, invoice_json, patch_draft

KINDS = {plural: DocumentKind(kind) for plural, kind in PLURALS.items()}
PLURAL = "<any(quotes, orders, 'delivery-notes'):plural>"


def document_json(s: Any, doc: Invoice) -> dict[str, Any]:
    """The document, with what is left of each line to convert into each next kind."""
    body = invoice_json(doc, with_lines=True)
    body["remaining"] = {
        to.value: {
            str(k): format(v.normalize(), "f")
            for k, v in documents.remaining(s, doc.lines, to).items()
        }
        for to in documents.NEXT.get(DocumentKind(doc.kind), ())
    }
    return body


@bp.get(f"/{PLURAL}")
def list_documents(plural: str) -> Any:
    limit, offset = page()
    query = (
        select(Invoice).options(selectinload(Invoice.customer)).where(Invoice.kind == KINDS[plural])
    )
    return listing(query, Invoice.id.desc(), invoice_json, limit, offset)


@bp.get(f"/{PLURAL}/<int:doc_id>")
def get_document(plural: str, doc_id: int) -> Any:
    with sessions()() as s:
        return jsonify(document_json(s, _load(s, doc_id, KINDS[plural])))


@bp.post(f"/{PLURAL}")
@idempotent
def create_document(plural: str) -> Any:
    return create_draft(KINDS[plural])


@bp.patch(f"/{PLURAL}/<int:doc_id>")
def patch_document(plural: str, doc_id: int) -> Any:
    return patch_draft(KINDS[plural], doc_id)


@bp.post(f"/{PLURAL}/<int:doc_id>/convert")
@idempotent
def convert_document(plural: str, doc_id: int) -> Any:
    """{"to": "order" | "delivery_note" | "invoice", "lines": [{"line_id", "quantity"}]}."""
    data = json_body()
    with sessions().begin() as s:
        _load(s, doc_id, KINDS[plural])
        draft = documents.convert(
            s, [doc_id], _to(data), _takes(data), data.get("notes"), request_key()
        )
        return jsonify(document_json(s, draft)), 201


@bp.post("/invoices/from-delivery-notes")
@idempotent
def invoice_delivery_notes() -> Any:
    """One invoice for several delivery notes of a customer: {"delivery_note_ids": [...]}."""
    data = json_body()
    ids = data.get("delivery_note_ids")
    if not isinstance(ids, list) or not ids or not all(is_id(i) for i in ids):
        raise ApiError(
            422, "invalid", "delivery_note_ids must be a list of ids", "delivery_note_ids"
        )
    with sessions().begin() as s:
        for i in ids:
            _load(s, i, DocumentKind.DELIVERY_NOTE)
        draft = documents.convert(
            s, ids, DocumentKind.INVOICE, _takes(data), data.get("notes"), request_key()
        )
        return jsonify(document_json(s, draft)), 201


def _to(data: dict[str, Any]) -> str:
    to = data.get("to")
    if not isinstance(to, str):
        raise ApiError(422, "invalid", "say what to convert it into: to", "to")
    return to


def _takes(data: dict[str, Any]) -> list[documents.Take] | None:
    lines = data.get("lines")
    if lines is None:
        return None
    if not isinstance(lines, list) or not all(
        isinstance(line, dict) and is_id(line.get("line_id")) for line in lines
    ):
        raise ApiError(
            422, "invalid", 'lines must be [{"line_id": 1, "quantity": "2"}, ...]', "lines"
        )
    return [documents.Take(line["line_id"], line.get("quantity")) for line in lines]
