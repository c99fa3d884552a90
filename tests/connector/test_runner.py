"""The runner resumes instead of repeating, classifies failures, and keeps effects atomic."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from rq.registry import ScheduledJobRegistry
from sqlalchemy import func, select

import actions
import triggers
from actions.http import REQUEST
from actions.invoicing import CREATE_DRAFT_INVOICE, create_draft_invoice
from connector import jobs, runner, runtime
from connector.errors import TransientError
from connector.models import Run, RunStatus, RunStep
from connector.registry import Registry
from connector.runtime import build_runtime
from connector.spec import Effects
from invoicing.models import Invoice
from tests.conftest import drain
from tests.factories import deal, make_hook, post_deal
from web import create_app, demo

INVOICE_STEP = next(s for s in demo.DEMO_FLOW["steps"] if s["id"] == "invoice")


class Flaky:
    """Fails with a transient error `failures` times, then creates the draft for real.

    A database step after the first of its batch is performed twice when it fails (the batch
    runs again, carefully: runner._run_batch), so it takes two failures for it to fail an
    attempt."""

    def __init__(self, failures: int, error: Exception | None = None) -> None:
        self.failures, self.calls = failures, 0
        self.error = error or TransientError("503 from the invoicing API", retry_after=None)

    def __call__(self, ctx: Any, data: dict[str, Any]) -> dict[str, Any]:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return create_draft_invoice(ctx, data)


def registry_with(**performs: Any) -> Registry:
    """The real registry plus test actions: `test.<name>` performing the given function."""
    extra = [
        dataclasses.replace(CREATE_DRAFT_INVOICE, key=f"test.{name}", perform=perform)
        for name, perform in performs.items()
    ]
    return Registry.build(triggers.ALL, [*actions.ALL, *extra], actions.SERVICES)


def two_step_flow(second_action: str) -> dict[str, Any]:
    """Step 1 makes the draft invoice; step 2 (under test) makes a draft quote for the deal
    (one record of each kind per deal: the trigger's deal is what they are unique by)."""
    first = INVOICE_STEP
    second = {"id": "second", "action": second_action, "input": {**first["input"], "kind": "quote"}}
    return {**demo.DEMO_FLOW, "steps": [first, second]}


def invoices(rt) -> int:
    with rt.sessions() as s:
        return s.scalar(select(func.count()).select_from(Invoice)) or 0


def execute(rt, registry: Registry, run_id: int) -> runner.Outcome:
    return runner.execute_run(rt.sessions, registry, run_id, tools=rt.tools)


def queue_run(
    rt,
    client,
    flow: dict[str, Any],
    payload: dict[str, Any] | None = None,
    registry: Registry | None = None,
    checked: bool = True,
) -> int:
    hook = make_hook(rt, flow, registry=registry, checked=checked)
    [run_id] = post_deal(client, hook, payload or deal()).json["run_ids"]
    return run_id


def test_a_retry_resumes_at_the_failed_step_and_never_repeats_a_finished_one(rt, client):
    flaky = Flaky(failures=2)
    registry = registry_with(flaky=flaky)
    run_id = queue_run(rt, client, two_step_flow("test.flaky"), registry=registry)

    first = execute(rt, registry, run_id)

    assert first.status == "retry" and first.retry_in is not None
    with rt.sessions() as s:
        run = s.get_one(Run, run_id)
        assert run.status == RunStatus.QUEUED
        assert run.error["class"] == "transient"
        steps = {st.step_id: st for st in run.steps}
        assert steps["invoice"].status == "succeeded"
        assert steps["second"].status == "failed"
    assert invoices(rt) == 1

    second = execute(rt, registry, run_id)

    assert second.status == "succeeded"
    with rt.sessions() as s:
        steps = {st.step_id: st for st in s.scalars(select(RunStep))}
        assert steps["invoice"].attempts == 1  # not performed again
        assert steps["second"].attempts == 2
        assert s.get_one(Run, run_id).attempts == 2
    assert flaky.calls == 3  # twice in the first attempt's batch, once in the second's
    assert invoices(rt) == 2


def test_a_step_failing_for_a_moment_after_another_passes_when_its_batch_runs_again(rt, client):
    """The batch runs with no savepoints first; when its second step fails, the transaction
    rolls back and the batch runs again carefully: what the first try did is gone."""
    flaky = Flaky(failures=1)
    registry = registry_with(flaky=flaky)
    run_id = queue_run(rt, client, two_step_flow("test.flaky"), registry=registry)
    savepoints: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.startswith("SAVEPOINT"):
            savepoints.append(statement)

    sa.event.listen(rt.engine, "before_cursor_execute", record)
    try:
        assert execute(rt, registry, run_id).status == "succeeded"
    finally:
        sa.event.remove(rt.engine, "before_cursor_execute", record)

    assert flaky.calls == 2 and len(savepoints) == 1  # the careful run's, for the second step
    with rt.sessions() as s:
        run = s.get_one(Run, run_id)
        assert (run.attempts, [a.status for a in run.attempts_log]) == (1, ["succeeded"])
        assert [(st.step_id, st.status, st.attempts) for st in run.steps] == [
            ("invoice", "succeeded", 1),
            ("second", "succeeded", 1),
        ]
        kinds = sorted(s.scalars(select(Invoice.kind)))
    assert kinds == ["invoice", "quote"]  # one of each: the first try's draft rolled back


def test_transient_failures_end_in_the_dead_letter_list_with_every_attempt_kept(rt, client):
    registry = registry_with(flaky=Flaky(failures=100))
    run_id = queue_run(rt, client, two_step_flow("test.flaky"), registry=registry)

    outcomes = [execute(rt, registry, run_id).status for _ in range(runner.MAX_ATTEMPTS)]

    assert outcomes == ["retry"] * (runner.MAX_ATTEMPTS - 1) + ["dead"]
    with rt.sessions() as s:
        run = s.get_one(Run, run_id)
        assert run.status == RunStatus.DEAD and run.attempts == runner.MAX_ATTEMPTS
        history = [(a.attempt, a.status) for a in run.attempts_log]
        assert history == [(n, "retry") for n in range(1, 5)] + [(5, "dead")]
        assert all("503" in a.error["message"] for a in run.attempts_log)


def test_an_action_s_own_retry_policy_decides_when_to_give_up(rt, client):
    patient = dataclasses.replace(
        CREATE_DRAFT_INVOICE, key="test.once", max_attempts=1, perform=Flaky(failures=100)
    )
    registry = Registry.build(triggers.ALL, [*actions.ALL, patient], actions.SERVICES)
    flow = {**demo.DEMO_FLOW, "steps": [{**INVOICE_STEP, "action": "test.once"}]}
    run_id = queue_run(rt, client, flow, registry=registry)

    assert execute(rt, registry, run_id).status == "dead"  # no retry allowed


def test_a_validation_error_fails_at_once_with_every_field_named(rt, client):
    payload = deal()
    payload["lines"][0]["quantity"] = "0"
    payload["lines"][1]["tax_rate"] = "21"
    run_id = queue_run(rt, client, demo.DEMO_FLOW, payload)
    registry = registry_with()

    outcome = execute(rt, registry, run_id)

    assert outcome.status == "failed"
    with rt.sessions() as s:
        run = s.get_one(Run, run_id)
        assert run.error["class"] == "validation"
        assert [e["path"] for e in run.error["errors"]] == ["lines[0].quantity"]
        assert "must not be zero" in run.error["message"]
    assert execute(rt, registry, run_id).status == "skipped"  # failed runs are not retried


@pytest.mark.parametrize(
    "number",
    [1e308, 10**4000, 10**13, {"$expr": "`1e308`"}, {"$expr": "`NaN`"}, {"$expr": "`-Infinity`"}],
    ids=["1e308", "4001 digits", "1e13", "1e308 literal", "NaN literal", "-Infinity literal"],
)
def test_a_huge_number_mapped_into_an_amount_fails_the_run_as_invalid_data(rt, client, number):
    line = {"description": "Consultoría", "quantity": 1, "unit_price": number, "tax_rate": 21}
    flow = {
        **demo.DEMO_FLOW,
        "steps": [{**INVOICE_STEP, "input": {**INVOICE_STEP["input"], "lines": [line]}}],
    }
    run_id = queue_run(rt, client, flow, checked=False)

    assert execute(rt, registry_with(), run_id).status == "failed"
    with rt.sessions() as s:
        run = s.get_one(Run, run_id)
        assert run.error["class"] == "validation"  # not a crash in the invoicing core
        assert [e["path"] for e in run.error["errors"]] == ["lines[0].unit_price"]
    assert invoices(rt) == 0


def test_a_mapping_that_misses_a_required_field_fails_naming_it(rt, client):
    flow = {
        **demo.DEMO_FLOW,
        "steps": [
            {
                **INVOICE_STEP,
                "input": {
                    **INVOICE_STEP["input"],
                    "customer": {"$expr": "trigger.cliente"},
                },  # misspelt path
            }
        ],
    }
    # Design-time checks refuse to enable it (tests/connector/test_checks.py); if the data
    # misses the field at run time anyway, the run fails naming it.
    run_id = queue_run(rt, client, flow, checked=False)

    assert execute(rt, registry_with(), run_id).status == "failed"
    with rt.sessions() as s:
        run = s.get_one(Run, run_id)
        assert run.error["class"] == "validation"
        assert run.error["errors"][0]["path"] == "customer"
        assert run.error["errors"][0]["message"] == "is required but missing"


def test_an_action_output_that_breaks_its_schema_rolls_its_effect_back(rt, client):
    def bad_output(ctx: Any, data: dict[str, Any]) -> dict[str, Any]:
        create_draft_invoice(ctx, data)
        return {"invoice": "oops"}

    flow = {**demo.DEMO_FLOW, "steps": [{**INVOICE_STEP, "action": "test.bad"}]}
    registry = registry_with(bad=bad_output)
    run_id = queue_run(rt, client, flow, registry=registry)

    assert execute(rt, registry, run_id).status == "failed"
    with rt.sessions() as s:
        run = s.get_one(Run, run_id)
        assert run.error["class"] == "internal"
        assert "breaks its schema" in run.error["message"]
    assert invoices(rt) == 0


def test_a_crash_in_an_action_is_recorded_as_an_internal_error(rt, client):
    def crash(ctx: Any, data: dict[str, Any]) -> dict[str, Any]:
        raise KeyError("missing_thing")

    flow = {**demo.DEMO_FLOW, "steps": [{**INVOICE_STEP, "action": "test.crash"}]}
    registry = registry_with(crash=crash)
    run_id = queue_run(rt, client, flow, registry=registry)

    assert execute(rt, registry, run_id).status == "failed"
    with rt.sessions() as s:
        run = s.get_one(Run, run_id)
        assert run.error["class"] == "internal"
        assert "missing_thing" in run.error["message"]
        assert run.steps[0].status == "failed"


def test_the_worker_job_schedules_a_transient_retry_on_the_rq_scheduler(settings, client, rt):
    flaky_rt = build_runtime(settings, registry=registry_with(flaky=Flaky(failures=2)))
    runtime.install(flaky_rt)
    try:
        hook = make_hook(flaky_rt, two_step_flow("test.flaky"))
        app_client = create_app(runtime=flaky_rt).test_client()
        [run_id] = post_deal(app_client, hook, deal()).json["run_ids"]

        drain(flaky_rt)

        with flaky_rt.sessions() as s:
            run = s.get_one(Run, run_id)
            assert run.status == RunStatus.QUEUED
            assert run.job_id == jobs.job_id(run_id, 1)
        scheduled = ScheduledJobRegistry(queue=flaky_rt.queue)
        assert scheduled.get_job_ids() == [f"run-{run_id}-a1"]
    finally:
        runtime.install(rt)
        flaky_rt.close()


def filtered_flow() -> dict[str, Any]:
    return {
        **demo.DEMO_FLOW,
        "steps": [
            {
                "id": "positive",
                "filter": {"$expr": "to_number(trigger.amount) > `0`"},
                "explain": "the amount is 0",
            },
            INVOICE_STEP,
        ],
    }


def test_a_filter_stops_the_run_and_the_log_says_why(rt, client):
    run_id = queue_run(rt, client, filtered_flow(), deal(amount="0"))

    assert execute(rt, registry_with(), run_id).status == "stopped"

    with rt.sessions() as s:
        run = s.get_one(Run, run_id)
        assert run.status == RunStatus.STOPPED
        assert run.error["message"] == "stopped at step 'positive': the amount is 0"
        [step] = run.steps
        assert (step.step_id, step.action_key, step.status) == ("positive", "filter", "stopped")
        assert step.output == {"passed": False, "explain": "the amount is 0"}
    assert invoices(rt) == 0


def test_a_filter_that_passes_lets_the_run_go_on(rt, client):
    run_id = queue_run(rt, client, filtered_flow(), deal(amount="10"))
    assert execute(rt, registry_with(), run_id).status == "succeeded"
    assert invoices(rt) == 1


def test_lookup_tables_translate_crm_codes_in_a_mapping(rt, client):
    flow = {
        **demo.DEMO_FLOW,
        "lookups": {"tipo_iva": {"CONS-H": "21", "LIC-ERP": "10"}},
        "steps": [
            {
                **INVOICE_STEP,
                "input": {
                    **INVOICE_STEP["input"],
                    "lines": {
                        "$expr": "trigger.lines[*].{description: description, "
                        "quantity: quantity, unit_price: unit_price, "
                        "tax_rate: lookup('tipo_iva', sku)}"
                    },
                },
            }
        ],
    }
    run_id = queue_run(rt, client, flow)

    assert execute(rt, registry_with(), run_id).status == "succeeded"
    with rt.sessions() as s:
        invoice = s.scalars(select(Invoice)).one()
        assert [line.tax_rate for line in invoice.lines] == [Decimal(21), Decimal(10)]


class Abort(BaseException):
    """What a worker stopping dead looks like to the code it was running (no handler runs)."""


class Counted:
    """A step with effects outside our database: it only counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, ctx: Any, data: dict[str, Any]) -> dict[str, Any]:
        self.calls += 1
        return create_draft_invoice(ctx, data)


def test_a_step_with_outside_effects_is_committed_before_the_steps_after_it(rt, client):
    """Database steps share a transaction; a step reaching the outside world commits with its
    row on its own, so stopping dead in a later step never makes it run twice."""
    outside = Counted()
    stops = iter([Abort("the worker stopped"), None])

    def later(ctx: Any, data: dict[str, Any]) -> dict[str, Any]:
        stop = next(stops)
        if stop is not None:
            raise stop
        return create_draft_invoice(ctx, data)

    registry = Registry.build(
        triggers.ALL,
        [
            *actions.ALL,
            dataclasses.replace(
                CREATE_DRAFT_INVOICE,
                key="test.outside",
                perform=outside,
                effects=Effects.EXTERNAL_WRITE,
            ),
            dataclasses.replace(CREATE_DRAFT_INVOICE, key="test.later", perform=later),
        ],
        actions.SERVICES,
    )
    first = INVOICE_STEP
    flow = {
        **demo.DEMO_FLOW,
        "steps": [
            first,
            {**two_step_flow("test.outside")["steps"][1], "id": "outside"},
            {
                "id": "later",
                "action": "test.later",
                "input": {**first["input"], "kind": "order"},
            },
        ],
    }
    run_id = queue_run(rt, client, flow, registry=registry)

    with pytest.raises(Abort):
        execute(rt, registry, run_id)

    with rt.sessions() as s:  # the first two steps committed, each with its own transaction
        steps = {st.step_id: st.status for st in s.scalars(select(RunStep))}
        assert steps == {"invoice": "succeeded", "outside": "succeeded"}
        assert s.get_one(Run, run_id).status == RunStatus.RUNNING
    assert invoices(rt) == 2

    with rt.sessions.begin() as s:  # what the sweeper does for a run whose worker died
        s.get_one(Run, run_id).status = RunStatus.QUEUED
    assert execute(rt, registry, run_id).status == "succeeded"

    assert outside.calls == 1
    assert invoices(rt) == 3
    with rt.sessions() as s:
        attempts = {st.step_id: st.attempts for st in s.scalars(select(RunStep))}
        assert attempts == {"invoice": 1, "outside": 1, "later": 1}


def test_a_run_waiting_out_its_backoff_keeps_its_deal_from_other_runs(rt, client):
    registry = registry_with(flaky=Flaky(failures=2))
    hook = make_hook(rt, two_step_flow("test.flaky"), registry=registry)
    payload = deal()
    [first] = post_deal(client, hook, payload).json["run_ids"]
    [second] = post_deal(client, hook, payload).json["run_ids"]  # the same deal again

    assert execute(rt, registry, first).status == "retry"  # between its attempts
    assert execute(rt, registry, second).status == "waiting"  # the deal is still the first's
    with rt.sessions() as s:
        waiting = s.get_one(Run, second)
        assert (waiting.status, waiting.attempts, waiting.steps) == (RunStatus.QUEUED, 0, [])

    assert execute(rt, registry, first).status == "succeeded"
    assert execute(rt, registry, second).status == "succeeded"


def test_a_run_waiting_for_its_deal_is_tried_again_on_the_scheduler(rt, client):
    payload = deal()
    hook = make_hook(rt)
    [first] = post_deal(client, hook, payload).json["run_ids"]
    [second] = post_deal(client, hook, payload).json["run_ids"]
    with rt.sessions.begin() as s:  # the first has begun and waits out a backoff
        s.get_one(Run, first).attempts = 1

    assert jobs.execute_run(second) == "deferred"

    with rt.sessions() as s:
        job = s.get_one(Run, second).job_id
    assert job in ScheduledJobRegistry(queue=rt.queue).get_job_ids()


def test_of_two_runs_of_a_deal_begun_at_once_the_earlier_goes_first(rt, client):
    """Two begun runs of one deal (the deal's lock lost with Redis) never wait for each
    other: the earlier one goes on, the later one waits for it."""
    payload = deal()
    hook = make_hook(rt)
    ids = [post_deal(client, hook, payload).json["run_ids"][0] for _ in range(2)]
    with rt.sessions.begin() as s:
        for run_id in ids:
            s.get_one(Run, run_id).attempts = 1  # both between attempts

    assert execute(rt, rt.registry, ids[1]).status == "waiting"
    assert execute(rt, rt.registry, ids[0]).status == "succeeded"
    assert execute(rt, rt.registry, ids[1]).status == "succeeded"


def test_a_retry_resumes_from_what_a_step_really_gave_not_the_masked_log(rt, client):
    """The log masks fields named like secrets (and cuts big outputs); the steps after such
    a step still read its real output on a retry, sealed with the installation's key."""

    def token(ctx: Any, data: dict[str, Any]) -> dict[str, Any]:
        return {"status": 200, "body": {"access_token": "t-123", "id": 7}, "created": True}

    registry = Registry.build(
        triggers.ALL,
        [
            *actions.ALL,
            dataclasses.replace(REQUEST, key="test.token", perform=token),
            dataclasses.replace(CREATE_DRAFT_INVOICE, key="test.flaky", perform=Flaky(failures=1)),
        ],
        actions.SERVICES,
    )
    flow = {
        **demo.DEMO_FLOW,
        "steps": [
            {
                "id": "token",
                "action": "test.token",
                "input": {"method": "GET", "url": "https://crm.example/t"},
            },
            {
                "id": "invoice",
                "action": "test.flaky",
                "input": {
                    **INVOICE_STEP["input"],
                    "notes": {"$expr": "steps.token.body.access_token"},
                },
            },
        ],
    }
    run_id = queue_run(rt, client, flow, registry=registry)

    def run() -> str:
        return runner.execute_run(rt.sessions, registry, run_id, tools=rt.tools).status

    assert run() == "retry"  # the draft failed once: the retry reads the token step again
    assert run() == "succeeded"

    with rt.sessions() as s:
        [invoice] = s.scalars(select(Invoice))
        assert invoice.notes == "t-123"
        step = s.scalars(select(RunStep).where(RunStep.step_id == "token")).one()
        assert step.output["body"] == {"access_token": "••••••", "id": 7}  # the log, masked
        assert step.resume_sealed is not None and "t-123" not in step.resume_sealed


def test_a_retry_scheduled_under_the_id_of_an_old_finished_job_does_not_inherit_its_expiry(
    rt, client
):
    """After a replay the attempt count starts again, so a retry's job id can be that of a
    job that finished long ago and expires soon; the retry must not vanish with it."""
    run_id = queue_run(rt, client, demo.DEMO_FLOW)
    stale = jobs.job_id(run_id, 1)
    rt.queue.enqueue("connector.jobs.execute_run", run_id, job_id=stale, result_ttl=5)
    drain(rt)  # it runs and finishes: kept for 5 s more
    assert 0 < rt.redis.ttl(f"rq:job:{stale}") <= 5

    jobs._schedule_retry(rt, run_id, None, 60.0, 1)

    assert rt.redis.ttl(f"rq:job:{stale}") == -1  # no expiry: it waits its 60 s
    assert stale in ScheduledJobRegistry(queue=rt.queue).get_job_ids()


def test_a_run_reads_with_its_claim_and_writes_its_step_rows_and_keys_at_once(rt, client):
    """What a run costs is mostly round trips to the database (PostgreSQL): the claim brings
    the event and the flow back with its UPDATE, the steps share a transaction with no
    savepoints, a draft resolves its line codes in one query, and the steps' rows and the
    run's search keys go in one statement each."""
    run_id = queue_run(rt, client, demo.DEMO_FLOW)
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(" ".join(statement.split()))

    sa.event.listen(rt.engine, "before_cursor_execute", record)
    try:
        assert execute(rt, rt.registry, run_id).status == "succeeded"
    finally:
        sa.event.remove(rt.engine, "before_cursor_execute", record)

    with rt.sessions() as s:
        assert [st.step_id for st in s.scalars(select(RunStep).order_by(RunStep.id))] == [
            step["id"] for step in demo.DEMO_FLOW["steps"]
        ]
    assert len(demo.DEMO_FLOW["steps"]) > 1
    assert not [q for q in seen if q.startswith("SAVEPOINT")]  # only when a step fails
    assert sum(q.startswith("INSERT INTO run_steps") for q in seen) == 1
    assert sum(q.startswith("INSERT INTO run_keys") for q in seen) == 1
    assert not [q for q in seen if q.startswith("SELECT") and " FROM events " in q]
    assert sum(" FROM products" in q or " FROM sku_mappings" in q for q in seen) == 1
