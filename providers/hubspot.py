"""HubSpot: a private app's access token (a bearer token) for the CRM API, and the app's client
secret, with which HubSpot signs every webhook delivery (signature v3, or v1/v2 on old apps)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from connector.connections import (
    AuthKind,
    CheckContext,
    CheckResult,
    ConnectionView,
    ProviderSpec,
    Said,
)

API = "https://api.hubapi.com"
# What the flows read and write: the private app needs these scopes.
SCOPES = (
    "crm.objects.deals.read, crm.objects.deals.write, crm.objects.companies.read, "
    "crm.objects.line_items.read, e-commerce (products), crm.objects.contacts.write (notes)"
)


def normalize(document: dict[str, Any]) -> dict[str, Any]:
    """HubSpot's API lives at the root of its host: a pasted https://api.hubapi.com/crm/v3
    keeps only https://api.hubapi.com (another host, a proxy, is kept as given)."""
    url = document.get("base_url")
    if isinstance(url, str):
        url = url.strip().rstrip("/")
        parts = urlsplit(url)
        if parts.netloc.endswith("hubapi.com") and parts.path:
            url = urlunsplit((parts.scheme, parts.netloc, "", "", ""))
        document = {**document, "base_url": url}
    return document


def authenticate(_conn: ConnectionView, secret: Mapping[str, str]) -> dict[str, str]:
    """A private app's token goes in the Authorization header, as a bearer token."""
    return {"Authorization": f"Bearer {secret.get('access_token', '')}"}


def test(ctx: CheckContext) -> CheckResult:
    """GET /crm/v3/objects/deals?limit=1: the token works and may read deals."""
    answer = ctx.request("GET", "crm/v3/objects/deals?limit=1&archived=false")
    if answer.status == 401:
        return CheckResult(
            False,
            Said(
                "HubSpot refused the access token (HTTP 401): copy it again from HubSpot, "
                "Settings → Integrations → Private apps → your app → Auth, into the "
                "connection's access_token",
                "HubSpot ha rechazado el token de acceso (HTTP 401): cópialo de nuevo desde "
                "HubSpot, Configuración → Integraciones → Apps privadas → tu app → "
                "Autenticación, en el access_token de la conexión",
            ),
        )
    if answer.status == 403:
        return CheckResult(
            False,
            Said(
                "HubSpot took the token but it may not read deals (HTTP 403): give the private "
                f"app these scopes: {SCOPES}",
                "HubSpot acepta el token pero no le deja leer oportunidades (HTTP 403): da a la "
                f"app privada estos permisos (scopes): {SCOPES}",
            ),
        )
    if answer.status >= 400 or not isinstance(answer.body, dict) or "results" not in answer.body:
        return CheckResult(
            False,
            Said(
                f"{answer.url} answered HTTP {answer.status}, not HubSpot's deals: check "
                f"base_url ({API})",
                f"{answer.url} ha respondido HTTP {answer.status}, no con las oportunidades "
                f"de HubSpot: revisa base_url ({API})",
            ),
        )
    return CheckResult(
        True,
        Said(
            "connected to HubSpot: the access token may read deals",
            "conectado a HubSpot: el token de acceso puede leer oportunidades",
        ),
    )


def account_id(ctx: CheckContext) -> str | None:
    """The portal (Hub) id, GET /account-info/v3/details; webhooks carry it as portalId."""
    answer = ctx.request("GET", "account-info/v3/details")
    if answer.status >= 400 or not isinstance(answer.body, dict):
        return None
    portal = answer.body.get("portalId")
    return str(portal) if portal not in (None, "") else None


SPEC = ProviderSpec(
    key="hubspot",
    title="HubSpot",
    title_es="HubSpot",
    description=__doc__ or "",
    config_schema="providers/hubspot.json",
    auth=AuthKind.BEARER,
    authenticate=authenticate,
    test=test,
    account_id=account_id,
    # A private app may make 100 calls per 10 seconds (190 on Professional and Enterprise):
    # a steady 8 per second leaves room for the account's other integrations.
    rate_limit_per_second=8.0,
    inbound=True,
    normalize=normalize,
)
