"""The built-in CRM's pipeline board: opportunities by stage; moving one to "Ganada" starts
the deal-won flows, as a deal won in any CRM does."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from sqlalchemy import select

from invoicing import crm
from invoicing.errors import InvoicingError
from invoicing.models import Invoice, Opportunity
from web.ui.common import allow, blueprint, sessions

bp = blueprint("pipeline", __name__)


@bp.get("/pipeline")
def pipeline() -> Any:
    with sessions()() as s:
        opportunities = list(s.scalars(select(Opportunity).order_by(Opportunity.id.desc())))
        documents = {
            int(doc.external_ref): doc
            for doc in s.scalars(
                select(Invoice)
                .where(Invoice.source == crm.SOURCE, Invoice.kind == "invoice")
                .order_by(Invoice.id)
            )
            if doc.external_ref and doc.external_ref.isdigit()
        }
        columns = [
            (stage, crm.STAGE_NAMES[stage], [o for o in opportunities if o.stage == stage])
            for stage in crm.STAGES
        ]
        return render_template(
            "ui/pipeline.html",
            columns=columns,
            invoices=documents,
            amount=crm.amount_of,
            stages=crm.STAGES,
            names=crm.STAGE_NAMES,
        )


@bp.post("/pipeline/<int:opportunity_id>/stage")
@allow("billing")
def move(opportunity_id: int) -> Any:
    stage = request.form.get("stage", "")
    if stage not in crm.STAGES:
        flash("pipeline_bad_stage", "error")
        return redirect(url_for("pipeline.pipeline"))
    try:
        with sessions().begin() as s:
            crm.move(s, opportunity_id, stage)
        said = "pipeline_won" if stage == crm.WON else "pipeline_moved"
        flash(said, "ok")
    except InvoicingError:
        flash("pipeline_cannot_win", "error")
    return redirect(url_for("pipeline.pipeline"))
