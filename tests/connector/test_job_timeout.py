"""A run whose step hangs past the job's time is tried again later, not failed for good."""

from __future__ import annotations

import pytest
from rq.registry import ScheduledJobRegistry

from connector import jobs
from connector.http_client import save_connection
from connector.models import Run, RunStatus
from connector.settings import Settings
from connector.worker import Worker
from tests.connector.test_http_action import NOTIFY_FLOW
from tests.factories import deal, make_hook, post_deal
from tests.fake_api import fake_api


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """One second per run, and the fake API on 127.0.0.1 allowed."""
    return settings.with_(run_timeout_seconds=1, http_allow="127.0.0.1")


def test_a_step_that_outlasts_the_job_timeout_is_retried_later_with_its_steps_kept(rt, client):
    with fake_api() as api:
        api.delay = 3.0  # the CRM hangs
        with rt.sessions.begin() as s:
            save_connection(s, rt.secrets, name="crm", base_url=api.url)
        [run_id] = post_deal(client, make_hook(rt, NOTIFY_FLOW), deal()).json["run_ids"]

        # The product's worker class, as `make run` starts it: the job times out after 1 s.
        Worker([rt.queue], connection=rt.redis).work(burst=True, logging_level="WARNING")

    with rt.sessions() as s:
        run = s.get_one(Run, run_id)
        assert run.status == RunStatus.QUEUED, run.error
        assert run.error["class"] == "transient"
        assert "took longer than its time allows" in run.error["message"]
        steps = {st.step_id: st.status for st in run.steps}
        assert steps == {"deal": "succeeded", "invoice": "succeeded", "notify": "failed"}
    # The next attempt is on the scheduler; RQ holds no failed job for it.
    assert ScheduledJobRegistry(queue=rt.queue).get_job_ids() == [jobs.job_id(run_id, 1)]
    assert rt.queue.failed_job_registry.get_job_ids() == []
