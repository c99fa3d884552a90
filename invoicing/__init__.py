"""The invoicing core: customers, documents and their totals. Knows nothing of flows."""
