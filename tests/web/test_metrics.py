"""Prometheus metrics: runs by flow and status, step latency, queue depth and oldest age."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import update

from connector.models import Run
from database import utcnow
from tests.conftest import drain
from tests.factories import deal, make_api_key, make_hook, post_deal


def test_metrics_count_runs_time_steps_and_watch_the_queue(rt, client):
    headers = {"Authorization": f"Bearer {make_api_key(rt)}"}
    hook = make_hook(rt)
    for _ in range(2):
        post_deal(client, hook, deal())
    drain(rt)
    post_deal(client, hook, deal())  # one left waiting
    with rt.sessions.begin() as s:
        s.execute(
            update(Run).where(Run.id == 3).values(created_at=utcnow() - timedelta(seconds=90))
        )

    answer = client.get("/metrics", headers=headers)

    assert answer.status_code == 200
    text = answer.get_data(as_text=True)
    flow = "Oportunidad ganada → factura en borrador"
    assert f'puente_runs{{flow="{flow}",status="succeeded"}} 2' in text
    assert f'puente_runs{{flow="{flow}",status="queued"}} 1' in text
    action = 'action="invoicing.create_draft_invoice"'
    assert f"puente_step_duration_seconds_count{{{action}}} 2" in text
    assert f'puente_step_duration_seconds_bucket{{{action},le="+Inf"}} 2' in text
    age = float(re.search(r"^puente_oldest_queued_run_age_seconds (\S+)$", text, re.M).group(1))
    assert 85 < age < 600
    assert "puente_queue_depth 1" in text and "puente_redis_up 1" in text


def test_metrics_need_an_api_key(client):
    assert client.get("/metrics").status_code == 401
