"""Every /api/v1 operation, declared for the OpenAPI document (web.api.openapi): its answers'
and request's schemas, from schemas/ where the code validates with them."""

from __future__ import annotations

from typing import Any

from invoicing import aeat, sif_log
from web.api.documents import PLURAL
from web.api.openapi import (
    ANY,
    BOOLEAN,
    DATE,
    DATETIME,
    IDEMPOTENCY,
    INTEGER,
    LIMIT,
    NUMBER_TEXT,
    OFFSET,
    STRING,
    Op,
    Param,
    items,
    nullable,
    obj,
    page,
    ref,
)

SCOPE = {"type": "string", "enum": ["read", "write", "admin"]}
API_KEY = obj(
    ["id", "name", "scopes", "prefix", "created_at", "last_used_at"],
    id=INTEGER,
    name=STRING,
    scopes=items(SCOPE),
    prefix=STRING,
    created_at=DATETIME,
    last_used_at=nullable(DATETIME),
)
HOOK_SUBSCRIPTION = obj(
    ["id", "event", "target_url", "active", "created_at", "ended_at", "ended_reason"],
    id=INTEGER,
    event=ref("EventType"),
    target_url={"type": "string", "format": "uri"},
    active=BOOLEAN,
    created_at=DATETIME,
    ended_at=nullable(DATETIME),
    ended_reason=nullable({"type": "string", "enum": ["removed", "gone"]}),
)
ACCEPTED = obj(
    ["run_ids", "event_ids", "duplicate"],
    run_ids=items(INTEGER),
    event_ids=items(INTEGER),
    duplicate={"type": "boolean", "description": "true: a repeat; nothing new was made"},
)


def _one_or_many(schema: dict[str, Any]) -> dict[str, Any]:
    return {"oneOf": [schema, {"type": "array", "minItems": 1, "items": schema}]}


# What pushing items costs an API key (connector.pace), as webhooks are paced per address.
PACED = (
    "Paced per API key: at most PUENTE_MAX_ITEMS_PER_DELIVERY items (100) in one request, "
    "or 413 `too_many_items` and nothing is stored; at most PUENTE_ITEMS_PER_MINUTE items "
    "(6000) a minute, or 429 `rate_limited` with `Retry-After` and nothing is stored (send the "
    "same request again then); past PUENTE_BULK_AFTER_ITEMS items (50) in a minute, the key's "
    "runs wait on a bulk queue, taken when no other integration's run is waiting."
)


COMPONENTS: dict[str, Any] = {
    "ApiKey": API_KEY,
    "HookSubscription": HOOK_SUBSCRIPTION,
    "Accepted": ACCEPTED,
}

ZAPIER_AND_MAKE = (
    Op(
        "POST",
        "/api-keys",
        "Create an API key (shown once)",
        "API keys",
        {
            201: {
                "allOf": [ref("ApiKey")],
                "required": ["key"],
                "properties": {"key": {"type": "string", "description": "shown only now"}},
            }
        },
        body=obj(
            ["name", "scopes"],
            extra=False,
            name={"type": "string", "minLength": 1, "maxLength": 120},
            scopes={"type": "array", "minItems": 1, "items": SCOPE},
        ),
    ),
    Op(
        "GET",
        "/api-keys",
        "List the live API keys",
        "API keys",
        {200: obj(["items"], items=items(ref("ApiKey")))},
    ),
    Op("DELETE", "/api-keys/<int:key_id>", "Revoke an API key at once", "API keys", {204: None}),
    Op(
        "POST",
        "/triggers/<name>/events",
        "Push items to a trigger (deal_won, customer_created)",
        "Triggers",
        {202: ref("Accepted"), 200: ref("Accepted")},
        body={
            "oneOf": [
                _one_or_many(ref("triggers/deal_won.json")),
                _one_or_many(ref("triggers/customer_pushed.json")),
            ]
        },
        params=(IDEMPOTENCY,),
        errors=(413,),
        description="Every enabled flow on trigger `api.<name>` runs once per item. "
        "`deal_won` takes deals as triggers/deal_won.json describes them; "
        "`customer_created` takes customers as triggers/customer_pushed.json does. "
        "202: stored and queued; 200 with `duplicate`: a repeat of an Idempotency-Key. " + PACED,
    ),
    Op(
        "POST",
        "/flows/<int:flow_id>/trigger",
        "Start a flow by hand with a trigger item",
        "Flows",
        {202: ref("Accepted"), 200: ref("Accepted")},
        body=_one_or_many({"type": "object"}),
        params=(IDEMPOTENCY,),
        errors=(409, 413),
        description="The item (or a list) as the flow's trigger gives it (its output schema). "
        + PACED,
    ),
    Op(
        "POST",
        "/webhooks",
        "Subscribe a URL to an event type (REST hook)",
        "REST hooks",
        {
            201: {
                "allOf": [ref("HookSubscription")],
                "required": ["secret"],
                "properties": {
                    "secret": {
                        "type": "string",
                        "pattern": "^whsec_",
                        "description": "verifies the Standard Webhooks signature; shown only now",
                    }
                },
            }
        },
        body=obj(
            ["event", "target_url"],
            extra=False,
            event=ref("EventType"),
            target_url={"type": "string", "format": "uri", "maxLength": 2000},
        ),
        description="Each event of the type is POSTed to target_url as a PublicEvent, signed "
        "with the webhook-id, webhook-timestamp and webhook-signature headers. Timeouts, 429 "
        "and 5xx are retried with backoff for 24 hours; a 410 answer ends the subscription.",
    ),
    Op(
        "GET",
        "/webhooks",
        "List the REST hook subscriptions",
        "REST hooks",
        {200: obj(["items"], items=items(ref("HookSubscription")))},
    ),
    Op(
        "DELETE",
        "/webhooks/<int:sub_id>",
        "Unsubscribe (also when removed already)",
        "REST hooks",
        {204: None},
    ),
    Op(
        "GET",
        "/webhooks/<int:sub_id>/deliveries",
        "A subscription's deliveries with every attempt",
        "REST hooks",
        {
            200: obj(
                ["items"],
                items=items(
                    obj(
                        ["id", "event_id", "event_type", "status", "created_at", "attempts"],
                        id=INTEGER,
                        event_id=STRING,
                        event_type=ref("EventType"),
                        status={
                            "type": "string",
                            "enum": ["pending", "delivered", "failed", "cancelled"],
                        },
                        created_at=DATETIME,
                        finished_at=nullable(DATETIME),
                        next_attempt_at=nullable(DATETIME),
                        attempts=items(
                            obj(
                                ["attempted_at", "status_code", "error", "duration_ms"],
                                attempted_at=DATETIME,
                                status_code=nullable(INTEGER),
                                error=nullable(STRING),
                                duration_ms=INTEGER,
                            )
                        ),
                    )
                ),
            )
        },
        params=(Param("limit", {"type": "integer", "minimum": 1, "maximum": 100}),),
    ),
    Op(
        "GET",
        "/events",
        "List public events, newest first",
        "Events",
        {
            200: obj(
                ["items", "next"],
                items=items(ref("PublicEvent")),
                next=nullable(
                    {"type": "string", "description": "pass as `after` for the next page"}
                ),
            )
        },
        params=(
            Param("type", {"$ref": "#/components/schemas/EventType"}, "only this type"),
            Param("limit", {"type": "integer", "minimum": 1, "maximum": 100}, "at most 100"),
            Param("after", {"type": "string"}, "an event id: list the events before it"),
        ),
        description="What Zapier's polling triggers and Make's watch modules read; the same "
        "events, with the same `data`, as the REST hook deliveries.",
    ),
    Op(
        "GET",
        "/openapi.json",
        "This document",
        "Documentation",
        {200: {"type": "object"}},
    ),
)


ID = {"type": "integer", "minimum": 1}
NULLABLE_TEXT = nullable(STRING)
URI = {"type": "string", "format": "uri"}
EXEMPTIONS = ["E1", "E2", "E3", "E4", "E5", "E6", "N1", "N2", "S2"]
EXEMPTION = nullable({"type": "string", "enum": EXEMPTIONS})
PERCENT_IN = {
    "type": ["number", "string", "null"],
    "pattern": r"^(100(\.0{1,4})?|[0-9]{1,2}(\.[0-9]{1,4})?)$",
    "minimum": 0,
    "maximum": 100,
}
MONEY_IN = ref("common/money.json")
LINE_IN = ref("common/line.json")
LINES_IN = {"type": "array", "minItems": 1, "maxItems": 500, "items": LINE_IN}
CREATE_DRAFT = ref("actions/invoicing.create_draft_invoice.input.json")

# Invoices, quotes, orders and delivery notes (web.api.invoices.invoice_json)

INVOICE_STATUS = {"type": "string", "enum": ["draft", "issued", "paid", "cancelled"]}
DOCUMENT_KIND = {"type": "string", "enum": ["quote", "order", "delivery_note", "invoice"]}
INVOICE_TYPE = {"type": "string", "enum": ["F1", "F2", "R1", "R2", "R3", "R4", "R5"]}


def _invoice(detail: bool) -> dict[str, Any]:
    customer: dict[str, Any] = obj(["id", "name", "tax_id"], id=INTEGER, name=STRING, tax_id=STRING)
    if detail:
        customer = obj(
            [
                "id",
                "name",
                "tax_id",
                "equivalence_surcharge",
                "payment_days",
                "email",
                "address",
            ],
            id=INTEGER,
            name=STRING,
            tax_id=STRING,
            equivalence_surcharge=BOOLEAN,
            payment_days=INTEGER,
            email=NULLABLE_TEXT,
            address=obj(
                ["street", "postal_code", "city", "province", "country"],
                street=NULLABLE_TEXT,
                postal_code=NULLABLE_TEXT,
                city=NULLABLE_TEXT,
                province=NULLABLE_TEXT,
                country=STRING,
            ),
        )
    properties: dict[str, Any] = {
        "id": INTEGER,
        "kind": DOCUMENT_KIND,
        "status": INVOICE_STATUS,
        "invoice_type": INVOICE_TYPE,
        "number": nullable({"type": "string", "description": "set when issued"}),
        "issue_date": nullable(DATE),
        "operation_date": nullable(
            {**DATE, "description": "when the operation took place, if not on the issue date"}
        ),
        "currency": STRING,
        "customer": customer,
        "source": NULLABLE_TEXT,
        "external_ref": NULLABLE_TEXT,
        "discount_percent": NUMBER_TEXT,
        "due_date": nullable(DATE),
        "totals": obj(
            ["base", "tax", "total", "paid", "outstanding"],
            base={**NUMBER_TEXT, "description": "taxable base"},
            tax={**NUMBER_TEXT, "description": "IVA"},
            total={**NUMBER_TEXT, "description": "base + IVA + recargo de equivalencia"},
            paid=NUMBER_TEXT,
            outstanding={**NUMBER_TEXT, "description": "what is still owed of the amount due"},
        ),
        "amounts": obj(
            ["gross", "discount", "surcharge", "withholding", "due"],
            gross=NUMBER_TEXT,
            discount=NUMBER_TEXT,
            surcharge={**NUMBER_TEXT, "description": "recargo de equivalencia"},
            withholding={**NUMBER_TEXT, "description": "IRPF withheld"},
            due={**NUMBER_TEXT, "description": "what the customer pays: total - withholding"},
        ),
        "created_at": DATETIME,
        "issued_at": nullable(DATETIME),
        "cancelled_at": nullable(DATETIME),
        "rectifies": nullable({"type": "integer", "description": "the invoice it rectifies"}),
        "rectification_method": nullable({"type": "string", "enum": ["S", "I"]}),
        "converted_from": nullable({"type": "integer", "description": "the source document"}),
    }
    if detail:
        properties |= {
            "lines": items(
                obj(
                    [
                        "id",
                        "position",
                        "sku",
                        "description",
                        "quantity",
                        "unit_price",
                        "discount_percent",
                        "tax_rate",
                        "exemption_cause",
                        "service",
                        "withholding_rate",
                        "gross",
                        "discount",
                        "base",
                    ],
                    id=INTEGER,
                    position=INTEGER,
                    sku=NULLABLE_TEXT,
                    description=STRING,
                    quantity=NUMBER_TEXT,
                    unit_price=NUMBER_TEXT,
                    discount_percent=NUMBER_TEXT,
                    tax_rate=NUMBER_TEXT,
                    exemption_cause=EXEMPTION,
                    service=BOOLEAN,
                    withholding_rate=nullable(NUMBER_TEXT),
                    gross=NUMBER_TEXT,
                    discount=NUMBER_TEXT,
                    base=NUMBER_TEXT,
                )
            ),
            "taxes": items(
                obj(
                    ["rate", "base", "amount"],
                    rate=NUMBER_TEXT,
                    base=NUMBER_TEXT,
                    amount=NUMBER_TEXT,
                    exemption_cause={
                        "type": "string",
                        "enum": EXEMPTIONS,
                    },
                    surcharge_rate=NUMBER_TEXT,
                    surcharge_amount=NUMBER_TEXT,
                )
            ),
            "withholdings": items(
                obj(
                    ["rate", "base", "amount"],
                    rate=NUMBER_TEXT,
                    base=NUMBER_TEXT,
                    amount=NUMBER_TEXT,
                )
            ),
            "payments": items(
                obj(
                    ["id", "amount", "paid_on", "method", "reference"],
                    id=INTEGER,
                    amount=NUMBER_TEXT,
                    paid_on=DATE,
                    method=NULLABLE_TEXT,
                    reference=NULLABLE_TEXT,
                )
            ),
            "notes": NULLABLE_TEXT,
            "verifactu": nullable(
                {
                    "allOf": [ref("VerifactuRecord")],
                    "required": ["qr_url", "cancellation"],
                    "properties": {
                        "qr_url": URI,
                        "cancellation": nullable(ref("VerifactuRecord")),
                    },
                    "description": "issued: its alta record that counts, the QR's URL and its "
                    "anulación if cancelled (status rejected: the AEAT refused the "
                    "cancellation)",
                }
            ),
        }
    return obj(list(properties), **properties)


def _page_with(item: dict[str, Any], **properties: Any) -> dict[str, Any]:
    """A listing answer with more fields, always present."""
    listing = page(item)
    return {
        **listing,
        "required": [*listing["required"], *properties],
        "properties": {**listing["properties"], **properties},
    }


def _with(base: str, **properties: Any) -> dict[str, Any]:
    """Component `base` and more fields, always present."""
    return {"allOf": [ref(base)], "required": list(properties), "properties": properties}


REMAINING = {
    "type": "object",
    "description": "for each kind it can still become: line id → quantity left to convert",
    "propertyNames": {"enum": ["order", "delivery_note", "invoice"]},
    "additionalProperties": {"type": "object", "additionalProperties": NUMBER_TEXT},
}

# Customers, issuer, catalog

CUSTOMER = obj(
    [
        "id",
        "tax_id",
        "tax_id_kind",
        "name",
        "individual",
        "email",
        "address",
        "equivalence_surcharge",
        "payment_days",
        "created_at",
    ],
    id=INTEGER,
    tax_id=STRING,
    tax_id_kind=STRING,
    name=STRING,
    individual=nullable(
        obj(
            ["given_name", "first_surname", "second_surname"],
            given_name=STRING,
            first_surname=STRING,
            second_surname=NULLABLE_TEXT,
        )
    ),
    email=NULLABLE_TEXT,
    address=obj(
        ["street", "postal_code", "city", "province", "country"],
        street=NULLABLE_TEXT,
        postal_code=NULLABLE_TEXT,
        city=NULLABLE_TEXT,
        province=NULLABLE_TEXT,
        country=STRING,
    ),
    equivalence_surcharge=BOOLEAN,
    payment_days=INTEGER,
    created_at=DATETIME,
)
ISSUER_TEXTS = ("tax_id", "name", "street", "postal_code", "city", "province")
ISSUER_OPTIONAL = ("email", "iban", "sif_producer_tax_id", "sif_producer_name")
ISSUER_REQUIRED_TEXTS: dict[str, Any] = dict.fromkeys(ISSUER_TEXTS, STRING)
ISSUER_OPTIONAL_TEXTS: dict[str, Any] = dict.fromkeys(ISSUER_OPTIONAL, NULLABLE_TEXT)
ISSUER_JSON = obj(
    [
        "id",
        *ISSUER_TEXTS,
        "country",
        *ISSUER_OPTIONAL,
        "sif_installation",
        "simplified_art_4_2",
        "series",
    ],
    id=INTEGER,
    **ISSUER_REQUIRED_TEXTS,
    country=STRING,
    **ISSUER_OPTIONAL_TEXTS,
    sif_installation=STRING,
    simplified_art_4_2=BOOLEAN,
    series=items(
        obj(
            ["code", "purpose", "description"],
            code=STRING,
            purpose={"type": "string", "enum": ["ordinary", "rectifying", "simplified"]},
            description=NULLABLE_TEXT,
        )
    ),
)
PRODUCT = obj(
    [
        "id",
        "sku",
        "name",
        "unit_price",
        "tax_rate",
        "exemption_cause",
        "withholding_rate",
        "service",
        "active",
        "updated_at",
    ],
    id=INTEGER,
    sku=STRING,
    name=STRING,
    unit_price=NUMBER_TEXT,
    tax_rate=NUMBER_TEXT,
    exemption_cause=EXEMPTION,
    withholding_rate=nullable(NUMBER_TEXT),
    service={**BOOLEAN, "description": "a service, not goods: no recargo de equivalencia"},
    active=BOOLEAN,
    updated_at=DATETIME,
)
SKU_MAPPING = obj(
    ["source", "external_code", "sku"], source=STRING, external_code=STRING, sku=STRING
)
EMAIL = obj(
    ["id", "invoice_id", "status", "to", "message_id", "sent_at", "error"],
    id=INTEGER,
    invoice_id=INTEGER,
    status={"type": "string", "enum": ["sent", "failed"]},
    to=STRING,
    message_id=NULLABLE_TEXT,
    sent_at=nullable(DATETIME),
    error=NULLABLE_TEXT,
)
RECORD_STATUSES = list(aeat.STATUSES)
VERIFACTU_RECORD_FIELDS: dict[str, Any] = dict(
    id=INTEGER,
    sequence=INTEGER,
    kind={"type": "string", "enum": ["alta", "anulacion"]},
    invoice_id=INTEGER,
    num_serie=STRING,
    fecha_expedicion=DATE,
    tipo_factura=nullable(INVOICE_TYPE),
    cuota_total=nullable(NUMBER_TEXT),
    importe_total=nullable(NUMBER_TEXT),
    previous_huella=NULLABLE_TEXT,
    huella=STRING,
    generated_at=DATETIME,
    mode={
        "type": "string",
        "enum": ["verifactu", "no_verifactu"],
        "description": "verifactu: sent to the AEAT; no_verifactu: kept, never sent",
    },
    status={
        "type": "string",
        "enum": RECORD_STATUSES,
        "description": "rejected / accepted_with_errors: the AEAT's error_code and "
        "error_description say why; correct the cause, then POST …/correct. corrected: a newer "
        "record of the invoice replaced it. kept: no VERI*FACTU, never sent.",
    },
    error_code=nullable({**INTEGER, "description": "the AEAT's CodigoErrorRegistro"}),
    error_description=nullable(
        {"type": "string", "description": "the AEAT's DescripcionErrorRegistro"}
    ),
    corrects=nullable({**INTEGER, "description": "the refused record this one corrects"}),
    subsanacion={"type": "boolean", "description": "an alta sent with Subsanacion = S"},
    rechazo_previo=nullable({"type": "string", "enum": ["S", "X"]}),
    sin_registro_previo={
        "type": "boolean",
        "description": "an anulación of an alta the AEAT never received",
    },
)
VERIFACTU_RECORD = obj(list(VERIFACTU_RECORD_FIELDS), **VERIFACTU_RECORD_FIELDS)

# Flows and runs

FIELD_ERROR = obj(
    ["path", "message", "code", "params"],
    path=STRING,
    message=STRING,
    code=STRING,
    params={"type": "object"},
)
FAILURE_CLASS: dict[str, Any] = {
    "class": {
        "type": "string",
        "enum": ["validation", "configuration", "transient", "internal", "stopped"],
    }
}
RUN_ERROR = obj(
    ["class", "message", "errors"],
    **FAILURE_CLASS,
    message=STRING,
    errors=items(ref("FieldError")),
)
CHECK = obj(
    ["ok", "errors", "preview"],
    ok=BOOLEAN,
    errors=items(obj(["field", "message", "code"], field=STRING, message=STRING, code=STRING)),
    preview={
        "type": "object",
        "description": "step id → its input mapped on the sample (secrets masked)",
    },
)
SAVED_DOCUMENT = {
    "type": "object",
    "description": "the flow document as saved (flow.json; a draft with problems is saved too)",
}
FLOW = obj(
    ["id", "name", "trigger", "enabled", "version", "document", "updated_at"],
    id=INTEGER,
    name=STRING,
    trigger={"type": "string", "description": "the trigger's key"},
    enabled=BOOLEAN,
    version=nullable(INTEGER),
    document=nullable(SAVED_DOCUMENT),
    updated_at=DATETIME,
    webhook_url={**URI, "description": "its own address, for a standalone webhook trigger"},
    check=ref("FlowCheck"),
)
DRY_RUN = obj(
    ["status", "steps"],
    status={"type": "string", "enum": ["succeeded", "failed", "stopped"]},
    steps=items(
        obj(
            ["id", "action", "status", "input", "output", "error", "note"],
            id=STRING,
            action={"type": "string", "description": "the action's key, or filter"},
            status={"type": "string", "enum": ["succeeded", "failed", "stopped", "skipped"]},
            input=ANY,
            output=ANY,
            error=nullable(ref("RunError")),
            note=NULLABLE_TEXT,
        )
    ),
)
RUN_STATUS = {
    "type": "string",
    "enum": ["queued", "running", "succeeded", "failed", "stopped", "dead"],
}
RUN_FIELDS: dict[str, Any] = {
    "id": INTEGER,
    "status": RUN_STATUS,
    "flow": obj(["id", "name", "version"], id=INTEGER, name=STRING, version=INTEGER),
    "event_id": INTEGER,
    "deal_ref": NULLABLE_TEXT,
    "invoice_ref": NULLABLE_TEXT,
    "customer_tax_id": NULLABLE_TEXT,
    "keys": {"type": "object", "additionalProperties": STRING},
    "attempts": INTEGER,
    "replays": INTEGER,
    "created_at": DATETIME,
    "started_at": nullable(DATETIME),
    "finished_at": nullable(DATETIME),
    "error": nullable(ref("RunError")),
}
RUN = obj(list(RUN_FIELDS), **RUN_FIELDS)
RUN_DETAIL_FIELDS: dict[str, Any] = {
    **RUN_FIELDS,
    "trigger": {"type": "object", "description": "the trigger item as received"},
    "trigger_override": nullable(
        {"type": "object", "description": "the trigger item as a replay edited it"}
    ),
    "history": items(
        obj(
            [
                "attempt",
                "status",
                "flow_version_id",
                "edited_trigger",
                "started_at",
                "finished_at",
                "error",
            ],
            attempt=INTEGER,
            status=STRING,
            flow_version_id=INTEGER,
            edited_trigger=BOOLEAN,
            started_at=DATETIME,
            finished_at=nullable(DATETIME),
            error=nullable(ref("RunError")),
        )
    ),
    "steps": items(
        obj(
            [
                "step_id",
                "action",
                "status",
                "attempts",
                "input",
                "output",
                "error",
                "started_at",
                "finished_at",
                "duration_ms",
                "queue_wait_ms",
            ],
            step_id=STRING,
            action=STRING,
            status={"type": "string", "enum": ["succeeded", "failed", "stopped"]},
            attempts=INTEGER,
            input=ANY,
            output=ANY,
            error=nullable(ref("RunError")),
            started_at=DATETIME,
            finished_at=DATETIME,
            duration_ms=INTEGER,
            queue_wait_ms=nullable(INTEGER),
        )
    ),
}
RUN_DETAIL = obj(list(RUN_DETAIL_FIELDS), **RUN_DETAIL_FIELDS)

# Connections and templates

CONNECTION_TYPE = {
    "type": "string",
    "description": "its provider: http, or a CRM (hubspot, pipedrive, salesforce, zoho…)",
}
AUTH_KIND = {"type": "string", "enum": ["none", "bearer", "basic", "header", "oauth2"]}
CONNECTION = obj(
    [
        "name",
        "type",
        "base_url",
        "auth",
        "header_name",
        "settings",
        "has_secret",
        "secret_fields",
        "rate_limit_per_second",
        "account_id",
        "webhook_url",
        "created_at",
    ],
    name=STRING,
    type=CONNECTION_TYPE,
    base_url=STRING,
    auth=AUTH_KIND,
    header_name=NULLABLE_TEXT,
    settings={"type": "object", "description": "valid against schemas/providers/<type>.json"},
    has_secret=BOOLEAN,
    secret_fields={
        "type": "array",
        "items": STRING,
        "description": "which secret fields are set (their values are never shown)",
    },
    rate_limit_per_second=nullable({"type": "number"}),
    account_id=nullable({"type": "string", "description": "the account at the other side"}),
    webhook_url=nullable({**URI, "description": "where a CRM's webhooks arrive"}),
    created_at=DATETIME,
)
TEMPLATE = obj(
    ["key", "title", "title_es", "description", "description_es", "connection_type"],
    key=STRING,
    title=STRING,
    title_es=STRING,
    description=STRING,
    description_es=STRING,
    connection_type=nullable(CONNECTION_TYPE),
)

# The built-in CRM

CRM_STAGE = {
    "type": "string",
    "enum": ["nueva", "cualificada", "propuesta", "negociacion", "ganada", "perdida"],
}
COMPANY_TEXTS = ("tax_id", "email", "street", "postal_code", "city", "province")
COMPANY_OPTIONAL_TEXTS: dict[str, Any] = dict.fromkeys(COMPANY_TEXTS, NULLABLE_TEXT)
CRM_COMPANY = obj(
    ["id", "name", *COMPANY_TEXTS, "country"],
    id=INTEGER,
    name=STRING,
    **COMPANY_OPTIONAL_TEXTS,
    country=STRING,
)
CRM_DOCUMENT = obj(
    ["id", "kind", "status", "number", "total", "paid", "payment_status"],
    id=INTEGER,
    kind=DOCUMENT_KIND,
    status=INVOICE_STATUS,
    number=NULLABLE_TEXT,
    total=NUMBER_TEXT,
    paid=NUMBER_TEXT,
    payment_status=nullable({"type": "string", "enum": ["Cobrado", "Pendiente"]}),
)
OPPORTUNITY = obj(
    [
        "id",
        "title",
        "stage",
        "stage_name",
        "company",
        "contact_id",
        "owner",
        "campaign",
        "currency",
        "amount",
        "expected_close",
        "won_at",
        "lines",
    ],
    id=INTEGER,
    title=STRING,
    stage=CRM_STAGE,
    stage_name=STRING,
    company=ref("CrmCompany"),
    contact_id=nullable(INTEGER),
    owner=obj(["name", "email"], name=NULLABLE_TEXT, email=NULLABLE_TEXT),
    campaign=NULLABLE_TEXT,
    currency=STRING,
    amount={**NUMBER_TEXT, "description": "the lines before IVA, after their discounts"},
    expected_close=nullable(DATE),
    won_at=nullable(DATETIME),
    lines=items(
        obj(
            ["sku", "description", "quantity", "unit_price", "discount_percent", "tax_rate"],
            sku=NULLABLE_TEXT,
            description=STRING,
            quantity=NUMBER_TEXT,
            unit_price=NUMBER_TEXT,
            discount_percent=NUMBER_TEXT,
            tax_rate=NUMBER_TEXT,
        )
    ),
    documents=items(ref("CrmDocument")),
)

# Reports

DURATIONS = obj(
    ["count", "median", "mean"],
    count=INTEGER,
    median=nullable({"type": "number", "description": "hours"}),
    mean=nullable({"type": "number", "description": "hours"}),
)
BY_CURRENCY = {
    "type": "object",
    "description": "currency → amount, net of tax",
    "additionalProperties": NUMBER_TEXT,
}
REPORT_GROUP = obj(
    [
        "won",
        "invoiced",
        "paid",
        "never_billed",
        "draft_pending",
        "conversion_rate",
        "amount_won",
        "amount_invoiced",
        "won_to_invoiced_hours",
        "won_to_paid_hours",
    ],
    won=INTEGER,
    invoiced=INTEGER,
    paid=INTEGER,
    never_billed=INTEGER,
    draft_pending=INTEGER,
    conversion_rate=nullable({"type": "number", "description": "invoiced / won, 0 to 1"}),
    amount_won=BY_CURRENCY,
    amount_invoiced=BY_CURRENCY,
    won_to_invoiced_hours=DURATIONS,
    won_to_paid_hours=DURATIONS,
)
UNBILLED_DEAL = obj(
    [
        "deal_id",
        "source",
        "external_ref",
        "title",
        "owner_name",
        "owner_email",
        "campaign",
        "amount",
        "currency",
        "customer_name",
        "customer_tax_id",
        "won_at",
        "age_days",
        "invoice_id",
        "invoice_status",
        "draft_invoice_id",
    ],
    deal_id=INTEGER,
    source=STRING,
    external_ref=STRING,
    title=NULLABLE_TEXT,
    owner_name=NULLABLE_TEXT,
    owner_email=NULLABLE_TEXT,
    campaign=NULLABLE_TEXT,
    amount=nullable(NUMBER_TEXT),
    currency=STRING,
    customer_name=NULLABLE_TEXT,
    customer_tax_id=NULLABLE_TEXT,
    won_at=DATETIME,
    age_days=INTEGER,
    invoice_id=nullable({"type": "integer", "description": "a draft, or a cancelled invoice"}),
    invoice_status=nullable(INVOICE_STATUS),
    draft_invoice_id=nullable(INTEGER),
)

COMPONENTS.update(
    {
        "Invoice": _invoice(detail=False),
        "InvoiceDetail": _invoice(detail=True),
        "Document": _with("InvoiceDetail", remaining=REMAINING),
        "Customer": CUSTOMER,
        "Issuer": ISSUER_JSON,
        "Product": PRODUCT,
        "SkuMapping": SKU_MAPPING,
        "Email": EMAIL,
        "VerifactuRecord": VERIFACTU_RECORD,
        "FieldError": FIELD_ERROR,
        "RunError": RUN_ERROR,
        "FlowCheck": CHECK,
        "Flow": FLOW,
        "DryRun": DRY_RUN,
        "Run": RUN,
        "RunDetail": RUN_DETAIL,
        "Connection": CONNECTION,
        "Template": TEMPLATE,
        "CrmCompany": CRM_COMPANY,
        "CrmDocument": CRM_DOCUMENT,
        "Opportunity": OPPORTUNITY,
        "ReportGroup": REPORT_GROUP,
        "UnbilledDeal": UNBILLED_DEAL,
    }
)


def _draft_body(invoice: bool) -> dict[str, Any]:
    """A draft from an inline customer (the create_draft_invoice action's input) or from a
    customer_id; only invoices have an invoice_type."""
    by_id = {
        "customer_id": ID,
        "lines": LINES_IN,
        "currency": {"enum": ["EUR"]},
        "discount_percent": PERCENT_IN,
        "external_ref": nullable({"type": "string", "maxLength": 100}),
        "source": nullable({"type": "string", "maxLength": 40}),
        "notes": nullable({"type": "string", "maxLength": 2000}),
    }
    inline: dict[str, Any] = CREATE_DRAFT
    if invoice:
        by_id["invoice_type"] = {"enum": ["F1", "F2"]}
    else:
        inline = {"allOf": [CREATE_DRAFT], "not": {"required": ["invoice_type"]}}
    return {
        "oneOf": [
            inline,
            obj(["customer_id", "lines"], extra=False, **by_id),
        ]
    }


DRAFT_PATCH = obj(
    extra=False,
    lines=LINES_IN,
    customer=ref("common/party.json"),
    customer_id=ID,
    notes=nullable({"type": "string", "maxLength": 2000}),
    discount_percent=PERCENT_IN,
)
TAKES = {
    "type": "array",
    "description": "how much of which lines (all that is left of every line when left out)",
    "items": obj(["line_id"], line_id=ID, quantity=nullable(MONEY_IN)),
}

INVOICES = (
    Op(
        "GET",
        "/invoices",
        "List invoices, newest first",
        "Invoices",
        {200: page(ref("Invoice"))},
        params=(
            Param("status", INVOICE_STATUS, "only invoices in this status"),
            Param("external_ref", STRING, "only the invoice of this CRM deal"),
            Param("source", STRING, "only invoices from this source"),
            Param("number", STRING, "only the invoice with this number"),
            LIMIT,
            OFFSET,
        ),
    ),
    Op(
        "POST",
        "/invoices",
        "Create a draft invoice",
        "Invoices",
        {
            201: _with("InvoiceDetail", created=BOOLEAN),
            200: _with("InvoiceDetail", created=BOOLEAN),
        },
        body=_draft_body(invoice=True),
        params=(IDEMPOTENCY,),
        description="From an inline customer (found or created by tax id) or a customer_id, "
        "and lines. 201: created; 200 with `created` false: the draft of this source and "
        "external_ref exists already.",
    ),
    Op(
        "GET",
        "/invoices/<int:invoice_id>",
        "An invoice with its lines, taxes and payments",
        "Invoices",
        {200: ref("InvoiceDetail")},
    ),
    Op(
        "PATCH",
        "/invoices/<int:invoice_id>",
        "Edit a draft invoice: lines, customer, discount, notes",
        "Invoices",
        {200: ref("InvoiceDetail")},
        body=DRAFT_PATCH,
        errors=(409,),
    ),
    Op(
        "POST",
        "/invoices/<int:invoice_id>/issue",
        "Issue a draft: number it and chain its VERI*FACTU record",
        "Invoices",
        {
            200: ref("InvoiceDetail"),
        },
        body=obj(
            issue_date={**DATE, "description": "today when left out"},
            series={"type": "string", "description": "a series code; the ordinary one"},
        ),
        body_required=False,
        errors=(409,),
    ),
    Op(
        "POST",
        "/invoices/<int:invoice_id>/payments",
        "Record a payment of an issued invoice",
        "Invoices",
        {
            201: _with("InvoiceDetail", payment_id=INTEGER),
            200: _with("InvoiceDetail", payment_id=INTEGER),
        },
        body=obj(
            ["amount"],
            amount=MONEY_IN,
            paid_on={**DATE, "description": "today (in Spain) when left out"},
            method=NULLABLE_TEXT,
            reference=NULLABLE_TEXT,
        ),
        params=(IDEMPOTENCY,),
        errors=(409,),
        description="201: recorded. A repeat of an Idempotency-Key records nothing and gets the "
        "first answer again, with the header `Idempotent-Replayed: true`.",
    ),
    Op(
        "POST",
        "/invoices/<int:invoice_id>/cancel",
        "Cancel an invoice issued in error (anulación)",
        "Invoices",
        {200: ref("InvoiceDetail")},
        body=obj(["reason"], reason=STRING),
        errors=(409,),
    ),
    Op(
        "POST",
        "/invoices/<int:invoice_id>/rectify",
        "Draft a rectifying invoice (R1–R5)",
        "Invoices",
        {201: ref("InvoiceDetail")},
        body=obj(
            ["invoice_type", "method", "reason"],
            invoice_type={"type": "string", "enum": ["R1", "R2", "R3", "R4", "R5"]},
            method={
                "type": "string",
                "enum": ["S", "I"],
                "description": "S: by substitution, I: by differences",
            },
            reason=STRING,
            lines=nullable(LINES_IN),
        ),
        params=(IDEMPOTENCY,),
        errors=(409,),
    ),
    Op(
        "GET",
        "/invoices/<int:invoice_id>/facturae.xml",
        "The issued invoice as Facturae 3.2.2 (signed when configured)",
        "Invoices",
        {200: "application/xml"},
        errors=(409, 422),
        description="409: a draft; 422: data Facturae cannot carry (e.g. the buyer's address "
        "is incomplete).",
    ),
    Op(
        "GET",
        "/invoices/<int:invoice_id>/verifactu.xml",
        "The invoice's VERI*FACTU alta record",
        "Invoices",
        {200: "application/xml"},
        errors=(409,),
    ),
    Op(
        "GET",
        "/invoices/<int:invoice_id>/verifactu-anulacion.xml",
        "The cancelled invoice's VERI*FACTU anulación record",
        "Invoices",
        {200: "application/xml"},
        errors=(409,),
    ),
    Op(
        "GET",
        "/invoices/<int:invoice_id>/qr.<fmt>",
        "The VERI*FACTU QR of an issued invoice (qr.png or qr.svg)",
        "Invoices",
        {200: "image/*"},
        errors=(409,),
        description="qr.png answers image/png, qr.svg image/svg+xml.",
    ),
    Op(
        "GET",
        "/verifactu/records",
        "An issuer's VERI*FACTU chain, in order",
        "Invoices",
        {200: page(ref("VerifactuRecord"))},
        params=(
            Param("issuer", STRING, "the issuer's NIF (ours when left out)"),
            Param(
                "status",
                {"type": "string", "enum": RECORD_STATUSES},
                "only records in this state: rejected lists what the AEAT refused",
            ),
            LIMIT,
            OFFSET,
        ),
        errors=(404, 422),
    ),
    Op(
        "GET",
        "/verifactu/events",
        "The invoicing system's event log, chained by hash",
        "Invoices",
        {
            200: _page_with(
                obj(
                    ["sequence", "kind", "description", "detail", "occurred_at", "hash"],
                    sequence=INTEGER,
                    kind={"type": "string", "enum": list(sif_log.KINDS)},
                    description=STRING,
                    detail={"type": "object"},
                    occurred_at=DATETIME,
                    previous_hash=NULLABLE_TEXT,
                    hash=STRING,
                ),
                intact={
                    "type": "boolean",
                    "description": "every record's huella and every event's hash recomputed "
                    "and chained",
                },
                anomalies={"type": "array", "items": STRING},
            )
        },
        params=(LIMIT, OFFSET),
        description="Starts, exports of records and of this log, chain checks and the "
        "anomalies they found (registro de eventos, Orden HAC/1177/2024). Reading it is an "
        "event too.",
    ),
    Op(
        "POST",
        "/verifactu/records/<int:record_id>/correct",
        "Correct a record the AEAT refused and send it again",
        "Invoices",
        {201: ref("VerifactuRecord")},
        errors=(404, 409),
        description="For a record rejected or accepted with errors, once its cause is fixed "
        "(usually the customer's NIF or name): chains and queues its subsanación (Subsanacion "
        "S, RechazoPrevio S after a rejection) or, for an anulación, the anulación again. 409 "
        "when there is nothing to correct, it was corrected already, or the installation is "
        "not in VERI*FACTU mode.",
    ),
)

PDF = (
    Op(
        "GET",
        "/invoices/<int:invoice_id>/pdf",
        "The invoice as PDF (a draft is watermarked)",
        "Invoices",
        {200: "application/pdf"},
    ),
)

MAIL = (
    Op(
        "POST",
        "/invoices/<int:invoice_id>/send",
        "Email an issued invoice (PDF and Facturae) to the customer",
        "Invoices",
        {
            200: ref("Email"),
            502: {
                "allOf": [ref("Error")],
                "required": ["transient", "email"],
                "properties": {
                    "error": {"const": "mail_failed"},
                    "transient": {"type": "boolean", "description": "worth trying again"},
                    "email": ref("Email"),
                },
                "description": "The mail server refused or failed: the attempt is recorded.",
            },
            503: ref("Error"),
        },
        body=obj(to={"type": "string", "format": "email", "description": "the customer's email"}),
        body_required=False,
        params=(IDEMPOTENCY,),
        errors=(409,),
    ),
)

DOCUMENTS = (
    Op(
        "GET",
        f"/{PLURAL}",
        "List quotes, orders or delivery notes, newest first",
        "Documents",
        {200: page(ref("Invoice"))},
        params=(LIMIT, OFFSET),
    ),
    Op(
        "POST",
        f"/{PLURAL}",
        "Create a draft quote, order or delivery note",
        "Documents",
        {
            201: _with("InvoiceDetail", created=BOOLEAN),
            200: _with("InvoiceDetail", created=BOOLEAN),
        },
        body=_draft_body(invoice=False),
        params=(IDEMPOTENCY,),
    ),
    Op(
        "GET",
        f"/{PLURAL}/<int:doc_id>",
        "A quote, order or delivery note, with what is left to convert",
        "Documents",
        {200: ref("Document")},
    ),
    Op(
        "PATCH",
        f"/{PLURAL}/<int:doc_id>",
        "Edit a draft quote, order or delivery note",
        "Documents",
        {200: ref("InvoiceDetail")},
        body=DRAFT_PATCH,
        errors=(409,),
    ),
    Op(
        "POST",
        f"/{PLURAL}/<int:doc_id>/convert",
        "Convert into the next kind (order, delivery note, invoice)",
        "Documents",
        {201: ref("Document")},
        body=obj(
            ["to"],
            to={"type": "string", "enum": ["order", "delivery_note", "invoice"]},
            lines=TAKES,
            notes=NULLABLE_TEXT,
        ),
        params=(IDEMPOTENCY,),
        errors=(409,),
    ),
    Op(
        "POST",
        "/invoices/from-delivery-notes",
        "One invoice for several delivery notes of a customer",
        "Documents",
        {201: ref("Document")},
        body=obj(
            ["delivery_note_ids"],
            delivery_note_ids={"type": "array", "minItems": 1, "items": ID},
            lines=TAKES,
            notes=NULLABLE_TEXT,
        ),
        params=(IDEMPOTENCY,),
        errors=(404, 409),
    ),
)

CUSTOMERS = (
    Op(
        "POST",
        "/customers",
        "Create a customer (or find the one with its tax id)",
        "Customers",
        {
            201: _with("Customer", created=BOOLEAN, name_differs=BOOLEAN),
            200: _with("Customer", created=BOOLEAN, name_differs=BOOLEAN),
        },
        body=ref("common/customer.json"),
        description="201: created; 200: a customer with this tax id exists already "
        "(`name_differs` when it is known by another name).",
    ),
    Op(
        "GET",
        "/customers",
        "List customers",
        "Customers",
        {200: page(ref("Customer"))},
        params=(
            Param("tax_id", STRING, "only the customer with this tax id"),
            Param("country", STRING, "the tax id's country (ISO 3166-1 alpha-2)"),
            LIMIT,
            OFFSET,
        ),
    ),
    Op(
        "GET",
        "/customers/<int:customer_id>",
        "A customer",
        "Customers",
        {200: ref("Customer")},
    ),
    Op(
        "PATCH",
        "/customers/<int:customer_id>",
        "Edit a customer (not its tax id)",
        "Customers",
        {200: ref("Customer")},
        body=obj(
            extra=False,
            name={"type": "string", "minLength": 1, "maxLength": 120},
            email=nullable({"type": "string", "format": "email", "maxLength": 254}),
            address=ref("common/address.json"),
            equivalence_surcharge=BOOLEAN,
            payment_days={"type": "integer", "minimum": 0, "maximum": 365},
        ),
        description="The result must be valid as common/customer.json; the country comes "
        "from the tax id and cannot change.",
    ),
)

ISSUER = (
    Op(
        "GET",
        "/issuer",
        "Our company: fiscal data and series",
        "Issuer",
        {200: ref("Issuer")},
        errors=(404,),
    ),
    Op(
        "PUT",
        "/issuer",
        "Set our company's fiscal data",
        "Issuer",
        {200: ref("Issuer")},
        body=obj(
            ISSUER_TEXTS,
            extra=False,
            **ISSUER_REQUIRED_TEXTS,
            country={"type": "string", "default": "ES"},
            **ISSUER_OPTIONAL_TEXTS,
            sif_installation={"type": "string", "default": "1"},
            simplified_art_4_2={
                "type": "boolean",
                "default": False,
                "description": "art. 4.2 RD 1619/2012 covers the business: simplified invoices "
                "up to 3,000 € (otherwise 400 €)",
            },
        ),
        errors=(409,),
        description="The first time, also its default series (F, R, S). The NIF cannot "
        "change once invoices are issued (409).",
    ),
)

PRODUCTS = (
    Op(
        "POST",
        "/products",
        "Add a product to the catalog",
        "Products",
        {201: ref("Product")},
        body=obj(
            ["sku", "name", "unit_price", "tax_rate"],
            extra=False,
            sku=STRING,
            name=STRING,
            unit_price=MONEY_IN,
            tax_rate={"enum": [0, 4, 10, 21, "0", "4", "10", "21"]},
            exemption_cause=EXEMPTION,
            withholding_rate=nullable({"type": ["number", "string"]}),
            service={"type": "boolean", "default": False},
        ),
        errors=(409,),
    ),
    Op(
        "GET",
        "/products",
        "List the catalog by SKU",
        "Products",
        {200: page(ref("Product"))},
        params=(Param("sku", STRING, "only this SKU"), LIMIT, OFFSET),
    ),
    Op(
        "GET",
        "/products/<int:product_id>",
        "A product",
        "Products",
        {200: ref("Product")},
    ),
    Op(
        "POST",
        "/sku-mappings",
        "Map a CRM's product code to one of our SKUs",
        "Products",
        {201: ref("SkuMapping"), 200: ref("SkuMapping")},
        body=obj(
            ["source", "external_code", "sku"],
            source={"type": "string", "minLength": 1, "description": "the CRM: hubspot…"},
            external_code={"type": "string", "minLength": 1},
            sku={"type": "string", "minLength": 1},
        ),
        description="201 for a new code; 200 when the code was mapped already and now means "
        "this SKU.",
    ),
    Op(
        "GET",
        "/sku-mappings",
        "List the CRM product codes mapped to SKUs",
        "Products",
        {200: page(ref("SkuMapping"))},
        params=(Param("source", STRING, "only this CRM's codes"), LIMIT, OFFSET),
    ),
)

FLOW_DOCUMENT = ref("flow.json")
FLOW_SAVED = _with("Flow", check=ref("FlowCheck"))
FLOW_CREATED = {
    "allOf": [ref("Flow")],
    "required": ["check"],
    "properties": {
        "check": ref("FlowCheck"),
        "webhook_secret": {
            "type": "string",
            "description": "the secret of its own webhook address; shown only now",
        },
    },
}
DRY_RUN_INPUT: dict[str, Any] = {
    "trigger": {
        "type": "object",
        "description": "a trigger item; the trigger's example by default",
    },
    "until": {"type": "string", "description": "stop after this step"},
}

FLOWS = (
    Op(
        "GET",
        "/flows",
        "List flows",
        "Flows",
        {200: page(ref("Flow"))},
        params=(LIMIT, OFFSET),
    ),
    Op(
        "POST",
        "/flows",
        "Create a flow",
        "Flows",
        {201: FLOW_CREATED},
        body=obj(
            ["document"],
            document=FLOW_DOCUMENT,
            enabled={"type": "boolean", "default": False},
        ),
        description="Disabled unless `enabled` is true; a flow with problems is saved as a "
        "disabled draft (`check` lists them), and enabling it is refused (422).",
    ),
    Op(
        "GET",
        "/flows/<int:flow_id>",
        "A flow with its check",
        "Flows",
        {200: ref("Flow")},
        description="The check here evaluates no expression, so it has no preview and leaves "
        "out what only trying the mapping on the sample finds; `POST /flows/check` does that.",
    ),
    Op(
        "PUT",
        "/flows/<int:flow_id>",
        "Save a new version of a flow",
        "Flows",
        {200: FLOW_SAVED},
        body=obj(["document"], document=FLOW_DOCUMENT),
    ),
    Op(
        "POST",
        "/flows/<int:flow_id>/<any(enable, disable):change>",
        "Enable or disable a flow",
        "Flows",
        {200: ref("Flow")},
    ),
    Op(
        "POST",
        "/flows/check",
        "Check a flow document without saving it",
        "Flows",
        {200: ref("FlowCheck")},
        body=obj(
            ["document"],
            document=FLOW_DOCUMENT,
            sample={"type": "object", "description": "a trigger item instead of its example"},
        ),
    ),
    Op(
        "GET",
        "/flows/<int:flow_id>/versions",
        "A flow's saved versions, newest first",
        "Flows",
        {
            200: obj(
                ["items"],
                items=items(
                    obj(
                        ["version", "created_at", "document"],
                        version=INTEGER,
                        created_at=DATETIME,
                        document=SAVED_DOCUMENT,
                    )
                ),
            )
        },
    ),
    Op(
        "GET",
        "/flows/<int:flow_id>/export",
        "A flow as portable JSON, without secrets",
        "Flows",
        {200: ref("FlowExport")},
        errors=(409,),
    ),
    Op(
        "POST",
        "/flows/import",
        "Create a flow from an export (disabled)",
        "Flows",
        {201: FLOW_CREATED},
        body=ref("FlowExport"),
        description="An export never carries secrets: one is refused (422). Neither is a "
        'placeholder an export left for a literal secret ({"$secret": …}): `secret_left_out` '
        "(422) names each one to fill in.",
    ),
    Op(
        "POST",
        "/flows/dry-run",
        "Run a flow document on sample data, without effects",
        "Flows",
        {200: ref("DryRun")},
        body=obj(["document"], document=FLOW_DOCUMENT, **DRY_RUN_INPUT),
    ),
    Op(
        "POST",
        "/flows/<int:flow_id>/dry-run",
        "Run the saved flow on sample data, without effects",
        "Flows",
        {200: ref("DryRun")},
        body=obj(**DRY_RUN_INPUT),
        body_required=False,
        errors=(409,),
    ),
)
COMPONENTS["FlowExport"] = obj(
    ["format", "name", "document", "webhook"],
    format={"const": "puente.flow/1"},
    name=STRING,
    document=SAVED_DOCUMENT,
    webhook=nullable({"type": "string", "description": "the name of its webhook"}),
    secrets_left_out=items(
        {
            "type": "string",
            "description": "where a literal secret typed into a step (an Authorization header, "
            'an API key in a URL) was replaced by a placeholder {"$secret": "<what it looked '
            'like>"}: to fill in before importing, or better to keep in a connection',
        }
    ),
)

RUNS = (
    Op(
        "GET",
        "/runs",
        "List runs, newest first",
        "Runs",
        {200: page(ref("Run"))},
        params=(
            Param("status", RUN_STATUS, "only runs in this status"),
            Param("flow_id", ID, "only this flow's runs"),
            Param("deal_ref", STRING, "only runs about this deal"),
            Param("invoice_ref", STRING, "only runs about this invoice"),
            Param("customer_tax_id", STRING, "only runs about this customer"),
            LIMIT,
            OFFSET,
        ),
        description="Any other business key a trigger or action declares: `?key.<name>=…`.",
    ),
    Op(
        "GET",
        "/runs/<int:run_id>",
        "A run with its trigger item, attempts and steps",
        "Runs",
        {200: ref("RunDetail")},
    ),
    Op(
        "POST",
        "/runs/<int:run_id>/replay",
        "Queue a finished run again, after its last finished step",
        "Runs",
        {202: ref("RunDetail")},
        body=obj(
            trigger={"type": "object", "description": "the trigger item, edited"},
            version={"type": "string", "enum": ["original", "current"], "default": "original"},
        ),
        body_required=False,
        errors=(409,),
    ),
    Op(
        "POST",
        "/runs/replay",
        "Replay many runs, paced",
        "Runs",
        {
            202: obj(
                ["replayed", "seconds"],
                replayed=items(INTEGER),
                seconds={"type": "number", "description": "until the last one is queued"},
            )
        },
        body=obj(
            run_ids={"type": "array", "maxItems": 500, "items": ID},
            status={"type": "string", "enum": ["dead", "failed"]},
            flow_id=ID,
            per_second={
                "type": "number",
                "exclusiveMinimum": 0,
                "maximum": 100,
                "default": 5,
            },
        ),
        errors=(409,),
        description='`run_ids`, or `"status": "dead"` or `"failed"` (and a `flow_id`): at '
        "most 500 runs at a time.",
    ),
)

CONNECTIONS = (
    Op(
        "GET",
        "/connections",
        "List connections (never their secrets)",
        "Connections",
        {200: obj(["items"], items=items(ref("Connection")))},
    ),
    Op(
        "GET",
        "/connections/<name>",
        "A connection (never its secret)",
        "Connections",
        {200: ref("Connection")},
    ),
    Op(
        "PUT",
        "/connections/<name>",
        "Create or replace a connection",
        "Connections",
        {200: ref("Connection")},
        body=obj(
            ["base_url"],
            type={**CONNECTION_TYPE, "default": "http"},
            base_url=STRING,
            auth=nullable(AUTH_KIND),
            header_name=NULLABLE_TEXT,
            secret=nullable(
                {
                    "type": "object",
                    "additionalProperties": nullable(STRING),
                    "description": "left out: kept; a field sent as null is removed",
                }
            ),
            settings=nullable({"type": "object"}),
            rate_limit_per_second=nullable({"type": "number", "exclusiveMinimum": 0}),
        ),
        description="base_url, auth, header_name, settings and secret must be valid against "
        "the type's schema (schemas/providers/<type>.json).",
    ),
    Op(
        "POST",
        "/connections/<name>/test",
        "Test a connection (Probar conexión)",
        "Connections",
        {200: obj(["ok", "message", "message_es"], ok=BOOLEAN, message=STRING, message_es=STRING)},
    ),
)

TEMPLATES = (
    Op(
        "GET",
        "/templates",
        "List ready-made flows",
        "Templates",
        {200: obj(["items"], items=items(ref("Template")))},
    ),
    Op(
        "POST",
        "/templates/<key>/install",
        "Install a template: create its flow, enabled",
        "Templates",
        {
            201: obj(
                ["flow_id", "name"],
                flow_id=INTEGER,
                name=STRING,
                webhook_url={**URI, "description": "its own address, when it has one"},
                webhook_secret={"type": "string", "description": "shown only now"},
            )
        },
        body=obj(connection={"type": "string", "minLength": 1}),
        body_required=False,
        description="`connection` names a connection of the template's type (required when "
        "the template has one).",
    ),
)

CRM = (
    Op(
        "POST",
        "/crm/companies",
        "Add a company",
        "CRM",
        {201: ref("CrmCompany")},
        body=obj(
            ["name"],
            extra=False,
            name=STRING,
            **COMPANY_OPTIONAL_TEXTS,
            country=STRING,
        ),
    ),
    Op(
        "GET",
        "/crm/companies",
        "List companies",
        "CRM",
        {200: page(ref("CrmCompany"))},
        params=(LIMIT, OFFSET),
    ),
    Op(
        "POST",
        "/crm/companies/<int:company_id>/contacts",
        "Add a contact to a company",
        "CRM",
        {201: obj(["id", "company_id", "name"], id=INTEGER, company_id=INTEGER, name=STRING)},
        body=obj(["name"], name=STRING, email=NULLABLE_TEXT, phone=NULLABLE_TEXT),
    ),
    Op(
        "POST",
        "/crm/opportunities",
        "Add an opportunity",
        "CRM",
        {201: ref("Opportunity")},
        body=obj(
            ["title", "company_id"],
            title=STRING,
            company_id=ID,
            lines=items(
                obj(
                    ["description", "quantity", "unit_price"],
                    description=STRING,
                    quantity=MONEY_IN,
                    unit_price=MONEY_IN,
                    sku=NULLABLE_TEXT,
                    discount_percent=nullable(MONEY_IN),
                    tax_rate={**MONEY_IN, "default": 21},
                )
            ),
            stage={**CRM_STAGE, "default": "nueva"},
            owner_name=NULLABLE_TEXT,
            owner_email=NULLABLE_TEXT,
            campaign=NULLABLE_TEXT,
            currency={"type": "string", "default": "EUR"},
            expected_close=nullable(DATE),
            contact_id=nullable(ID),
        ),
        errors=(404,),
    ),
    Op(
        "GET",
        "/crm/opportunities",
        "List opportunities, newest first",
        "CRM",
        {200: page(ref("Opportunity"))},
        params=(Param("stage", CRM_STAGE, "only this stage"), LIMIT, OFFSET),
    ),
    Op(
        "GET",
        "/crm/opportunities/<int:opportunity_id>",
        "An opportunity with its documents",
        "CRM",
        {200: _with("Opportunity", documents=items(ref("CrmDocument")))},
    ),
    Op(
        "POST",
        "/crm/opportunities/<int:opportunity_id>/stage",
        "Move an opportunity (to ganada: mark it won)",
        "CRM",
        {200: ref("Opportunity")},
        body=obj(["stage"], stage=CRM_STAGE),
    ),
    Op(
        "POST",
        "/crm/opportunities/<int:opportunity_id>/won",
        "Mark an opportunity won (the deal-won flows start)",
        "CRM",
        {200: ref("Opportunity")},
    ),
    Op(
        "POST",
        "/crm/opportunities/<int:opportunity_id>/convert",
        "Make a draft quote, order or invoice of an opportunity",
        "CRM",
        {201: ref("CrmDocument"), 200: ref("CrmDocument")},
        body=obj(["to"], to={"type": "string", "enum": ["quote", "order", "invoice"]}),
        description="One of each kind per opportunity: 200 answers the one made already.",
    ),
)

REPORT_DAYS = (
    Param("since", DATE, "from this day (Europe/Madrid), included"),
    Param("until", DATE, "to this day, included"),
)
REPORTS = (
    Op(
        "GET",
        "/reports/summary",
        "Won → invoiced → paid: conversion and times, by owner and campaign",
        "Reports",
        {
            200: obj(
                ["since", "until", "timezone", "totals", "by_owner", "by_campaign"],
                since=nullable(DATE),
                until=nullable(DATE),
                timezone={"const": "Europe/Madrid"},
                totals=ref("ReportGroup"),
                by_owner=items(
                    _with(
                        "ReportGroup",
                        owner=nullable(
                            obj(["name", "email"], name=NULLABLE_TEXT, email=NULLABLE_TEXT)
                        ),
                    )
                ),
                by_campaign=items(_with("ReportGroup", campaign=NULLABLE_TEXT)),
            )
        },
        params=REPORT_DAYS,
    ),
    Op(
        "GET",
        "/reports/never-billed",
        "Won deals never invoiced, oldest first",
        "Reports",
        {
            200: {
                "allOf": [page(ref("UnbilledDeal"))],
                "required": ["since", "until"],
                "properties": {"since": nullable(DATE), "until": nullable(DATE)},
            }
        },
        params=(LIMIT, OFFSET, *REPORT_DAYS),
    ),
)

OPS: tuple[Op, ...] = (
    ZAPIER_AND_MAKE
    + INVOICES
    + PDF
    + MAIL
    + DOCUMENTS
    + CUSTOMERS
    + ISSUER
    + PRODUCTS
    + FLOWS
    + RUNS
    + CONNECTIONS
    + TEMPLATES
    + CRM
    + REPORTS
)
