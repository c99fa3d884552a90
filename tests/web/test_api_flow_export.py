"""A flow export never carries a literal secret: what a step sets by hand under a secret's name
(an Authorization header, an API key in the URL) is left out as a placeholder, an import asks
for each one instead of storing it, and a flow saved with one stays disabled."""

from __future__ import annotations

import copy
import json

from sqlalchemy import func, select

from connector.models import Flow
from tests.factories import make_api_key
from web.demo import DEMO_FLOW

HTTP_FLOW = {
    **DEMO_FLOW,
    "steps": [
        *DEMO_FLOW["steps"],
        {
            "id": "notify",
            "action": "http.request",
            "input": {
                "method": "POST",
                "url": "https://crm.example/api/deals?api_key=qk-literal-123&page=2",
                "headers": {
                    "Authorization": "Bearer abc-literal-token",
                    "X-Api-Key": "xk-literal-456",
                    "Content-Type": "application/json",
                    "X-Deal": {"$expr": "trigger.deal_id"},
                    "X-Auth-Token": {"$expr": "'expr-literal-789'"},  # a constant: a literal
                },
                "body": {"client_secret": "cs-literal-000", "stage": "Facturado"},
            },
        },
    ],
}
LITERALS = (
    "abc-literal-token",
    "xk-literal-456",
    "qk-literal-123",
    "expr-literal-789",
    "cs-literal-000",
)
LEFT_OUT = [
    "document.steps[2].input.url",
    "document.steps[2].input.headers.Authorization",
    "document.steps[2].input.headers.X-Api-Key",
    "document.steps[2].input.headers.X-Auth-Token",
    "document.steps[2].input.body.client_secret",
]


def auth(rt) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_api_key(rt)}"}


def exported(rt, client, headers) -> dict:
    created = client.post("/api/v1/flows", headers=headers, json={"document": HTTP_FLOW})
    assert created.status_code == 201, created.json
    answer = client.get(f"/api/v1/flows/{created.json['id']}/export", headers=headers)
    assert answer.status_code == 200
    return answer.json


def flows(rt) -> int:
    with rt.sessions() as s:
        return s.scalar(select(func.count()).select_from(Flow))


def test_an_export_leaves_out_every_literal_secret_and_says_which(rt, client):
    export = exported(rt, client, auth(rt))

    assert not [literal for literal in LITERALS if literal in json.dumps(export)]
    step = export["document"]["steps"][2]["input"]
    assert step["headers"] == {
        "Authorization": {"$secret": "Bearer …"},  # how to fill it in, without the secret
        "X-Api-Key": {"$secret": "…"},
        "Content-Type": "application/json",
        "X-Deal": {"$expr": "trigger.deal_id"},  # reads the data: no secret in it
        "X-Auth-Token": {"$secret": "…"},
    }
    assert step["url"] == {"$secret": "https://crm.example/api/deals?api_key=…&page=2"}
    assert step["body"] == {"client_secret": {"$secret": "…"}, "stage": "Facturado"}
    # (in the document's order, which PostgreSQL's JSONB does not keep as written)
    assert sorted(export["secrets_left_out"]) == sorted(LEFT_OUT)
    # the rest of the flow travels as it is
    assert export["document"]["steps"][:2] == DEMO_FLOW["steps"]


def test_an_export_without_secrets_is_the_flow_as_it_is(rt, client):
    headers = auth(rt)
    flow_id = client.post("/api/v1/flows", headers=headers, json={"document": DEMO_FLOW}).json["id"]
    export = client.get(f"/api/v1/flows/{flow_id}/export", headers=headers).json
    assert export["document"] == DEMO_FLOW and export["secrets_left_out"] == []


def test_importing_an_export_with_secrets_left_out_asks_for_each_and_stores_nothing(rt, client):
    headers = auth(rt)
    export = exported(rt, client, headers)
    before = flows(rt)

    refused = client.post("/api/v1/flows/import", headers=headers, json=export)

    assert refused.status_code == 422
    assert refused.json["error"] == "secret_left_out"
    assert refused.json["field"] in LEFT_OUT
    assert sorted(e["field"] for e in refused.json["errors"]) == sorted(LEFT_OUT)
    assert "5 secrets" in refused.json["message"] and "connection" in refused.json["message"]
    assert "5 secretos" in refused.json["message_es"]
    assert "conexión" in refused.json["message_es"]
    assert all(e["message_es"] for e in refused.json["errors"])
    assert flows(rt) == before  # nothing was stored, placeholder or not


def test_an_export_whose_secrets_are_filled_in_is_imported_with_them(rt, client):
    headers = auth(rt)
    export = exported(rt, client, headers)
    filled = copy.deepcopy(export)
    step = filled["document"]["steps"][2]["input"]
    step["url"] = HTTP_FLOW["steps"][2]["input"]["url"]
    step["headers"]["Authorization"] = "Bearer new-token"
    step["headers"]["X-Api-Key"] = "new-key"
    step["headers"]["X-Auth-Token"] = {"$expr": "trigger.deal_id"}
    step["body"]["client_secret"] = "new-secret"

    imported = client.post("/api/v1/flows/import", headers=headers, json=filled)

    assert imported.status_code == 201, imported.json
    assert imported.json["enabled"] is False
    assert imported.json["document"]["steps"][2]["input"] == step


def test_a_flow_saved_with_a_placeholder_stays_disabled_and_says_what_to_fill_in(rt, client):
    headers = auth(rt)
    document = exported(rt, client, headers)["document"]  # pasted as a new flow

    refused = client.post(
        "/api/v1/flows", headers=headers, json={"document": document, "enabled": True}
    )
    created = client.post("/api/v1/flows", headers=headers, json={"document": document})

    assert refused.status_code == 422
    assert "left out when the flow was exported" in refused.json["message"]
    assert created.status_code == 201 and created.json["enabled"] is False  # a draft
    left_out = [e for e in created.json["check"]["errors"] if e["code"] == "secret_left_out"]
    assert sorted(e["field"] for e in left_out) == sorted(p[len("document.") :] for p in LEFT_OUT)
    assert "left out when the flow was exported" in left_out[0]["message"]
    enabled = client.post(f"/api/v1/flows/{created.json['id']}/enable", headers=headers)
    assert enabled.status_code == 422
