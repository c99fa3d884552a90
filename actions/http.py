"""Generic HTTP action: call any JSON API with a connection's credentials."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from connector.errors import ConfigurationError, Said, ValidationError
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
        said = str(answer.body)[:300]
        en = f"{data['method']} {answer.url} answered {answer.status}: {said}"
        path, es = _refused_es(urlsplit(answer.url).netloc, answer.status)
        raise ValidationError(en, [Said(en, f"{es} Su respuesta: {said}").field_error(path)])
    return {
        "status": answer.status,
        "headers": dict(answer.headers),
        "body": answer.body,
        "url": answer.url,
        "created": True,
    }


def _refused_es(host: str, status: int) -> tuple[str, str]:
    """The input field to look at and what a 4xx answer means, in Spanish."""
    if status in (401, 403):
        return "connection", (
            f"{host} no acepta las credenciales (HTTP {status}): revisa el secreto de la "
            "conexión y que tenga permiso para esto."
        )
    if status in (404, 405, 410):
        return "url", (
            f"{host} dice que esa dirección no existe o no admite este método (HTTP {status}): "
            "revisa la URL y el método del paso."
        )
    if status in (400, 409, 422):
        return "body", (
            f"{host} no acepta los datos enviados (HTTP {status}): revisa el cuerpo del paso "
            "con lo que dice su respuesta."
        )
    return "", f"{host} ha rechazado la petición (HTTP {status})."


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
