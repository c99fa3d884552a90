"""Salesforce Outbound Messages: an Opportunity changed → one item per notification (an
Account changed → one item per notification, for `salesforce.account_changed`); and, for orgs
without Outbound Messages, a poll of the opportunities changed (SOQL on SystemModstamp).

An Outbound Message is a SOAP 1.1 request (text/xml) that a flow or workflow rule sends: up
to 100 `Notification` elements, each with its own `Id` (the same on every resend, so it
deduplicates) and the `sObject` with the fields chosen in the message's definition. It has
no signature: what authenticates it is the connection's secret address and the message's
`OrganizationId`, which must be the connection's `organization_id`. Salesforce resends a
message for 24 hours until it gets the `notificationsResponse` with `<Ack>true</Ack>`.

The XML is read without DTDs, entities or network: a body with a DOCTYPE or an entity is
refused (HTTP 400) before anything is stored. Whether the deal counts as won is decided
when the flow reads it (IsWon, or the connection's won_stages).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from lxml import etree

from connector.errors import ConfigurationError, TransientError
from connector.spec import (
    Answer,
    Delivery,
    Entity,
    ParsedItem,
    PollContext,
    PollResult,
    TriggerKind,
    TriggerSpec,
)
from connector.standard_webhooks import SignatureError
from providers.crm import CrmSettings
from providers.salesforce import API

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
OUTBOUND = "http://soap.sforce.com/2005/09/outbound"
SOBJECT = "urn:sobject.enterprise.soap.sforce.com"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
MAX_NOTIFICATIONS = 100  # what the Outbound Messaging WSDL allows in one message
DEAL_OBJECT = "Opportunity"
ACCOUNT_OBJECT = "Account"

ACK = (
    b'<?xml version="1.0" encoding="UTF-8"?>'
    b'<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">'
    b"<soapenv:Body>"
    b'<notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound">'
    b"<Ack>true</Ack>"
    b"</notificationsResponse>"
    b"</soapenv:Body>"
    b"</soapenv:Envelope>"
)


class UnsafeXmlError(ValueError):
    """The body is not XML we read: a DOCTYPE, an entity, or not well-formed."""


def read_xml(body: bytes | str) -> Any:
    """The document's root element, read with no DTD, no entity and no network."""
    raw = body.encode("utf-8") if isinstance(body, str) else body
    if not raw.strip():
        raise UnsafeXmlError("the body is empty: a Salesforce Outbound Message is a SOAP envelope")
    if b"<!DOCTYPE" in raw.upper() or b"<!ENTITY" in raw.upper():
        raise UnsafeXmlError(
            "the XML has a DOCTYPE or entity declarations, which a Salesforce Outbound "
            "Message never has: refused unread"
        )
    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )
    try:
        root = etree.fromstring(raw, parser)
    except etree.XMLSyntaxError as exc:
        raise UnsafeXmlError(f"the body is not well-formed XML: {exc}") from None
    info = root.getroottree().docinfo
    # Another encoding (UTF-16) hides a DOCTYPE from the byte check above: look again.
    if info.doctype or info.internalDTD is not None or info.externalDTD is not None:
        raise UnsafeXmlError(
            "the XML has a DOCTYPE, which a Salesforce Outbound Message never has: refused"
        )
    if any(isinstance(node, etree._Entity) for node in root.iter()):
        raise UnsafeXmlError("the XML uses entities, which Puente never expands: refused")
    return root


def _text(parent: Any, ns: str, name: str) -> str | None:
    found = parent.find(f"{{{ns}}}{name}")
    if found is None or found.get(f"{{{XSI}}}nil") == "true":
        return None
    text = (found.text or "").strip()
    return text or None


def _notifications(body: bytes | str) -> Any:
    """The `notifications` element of an Outbound Message."""
    root = read_xml(body)
    if root.tag != f"{{{SOAP_ENV}}}Envelope":
        raise UnsafeXmlError("the body is not a SOAP 1.1 envelope (soapenv:Envelope)")
    found = root.find(f"{{{SOAP_ENV}}}Body/{{{OUTBOUND}}}notifications")
    if found is None:
        raise UnsafeXmlError(
            "the SOAP body has no notifications element of the Outbound Messaging namespace "
            f"({OUTBOUND})"
        )
    return found


def verify(delivery: Delivery, secret: str, _now: int, _tolerance: int) -> str:
    """The message's OrganizationId must be the connection's org; the delivery's id is the
    digest of its body (a resend is the same message)."""
    expected = str(json.loads(secret or "{}").get("organization_id") or "")
    if not expected:
        raise SignatureError(
            "this Salesforce connection has no organization_id to check Outbound Messages "
            "against: set it under Connections"
        )
    got = _text(_notifications(delivery.body), OUTBOUND, "OrganizationId") or ""
    if not hmac.compare_digest(got.encode(), expected.encode()):
        raise SignatureError(
            f"the Outbound Message comes from Salesforce org {got[:18]!r}, not the one of "
            "this connection: send it to the address of that org's connection, or fix the "
            "connection's organization_id"
        )
    return "om-" + hashlib.sha256(delivery.body).hexdigest()[:40]


def _object_type(sobject: Any) -> str:
    """The sObject's type without its prefix ("sf:Opportunity" → "Opportunity")."""
    declared = sobject.get(f"{{{XSI}}}type") or ""
    return declared.rsplit(":", 1)[-1]


def _when(text: str | None) -> str | None:
    """Salesforce's dateTime (2026-12-04T10:00:00.000Z) in ISO 8601, or None."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).isoformat()
    except ValueError:
        return None


def _sobjects(payload: bytes | str) -> list[tuple[str, Any, str | None]]:
    """Every notification of an Outbound Message: (its Id, its sObject, the org id)."""
    found = _notifications(payload)
    org = _text(found, OUTBOUND, "OrganizationId")
    notes = found.findall(f"{{{OUTBOUND}}}Notification")
    if len(notes) > MAX_NOTIFICATIONS:
        raise ValueError(
            f"the message has {len(notes)} notifications; Salesforce sends at most "
            f"{MAX_NOTIFICATIONS}"
        )
    read = []
    for index, note in enumerate(notes):
        event_id = _text(note, OUTBOUND, "Id")
        sobject = note.find(f"{{{OUTBOUND}}}sObject")
        if event_id is None or sobject is None:
            raise ValueError(f"notification {index + 1} has no Id or no sObject")
        read.append((event_id, sobject, org))
    return read


def _of_kind(payload: Any, kind: str) -> Iterator[tuple[str, str, Any, str | None]]:
    """Each notification of the message about an object of `kind`: its Id, the record's Id,
    the record (sObject) and the org; the other objects' notifications are skipped."""
    if not isinstance(payload, bytes | str):
        raise ValueError("a Salesforce Outbound Message is a SOAP (XML) body")
    for event_id, sobject, org in _sobjects(payload):
        if _object_type(sobject) != kind:
            continue
        record = _text(sobject, SOBJECT, "Id")
        if record is None:
            raise ValueError(
                f"notification {event_id}: the {kind} has no Id; add the Id field to the "
                "Outbound Message"
            )
        yield event_id, record, sobject, org


def _changed_at(sobject: Any) -> str | None:
    when = _text(sobject, SOBJECT, "LastModifiedDate") or _text(sobject, SOBJECT, "SystemModstamp")
    return _when(when)


def parse(payload: Any, delivery_id: str, _config: dict[str, Any]) -> list[ParsedItem]:
    """Each Opportunity notification → one item, deduplicated by the notification's Id;
    notifications about other objects (Accounts) → none."""
    return [
        ParsedItem(
            f"salesforce:{event_id}",
            {
                "deal_id": deal_id,
                "event_id": event_id,
                "occurred_at": _changed_at(sobject),
                "stage": _text(sobject, SOBJECT, "StageName"),
                "account_id": org,
            },
        )
        for event_id, deal_id, sobject, org in _of_kind(payload, DEAL_OBJECT)
    ]


def entity(data: dict[str, Any]) -> Entity:
    return Entity("salesforce", str(data["deal_id"]))


def acknowledge(_delivery: Delivery) -> Answer:
    """The answer that stops Salesforce resending: every notification acknowledged."""
    return Answer(200, ACK, "text/xml; charset=utf-8")


DEAL_WON = TriggerSpec(
    key="salesforce.deal_won",
    title="Opportunity changed in Salesforce (Outbound Message)",
    title_es="Oportunidad cambiada en Salesforce (mensaje saliente)",
    description="An Opportunity an Outbound Message reports (set its rule to fire when the "
    "opportunity is won); the flow reads it and goes on only when it counts as won.",
    kind=TriggerKind.WEBHOOK,
    output_schema="triggers/crm_deal_event.json",
    entity=entity,
    business_keys=(("deal_ref", "deal_id"),),
    provider="salesforce",
    verify=verify,
    parse=parse,
    answer=acknowledge,
    body_format="xml",
)


# Polling: for orgs that cannot send Outbound Messages (an edition without them, say).

POLL_PAGES = 10  # a bound on one poll's query pages (up to 2,000 records each): the rest
# waits for the next poll, past the cursor
SINCE_EVER = "1970-01-01T00:00:00Z"  # the cursor of an org that had no opportunities at all
API_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,79}$")
NEWEST_QUERY = "SELECT SystemModstamp FROM Opportunity ORDER BY SystemModstamp DESC LIMIT 1"
CHANGED_QUERY = (
    "SELECT Id, StageName, IsWon, SystemModstamp FROM Opportunity "
    "WHERE SystemModstamp >= {since} AND {linked} = null ORDER BY SystemModstamp ASC"
)


def poll(ctx: PollContext, cursor: Any) -> PollResult:
    """The opportunities changed since `cursor` (a SOQL query on SystemModstamp, oldest
    first, through the REST query resource and its nextRecordsUrl pages), one item per
    change, and the newest change as the next cursor.

    The first poll (no cursor) only asks where the org stands (its newest change) and starts
    one second past it (Salesforce keeps SystemModstamp to the second); polling.py fires
    nothing for it. The query is "from the cursor on" (>=): an opportunity changed in the
    cursor's very second is read again and dropped as already seen (its key is the
    opportunity and its change's time), so nothing changed in that second is lost.
    Opportunities already invoiced (their invoice link field set) are left out: writing the
    invoice back changes the opportunity, and must not start it again."""
    if ctx.http is None or ctx.connection is None:
        raise ConfigurationError("this trigger reads Salesforce through a connection: choose one")
    view = ctx.http.view(ctx.connection)
    if cursor is None:
        stamps = [s for s in (_stamp(r) for r in _records(ctx, NEWEST_QUERY, 1)) if s]
        if not stamps:
            return PollResult([], SINCE_EVER)
        # Just past the newest change: what exists now is never read as new.
        return PollResult([], _soql_datetime(_parsed(stamps[0]) + timedelta(seconds=1)))
    linked = CrmSettings.of(view).invoice_url_field
    if not API_NAME.match(linked):
        raise ConfigurationError(
            f"the connection's invoice_url_field {linked[:80]!r} is not a Salesforce field "
            "API name (letters, digits and _, such as Puente_Invoice_URL__c)"
        )
    since = _soql_datetime(_parsed(str(cursor)))
    soql = CHANGED_QUERY.format(since=since, linked=linked)
    items: list[ParsedItem] = []
    newest_seen = since
    for row in _records(ctx, soql, POLL_PAGES):
        changed = _stamp(row)
        if row.get("Id") in (None, "") or changed is None:
            continue
        when = _parsed(changed)
        items.append(_polled(row, when, view.account_id))
        if when >= _parsed(newest_seen):
            newest_seen = _soql_datetime(when)
    return PollResult(items, newest_seen)


def _records(ctx: PollContext, soql: str, pages: int) -> list[dict[str, Any]]:
    """The records of a query, page after page (nextRecordsUrl), at most `pages` pages. 429
    and 5xx are raised by the outbound client (the poll waits for its next turn with its
    cursor unchanged); any other refusal says what to check."""
    assert ctx.http is not None
    path = f"{API}/query?{urlencode({'q': soql})}"
    found: list[dict[str, Any]] = []
    for _ in range(pages):
        answer = ctx.http.request("GET", path, connection=ctx.connection)
        body = answer.body
        codes = (
            {str(e.get("errorCode")) for e in body if isinstance(e, dict)}
            if isinstance(body, list)
            else set()
        )
        if answer.status == 403 and "REQUEST_LIMIT_EXCEEDED" in codes:
            raise TransientError("Salesforce says the org's API request limit is spent for now")
        if answer.status in (401, 403):
            raise ConfigurationError(
                f"Salesforce refused to query opportunities ({answer.status}): check the "
                "connection's client_id, client_secret and refresh_token, and that the "
                "integration user can read opportunities"
            )
        if answer.status >= 400:
            raise ConfigurationError(
                f"Salesforce refused the opportunity query ({answer.status}: "
                f"{str(body)[:300]}); check that the Opportunity field for the invoice link "
                "exists (settings.invoice_url_field)"
            )
        if not isinstance(body, dict):
            break
        found += [r for r in body.get("records") or [] if isinstance(r, dict)]
        following = body.get("nextRecordsUrl")
        if body.get("done", True) or not isinstance(following, str) or not following:
            break
        path = following
    return found


def _stamp(row: dict[str, Any]) -> str | None:
    value = row.get("SystemModstamp")
    return str(value) if value not in (None, "") else None


def _parsed(stamp: str) -> datetime:
    """Salesforce's dateTime (2026-12-04T10:00:00.000+0000, or …Z) as a UTC datetime."""
    text = stamp.strip().replace("Z", "+00:00")
    when = datetime.fromisoformat(text)
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC)


def _soql_datetime(when: datetime) -> str:
    """A SOQL dateTime literal (unquoted), to the second: 2026-12-04T10:00:00Z."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _polled(row: dict[str, Any], when: datetime, org: str | None) -> ParsedItem:
    deal_id = str(row["Id"])
    stamp = _soql_datetime(when)
    stage = row.get("StageName")
    data = {
        "deal_id": deal_id,
        "event_id": f"{deal_id}@{stamp}"[:150],
        "occurred_at": when.isoformat(),
        "stage": None if stage in (None, "") else str(stage),
        "account_id": org,
    }
    return ParsedItem(f"salesforce-poll:{deal_id}@{stamp}", data)


DEAL_WON_POLLED = TriggerSpec(
    key="salesforce.deal_won_polled",
    title="Opportunity won (Salesforce, read every few minutes)",
    title_es="Oportunidad ganada (Salesforce, leída cada pocos minutos)",
    description="Salesforce opportunities changed since the last poll, for orgs that cannot "
    "send Outbound Messages; the flow reads each and goes on only when it counts as won.",
    kind=TriggerKind.POLL,
    output_schema="triggers/crm_deal_event.json",
    entity=entity,  # the Outbound Message's: a deal arriving both ways is one entity, one invoice
    business_keys=(("deal_ref", "deal_id"),),
    provider="salesforce",
    poll=poll,
    poll_every_seconds=300,
)


# Accounts: created or changed in Salesforce (an Outbound Message on Account) → the customer.


def parse_account(payload: Any, _delivery_id: str, _config: dict[str, Any]) -> list[ParsedItem]:
    """Each Account notification → one item, deduplicated by the notification's Id;
    notifications about other objects (Opportunities) → none."""
    return [
        ParsedItem(
            f"salesforce-account:{event_id}",
            {
                "company_id": account,
                "event_id": event_id,
                "occurred_at": _changed_at(sobject),
                "account_id": org,
            },
        )
        for event_id, account, sobject, org in _of_kind(payload, ACCOUNT_OBJECT)
    ]


def account_entity(data: dict[str, Any]) -> Entity:
    return Entity("salesforce-account", str(data["company_id"]))


ACCOUNT_CHANGED = TriggerSpec(
    key="salesforce.account_changed",
    title="Account created or changed in Salesforce (Outbound Message)",
    title_es="Cuenta creada o modificada en Salesforce (mensaje saliente)",
    description="An Account an Outbound Message reports; the flow reads it and keeps its "
    "customer (by NIF/CIF) in Puente.",
    kind=TriggerKind.WEBHOOK,
    output_schema="triggers/crm_company_event.json",
    entity=account_entity,
    business_keys=(("company_ref", "company_id"),),
    provider="salesforce",
    verify=verify,  # the opportunity message's: one address, one org id
    parse=parse_account,
    answer=acknowledge,  # the same Ack, whichever trigger answers
    body_format="xml",
)
