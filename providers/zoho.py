"""Zoho CRM: OAuth 2 with a refresh token at the account's data centre (accounts.zoho.eu, …),
calls to its API domain (www.zohoapis.eu, …) with `Authorization: Zoho-oauthtoken …`, and
notifications (the Notifications API) to the connection's address, carrying the token Puente
set on its channel."""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import urlsplit

from connector.connections import (
    AuthKind,
    CheckContext,
    CheckResult,
    ConnectionView,
    ProviderSpec,
    Said,
)

API_VERSION = "v2"
# The accounts server of each data centre, by its API domain's ending (Zoho's multi-DC list).
ACCOUNTS = {
    "zohoapis.com": "https://accounts.zoho.com",
    "zohoapis.eu": "https://accounts.zoho.eu",
    "zohoapis.in": "https://accounts.zoho.in",
    "zohoapis.com.au": "https://accounts.zoho.com.au",
    "zohoapis.jp": "https://accounts.zoho.jp",
    "zohoapis.com.cn": "https://accounts.zoho.com.cn",
    "zohoapis.ca": "https://accounts.zohocloud.ca",
    "zohoapis.sa": "https://accounts.zoho.sa",
}
_VERSIONED = re.compile(r"/crm/v[0-9.]+/?$")


def api_url(view: ConnectionView, path: str) -> str:
    """The URL of an API path ("Deals/1"): under base_url's /crm/<version>/ when it names
    one (https://www.zohoapis.eu/crm/v7), else under /crm/v2/."""
    base = view.base_url.rstrip("/")
    if not _VERSIONED.search(base):
        base = f"{base}/crm/{API_VERSION}"
    return f"{base}/{path.lstrip('/')}"


def token_url(view: ConnectionView, secret: Mapping[str, str]) -> str:
    """<accounts_url>/oauth/v2/token; without accounts_url, the one of base_url's data
    centre."""
    accounts = (secret.get("accounts_url") or "").rstrip("/")
    if not accounts:
        host = (urlsplit(view.base_url).hostname or "").lower()
        accounts = next((url for end, url in ACCOUNTS.items() if host.endswith(end)), "")
    return f"{accounts}/oauth/v2/token" if accounts else ""


def authenticate(_conn: ConnectionView, secret: Mapping[str, str]) -> dict[str, str]:
    """Zoho's own scheme, not Bearer."""
    return {"Authorization": f"Zoho-oauthtoken {secret['access_token']}"}


def _org_id(ctx: CheckContext) -> str | None:
    answer = ctx.request("GET", api_url(ctx.connection, "org"))
    if answer.status >= 400 or not isinstance(answer.body, dict):
        return None
    orgs = answer.body.get("org") or [{}]
    found = orgs[0].get("id") if isinstance(orgs[0], dict) else None
    return str(found) if found else None


def test(ctx: CheckContext) -> CheckResult:
    """GET /crm/v2/org: the organization the refresh token belongs to."""
    answer = ctx.request("GET", api_url(ctx.connection, "org"))
    if answer.status in (401, 403):
        return CheckResult(
            False,
            Said(
                f"Zoho CRM refused the credentials (HTTP {answer.status}): check client_id, "
                "client_secret and refresh_token (with the ZohoCRM.org.READ scope) and that "
                "accounts_url and base_url are your data centre's",
                f"Zoho CRM ha rechazado las credenciales (HTTP {answer.status}): revisa "
                "client_id, client_secret y refresh_token (con el alcance ZohoCRM.org.READ) y "
                "que accounts_url y base_url sean los de tu centro de datos",
            ),
        )
    if answer.status >= 400 or not isinstance(answer.body, dict) or not answer.body.get("org"):
        return CheckResult(
            False,
            Said(
                f"{answer.url} answered HTTP {answer.status} without an organization: check "
                "base_url (e.g. https://www.zohoapis.eu)",
                f"{answer.url} ha respondido HTTP {answer.status} sin ninguna organización: "
                "revisa base_url (p. ej. https://www.zohoapis.eu)",
            ),
        )
    org = answer.body["org"][0]
    name = org.get("company_name") or org.get("id")
    return CheckResult(
        True,
        Said(f"connected to Zoho CRM: {name}", f"conectado a Zoho CRM: {name}"),
        account_id=str(org["id"]) if org.get("id") else None,
    )


SPEC = ProviderSpec(
    key="zoho",
    title="Zoho CRM",
    title_es="Zoho CRM",
    description=__doc__ or "",
    config_schema="providers/zoho.json",
    auth=AuthKind.OAUTH2,
    authenticate=authenticate,
    test=test,
    account_id=_org_id,
    # Zoho limits concurrent calls per organization (10 on the smaller editions) and credits
    # per day; a few calls a second stays well inside both.
    rate_limit_per_second=5.0,
    secret_token_url=token_url,
    inbound=True,
)
