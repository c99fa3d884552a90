"""One contract for everything in the registry: schemas, examples, names, and real behaviour."""

from __future__ import annotations

import copy
import logging
import re
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from connector.http_client import HttpClient, save_connection
from connector.models import Run
from connector.outbound import Allowed
from connector.registry import default_registry
from connector.runner import StepContext
from connector.schemas import load_schema, validate
from connector.settings import Settings
from connector.spec import ActionSpec, TriggerSpec
from invoicing.service import Invoicing
from tests.factories import make_draft, make_issuer
from tests.fake_api import fake_api
from tests.smtp import SENDER, smtp_server

DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"
KEY = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")
REGISTRY = default_registry()
TRIGGERS = sorted(REGISTRY.triggers.values(), key=lambda spec: spec.key)
ACTIONS = sorted(REGISTRY.actions.values(), key=lambda spec: spec.key)
SCHEMAS = sorted(
    {(t.key, t.output_schema) for t in TRIGGERS}
    | {(a.key, name) for a in ACTIONS for name in (a.input_schema, a.output_schema)}
)
SPECS: list[TriggerSpec | ActionSpec] = [*TRIGGERS, *ACTIONS]


def spec_id(spec: TriggerSpec | ActionSpec) -> str:
    return spec.key


def example(name: str) -> Any:
    return copy.deepcopy(load_schema(name)["examples"][0])


def at_path(data: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        data = data[part]
    return data


def test_the_registry_ships_at_least_one_trigger_and_one_action():
    assert TRIGGERS
    assert ACTIONS


@pytest.mark.parametrize(("key", "name"), SCHEMAS, ids=[f"{k}:{n}" for k, n in SCHEMAS])
def test_every_registered_schema_loads_is_2020_12_and_has_examples_that_validate(key, name):
    schema = load_schema(name)

    assert schema["$schema"] == DRAFT_2020_12
    Draft202012Validator.check_schema(schema)
    assert schema.get("examples"), f"{name} (used by {key}) has no example"
    for i, instance in enumerate(schema["examples"]):
        assert validate(name, instance) == [], f"{name} example {i} does not validate"


@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
def test_every_key_is_family_dot_name_and_the_family_is_its_module(spec):
    assert KEY.match(spec.key), spec.key
    family = spec.key.split(".")[0]
    function = spec.parse if isinstance(spec, TriggerSpec) else spec.perform
    package = "triggers" if isinstance(spec, TriggerSpec) else "actions"

    assert function.__module__ == f"{package}.{family}"


@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
def test_every_trigger_and_action_has_an_english_and_a_spanish_title(spec):
    assert spec.title.strip()
    assert spec.title_es.strip()
    assert spec.title_es != spec.title
    assert spec.description.strip()


@pytest.mark.parametrize("trigger", TRIGGERS, ids=spec_id)
def test_every_trigger_parses_its_schema_example_into_items_valid_against_its_schema(trigger):
    items = trigger.parse(example(trigger.output_schema), "msg_contract")

    assert items
    for item in items:
        assert item.dedup_key
        assert validate(trigger.output_schema, item.data) == []
    assert len({item.dedup_key for item in items}) == len(items)


def perform(
    rt,
    action: ActionSpec,
    data: dict[str, Any],
    key: str,
    settings: Settings | None = None,
    http: HttpClient | None = None,
) -> dict[str, Any]:
    with rt.sessions.begin() as s:
        ctx = StepContext(
            idempotency_key=key,
            invoicing=Invoicing(s),
            log=logging.getLogger(f"puente.{action.key}"),
            public_url=rt.settings.public_url,
            settings=settings,
            http=http,
        )
        return action.perform(ctx, data)


def without_created(output: dict[str, Any]) -> dict[str, Any]:
    """The output with every `created` flag removed, at any depth."""
    return {
        k: without_created(v) if isinstance(v, dict) else v
        for k, v in output.items()
        if k != "created"
    }


# Actions that work on an existing invoice get one in the state they need.
NEEDS_INVOICE = {
    "invoicing.issue_invoice": "draft",
    "invoicing.record_payment": "issued",
    "invoicing.cancel_invoice": "issued",
    "invoicing.send_invoice": "issued",
}


def prepare(rt, action: ActionSpec, data: dict[str, Any]) -> None:
    if action.key == "invoicing.convert_document":
        data["document_id"] = make_draft(rt, kind="quote")
        return
    state = NEEDS_INVOICE.get(action.key)
    if state is None:
        return
    make_issuer(rt)
    data["invoice_id"] = make_draft(rt)
    if state == "issued":
        with rt.sessions.begin() as s:
            Invoicing(s).issue(data["invoice_id"])


@pytest.mark.parametrize("action", ACTIONS, ids=spec_id)
def test_every_action_performs_its_example_and_a_replay_with_the_same_key_is_a_no_op(rt, action):
    data = example(action.input_schema)
    assert validate(action.input_schema, data) == []
    prepare(rt, action, data)
    key = f"puente:contract:{action.key}"

    # Real servers on 127.0.0.1: mail for actions that send it, an API for HTTP actions.
    with smtp_server() as smtp, fake_api() as api:
        settings = rt.settings.with_(
            smtp_host="127.0.0.1", smtp_port=smtp.port, smtp_starttls=False, mail_from=SENDER
        )
        with rt.sessions.begin() as s:
            save_connection(
                s,
                rt.secrets,
                name="crm",
                base_url=api.url,
                auth="bearer",
                secret={"token": "t0k3n"},
            )
        http = HttpClient(rt.sessions, rt.secrets, Allowed.parse("127.0.0.1"))
        first = perform(rt, action, copy.deepcopy(data), key, settings, http)
        again = perform(rt, action, copy.deepcopy(data), key, settings, http)

    assert validate(action.output_schema, first) == []
    assert validate(action.output_schema, again) == []
    # Each declared business key names a run column and a path the output has; every column
    # gets a value from one of its paths.
    found: dict[str, list[Any]] = {}
    for column, path in action.business_keys:
        assert column in Run.__table__.c, column
        found.setdefault(column, []).append(at_path(first, path))
    for column, values in found.items():
        assert any(v is not None for v in values), (column, values)
    if action.effects == "external" and api.seen:
        # An outside API dedupes by the key we send: both calls carried the same one.
        assert [seen.headers["Idempotency-Key"] for seen in api.seen] == [key, key]
        assert api.seen[0].headers["Authorization"] == "Bearer t0k3n"
        return
    assert (first["created"], again["created"]) == (True, False)
    assert without_created(again) == without_created(first)
