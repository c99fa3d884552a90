"""Reports over HTTP: the JSON API (summary, never billed) and the page people read."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from connector.runtime import Runtime
from invoicing.deals import DealData, record_deal
from tests.factories import make_api_key, make_draft, make_issuer, signed_in
from tests.invoicing.test_reports import ANA, BRUNO, NOBODY, T0, h, issued, paid, won

SUMMARY = "/api/v1/reports/summary"
NEVER_BILLED = "/api/v1/reports/never-billed"


def bearer(rt: Runtime) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_api_key(rt)}"}


def four_deals(rt: Runtime) -> dict[str, int]:
    """Ana: two invoiced (one paid); Bruno: a draft; nobody, no campaign: nothing."""
    make_issuer(rt)
    won(rt, "A1", T0, ANA, "Feria Madrid")
    won(rt, "A2", T0 + timedelta(days=1), ANA, "Feria Madrid")
    won(rt, "B1", T0 + timedelta(days=2), BRUNO, "Web")
    won(rt, "N1", T0 + timedelta(days=3), NOBODY, None, amount=None)
    a1 = issued(rt, "A1", h(24))
    paid(rt, a1, h(72))
    a2 = issued(rt, "A2", h(50.5))
    return {"A1": a1, "A2": a2, "B1": make_draft(rt, deal_id="B1")}


# ------------------------------------------------------------------ API


def test_the_summary_gives_totals_and_groups_with_hours_and_money_as_text(rt, client):
    four_deals(rt)

    body = client.get(SUMMARY, headers=bearer(rt)).json

    assert (body["since"], body["until"]) == (None, None)
    totals = body["totals"]
    assert {k: totals[k] for k in ("won", "invoiced", "paid", "never_billed", "draft_pending")} == {
        "won": 4,
        "invoiced": 2,
        "paid": 1,
        "never_billed": 2,
        "draft_pending": 1,
    }
    assert totals["conversion_rate"] == 0.5
    assert totals["amount_won"] == {"EUR": "3000.00"}
    assert totals["amount_invoiced"] == {"EUR": "4961.00"}
    # (24 + 50.5) / 2 = 37.25 h: one decimal, half up
    assert totals["won_to_invoiced_hours"] == {"count": 2, "median": 37.3, "mean": 37.3}
    assert totals["won_to_paid_hours"] == {"count": 1, "median": 72.0, "mean": 72.0}

    owners = [(g["owner"], g["won"], g["invoiced"], g["conversion_rate"]) for g in body["by_owner"]]
    assert owners == [
        ({"name": "Ana Ruiz", "email": "ana@example.com"}, 2, 2, 1.0),
        ({"name": "Bruno Gil", "email": None}, 1, 0, 0.0),
        (None, 1, 0, 0.0),
    ]
    assert body["by_owner"][1]["won_to_invoiced_hours"] == {
        "count": 0,
        "median": None,
        "mean": None,
    }
    campaigns = [(g["campaign"], g["won"], g["draft_pending"]) for g in body["by_campaign"]]
    assert campaigns == [("Feria Madrid", 2, 0), ("Web", 1, 1), (None, 1, 0)]
    assert body["by_campaign"][2]["amount_won"] == {}  # its one deal had no amount


def test_the_summary_filters_on_whole_days_of_won_at(rt, client):
    four_deals(rt)  # won on 2, 3, 4 and 5 March 2026

    body = client.get(
        SUMMARY, query_string={"since": "2026-03-03", "until": "2026-03-04"}, headers=bearer(rt)
    ).json

    assert (body["since"], body["until"]) == ("2026-03-03", "2026-03-04")
    assert (body["totals"]["won"], body["totals"]["invoiced"]) == (2, 1)  # A2 and B1
    assert [g["campaign"] for g in body["by_campaign"]] == ["Feria Madrid", "Web"]


def test_never_billed_lists_deals_with_their_draft_and_pages(rt, client):
    ids = four_deals(rt)
    headers = bearer(rt)

    first = client.get(NEVER_BILLED, query_string={"limit": 1}, headers=headers).json
    second = client.get(NEVER_BILLED, query_string={"limit": 1, "offset": 1}, headers=headers).json

    assert (first["total"], first["limit"], first["offset"]) == (2, 1, 0)
    [draft] = first["items"]
    assert draft["external_ref"] == "B1"
    assert (draft["draft_invoice_id"], draft["invoice_id"], draft["invoice_status"]) == (
        ids["B1"],
        ids["B1"],
        "draft",
    )
    assert draft["owner_name"] == "Bruno Gil" and draft["campaign"] == "Web"
    assert (draft["amount"], draft["currency"]) == ("1000.00", "EUR")
    assert draft["won_at"] == "2026-03-04T09:00:00+00:00"
    assert draft["age_days"] >= 0
    [bare] = second["items"]
    assert (bare["external_ref"], bare["draft_invoice_id"], bare["amount"]) == ("N1", None, None)
    assert (bare["owner_name"], bare["campaign"]) == (None, None)
    filtered = client.get(NEVER_BILLED, query_string={"until": "2026-03-04"}, headers=headers).json
    assert [d["external_ref"] for d in filtered["items"]] == ["B1"]


@pytest.mark.parametrize(
    ("path", "query", "field"),
    [
        (SUMMARY, {"since": "2026-02-30"}, "since"),
        (SUMMARY, {"until": "01/03/2026"}, "until"),
        (SUMMARY, {"since": "2026-03-05", "until": "2026-03-04"}, "until"),
        (NEVER_BILLED, {"since": "yesterday"}, "since"),
        (NEVER_BILLED, {"limit": "0"}, "limit"),
        (NEVER_BILLED, {"offset": "-1"}, "offset"),
    ],
)
def test_bad_parameters_are_a_400_naming_the_field(rt, client, path, query, field):
    response = client.get(path, query_string=query, headers=bearer(rt))

    assert response.status_code == 400
    assert response.json["error"] == "bad_request"
    assert response.json["field"] == field
    assert field in response.json["message"]


@pytest.mark.parametrize("path", [SUMMARY, NEVER_BILLED])
def test_reports_need_an_api_key(client, path):
    response = client.get(path)

    assert response.status_code == 401
    assert response.json["error"] == "unauthorized"


# ------------------------------------------------------------------ page


def test_the_page_needs_signing_in(client):
    response = client.get("/ui/reports")

    assert response.status_code == 302
    assert "/ui/login?next=/ui/reports" in response.headers["Location"]


def test_the_page_shows_the_figures_in_spanish(rt, client):
    ids = four_deals(rt)
    signed_in(rt, client)

    page = client.get("/ui/reports").get_data(as_text=True)

    assert "<h1>Informes</h1>" in page
    assert 'data-kpi="won">4<' in page
    assert 'data-kpi="conversion">2 · 50 %<' in page
    assert 'data-kpi="never_billed">2<' in page
    assert "1 con borrador pendiente" in page
    assert 'data-kpi="to_invoiced">1,6 d<' in page  # 37.25 h
    assert 'data-kpi="to_paid">3 d<' in page  # 72 h
    assert "3.000,00\u00a0€" in page and "4.961,00\u00a0€" in page
    assert "Por comercial" in page and "Por campaña" in page
    assert "Sin comercial" in page and "Sin campaña" in page
    assert "Ana Ruiz" in page and "100 %" in page  # her conversion bar
    assert 'style="width:50.00%"' in page  # Ana's paid half of the stacked bar
    href = f'href="/ui/invoices/{ids["B1"]}"'
    assert href in page and f"Borrador pendiente #{ids['B1']}" in page
    assert "Sin factura" in page  # N1
    # Nothing external, CSS bars only: the one script is the site's own ui.js.
    assert page.count("<script") == 1 and '<script src="/static/ui.js"' in page
    assert "://" not in page


def test_the_page_shows_the_figures_in_english(rt, client):
    ids = four_deals(rt)
    signed_in(rt, client)

    page = client.get("/ui/reports?lang=en").get_data(as_text=True)

    assert "<h1>Reports</h1>" in page
    assert 'data-kpi="conversion">2 · 50 %<' in page
    assert 'data-kpi="to_invoiced">1.6 d<' in page
    assert "€3,000.00" in page and "€4,961.00" in page
    assert "By owner" in page and "No campaign" in page
    assert f"Draft pending #{ids['B1']}" in page
    assert "with a draft pending" in page


def test_the_page_filters_by_dates_and_explains_a_bad_one(rt, client):
    four_deals(rt)
    signed_in(rt, client)

    filtered = client.get("/ui/reports?since=2026-03-04&until=2026-03-05").get_data(as_text=True)
    assert 'data-kpi="won">2<' in filtered
    assert 'value="2026-03-04"' in filtered and 'value="2026-03-05"' in filtered
    assert "Ana Ruiz" not in filtered

    bad = client.get("/ui/reports?since=2026-13-01")
    assert bad.status_code == 400
    text = bad.get_data(as_text=True)
    assert "La fecha no es válida" in text
    assert 'value="2026-13-01"' in text  # kept, to be corrected

    backwards = client.get("/ui/reports?since=2026-03-05&until=2026-03-01")
    assert backwards.status_code == 400
    assert "anterior a la fecha" in backwards.get_data(as_text=True)


def test_an_empty_period_says_so(rt, client):
    signed_in(rt, client)

    page = client.get("/ui/reports").get_data(as_text=True)

    assert "No hay oportunidades ganadas en este periodo." in page
    assert 'data-kpi="to_invoiced">—<' in page


def test_the_never_billed_table_pages_by_fifty(rt, client):
    with rt.sessions.begin() as s:
        for i in range(51):
            record_deal(
                s,
                DealData(
                    source="test",
                    external_ref=f"P{i:02d}",
                    won_at=T0 + timedelta(hours=i),
                    amount=Decimal("10.00"),
                ),
            )
    signed_in(rt, client)

    first = client.get("/ui/reports?since=2026-03-01").get_data(as_text=True)
    second = client.get("/ui/reports?since=2026-03-01&page=2").get_data(as_text=True)

    assert "<code>P00</code>" in first and "<code>P49</code>" in first
    assert "<code>P50</code>" not in first
    assert "/ui/reports?page=2&amp;since=2026-03-01#never-billed" in first
    assert "<code>P50</code>" in second and "<code>P00</code>" not in second
    assert "/ui/reports?page=1&amp;since=2026-03-01#never-billed" in second
