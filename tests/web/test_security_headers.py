"""Every answer carries the security headers; pages and API answers are never cached."""

from __future__ import annotations

import pytest

from tests.factories import make_api_key, signed_in


@pytest.mark.parametrize("path", ["/ui/login", "/ui/invoices", "/api/v1/invoices", "/healthz"])
def test_answers_carry_the_security_headers(rt, client, path):
    signed_in(rt, client)
    key = make_api_key(rt)

    response = client.get(path, headers={"Authorization": f"Bearer {key}"})

    assert response.status_code in (200, 302)
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self';" in policy and "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy.split("script-src")[1].split(";")[0]
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"
    if path != "/healthz":
        assert response.headers["Cache-Control"] == "no-store"


def test_no_page_carries_inline_script_the_policy_would_block(rt, client):
    from tests.factories import make_draft, make_issuer

    signed_in(rt, client)
    make_issuer(rt)
    draft = make_draft(rt)
    for path in (f"/ui/invoices/{draft}", f"/ui/invoices/{draft}/print", "/ui/api-keys"):
        page = client.get(path).text
        assert " onsubmit=" not in page and " onclick=" not in page, path
        assert "<script>" not in page, path
    assert 'data-confirm="¿Emitir la factura?' in client.get(f"/ui/invoices/{draft}").text
    assert client.get("/static/ui.js").status_code == 200
