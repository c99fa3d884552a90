"""Every /api/v1 answer a test receives is checked against the OpenAPI document: its status
must be listed for the operation, and its JSON body must validate against the listed schema.
So the whole API suite checks the document against what the code really answers."""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from jsonschema import Draft202012Validator

from web.api.openapi import document


@cache
def _operations(public_url: str) -> list[tuple[str, re.Pattern[str], str, dict[str, Any]]]:
    doc = _doc[public_url]
    found = []
    for path, methods in doc["paths"].items():
        pattern = re.compile("^/api/v1" + re.sub(r"\{[a-z_]+\}", "[^/]+", path) + "$")
        for method, operation in methods.items():
            found.append((method.upper(), pattern, path, operation))
    # literal paths first: /flows/check before /flows/{flow_id}
    return sorted(found, key=lambda f: f[1].pattern.count("[^/]+"))


_doc: dict[str, dict[str, Any]] = {}
# (method, documented path, status) of every checked answer, e.g. ("GET", "/runs/{run_id}", 200)
ANSWERED: set[tuple[str, str, int]] = set()


def check(app: Flask, method: str, path: str, status: int, body: Any, is_json: bool) -> None:
    public_url = app.extensions["puente"].settings.public_url
    if public_url not in _doc:
        with app.test_request_context():
            _doc[public_url] = document(public_url)
    ops = _operations(public_url)
    found = [
        (doc_path, op) for m, pattern, doc_path, op in ops if m == method and pattern.match(path)
    ]
    if not found:
        if status in (404, 405):  # no such route: Flask's own answer
            return
        raise AssertionError(f"{method} {path} is not in the OpenAPI document")
    doc_path, operation = found[0]
    ANSWERED.add((method, doc_path, status))
    listed = operation["responses"].get(str(status))
    assert listed is not None, (
        f"{method} {path} answered {status}, which the OpenAPI document does not list "
        f"({sorted(operation['responses'])})"
    )
    content = listed.get("content") or {}
    if "application/json" not in content:
        assert not is_json or status == 204 or content, (method, path, status)
        return
    assert is_json, f"{method} {path} answered {status} without JSON"
    schema = {**content["application/json"]["schema"], "components": _doc[public_url]["components"]}
    errors = sorted(Draft202012Validator(schema).iter_errors(body), key=lambda e: list(e.path))
    assert not errors, (
        f"{method} {path} answered {status} with a body the OpenAPI document does not "
        f"describe: {errors[0].message} at {list(errors[0].absolute_path)}"
    )


class CheckedClient(FlaskClient):
    def open(self, *args: Any, **kwargs: Any) -> Any:
        response = super().open(*args, **kwargs)
        request = response.request
        if request.path.startswith("/api/v1/"):
            is_json = response.is_json
            check(
                self.application,
                request.method,
                request.path,
                response.status_code,
                response.get_json(silent=True) if is_json else None,
                is_json,
            )
        return response
