"""What the core checks under a row lock is the row as it is now, not as the session last saw
it (PostgreSQL, READ COMMITTED: another transaction may commit before the lock is granted)."""

from __future__ import annotations

from datetime import date

import pytest

from invoicing.errors import DocumentStateError, InvalidDocumentError
from invoicing.models import Invoice, InvoiceStatus
from invoicing.payments import record_payment
from tests.conftest import BACKENDS
from tests.factories import make_issued

# On SQLite a transaction holds the write lock from its start: no one commits in between.
pytestmark = pytest.mark.parametrize(
    "database_url", [b for b in BACKENDS if b == "postgresql"], indirect=True
)


def test_a_payment_counts_what_another_payment_committed_after_the_invoice_was_read(rt):
    invoice_id = make_issued(rt)
    with rt.sessions.begin() as a:
        seen = a.get_one(Invoice, invoice_id)  # read first, as the API route does
        owed = seen.outstanding
        with rt.sessions.begin() as b:  # meanwhile the whole amount is paid
            record_payment(b, invoice_id, str(owed), date.today())
        with pytest.raises((InvalidDocumentError, DocumentStateError)):
            record_payment(a, invoice_id, "1.00", date.today())
    with rt.sessions() as s:
        invoice = s.get_one(Invoice, invoice_id)
        assert (invoice.status, invoice.paid_total) == (InvoiceStatus.PAID, owed)
