"""The event log (registro de eventos): chained by hash, and a check that finds changes."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from invoicing import sif_log
from invoicing.issuing import issue
from invoicing.models import SifEvent, VerifactuRecord
from tests.factories import make_api_key, make_draft, make_issuer

NOW = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)


def _issued(rt, count: int) -> list[int]:
    make_issuer(rt)
    ids = []
    for _ in range(count):
        draft = make_draft(rt)
        with rt.sessions.begin() as s:
            issue(s, draft, now=NOW)
        ids.append(draft)
    return ids


def test_events_are_chained_and_an_edited_event_is_found(rt):
    with rt.sessions.begin() as s:
        for kind in ("start", "record_export", "event_export"):
            sif_log.log(s, kind, {"n": kind})
    with rt.sessions() as s:
        events = list(s.scalars(select(SifEvent).order_by(SifEvent.sequence)))
        assert [e.sequence for e in events] == [1, 2, 3]
        assert events[0].previous_hash is None
        assert [e.previous_hash for e in events[1:]] == [e.hash for e in events[:2]]
        assert sif_log.inspect(s).anomalies == ()

    with rt.sessions.begin() as s:
        s.scalars(select(SifEvent).where(SifEvent.sequence == 2)).one().detail = {"n": "x"}
    with rt.sessions() as s:
        assert sif_log.inspect(s).anomalies == ("event 2: the event log was changed",)


def test_the_check_recomputes_each_record_and_logs_what_it_found(rt):
    _issued(rt, 2)
    with rt.sessions.begin() as s:
        assert sif_log.check(s).anomalies == ()
    # Someone edits the total of the second invoice's stored record.
    with rt.sessions.begin() as s:
        row = s.scalars(select(VerifactuRecord).where(VerifactuRecord.sequence == 2)).one()
        row.xml = row.xml.replace("<sum1:ImporteTotal>3001.41", "<sum1:ImporteTotal>301.41")
    with rt.sessions.begin() as s:
        found = sif_log.check(s)
    assert found.records == 2
    assert found.anomalies == ("record 2 (F2026-00002): its huella does not match",)
    with rt.sessions() as s:
        kinds = [(e.kind, e.detail) for e in s.scalars(select(SifEvent).order_by(SifEvent.id))]
    assert kinds == [
        ("anomaly_check", {"records": 2, "anomalies": 0}),
        ("anomaly_check", {"records": 2, "anomalies": 1}),
        ("anomaly", {"what": "record 2 (F2026-00002): its huella does not match"}),
    ]


def test_exports_are_logged_and_the_api_says_whether_the_chains_are_intact(rt, client):
    [invoice_id] = _issued(rt, 1)
    key = {"Authorization": f"Bearer {make_api_key(rt)}"}

    assert (
        client.get(f"/api/v1/invoices/{invoice_id}/verifactu.xml", headers=key).status_code == 200
    )
    body = client.get("/api/v1/verifactu/events", headers=key).json

    assert body["intact"] is True and body["anomalies"] == []
    assert [(e["kind"], e["detail"]) for e in body["items"]] == [
        ("record_export", {"invoice_id": invoice_id, "kind": "alta"}),
        ("event_export", {"limit": 50, "offset": 0}),
    ]
    assert body["items"][1]["previous_hash"] == body["items"][0]["hash"]
    assert body["items"][0]["description"] == "Exportación de registros de facturación"


def test_the_check_command_exits_1_on_an_anomaly(rt, settings, monkeypatch, capsys):
    from web import cli

    _issued(rt, 1)
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("REDIS_URL", settings.redis_url)
    assert cli.main(["verifactu-check"]) == 0
    with rt.sessions.begin() as s:
        s.scalars(select(VerifactuRecord)).one().huella = "0" * 64
    assert cli.main(["verifactu-check"]) == 1
    out = capsys.readouterr().out
    assert "ANOMALY: record 1 (F2026-00001): its huella does not match" in out
