"""One contract for everything in the registry: schemas, examples, names, and real behaviour."""

from __future__ import annotations

import copy
import logging
import re
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from actions.invoicing import INVOICING_SETTINGS, invoicing_settings
from connector.connections import default_providers
from connector.http_client import HttpClient, save_connection
from connector.outbound import Allowed
from connector.registry import default_registry
from connector.runtime import build_services
from connector.schemas import inline, load_schema, validate
from connector.spec import (
    ActionContext,
    ActionSpec,
    DomainEvent,
    Effects,
    Entity,
    TriggerKind,
    TriggerSpec,
)
from invoicing.service import Invoicing
from invoicing.settings import InvoicingSettings
from tests.factories import make_draft, make_issuer
from tests.fake_api import fake_api
from tests.smtp import SENDER, smtp_server

DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"
ROOT = Path(__file__).resolve().parent.parent
KEY = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")
REGISTRY = default_registry()
TRIGGERS = sorted(REGISTRY.triggers.values(), key=lambda spec: spec.key)
ACTIONS = sorted(REGISTRY.actions.values(), key=lambda spec: spec.key)
SCHEMAS = sorted(
    {(t.key, t.output_schema) for t in TRIGGERS}
    | {(t.key, t.config_schema) for t in TRIGGERS if t.config_schema}
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


@pytest.mark.parametrize("trigger", TRIGGERS, ids=spec_id)
def test_every_trigger_of_a_provider_names_one_that_exists(trigger):
    if trigger.provider is not None:
        assert default_providers().get(trigger.provider).key == trigger.provider


@pytest.mark.parametrize("action", ACTIONS, ids=spec_id)
def test_every_action_says_what_it_does_and_only_database_actions_are_upserts(action):
    assert isinstance(action.effects, Effects)
    assert not action.upsert or action.effects is Effects.DATABASE
    assert action.max_attempts >= 1


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
    function = spec.function if isinstance(spec, TriggerSpec) else spec.perform
    package = "triggers" if isinstance(spec, TriggerSpec) else "actions"

    assert function.__module__ == f"{package}.{family}"


@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
def test_every_trigger_and_action_has_an_english_and_a_spanish_title(spec):
    assert spec.title.strip()
    assert spec.title_es.strip()
    assert spec.title_es != spec.title
    assert spec.description.strip()


def _untitled(schema: Any, path: str = "") -> list[str]:
    """Properties, at any depth, without a Spanish title (the builder's forms show them)."""
    found = []
    for name, prop in (schema.get("properties") or {}).items():
        if "x-title-es" not in prop:
            found.append(path + name)
        found += _untitled(prop, f"{path}{name}.")
        if isinstance(prop.get("items"), dict):
            found += _untitled(prop["items"], f"{path}{name}[].")
    return found


@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
def test_every_field_a_person_fills_in_has_a_spanish_title(spec):
    names = [spec.input_schema] if isinstance(spec, ActionSpec) else []
    names += [spec.config_schema] if isinstance(spec, TriggerSpec) and spec.config_schema else []
    for name in names:
        assert _untitled(inline(name)) == [], name


# What each kind needs: the functions that make its items, and nothing of another kind's.
# What each kind has, of the functions (parse is shared by webhook and push triggers).
HAS = {
    "verify": {TriggerKind.WEBHOOK},
    "parse": {TriggerKind.WEBHOOK, TriggerKind.PUSH},
    "poll": {TriggerKind.POLL},
    "from_event": {TriggerKind.EVENT},
}


@pytest.mark.parametrize("trigger", TRIGGERS, ids=spec_id)
def test_every_trigger_declares_a_kind_with_its_functions_and_only_those(trigger):
    assert isinstance(trigger.kind, TriggerKind)
    for name, kinds in HAS.items():
        present = getattr(trigger, name) is not None
        assert present is (trigger.kind in kinds), (trigger.key, name)
    assert bool(trigger.topics) is (trigger.kind is TriggerKind.EVENT)
    assert trigger.public_event is None or trigger.kind is TriggerKind.EVENT
    if trigger.kind is TriggerKind.POLL:
        assert trigger.poll_every_seconds >= 1


@pytest.mark.parametrize("trigger", TRIGGERS, ids=spec_id)
def test_every_trigger_names_the_entity_and_business_keys_of_its_example(trigger):
    item = example(trigger.output_schema)

    entity = trigger.entity(item)

    assert isinstance(entity, Entity)
    assert entity.source and entity.key
    assert trigger.entity(copy.deepcopy(item)) == entity  # a function of the item alone
    for name, path in trigger.business_keys:
        assert re.match(r"^[a-z][a-z0-9_]{0,39}$", name), name
        assert path.split(".")[0] in load_schema(trigger.output_schema)["properties"], path


def items_of(trigger: TriggerSpec, data: Any) -> list[Any]:
    """The items a trigger makes of its example, whatever its kind."""
    if trigger.kind is TriggerKind.EVENT:
        assert trigger.from_event is not None
        payload = {k: v for k, v in data.items() if k not in ("event_id", "occurred_at")}
        when = data.get("occurred_at", "2026-12-04T10:00:00+00:00")
        event = DomainEvent(data.get("event_id", 1), trigger.topics[0], 1, payload, when)
        return trigger.from_event(event)
    assert trigger.parse is not None
    sample = DELIVERIES.get(trigger.key)
    return trigger.parse(data if sample is None else sample(), "msg_contract", {})


def _deliveries() -> dict[str, Any]:
    """A delivery as each CRM sends it, for the triggers whose items are not their input
    (the generic webhooks receive their own output schema's shape)."""
    from tests.fakes.hubspot import company_creation
    from tests.fakes.salesforce import FakeSalesforce
    from tests.fakes.zoho import FakeZoho
    from tests.integrations.test_hubspot import stage_change
    from tests.integrations.test_pipedrive import v2_change
    from tests.integrations.test_pipedrive_organizations import v2_organization

    salesforce = FakeSalesforce(url="https://acme.my.salesforce.com")
    account = salesforce.add_account(Name="Acme Soluciones SL", NIF__c="B12345674")
    deal = salesforce.add_opportunity(account, [])
    zoho = FakeZoho(url="https://www.zohoapis.eu")
    return {
        "hubspot.deal_won": lambda: [stage_change()],
        "hubspot.company_changed": lambda: [company_creation("301", 9001)],
        "pipedrive.deal_won": v2_change,
        "pipedrive.organization_changed": v2_organization,
        "salesforce.deal_won": lambda: salesforce.outbound_message(deal, "04l7F000008aaaaQAA"),
        "salesforce.account_changed": lambda: salesforce.account_message(
            ("04l7F000008aaabQAA", account)
        ),
        "zoho.deal_won": lambda: zoho.notification("1001", "token", ["4150868000000224005"]),
        "zoho.account_changed": lambda: zoho.notification(
            "1002", "token", ["4150868000000225013"], module="Accounts", operation="insert"
        ),
    }


DELIVERIES = _deliveries()


def test_every_crm_webhook_trigger_is_fed_a_delivery_in_its_crm_s_own_shape():
    crm = {t.key for t in TRIGGERS if t.kind is TriggerKind.WEBHOOK and t.provider is not None}
    assert crm == set(DELIVERIES)


# A poll reads a server: tests/connector/test_poll.py runs each against a local one.
PUSHED = [t for t in TRIGGERS if t.kind is not TriggerKind.POLL]


@pytest.mark.parametrize("trigger", PUSHED, ids=spec_id)
def test_every_pushed_trigger_makes_items_valid_against_its_schema_from_its_example(trigger):
    items = items_of(trigger, example(trigger.output_schema))

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
    invoicing: InvoicingSettings | None = None,
    http: HttpClient | None = None,
) -> dict[str, Any]:
    with rt.sessions.begin() as s:
        ctx = ActionContext(
            idempotency_key=key,
            log=logging.getLogger(f"puente.{action.key}"),
            session=s,
            services=build_services(
                rt.registry,
                rt.settings,
                {INVOICING_SETTINGS: invoicing or invoicing_settings(rt.services)},
            ),
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


# Actions that read or write a CRM through its connection are run end to end against a local
# server that speaks the CRM's API, in tests/integrations/test_<crm>.py.
LOCAL = [a for a in ACTIONS if a.key.split(".")[0] in ("invoicing", "http")]


def test_every_action_family_is_performed_here_or_against_its_crm_server():
    tested = {p.stem.removeprefix("test_") for p in (ROOT / "tests" / "integrations").glob("*.py")}
    for action in ACTIONS:
        family = action.key.split(".")[0]
        assert action in LOCAL or family in tested, action.key


@pytest.mark.parametrize("action", LOCAL, ids=spec_id)
def test_every_action_performs_its_example_and_a_replay_with_the_same_key_is_a_no_op(rt, action):
    data = example(action.input_schema)
    assert validate(action.input_schema, data) == []
    prepare(rt, action, data)
    key = f"puente:contract:{action.key}"

    # Real servers on 127.0.0.1: mail for actions that send it, an API for HTTP actions.
    with smtp_server() as smtp, fake_api() as api:
        invoicing = InvoicingSettings(
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
        first = perform(rt, action, copy.deepcopy(data), key, invoicing, http)
        again = perform(rt, action, copy.deepcopy(data), key, invoicing, http)

    assert validate(action.output_schema, first) == []
    assert validate(action.output_schema, again) == []
    # Each declared business key is a plain name and a path the output has; every name gets
    # a value from one of its paths.
    found: dict[str, list[Any]] = {}
    for name, path in action.business_keys:
        assert re.match(r"^[a-z][a-z0-9_]{0,39}$", name), name
        found.setdefault(name, []).append(at_path(first, path))
    for name, values in found.items():
        assert any(v is not None for v in values), (name, values)
    if action.effects is Effects.EXTERNAL_WRITE and api.seen:
        # An outside API dedupes by the key we send: both calls carried the same one.
        assert [seen.headers["Idempotency-Key"] for seen in api.seen] == [key, key]
        assert api.seen[0].headers["Authorization"] == "Bearer t0k3n"
        return
    assert (first["created"], again["created"]) == (True, False)
    assert without_created(again) == without_created(first)


TEMPLATES = sorted(REGISTRY.templates.values(), key=lambda t: t.key)


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda t: t.key)
def test_every_template_is_a_flow_without_problems_in_both_languages(template):
    from connector.checks import check_flow

    document = template.document("" if template.connection_type is None else "my-crm")
    report = check_flow(document, REGISTRY)

    assert report.errors == [], report.errors
    assert template.key.split(".")[0] == (template.connection_type or "webhook")
    assert template.title_es != template.title and template.description_es
    trigger = REGISTRY.trigger(document["trigger"]["key"])
    if template.connection_type is not None and trigger.provider is not None:
        assert trigger.provider == template.connection_type
        assert document["trigger"]["connection"] == "my-crm"


@pytest.mark.parametrize("crm", ["hubspot", "pipedrive", "salesforce", "zoho"])
def test_a_crm_status_flow_writes_back_only_invoices_of_its_own_connection(crm):
    import jmespath

    document = REGISTRY.templates[f"{crm}.invoice_status_to_crm"].document("ventas 'norte'")
    [mine] = [step for step in document["steps"] if "filter" in step]
    takes = jmespath.compile(mine["filter"]["$expr"])

    def taken(source: str) -> bool:
        return bool(takes.search({"trigger": {"source": source, "external_ref": "D-1"}}))

    assert taken(f"{crm}@connection:ventas 'norte'")
    assert taken(crm)  # deals invoiced before events kept their connection
    assert not taken(f"{crm}@connection:ventas sur")  # another account of the same CRM
    assert not taken(f"{crm}@subscription:3")  # a webhook that names the CRM as its source
