"""The invoicing system's event log (registro de eventos, Orden HAC/1177/2024, art. 9).

A system that keeps its records instead of sending them (no VERI*FACTU) logs what happens to
it: when it starts, when records or the log itself are exported, when the chain is checked
and what the check found. Each event hashes the one before it (SHA-256 over its fields and
the previous hash), so a removed or edited event breaks the chain, as with the records.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from lxml import etree
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from database import utcnow
from invoicing import verifactu as vf
from invoicing.errors import DocumentStateError, Said
from invoicing.models import SifEvent, VerifactuRecord

KINDS = {
    "start": "Inicio del sistema",
    "record_export": "Exportación de registros de facturación",
    "event_export": "Exportación del registro de eventos",
    "anomaly_check": "Comprobación de la integridad de la cadena",
    "anomaly": "Anomalía detectada en los registros de facturación",
}
_ATTEMPTS = 5  # two processes logging at once: the loser takes the next sequence number


def event_hash(kind: str, detail: dict[str, Any], occurred_at: datetime, previous: str) -> str:
    """SHA-256 (upper-case hex) of the event's fields and the previous event's hash."""
    text = "&".join(
        [
            f"Tipo={kind}",
            f"Detalle={json.dumps(detail, sort_keys=True, ensure_ascii=False)}",
            f"FechaHora={vf.format_timestamp(occurred_at)}",
            f"HuellaAnterior={previous}",
        ]
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest().upper()


def log(session: Session, kind: str, detail: dict[str, Any] | None = None) -> SifEvent:
    """Append an event at the end of the log, in the caller's transaction."""
    assert kind in KINDS, kind
    detail = detail or {}
    for _ in range(_ATTEMPTS):
        head = session.scalar(select(SifEvent).order_by(SifEvent.sequence.desc()).limit(1))
        now = utcnow().replace(microsecond=0)
        previous = head.hash if head is not None else ""
        event = SifEvent(
            sequence=(head.sequence + 1) if head is not None else 1,
            kind=kind,
            detail=detail,
            occurred_at=now,
            previous_hash=previous or None,
            hash=event_hash(kind, detail, now, previous),
        )
        try:
            with session.begin_nested():
                session.add(event)
        except IntegrityError:
            continue  # another process took this sequence number: chain after its event
        return event
    raise DocumentStateError(
        Said(
            "the event log is busy: try again",
            "El registro de eventos está ocupado: vuelve a intentarlo en unos segundos.",
        )
    )


@dataclass(frozen=True)
class Check:
    """What a check of the chains found: nothing when both are whole."""

    records: int
    events: int
    anomalies: tuple[str, ...]


def check(session: Session) -> Check:
    """Check both chains (:func:`inspect`) and log the check and each anomaly found."""
    found = inspect(session)
    log(session, "anomaly_check", {"records": found.records, "anomalies": len(found.anomalies)})
    for anomaly in found.anomalies:
        log(session, "anomaly", {"what": anomaly})
    return found


def inspect(session: Session) -> Check:
    """Recompute every record's huella from its stored XML and every event's hash, and see
    that each points at the one before it."""
    anomalies: list[str] = []
    rows = list(session.scalars(select(VerifactuRecord).order_by(VerifactuRecord.sequence)))
    previous: dict[int, str] = {}
    for row in rows:
        expected = _huella_of(row.xml)
        if expected != row.huella:
            anomalies.append(f"record {row.sequence} ({row.num_serie}): its huella does not match")
        if (row.previous_huella or "") != previous.get(row.issuer_id, ""):
            anomalies.append(f"record {row.sequence} ({row.num_serie}): the chain is broken")
        previous[row.issuer_id] = row.huella
    events = list(session.scalars(select(SifEvent).order_by(SifEvent.sequence)))
    last = ""
    for event in events:
        occurred = event.occurred_at
        if (
            event_hash(event.kind, event.detail, occurred, last) != event.hash
            or (event.previous_hash or "") != last
        ):
            anomalies.append(f"event {event.sequence}: the event log was changed")
        last = event.hash
    return Check(len(rows), len(events), tuple(anomalies))


def _huella_of(xml: str) -> str:
    """The huella recomputed from a stored record's own fields (not from the database's)."""
    node = etree.fromstring(xml)
    sf = f"{{{vf.NS_SUM1}}}"
    alta = node.tag == f"{sf}RegistroAlta"
    suffix = "" if alta else "Anulada"
    ids = node.find(f"{sf}IDFactura")
    fields = [
        (f"IDEmisorFactura{suffix}", ids.findtext(f"{sf}IDEmisorFactura{suffix}")),
        (f"NumSerieFactura{suffix}", ids.findtext(f"{sf}NumSerieFactura{suffix}")),
        (f"FechaExpedicionFactura{suffix}", ids.findtext(f"{sf}FechaExpedicionFactura{suffix}")),
    ]
    if alta:
        fields += [
            (name, node.findtext(f"{sf}{name}"))
            for name in ("TipoFactura", "CuotaTotal", "ImporteTotal")
        ]
    anterior = node.findtext(f"{sf}Encadenamiento/{sf}RegistroAnterior/{sf}Huella") or ""
    fields += [
        ("Huella", anterior),
        ("FechaHoraHusoGenRegistro", node.findtext(f"{sf}FechaHoraHusoGenRegistro")),
    ]
    return vf.huella_of((name, value or "") for name, value in fields)
