"""GET /api/v1/events: what Zapier's polling triggers and Make's watch modules read, newest
first, with stable ids and a cursor that stays right while new events are written."""

from __future__ import annotations

import threading

from connector import public_events
from connector.schemas import load_schema
from tests.factories import make_api_key, make_draft


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def publish(rt, n: int, type_: str = "invoice.paid", prefix: str = "t") -> None:
    """`n` events of an invoice paid, as the schema's example shows one."""
    example = load_schema("triggers/invoice_paid.json")["examples"][0]
    with rt.sessions.begin() as s:
        for i in range(n):
            data = {**example, "invoice_id": i + 1}
            public_events.publish(s, type_, f"invoice:{i + 1}", f"{prefix}:{i}", data)


def walk(client, key: str, query: str) -> list[list[str]]:
    """Every page of the listing, following `next`; bounded."""
    pages, after = [], ""
    for _ in range(50):
        answer = client.get(f"/api/v1/events?{query}{after}", headers=bearer(key))
        assert answer.status_code == 200, answer.json
        pages.append([item["id"] for item in answer.json["items"]])
        if answer.json["next"] is None:
            return pages
        after = f"&after={answer.json['next']}"
    raise AssertionError("more than 50 pages")


def number(event_id: str) -> int:
    return int(event_id.removeprefix("evt_"))


def test_events_come_newest_first_in_pages_each_once(rt, client):
    publish(rt, 25)
    key = make_api_key(rt)
    pages = walk(client, key, "type=invoice.paid&limit=10")
    assert [len(p) for p in pages] == [10, 10, 5]
    ids = [i for page in pages for i in page]
    assert len(set(ids)) == 25
    assert [number(i) for i in ids] == sorted((number(i) for i in ids), reverse=True)


def test_the_type_filter_and_the_data_match_the_hook_deliveries(rt, client):
    make_draft(rt)
    from connector import events

    events.dispatch(rt)
    publish(rt, 3, "invoice.paid")
    key = make_api_key(rt)
    drafted = client.get("/api/v1/events?type=invoice.drafted", headers=bearer(key)).json
    [item] = drafted["items"]
    assert item["type"] == "invoice.drafted" and item["data"]["invoice_id"] >= 1
    assert set(item) == {"id", "type", "created_at", "data"}
    everything = client.get("/api/v1/events", headers=bearer(key)).json["items"]
    assert {e["type"] for e in everything} == {
        "invoice.paid",
        "invoice.drafted",
        "customer.created",
    }
    again = client.get("/api/v1/events?type=invoice.drafted", headers=bearer(key)).json
    assert again["items"] == drafted["items"]  # stable ids and data


def test_paging_stays_right_while_events_are_written(rt, client):
    publish(rt, 30, prefix="before")
    key = make_api_key(rt)
    stop = threading.Event()

    def writer() -> None:
        for i in range(200):  # bounded
            if stop.is_set():
                return
            publish(rt, 1, prefix=f"during-{i}")

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        pages = walk(client, key, "type=invoice.paid&limit=7")
    finally:
        stop.set()
        thread.join(timeout=30)
    ids = [number(i) for page in pages for i in page]
    assert len(ids) == len(set(ids))  # nothing twice
    assert ids == sorted(ids, reverse=True)  # newest first across pages
    assert set(range(1, 31)) <= set(ids)  # nothing that existed before was skipped


def test_bad_listing_parameters_are_refused_naming_them(rt, client):
    key = make_api_key(rt)
    for query, field in (
        ("type=invoice.sent", "type"),
        ("limit=101", "limit"),
        ("limit=0", "limit"),
        ("after=yesterday", "after"),
    ):
        answer = client.get(f"/api/v1/events?{query}", headers=bearer(key))
        assert answer.status_code == 400 and answer.json["field"] == field, query
