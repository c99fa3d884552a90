"""Salesforce: a connected app's OAuth 2 refresh token for the REST API, and the org id its
Outbound Messages must carry.

The refresh token is exchanged at `<base_url>/services/oauth2/token` (base_url is the org's
My Domain, e.g. https://acme.my.salesforce.com) and the access token goes as
`Authorization: Bearer`. The token answer also names the org's `instance_url`; calls stay
under base_url all the same (My Domain serves the REST API and stays the same when the org
moves to another instance), so the credentials never leave the address the user gave.

Outbound Messages carry no signature: the connection's secret webhook address and the
`OrganizationId` each message must match (`organization_id` here) authenticate them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connector.connections import (
    AuthKind,
    CheckContext,
    CheckResult,
    ConnectionView,
    ProviderSpec,
    Said,
)

API_VERSION = "v59.0"
API = f"/services/data/{API_VERSION}"
USERINFO = "/services/oauth2/userinfo"

# Salesforce names custom fields <Label>__c: these are the API names of the fields the
# README asks to create, used when the connection's settings name none.
DEFAULTS = {
    "tax_id_field": "NIF__c",
    "invoice_number_field": "Puente_Invoice_Number__c",
    "invoice_url_field": "Puente_Invoice_URL__c",
    "payment_status_field": "Puente_Payment_Status__c",
}


def normalize(document: dict[str, Any]) -> dict[str, Any]:
    """Fill in Salesforce's custom field names where the settings name none."""
    settings = dict(document.get("settings") or {})
    for key, value in DEFAULTS.items():
        if settings.get(key) in (None, ""):
            settings[key] = value
    return {**document, "settings": settings}


def authenticate(_conn: ConnectionView, secret: Mapping[str, str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret['access_token']}"}


def token_url(conn: ConnectionView) -> str:
    return f"{conn.base_url.rstrip('/')}/services/oauth2/token"


def test(ctx: CheckContext) -> CheckResult:
    """Ask Salesforce who the connection is (the OpenID Connect UserInfo endpoint)."""
    answer = ctx.request("GET", USERINFO)
    if answer.status in (401, 403):
        return CheckResult(
            False,
            Said(
                f"Salesforce refused the connection's credentials (HTTP {answer.status}): "
                "check the connected app's consumer key and secret and the refresh token",
                f"Salesforce ha rechazado las credenciales de la conexión (HTTP "
                f"{answer.status}): revisa la clave y el secreto del consumidor de la "
                "aplicación conectada y el token de refresco",
            ),
        )
    body = answer.body if isinstance(answer.body, dict) else {}
    org = body.get("organization_id")
    if answer.status >= 400 or not org:
        return CheckResult(
            False,
            Said(
                f"{answer.url} answered HTTP {answer.status} without an organization: check "
                "base_url (your org's My Domain, https://<domain>.my.salesforce.com)",
                f"{answer.url} ha respondido HTTP {answer.status} sin organización: revisa "
                "base_url (el My Domain de tu organización, https://<dominio>.my.salesforce.com)",
            ),
        )
    who = body.get("preferred_username") or body.get("name") or body.get("user_id") or "?"
    return CheckResult(
        True,
        Said(
            f"connected to Salesforce org {org} as {who}; its Outbound Messages must carry "
            "this organization id (the connection's organization_id)",
            f"conectado a la organización de Salesforce {org} como {who}; sus mensajes "
            "salientes deben llevar este id de organización (organization_id de la conexión)",
        ),
    )


def account_id(ctx: CheckContext) -> str | None:
    """The org id (00D…, 18 characters), which every Outbound Message names."""
    answer = ctx.request("GET", USERINFO)
    body = answer.body if isinstance(answer.body, dict) else {}
    org = body.get("organization_id")
    return str(org) if answer.status < 400 and org else None


SPEC = ProviderSpec(
    key="salesforce",
    title="Salesforce",
    title_es="Salesforce",
    description=__doc__ or "",
    config_schema="providers/salesforce.json",
    auth=AuthKind.OAUTH2,
    authenticate=authenticate,
    test=test,
    account_id=account_id,
    # Salesforce counts API calls per org and day, not per second; this keeps one busy
    # connection from spending an org's daily allowance in bursts.
    rate_limit_per_second=10.0,
    token_url=token_url,
    inbound=True,
    normalize=normalize,
)
