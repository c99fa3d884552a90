"""Plain factory functions for tests."""

from __future__ import annotations

import copy
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import update
from werkzeug.security import generate_password_hash
from werkzeug.test import TestResponse

from connector import admin
from connector.models import Flow, User
from connector.registry import Registry
from connector.runtime import Runtime
from connector.schemas import load_schema
from connector.standard_webhooks import headers_for
from invoicing.service import CustomerData
from web import demo


@dataclass(frozen=True)
class Hook:
    token: str
    secret: str
    subscription_id: int
    flow_id: int

    @property
    def path(self) -> str:
        return f"/hooks/{self.token}"


def make_hook(
    rt: Runtime,
    flow: dict[str, Any] | None = None,
    enabled: bool = True,
    registry: Registry | None = None,
    checked: bool = True,
) -> Hook:
    """A webhook subscription with one flow attached (the demo flow by default).

    `checked=False` enables the flow without its design-time checks, to test what the runner
    does with mappings that fail only at run time.
    """
    with rt.sessions.begin() as s:
        created = admin.create_subscription(s, rt.secrets, "test hook", "webhook.deal_won")
        saved: Flow = admin.save_flow(
            s,
            registry or rt.registry,
            flow or demo.DEMO_FLOW,
            subscription_id=created.subscription.id,
            enabled=enabled and checked,
        ).flow
        if enabled and not checked:
            s.execute(update(Flow).where(Flow.id == saved.id).values(enabled=True))
        return Hook(created.subscription.token, created.secret, created.subscription.id, saved.id)


def make_api_key(rt: Runtime, name: str = "tester") -> str:
    with rt.sessions.begin() as s:
        return admin.create_api_key(s, name)


def deal(**changes: Any) -> dict[str, Any]:
    """The sample deal from the trigger schema, with a fresh id and any fields replaced."""
    data = copy.deepcopy(load_schema("triggers/deal_won.json")["examples"][0])
    data["deal_id"] = f"D-{uuid.uuid4().hex[:8]}"
    data.update(changes)
    return data


def signed(
    secret: str, body: bytes, msg_id: str | None = None, timestamp: int | None = None
) -> dict[str, str]:
    return {
        **headers_for(
            secret,
            msg_id or f"msg_{uuid.uuid4().hex}",
            int(time.time()) if timestamp is None else timestamp,
            body,
        ),
        "Content-Type": "application/json",
    }


def post_deal(
    client: FlaskClient, hook: Hook, payload: Any, msg_id: str | None = None
) -> TestResponse:
    body = json.dumps(payload).encode()
    return client.post(hook.path, data=body, headers=signed(hook.secret, body, msg_id))


ISSUER = {
    "tax_id": "A58818501",
    "name": "Puente Demo SL",
    "street": "Gran Vía 1",
    "postal_code": "28013",
    "city": "Madrid",
    "province": "Madrid",
}


# A Spanish company customer with its full address, for tests of the invoicing core.
ACME = CustomerData(
    name="Acme Soluciones SL",
    tax_id="B12345674",
    street="Calle Mayor 1",
    postal_code="28013",
    city="Madrid",
    province="Madrid",
    country="ES",
)


def make_issuer(rt: Runtime) -> int:
    from invoicing.issuing import IssuerData, configure_issuer

    with rt.sessions.begin() as s:
        return configure_issuer(s, IssuerData(**ISSUER)).id


def make_draft(rt: Runtime, kind: str = "invoice", **changes: Any) -> int:
    """A draft (invoice by default) for the sample deal (fresh deal id unless given)."""
    from invoicing.service import CustomerData, Invoicing, LineData

    data = deal(**changes)
    with rt.sessions.begin() as s:
        result = Invoicing(s).create_draft_invoice(
            customer=CustomerData.from_json(data["customer"]),
            lines=[LineData.from_json(line) for line in data["lines"]],
            source="test",
            external_ref=data["deal_id"],
            kind=kind,
        )
        return result.invoice.id


def csrf(client: FlaskClient) -> str:
    """The session's form token, as a page would have put it in its form."""
    with client.session_transaction() as session:
        token: str = session.setdefault("csrf_token", "test-form-token")
        return token


PASSWORD = "una frase larga de prueba"
_PASSWORD_HASH = generate_password_hash(PASSWORD)  # hashed once: scrypt is slow on purpose


def make_user(rt: Runtime, role: str = "admin", email: str | None = None) -> User:
    """An account with PASSWORD, chosen by its owner (no change asked at sign-in)."""
    with rt.sessions.begin() as s:
        user = User(
            email=email or f"{role}-{uuid.uuid4().hex[:6]}@empresa.example",
            name=role.title(),
            role=role,
            password_hash=_PASSWORD_HASH,
            must_change_password=False,
        )
        s.add(user)
        s.flush()
        s.expunge(user)
        return user


def sign_in_as(client: FlaskClient, email: str, password: str = PASSWORD) -> TestResponse:
    return client.post(
        "/ui/login", data={"email": email, "password": password, "csrf_token": csrf(client)}
    )


def signed_in(rt: Runtime, client: FlaskClient, role: str = "admin") -> FlaskClient:
    """The UI test client, signed in as a new account with `role`."""
    answer = sign_in_as(client, make_user(rt, role).email)
    assert answer.status_code == 302, answer.get_data(as_text=True)
    return client


def make_issued(rt: Runtime, **changes: Any) -> int:
    """An issued invoice (the issuer set up first) for the sample deal."""
    from invoicing.issuing import issue

    make_issuer(rt)
    invoice_id = make_draft(rt, **changes)
    with rt.sessions.begin() as s:
        issue(s, invoice_id)
    return invoice_id
