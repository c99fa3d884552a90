"""Generic HTTP action: call any JSON API with a connection's credentials."""

from __future__ import annotations

from typing import Any

from connector.errors import ConfigurationError, ValidationError
from connector.spec import ActionContext, ActionSpec, Effects


def request(ctx: ActionContext, data: dict[str, Any]) -> dict[str, Any]:
    """Send the request; a 4xx answer fails the step unless fail_on_status is false."""
    if ctx.http is None:
        raise ConfigurationError("outbound HTTP is not available in this process")
    answer = ctx.http.request(
        data["method"],
        data["url"],
        connection=data.get("connection") or ctx.connection,
        headers=data.get("headers"),
        payload=data.get("body"),
        idempotency_key=ctx.idempotency_key,
    )
    if answer.status >= 400 and data.get("fail_on_status", True):
        raise ValidationError(
            f"{data['method']} {answer.url} answered {answer.status}: {str(answer.body)[:300]}"
        )
    return {
        "status": answer.status,
        "headers": dict(answer.headers),
        "body": answer.body,
        "url": answer.url,
        "created": True,
    }


REQUEST = ActionSpec(
    key="http.request",
    title="HTTP request",
    title_es="Petición HTTP",
    description="Call any JSON API with a named connection's credentials.",
    input_schema="actions/http.request.input.json",
    output_schema="actions/http.request.output.json",
    perform=request,
    effects=Effects.EXTERNAL_WRITE,
    max_attempts=6,
)
