"""Errors the engine raises, each carrying the failure class that decides what happens next."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Self

from connector import messages


class FailureClass(StrEnum):
    """How a failed step is treated: fail at once, retry later, or report a bug."""

    VALIDATION = "validation"  # the data is wrong: fail now, explain, no retry
    CONFIGURATION = "configuration"  # the flow or connection is wrong: fail now, no retry
    TRANSIENT = "transient"  # timeouts, 5xx, 429: retry with backoff
    INTERNAL = "internal"  # a bug on our side: fail, keep everything for replay


@dataclass(frozen=True)
class FieldError:
    """One problem with one field, with the path in the data where it was found."""

    path: str
    message: str
    code: str = "invalid"
    params: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "message": self.message,
            "code": self.code,
            "params": self.params,
        }

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message

    @classmethod
    def of(cls, path: str, code: str, **params: Any) -> FieldError:
        """The error `code` (connector.messages) at `path`, its English text made from `params`."""
        message = messages.render(code, params)
        if message is None:
            raise ValueError(f"no text for error code {code!r} with {sorted(params)}")
        return cls(path, message, code, params)

    def text(self, lang: str) -> str:
        """The message in `lang` (en, es); the stored English one when there is no other."""
        return messages.render(self.code, self.params, lang) or self.message


@dataclass(frozen=True)
class Said:
    """A plain text a person may read, in English and in Spanish."""

    en: str
    es: str

    def field_error(self, path: str) -> FieldError:
        # Rendered in either language from its params, as a schema's own x-message is.
        return FieldError(path, self.en, "choice", {"explained": {"en": self.en, "es": self.es}})


class PuenteError(Exception):
    """Base error; `failure_class` tells the runner whether to retry."""

    failure_class: FailureClass = FailureClass.INTERNAL

    def __init__(
        self, message: str, errors: list[FieldError] | None = None, *, keeps_record: bool = False
    ) -> None:
        super().__init__(message)
        self.message = message
        self.errors = list(errors or [])
        # What the step wrote before failing is the record of the failure (a refused email),
        # kept with the failed step instead of rolled back with it.
        self.keeps_record = keeps_record

    @classmethod
    def from_field_errors(cls, what: str, errors: list[FieldError]) -> Self:
        """Summarize field errors into one message, keeping all of them in `errors`."""
        summary = "; ".join(str(e) for e in errors[:5])
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        return cls(f"{what}: {summary}{more}", errors)

    def as_dict(self) -> dict[str, Any]:
        return {
            "class": str(self.failure_class),
            "message": self.message,
            "errors": [e.as_dict() for e in self.errors],
        }


class ValidationError(PuenteError):
    """Data does not satisfy a schema or a business rule."""

    failure_class = FailureClass.VALIDATION


class ConfigurationError(PuenteError):
    """A flow, mapping or connection is set up wrongly."""

    failure_class = FailureClass.CONFIGURATION


class TransientError(PuenteError):
    """Worth retrying later: the other side may recover."""

    failure_class = FailureClass.TRANSIENT

    def __init__(
        self,
        message: str,
        retry_after: float | None = None,
        *,
        keeps_record: bool = False,
        status: int | None = None,
        errors: list[FieldError] | None = None,
    ) -> None:
        super().__init__(message, errors, keeps_record=keeps_record)
        self.retry_after = retry_after
        self.status = status  # the HTTP status that said so, when one did
