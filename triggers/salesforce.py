"""Salesforce Outbound Messages: an Opportunity changed → one item per notification.

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
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from lxml import etree

from connector.spec import Answer, Delivery, Entity, ParsedItem, TriggerKind, TriggerSpec
from connector.standard_webhooks import SignatureError

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
OUTBOUND = "http://soap.sforce.com/2005/09/outbound"
SOBJECT = "urn:sobject.enterprise.soap.sforce.com"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
MAX_NOTIFICATIONS = 100  # what the Outbound Messaging WSDL allows in one message
DEAL_OBJECT = "Opportunity"

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


def parse(payload: Any, delivery_id: str, _config: dict[str, Any]) -> list[ParsedItem]:
    """Each Opportunity notification → one item, deduplicated by the notification's Id;
    notifications about other objects → none."""
    if isinstance(payload, Mapping) and "deal_id" in payload and "event_id" in payload:
        # An event already read (a replay's edited item, the schema's example).
        data = {k: payload[k] for k in payload}
        return [ParsedItem(f"salesforce:{data['event_id']}", data)]
    if not isinstance(payload, bytes | str):
        raise ValueError("a Salesforce Outbound Message is a SOAP (XML) body")
    found = _notifications(payload)
    org = _text(found, OUTBOUND, "OrganizationId")
    notes = found.findall(f"{{{OUTBOUND}}}Notification")
    if len(notes) > MAX_NOTIFICATIONS:
        raise ValueError(
            f"the message has {len(notes)} notifications; Salesforce sends at most "
            f"{MAX_NOTIFICATIONS}"
        )
    items = []
    for index, note in enumerate(notes):
        event_id = _text(note, OUTBOUND, "Id")
        sobject = note.find(f"{{{OUTBOUND}}}sObject")
        if event_id is None or sobject is None:
            raise ValueError(f"notification {index + 1} has no Id or no sObject")
        if _object_type(sobject) != DEAL_OBJECT:
            continue
        deal_id = _text(sobject, SOBJECT, "Id")
        if deal_id is None:
            raise ValueError(
                f"notification {event_id}: the Opportunity has no Id; add the Id field to "
                "the Outbound Message"
            )
        when = _text(sobject, SOBJECT, "LastModifiedDate") or _text(
            sobject, SOBJECT, "SystemModstamp"
        )
        data = {
            "deal_id": deal_id,
            "event_id": event_id,
            "occurred_at": _when(when),
            "stage": _text(sobject, SOBJECT, "StageName"),
            "account_id": org,
        }
        items.append(ParsedItem(f"salesforce:{event_id}", data))
    return items


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
    entity=lambda data: Entity("salesforce", str(data["deal_id"])),
    business_keys=(("deal_ref", "deal_id"),),
    provider="salesforce",
    verify=verify,
    parse=parse,
    answer=acknowledge,
    body_format="xml",
)
