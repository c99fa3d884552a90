"""The baseline job: RQ's own per-job cost, with nothing of Puente's work in it."""

from __future__ import annotations


def noop(n: int) -> int:
    """Do nothing; return the argument so the result is stored like a run's status."""
    return n
