"""Retention: old payloads go, run metadata stays, and nothing a live run needs is touched."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from connector import retention
from connector.models import Event, Run, RunStatus, RunStep
from database import utcnow
from tests.conftest import drain
from tests.factories import deal, make_hook, post_deal


def test_payloads_of_old_finished_runs_are_pruned_and_their_metadata_kept(rt, client):
    hook = make_hook(rt)
    old, recent = (post_deal(client, hook, deal()).json["run_ids"][0] for _ in range(2))
    drain(rt)
    [waiting] = post_deal(client, hook, deal()).json["run_ids"]  # still queued
    long_ago = utcnow() - timedelta(days=31)
    with rt.sessions.begin() as s:
        s.execute(update(Run).where(Run.id == old).values(finished_at=long_ago))
        s.execute(update(Event).where(Event.id.in_([1, 3])).values(received_at=long_ago))

    with rt.sessions.begin() as s:
        counts = retention.prune(s, days=30)
    with rt.sessions.begin() as s:
        assert retention.prune(s, days=30) == {"steps": 0, "events": 0, "replay_payloads": 0}

    assert counts == {"steps": 2, "events": 1, "replay_payloads": 0}
    with rt.sessions() as s:
        pruned = s.get_one(Run, old)
        assert pruned.status == RunStatus.SUCCEEDED and pruned.key("deal_ref")  # metadata stays
        assert pruned.key("invoice_ref") is not None
        assert all(st.input == {"_pruned": True} for st in pruned.steps)
        assert s.get_one(Event, 1).payload == {"_pruned": True}
        assert s.get_one(Event, 1).pruned_at is not None
        # The recent run and the event a queued run still needs keep everything.
        assert all(st.input != {"_pruned": True} for st in s.get_one(Run, recent).steps)
        assert s.get_one(Event, 3).payload["deal_id"]
        assert s.get_one(Run, waiting).status == RunStatus.QUEUED
        assert s.scalar(
            select(RunStep.output).where(RunStep.run_id == recent, RunStep.step_id == "invoice")
        )


def test_at_least_a_day_is_kept(rt):
    with rt.sessions.begin() as s, pytest.raises(ValueError, match="at least one day"):
        retention.prune(s, days=0)
