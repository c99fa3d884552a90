"""A flow that emails the invoice keeps every attempt in the invoice's email history."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from actions.invoicing import INVOICING_SETTINGS
from connector import runner
from connector.models import Run, RunStatus
from connector.runtime import build_services
from invoicing.models import Invoice, InvoiceEmail, InvoiceStatus
from invoicing.settings import InvoicingSettings
from tests.connector.test_dryrun import FULL_FLOW  # deal, draft, issue, send
from tests.factories import deal, make_hook, make_issuer, post_deal
from tests.smtp import SENDER, SmtpServer, smtp_server

CUSTOMER_EMAIL = "facturas@acme.example"  # the sample deal's customer


def queued(rt, client) -> int:
    make_issuer(rt)
    [run_id] = post_deal(client, make_hook(rt, FULL_FLOW), deal()).json["run_ids"]
    return run_id


def execute(rt, run_id: int, smtp: SmtpServer) -> runner.Outcome:
    mail = InvoicingSettings(
        smtp_host="127.0.0.1", smtp_port=smtp.port, smtp_starttls=False, mail_from=SENDER
    )
    tools = runner.Tools(build_services(rt.registry, rt.settings, {INVOICING_SETTINGS: mail}))
    return runner.execute_run(rt.sessions, rt.registry, run_id, tools=tools)


def emails(rt) -> list[tuple[str, str, bool]]:
    """(recipient, status, has an error) of each recorded attempt, oldest first."""
    with rt.sessions() as s:
        rows = s.scalars(select(InvoiceEmail).order_by(InvoiceEmail.id))
        return [(e.to, e.status, bool(e.error)) for e in rows]


def steps(rt, run_id: int) -> dict[str, tuple[str, Any]]:
    with rt.sessions() as s:
        run = s.get_one(Run, run_id)
        return {st.step_id: (st.status, (st.error or {}).get("class")) for st in run.steps}


def test_a_temporarily_refused_email_is_kept_and_the_retry_sends_it_once(rt, client):
    run_id = queued(rt, client)
    with smtp_server() as smtp:
        smtp.inbox.refuse[CUSTOMER_EMAIL] = "451 4.3.0 try again later"

        first = execute(rt, run_id, smtp)

        assert first.status == "retry"
        assert steps(rt, run_id)["send"] == ("failed", "transient")
        # The refusal is in the invoice's history, not rolled back with the failed step.
        assert emails(rt) == [(CUSTOMER_EMAIL, "failed", True)]
        assert smtp.inbox.messages == []

        smtp.inbox.refuse.clear()
        second = execute(rt, run_id, smtp)

        assert second.status == "succeeded"
        assert emails(rt) == [(CUSTOMER_EMAIL, "failed", True), (CUSTOMER_EMAIL, "sent", False)]
        assert len(smtp.inbox.messages) == 1
        assert execute(rt, run_id, smtp).status == "skipped"  # finished: nothing sent again
        assert len(smtp.inbox.messages) == 1
    with rt.sessions() as s:
        [invoice] = s.scalars(select(Invoice))
        assert invoice.status == InvoiceStatus.ISSUED  # issued once, by the first attempt


def test_a_permanently_refused_email_fails_the_run_and_is_kept_with_its_reason(rt, client):
    run_id = queued(rt, client)
    with smtp_server() as smtp:
        smtp.inbox.refuse[CUSTOMER_EMAIL] = "550 5.1.1 <facturas@acme.example>: mailbox unavailable"

        outcome = execute(rt, run_id, smtp)

    assert outcome.status == "failed"
    assert steps(rt, run_id) == {
        "deal": ("succeeded", None),
        "invoice": ("succeeded", None),
        "issue": ("succeeded", None),
        "send": ("failed", "validation"),
    }
    assert emails(rt) == [(CUSTOMER_EMAIL, "failed", True)]
    with rt.sessions() as s:
        run = s.get_one(Run, run_id)
        assert run.status == RunStatus.FAILED
        assert "mailbox unavailable" in run.error["message"]
        [email] = s.scalars(select(InvoiceEmail))
        assert email.error is not None and "mailbox unavailable" in email.error


def test_a_recipient_with_a_line_break_fails_the_run_before_anything_is_sent(rt, client):
    flow = {
        **FULL_FLOW,
        "steps": [
            *FULL_FLOW["steps"][:-1],
            {
                **FULL_FLOW["steps"][-1],
                "input": {
                    "invoice_id": {"$expr": "steps.issue.invoice_id"},
                    "to": "facturas@acme.example\r\n",  # trimmed and sent, until now
                },
            },
        ],
    }
    make_issuer(rt)
    [run_id] = post_deal(client, make_hook(rt, flow, checked=False), deal()).json["run_ids"]
    with smtp_server() as smtp:
        outcome = execute(rt, run_id, smtp)

        assert smtp.inbox.messages == []
    assert outcome.status == "failed"
    assert steps(rt, run_id)["send"] == ("failed", "validation")
    assert emails(rt) == []
    with rt.sessions() as s:
        error = s.get_one(Run, run_id).error
        assert [e["path"] for e in error["errors"]] == ["to"]
