"""The pipeline board: the seeded demo pipeline by stage; moving a card to "Ganada" starts
the deal-won flow and the card shows its invoice."""

from __future__ import annotations

from sqlalchemy import select

from connector import events
from invoicing.models import Invoice, Opportunity
from tests.conftest import drain
from tests.factories import csrf, signed_in
from web.demo import ensure_pipeline


def test_the_board_shows_the_demo_pipeline_and_winning_a_card_drafts_its_invoice(rt, client):
    with rt.sessions.begin() as s:
        ensure_pipeline(s, rt.registry)
        ensure_pipeline(s, rt.registry)  # once only
    ui = signed_in(rt, client)

    page = ui.get("/ui/pipeline")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Implantación ERP" in html and "Negociación" in html and "1.710,00" in html
    with rt.sessions() as s:
        assert len(s.scalars(select(Opportunity)).all()) == 3
        erp = s.scalar(select(Opportunity).where(Opportunity.title == "Implantación ERP"))
        assert erp is not None

    moved = ui.post(
        f"/ui/pipeline/{erp.id}/stage", data={"stage": "ganada", "csrf_token": csrf(ui)}
    )
    assert moved.status_code == 302
    events.dispatch(rt)
    drain(rt)

    with rt.sessions() as s:
        invoice = s.scalar(select(Invoice).where(Invoice.external_ref == str(erp.id)))
        assert invoice is not None and str(invoice.total) == "2069.10"  # 1710 + 21 % IVA
    html = ui.get("/ui/pipeline").get_data(as_text=True)
    assert "Borrador" in html and "Oportunidad ganada" in html


def test_a_card_cannot_move_to_a_stage_that_does_not_exist(rt, client):
    with rt.sessions.begin() as s:
        ensure_pipeline(s, rt.registry)
        first = s.scalars(select(Opportunity)).first()
    ui = signed_in(rt, client)

    answer = ui.post(
        f"/ui/pipeline/{first.id}/stage",
        data={"stage": "cerrada", "csrf_token": csrf(ui)},
        follow_redirects=True,
    )

    assert "Esa etapa no existe" in answer.get_data(as_text=True)
