"""JSON API /api/v1, authenticated with bearer API keys; errors always say what and where."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, jsonify, request
from sqlalchemy import Select, func, select

from connector.errors import ConfigurationError, FieldError, ValidationError
from invoicing.errors import (
    DocumentStateError,
    InvalidDocumentError,
    InvoicingError,
    NotFoundError,
)
from web import auth, current_runtime, json_input

bp = Blueprint("api", __name__, url_prefix="/api/v1")
# Every route is authorized before it runs: a scope by method, or the one it is marked with.
bp.before_request(auth.check_request)

MAX_LIMIT = 200


class ApiError(Exception):
    """An answer other than success, with the field at fault when there is one."""

    def __init__(
        self,
        status: int,
        error: str,
        message: str,
        field: str | None = None,
        errors: list[dict[str, str]] | None = None,
        message_es: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.error, self.message = status, error, message
        self.field, self.errors, self.message_es = field, errors, message_es

    @classmethod
    def invalid(cls, errors: list[FieldError], what: str = "") -> ApiError:
        """422 listing every field error; `field` is the first one's."""
        message = "; ".join(map(str, errors))
        return cls(
            422,
            "invalid",
            f"{what}: {message}" if what else message,
            errors[0].path,
            [{"field": e.path, "message": e.message} for e in errors],
        )

    def response(self) -> Any:
        body: dict[str, Any] = {"error": self.error, "message": self.message}
        if self.message_es is not None:
            body["message_es"] = self.message_es
        if self.field is not None:
            body["field"] = self.field
        if self.errors:
            body["errors"] = self.errors
        return jsonify(body), self.status


@bp.errorhandler(ApiError)
def _api_error(exc: ApiError) -> Any:
    return exc.response()


@bp.errorhandler(ConfigurationError)  # flows, connections, replays
@bp.errorhandler(ValidationError)  # dry-run samples, edited replay payloads
def _engine_refusal(exc: ConfigurationError | ValidationError) -> Any:
    errors = [{"field": e.path, "message": e.message} for e in exc.errors]
    return ApiError(
        422, "invalid", exc.message, errors[0]["field"] if errors else None, errors
    ).response()


@bp.errorhandler(InvalidDocumentError)
def _invalid(exc: InvalidDocumentError) -> Any:
    errors = [{"field": path, "message": message} for path, message in exc.errors]
    return ApiError(422, "invalid", str(exc), errors[0]["field"], errors).response()


@bp.errorhandler(NotFoundError)
def _missing(exc: NotFoundError) -> Any:
    return ApiError(404, "not_found", str(exc)).response()


@bp.errorhandler(DocumentStateError)
def _conflict(exc: DocumentStateError) -> Any:
    return ApiError(409, "conflict", str(exc)).response()


@bp.errorhandler(InvoicingError)
def _refused(exc: InvoicingError) -> Any:
    # Anything else the core refuses (e.g. data Facturae cannot carry) is the data's fault.
    return ApiError(422, "invalid", str(exc)).response()


def page() -> tuple[int, int]:
    limit = whole("limit", 50, minimum=1)
    return min(limit, MAX_LIMIT), whole("offset", 0, minimum=0)


BIGGEST = 2**63 - 1  # what a database integer holds


def is_id(value: Any) -> bool:
    """A row id as JSON sends it: a positive whole number (true is not 1 here)."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= BIGGEST


def whole(name: str, default: int, minimum: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(
            400, "bad_request", f"{name} must be a whole number, got {raw!r}", name
        ) from None
    if value < minimum:
        raise ApiError(400, "bad_request", f"{name} must be at least {minimum}", name)
    if value > BIGGEST:
        raise ApiError(400, "bad_request", f"{name} must be at most {BIGGEST}", name)
    return value


def listing(
    query: Select[Any], order_by: Any, to_json: Callable[[Any], Any], limit: int, offset: int
) -> Any:
    """One page of `query` as {"items", "total", "limit", "offset"}; `total` is exact."""
    with sessions()() as s:
        rows = s.scalars(query.order_by(order_by).limit(limit).offset(offset)).all()
        if rows and len(rows) < limit:  # the last page: it says the total, no count needed
            total = offset + len(rows)
        else:
            total = s.scalar(select(func.count()).select_from(query.subquery())) or 0
        return jsonify(
            {
                "items": [to_json(row) for row in rows],
                "total": total,
                "limit": limit,
                "offset": offset,
            }
        )


def json_body() -> dict[str, Any]:
    """The request's JSON object, or a 400 that says what is wrong with it."""
    if not request.is_json:
        raise ApiError(
            400,
            "invalid_json",
            "send a JSON object with the header 'Content-Type: application/json'",
        )
    try:
        data = json_input.parse(request.get_data(cache=True))
    except json_input.BadJson as exc:
        raise ApiError(400, "invalid_json", str(exc)) from None
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_json", "the body must be a JSON object")
    return data


def not_found(what: str, ident: object) -> ApiError:
    return ApiError(404, "not_found", f"{what} {ident} does not exist")


def iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def sessions() -> Any:
    return current_runtime().sessions


from web.api import (  # noqa: E402,F401  (register their routes)
    connections,
    crm,
    customers,
    documents,
    flows,
    invoices,
    issuer,
    keys,
    mail,
    openapi,
    pdf,
    products,
    push,
    reports,
    rest_hooks,
    runs,
    templates,
)
