"""What the CRM action families share (actions/hubspot.py, pipedrive.py, salesforce.py,
zoho.py): each reads and writes through its own API, then these turn the result into the
same outputs, so one flow template fits every CRM.

A CRM module gives a `CrmApi` of three calls; `get_deal`, `update_deal` and `add_note` here do
the rest (settings, the invoice link, errors a person can read, loop-safe writes).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from actions.invoicing import INVOICE_LINK
from connector import intake
from connector.connections import Said, refused
from connector.errors import PuenteError, ValidationError
from connector.models import Connection, Event
from connector.outbound import Answer
from connector.runtime import Runtime
from connector.spec import ActionContext, ActionSpec, Effects, Entity, ParsedItem
from invoicing.deals import DealData
from invoicing.models import Deal
from invoicing.service import Invoicing
from providers.crm import Company, CrmSettings, customer_of

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CrmApi:
    """One CRM's calls; each gets the context (ctx.http, ctx.connection) and the settings."""

    # The normalized deal (providers.crm.normalized).
    read_deal: Callable[[ActionContext, CrmSettings, str], dict[str, Any]]
    # Write these fields (CRM names) on the deal.
    write_deal: Callable[[ActionContext, CrmSettings, str, dict[str, Any]], None]
    # Add a note to the deal; the note's id.
    write_note: Callable[[ActionContext, CrmSettings, str, str], str | None]
    # The ids of the deals won since a time, for reconciliation; None if not offered.
    list_won: Callable[[ActionContext, CrmSettings, datetime], list[str]] | None = None
    # Create the customer's company, or update the one with this id (or, with none, the one
    # whose NIF field holds its tax id): its id, and whether it was created.
    write_company: (
        Callable[[ActionContext, CrmSettings, str | None, dict[str, Any]], tuple[str, bool]] | None
    ) = None


def settings(ctx: ActionContext) -> CrmSettings:
    if ctx.http is None or ctx.connection is None:
        raise refused(
            "connection",
            Said(
                "this step reads and writes through a CRM connection: choose one for the step",
                "este paso lee y escribe en un CRM a través de una conexión: elige una para "
                "el paso",
            ),
        )
    return CrmSettings.of(ctx.http.view(ctx.connection))


def get_deal(api: CrmApi, ctx: ActionContext, data: dict[str, Any]) -> dict[str, Any]:
    return api.read_deal(ctx, settings(ctx), str(data["deal_id"]))


def update_deal(api: CrmApi, ctx: ActionContext, data: dict[str, Any]) -> dict[str, Any]:
    """Write the invoice's number, link and payment status into the configured fields.

    These fields are ours: no CRM trigger of ours reacts to them (only a stage change
    starts a deal flow), so writing them back never invoices again."""
    crm = settings(ctx)
    fields: dict[str, Any] = dict(data.get("fields") or {})
    url = data.get("invoice_url")
    if url is None and data.get("invoice_id") is not None:
        url = ctx.service(INVOICE_LINK)(int(data["invoice_id"]))
    for name, value in (
        (crm.invoice_number_field, data.get("invoice_number")),
        (crm.invoice_url_field, url),
        (crm.payment_status_field, data.get("payment_status")),
    ):
        if value is not None:
            fields[name] = value
    deal_id = str(data["deal_id"])
    if fields:
        api.write_deal(ctx, crm, deal_id, fields)
    return {"deal_id": deal_id, "written": fields, "id": None, "created": bool(fields)}


def add_note(api: CrmApi, ctx: ActionContext, data: dict[str, Any]) -> dict[str, Any]:
    """A note for the deal's owner; no text, no note. With `fail`, the run then fails with
    the note's text: the deal's owner and the run log say the same thing."""
    deal_id, text = str(data["deal_id"]), (data.get("text") or "").strip()
    if not text:
        return {"deal_id": deal_id, "written": {}, "id": None, "created": False}
    note_id = api.write_note(ctx, settings(ctx), deal_id, text)
    if data.get("fail"):
        raise ValidationError(text)
    return {"deal_id": deal_id, "written": {"note": text}, "id": note_id, "created": True}


def upsert_company(api: CrmApi, ctx: ActionContext, data: dict[str, Any]) -> dict[str, Any]:
    """The customer as a company in the CRM: updated when it is there (by id, or by its NIF),
    created when it is not."""
    if api.write_company is None:
        raise refused(
            "",
            Said(
                "this CRM's connector cannot write companies yet",
                "el conector de este CRM todavía no puede escribir empresas",
            ),
        )
    customer = data["customer"]
    company_id, created = api.write_company(ctx, settings(ctx), data.get("company_id"), customer)
    return {"company_id": company_id, "tax_id": customer["tax_id"], "created": created}


def company_spec(
    crm: str, title: str, perform: Callable[[ActionContext, dict[str, Any]], dict[str, Any]]
) -> ActionSpec:
    """The CRM family's action that creates or updates a company from a customer."""
    return ActionSpec(
        key=f"{crm}.upsert_company",
        title=f"Create or update a {title} company",
        title_es=f"Crear o actualizar una empresa en {title}",
        description="The customer (name, NIF, address) as a company in the CRM, found by its NIF.",
        input_schema=f"actions/{crm}.upsert_company.input.json",
        output_schema=f"actions/{crm}.upsert_company.output.json",
        perform=perform,
        business_keys=(("customer_tax_id", "tax_id"),),
        effects=Effects.EXTERNAL_WRITE,
    )


def company_output(
    company_id: str, company: Company, unnamed: str, url: str | None
) -> dict[str, Any]:
    """What every CRM's company read gives: the company as a customer, and whether it has a
    NIF/CIF yet (a flow stops until it has)."""
    customer = customer_of(company, unnamed)
    customer["name"] = str(customer["name"])[:120]
    return {
        "company_id": company_id,
        "customer": customer,
        "has_tax_id": bool(company.tax_id),
        "company_url": url,
    }


def company_read_spec(
    crm: str,
    name: str,
    noun: tuple[str, str],
    perform: Callable[[ActionContext, dict[str, Any]], dict[str, Any]],
) -> ActionSpec:
    """The CRM family's action that reads a company (account, organization) as a customer;
    `noun` is what the CRM calls it, in English and Spanish ("account", "una cuenta")."""
    kind = noun[0]
    return ActionSpec(
        key=f"{crm}.get_{kind}",
        title=f"Read a {name} {noun[0]} as a customer",
        title_es=f"Leer {noun[1]} de {name} como cliente",
        description=f"The {name} {noun[0]}'s name, NIF/CIF and address, as a customer.",
        input_schema=f"actions/{crm}.get_{kind}.input.json",
        output_schema=f"actions/{crm}.get_{kind}.output.json",
        perform=perform,
        business_keys=(("company_ref", "company_id"), ("customer_tax_id", "customer.tax_id")),
        effects=Effects.READ,
    )


def check(answer: Answer, what: str) -> Answer:
    """The CRM's answer, or the error it means. 429 and 5xx never get here: the outbound
    client raises them as worth trying again, honouring Retry-After. 401/403 are the
    connection's credentials; another 4xx says what the CRM refused."""
    if answer.status < 400:
        return answer
    if answer.status in (401, 403):
        raise refused(
            "",
            Said(
                f"{what}: the CRM refused the connection's credentials ({answer.status}); "
                'check them under Connections and use "Probar conexión"',
                f"el CRM rechazó las credenciales de la conexión ({answer.status}): "
                "revísalas en Conexiones y usa «Probar conexión»",
            ),
        )
    body = str(answer.body)[:300]
    said = Said(
        f"{what}: the CRM answered {answer.status}: {body}",
        f"el CRM no aceptó la petición ({answer.status}): {body}",
    )
    raise ValidationError(said.en, [said.field_error("")])


def specs(
    crm: str,
    title: str,
    get: Callable[[ActionContext, dict[str, Any]], dict[str, Any]],
    update: Callable[[ActionContext, dict[str, Any]], dict[str, Any]],
    note: Callable[[ActionContext, dict[str, Any]], dict[str, Any]],
) -> tuple[ActionSpec, ActionSpec, ActionSpec]:
    """The three actions of a CRM family, with their schema files and effects."""
    return (
        ActionSpec(
            key=f"{crm}.get_deal",
            title=f"Read a {title} deal",
            title_es=f"Leer una oportunidad de {title}",
            description=f"The {title} deal with its lines and company, as a normalized deal.",
            input_schema=f"actions/{crm}.get_deal.input.json",
            output_schema=f"actions/{crm}.get_deal.output.json",
            perform=get,
            business_keys=(("deal_ref", "deal_id"), ("customer_tax_id", "customer.tax_id")),
            effects=Effects.READ,
        ),
        ActionSpec(
            key=f"{crm}.update_deal",
            title=f"Write invoice data on a {title} deal",
            title_es=f"Escribir la factura en una oportunidad de {title}",
            description="The invoice's number, link and payment status, into the deal's fields.",
            input_schema=f"actions/{crm}.update_deal.input.json",
            output_schema=f"actions/{crm}.update_deal.output.json",
            perform=update,
            business_keys=(("deal_ref", "deal_id"),),
            effects=Effects.EXTERNAL_WRITE,
        ),
        ActionSpec(
            key=f"{crm}.add_note",
            title=f"Add a note to a {title} deal",
            title_es=f"Añadir una nota a una oportunidad de {title}",
            description="A note for the deal's owner (nothing when there is no text).",
            input_schema=f"actions/{crm}.add_note.input.json",
            output_schema=f"actions/{crm}.add_note.output.json",
            perform=note,
            business_keys=(("deal_ref", "deal_id"),),
            effects=Effects.EXTERNAL_WRITE,
        ),
    )


def reconcile(rt: Runtime, apis: Mapping[str, CrmApi], since: datetime) -> dict[str, list[str]]:
    """Compare each CRM connection's deals won since `since` with what reached us; the
    missing ones, by connection name.

    A won deal that never reached us (a webhook lost, its flow disabled at the time) is
    recorded as a won deal, so the never-billed report shows it; with the connection's
    setting `reconcile_runs`, it is also run through its deal-won flows now (once: its item
    key is the deal's)."""
    missing: dict[str, list[str]] = {}
    with rt.sessions() as s:
        connections = list(s.scalars(select(Connection).where(Connection.type.in_(apis))))
        s.expunge_all()
    for conn in connections:
        api = apis[conn.type]
        if api.list_won is None:
            continue
        ctx = ActionContext(
            f"reconcile:{conn.id}", log, None, rt.services, rt.http, connection=conn.name
        )
        crm = CrmSettings.of(rt.http.view(conn.name))
        try:
            won = api.list_won(ctx, crm, since)
        except PuenteError as exc:  # one CRM down must not stop the others
            log.warning("reconcile %s: the CRM could not be read: %s", conn.name, exc.message)
            continue
        except Exception:
            log.exception("reconcile %s: the CRM's answer could not be read", conn.name)
            continue
        lost = [deal_id for deal_id in won if deal_id not in _reached(rt, conn, since)]
        for deal_id in lost:
            _catch_up(rt, api, ctx, crm, conn, deal_id)
        if lost:
            missing[conn.name] = lost
            log.warning("reconcile %s: won deals that never reached us: %s", conn.name, lost)
    return missing


def _reached(rt: Runtime, conn: Connection, since: datetime) -> set[str]:
    """The deals of the connection we know: by an event, a won-deal record or an invoice."""
    with rt.sessions() as s:
        payloads = s.scalars(
            select(Event.payload).where(
                Event.source == f"connection:{conn.id}", Event.received_at >= since
            )
        )
        known = {str(p.get("deal_id")) for p in payloads if isinstance(p, dict)}
        # Deals recorded before events kept their integration (0020) bear the bare type.
        sources = (conn.type, _deal_source(conn))
        known |= set(s.scalars(select(Deal.external_ref).where(Deal.source.in_(sources))))
    return known


def _deal_source(conn: Connection) -> str:
    """The source of the connection's deals, as its webhooks' runs record them."""
    return Entity(conn.type, "").arrived_on(intake.connection_scope(conn.name)).source


def _catch_up(
    rt: Runtime, api: CrmApi, ctx: ActionContext, crm: CrmSettings, conn: Connection, deal_id: str
) -> None:
    deal = api.read_deal(ctx, crm, deal_id)
    with rt.sessions.begin() as s:
        Invoicing(s).record_deal(
            DealData(
                source=_deal_source(conn),
                external_ref=deal_id,
                won_at=datetime.fromisoformat(deal["won_at"]),
                title=deal.get("title"),
                owner_name=(deal.get("owner") or {}).get("name"),
                currency=deal.get("currency", "EUR"),
                customer_name=deal["customer"].get("name"),
                customer_tax_id=deal["customer"].get("tax_id") or None,
            )
        )
    trigger = rt.registry.triggers.get(f"{conn.type}.deal_won")
    if trigger is not None and (conn.settings or {}).get("reconcile_runs"):
        item = {"deal_id": deal_id, "event_id": f"reconcile:{deal_id}", "stage": deal.get("stage")}
        route = intake.Route.connection(conn.id, conn.name)
        intake.accept(rt, route, trigger, [ParsedItem(f"reconcile:{deal_id}", item)])
