"""Errors of the invoicing core; the API and the actions turn them into clear answers."""

from __future__ import annotations


class InvoicingError(Exception):
    """Base class."""


class InvalidDocumentError(InvoicingError, ValueError):
    """Data the invoicing core refuses; `errors` holds (field path, message) pairs."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{path}: {message}" for path, message in errors))
        self.errors = errors


class DocumentStateError(InvoicingError):
    """The operation does not apply to the document as it is (e.g. issuing a paid invoice)."""


class NotFoundError(InvoicingError, LookupError):
    """No such document, customer or product."""


class Said(str):
    """A message in English that carries its Spanish too (`.es`): the UI shows the reader's
    language; everything else reads it as the plain English text it is."""

    es: str

    def __new__(cls, en: str, es: str) -> Said:
        text = super().__new__(cls, en)
        text.es = es
        return text

    def __getnewargs__(self) -> tuple[str, str]:  # type: ignore[override]
        """Copied and pickled whole (copy.deepcopy, dataclasses.asdict): Spanish included."""
        return str(self), self.es


def message_of(exc: BaseException) -> str:
    """An exception's message, its Spanish kept when it carries one (str(exc) drops it)."""
    if len(exc.args) == 1 and isinstance(exc.args[0], Said):
        return exc.args[0]
    return str(exc)
