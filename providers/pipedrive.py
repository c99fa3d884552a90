"""Pipedrive: an API token (sent in the x-api-token header) for the REST API, and the HTTP Basic
user and password Pipedrive sends with each webhook delivery (its webhooks are not signed)."""

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


def normalize(document: dict[str, Any]) -> dict[str, Any]:
    """A company address given without its API path (https://acme.pipedrive.com) gets /api."""
    url = document.get("base_url")
    if isinstance(url, str):
        parts = urlsplit(url.strip())
        if parts.scheme and parts.netloc and parts.path in ("", "/"):
            url = urlunsplit((parts.scheme, parts.netloc, "/api", "", ""))
        document = {**document, "base_url": url.strip().rstrip("/")}
    return document


def authenticate(_conn: ConnectionView, secret: Mapping[str, str]) -> dict[str, str]:
    """Pipedrive takes the API token in the x-api-token header."""
    return {"x-api-token": secret.get("api_token", "")}


def _me(ctx: CheckContext) -> dict[str, Any] | None:
    answer = ctx.request("GET", "v1/users/me")
    if answer.status >= 400 or not isinstance(answer.body, dict):
        return None
    data = answer.body.get("data")
    return data if isinstance(data, dict) else None


def test(ctx: CheckContext) -> CheckResult:
    """GET /v1/users/me: who the API token belongs to."""
    answer = ctx.request("GET", "v1/users/me")
    if answer.status in (401, 403):
        return CheckResult(
            False,
            Said(
                f"Pipedrive refused the API token (HTTP {answer.status}): copy it again from "
                "Pipedrive, Personal preferences → API, into the connection's api_token",
                f"Pipedrive ha rechazado el token de API (HTTP {answer.status}): cópialo de "
                "nuevo desde Pipedrive, Preferencias personales → API, en el api_token de la "
                "conexión",
            ),
        )
    data = answer.body.get("data") if isinstance(answer.body, dict) else None
    if answer.status >= 400 or not isinstance(data, dict):
        return CheckResult(
            False,
            Said(
                f"{answer.url} answered HTTP {answer.status}, not Pipedrive's user: check "
                "base_url (https://<your company>.pipedrive.com/api)",
                f"{answer.url} ha respondido HTTP {answer.status}, no con el usuario de "
                "Pipedrive: revisa base_url (https://<tu empresa>.pipedrive.com/api)",
            ),
        )
    who = data.get("name") or data.get("email") or "?"
    company = data.get("company_name") or data.get("company_domain") or data.get("company_id")
    return CheckResult(
        True,
        Said(
            f"connected to Pipedrive ({company}) as {who}",
            f"conectado a Pipedrive ({company}) como {who}",
        ),
    )


def account_id(ctx: CheckContext) -> str | None:
    """The Pipedrive company id (webhooks carry it as meta.company_id)."""
    data = _me(ctx)
    company = data.get("company_id") if data else None
    return str(company) if company is not None else None


SPEC = ProviderSpec(
    key="pipedrive",
    title="Pipedrive",
    title_es="Pipedrive",
    description=__doc__ or "",
    config_schema="providers/pipedrive.json",
    auth=AuthKind.HEADER,
    authenticate=authenticate,
    test=test,
    account_id=account_id,
    # Pipedrive's budgets start at 80 requests per 2 seconds per company (Essential plan);
    # a steady 10 per second leaves room for the company's other integrations.
    rate_limit_per_second=10.0,
    inbound=True,
    normalize=normalize,
)
