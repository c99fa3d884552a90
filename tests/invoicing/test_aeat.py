"""Submitting VERI*FACTU records to the AEAT, against a local server that plays the AEAT.

The fake endpoint follows the documented contract: a SOAP 1.1 envelope whose Body carries a
RegFactuSistemaFacturacion valid against SuministroLR.xsd, answered with a
RespuestaRegFactuSistemaFacturacion valid against RespuestaSuministro.xsd. It keeps what it
registered, so a record sent twice is refused as a duplicate, as the AEAT does.
"""

from __future__ import annotations

import copy
import functools
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from lxml import etree
from sqlalchemy import select

from connector.runtime import Runtime
from invoicing import aeat, chain, corrections, issuing, xsd
from invoicing import verifactu as vf
from invoicing.models import Issuer, VerifactuRecord
from tests.factories import make_draft, make_issuer

NOW = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)
# Records are only queued and sent in VERI*FACTU mode.
pytestmark = pytest.mark.usefixtures("verifactu_mode")
R, SF, SUM, SOAP = aeat.NS_RESPUESTA, vf.NS_SUM1, vf.NS_SUM, aeat.NS_SOAP
PATH = "/wlpl/TIKE-CONT/ws/SistemaFacturacion/VerifactuSOAP"
SLOW_SECONDS = 1.0  # how long the "slow" fake takes; the sender gives up well before


# --- RespuestaSuministro.xsd, offline ----------------------------------------------------------


@functools.cache
def respuesta_schema() -> etree.XMLSchema:
    parser = etree.XMLParser(no_network=True, load_dtd=False, resolve_entities="internal")
    parser.resolvers.add(xsd.OfflineResolver(vf.standards_dir(), AssertionError))
    path = vf.standards_dir() / "RespuestaSuministro.xsd"
    return etree.XMLSchema(etree.parse(str(path), parser))


def assert_valid_answer(xml: bytes) -> None:
    """The RespuestaRegFactuSistemaFacturacion in ``xml`` (bare or in SOAP) fits the XSD."""
    root = etree.fromstring(xml)
    if root.tag == f"{{{SOAP}}}Envelope":
        root = root.find(f"{{{SOAP}}}Body")[0]
    answer = etree.fromstring(etree.tostring(root))
    schema = respuesta_schema()
    assert schema.validate(answer), [e.message for e in schema.error_log]


# --- Answers as the AEAT writes them -------------------------------------------------------


@dataclass(frozen=True)
class Line:
    nif: str
    num_serie: str
    fecha: str  # DD-MM-YYYY
    operacion: str  # Alta / Anulacion
    estado: str  # Correcto / AceptadoConErrores / Incorrecto
    code: int | None = None
    description: str | None = None
    duplicate_of: tuple[str, str] | None = None  # (IdPeticion, EstadoRegistroDuplicado)


def _el(parent: Any, ns: str, tag: str, text: str | None = None) -> Any:
    node = etree.SubElement(parent, f"{{{ns}}}{tag}")
    if text is not None:
        node.text = text
    return node


def respuesta(
    cabecera: list[Any],
    lines: list[Line],
    *,
    wait: str = "60",
    csv: str | None = "A-TEST-CSV-0001",
    estado_envio: str | None = None,
    envelope: bool = True,
) -> bytes:
    """A RespuestaRegFactuSistemaFacturacion in RespuestaSuministro.xsd's element order."""
    if estado_envio is None:
        estados = {line.estado for line in lines}
        estado_envio = (
            "Correcto"
            if estados <= {"Correcto"}
            else "Incorrecto"
            if estados == {"Incorrecto"}
            else "ParcialmenteCorrecto"
        )
    nsmap = {"tikR": R, "tik": SF}
    root = etree.Element(f"{{{R}}}RespuestaRegFactuSistemaFacturacion", nsmap=nsmap)
    if csv and estado_envio != "Incorrecto":
        _el(root, R, "CSV", csv)
        datos = _el(root, R, "DatosPresentacion")
        nif = next(
            (n.text for c in cabecera for n in c.iter(f"{{{SF}}}NIF")),
            "A58818501",
        )
        _el(datos, SF, "NIFPresentador", nif)
        _el(datos, SF, "TimestampPresentacion", "2026-07-01T12:00:05+02:00")
    head = _el(root, R, "Cabecera")
    for child in cabecera:
        head.append(copy.deepcopy(child))
    _el(root, R, "TiempoEsperaEnvio", wait)
    _el(root, R, "EstadoEnvio", estado_envio)
    for line in lines:
        node = _el(root, R, "RespuestaLinea")
        id_factura = _el(node, R, "IDFactura")
        _el(id_factura, SF, "IDEmisorFactura", line.nif)
        _el(id_factura, SF, "NumSerieFactura", line.num_serie)
        _el(id_factura, SF, "FechaExpedicionFactura", line.fecha)
        _el(_el(node, R, "Operacion"), SF, "TipoOperacion", line.operacion)
        _el(node, R, "EstadoRegistro", line.estado)
        if line.code is not None:
            _el(node, R, "CodigoErrorRegistro", str(line.code))
        if line.description is not None:
            _el(node, R, "DescripcionErrorRegistro", line.description)
        if line.duplicate_of is not None:
            dup = _el(node, R, "RegistroDuplicado")
            _el(dup, SF, "IdPeticionRegistroDuplicado", line.duplicate_of[0])
            _el(dup, SF, "EstadoRegistroDuplicado", line.duplicate_of[1])
    if not envelope:
        return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))
    env = etree.Element(f"{{{SOAP}}}Envelope", nsmap={"env": SOAP})
    _el(env, SOAP, "Body").append(root)
    return bytes(etree.tostring(env, xml_declaration=True, encoding="UTF-8"))


def soap_fault(code: str, string: str) -> bytes:
    env = etree.Element(f"{{{SOAP}}}Envelope", nsmap={"env": SOAP})
    fault = _el(_el(env, SOAP, "Body"), SOAP, "Fault")
    etree.SubElement(fault, "faultcode").text = code
    etree.SubElement(fault, "faultstring").text = string
    etree.SubElement(etree.SubElement(fault, "detail"), "callstack").text = "at es.aeat..."
    return bytes(etree.tostring(env, xml_declaration=True, encoding="UTF-8"))


# --- The fake AEAT endpoint ------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    records: tuple[tuple[str, str], ...]  # (NumSerieFactura, Alta/Anulacion) in document order
    incidencia: bool
    content_type: str | None
    soap_action: str | None


class FakeAeat:
    """The VerifactuSOAP endpoint, following the documented contract."""

    def __init__(self) -> None:
        self.url = ""
        self.mode = "answer"  # answer | unavailable | fault | slow | forbidden
        self.wait = "60"
        self.retry_after: str | None = None
        self.fault_code = "env:Client"
        self.forbidden_status = 403
        self.verdicts: dict[str, tuple[str, int, str]] = {}  # num_serie -> (estado, code, text)
        self.registered: dict[tuple[str, str, str], tuple[str, str]] = {}  # key -> (id, estado)
        self.received: list[Received] = []
        self.answers: list[bytes] = []
        self.problems: list[str] = []
        self._lock = threading.Lock()

    def handle(self, content_type: str | None, soap_action: str | None, body: bytes) -> Any:
        with self._lock:
            return self._handle(content_type, soap_action, body)

    def _handle(self, content_type: str | None, soap_action: str | None, body: bytes) -> Any:
        if content_type != "text/xml; charset=utf-8":
            self.problems.append(f"Content-Type {content_type!r}")
        if soap_action != '""':
            self.problems.append(f"SOAPAction {soap_action!r}")
        try:
            envelope = etree.fromstring(body)
            assert envelope.tag == f"{{{SOAP}}}Envelope", envelope.tag
            children = [c for c in envelope.find(f"{{{SOAP}}}Body") if isinstance(c.tag, str)]
            assert len(children) == 1, children
            document = etree.tostring(children[0])
            vf.validate(document)  # what we send must be valid against SuministroLR.xsd
        except (AssertionError, etree.XMLSyntaxError, vf.VerifactuSchemaError) as exc:
            self.problems.append(f"invalid request: {exc}")
            return 500, "text/xml", soap_fault("env:Client", f"Codigo[4102].{exc}")
        root = etree.fromstring(document)
        keys = []
        flags = []  # (Subsanacion, RechazoPrevio, SinRegistroPrevio) of each record
        for registro in root.iter(f"{{{SF}}}RegistroAlta", f"{{{SF}}}RegistroAnulacion"):
            alta = registro.tag.endswith("RegistroAlta")
            suffix = "" if alta else "Anulada"
            idf = registro.find(f"{{{SF}}}IDFactura")
            keys.append(
                (
                    idf.findtext(f"{{{SF}}}IDEmisorFactura{suffix}"),
                    idf.findtext(f"{{{SF}}}NumSerieFactura{suffix}"),
                    idf.findtext(f"{{{SF}}}FechaExpedicionFactura{suffix}"),
                    "Alta" if alta else "Anulacion",
                )
            )
            flags.append(
                tuple(
                    registro.findtext(f"{{{SF}}}{name}") == "S"
                    for name in ("Subsanacion", "RechazoPrevio", "SinRegistroPrevio")
                )
            )
        incidencia = root.findtext(
            f"{{{SUM}}}Cabecera/{{{SF}}}RemisionVoluntaria/{{{SF}}}Incidencia"
        )
        self.received.append(
            Received(
                tuple((k[1], k[3]) for k in keys), incidencia == "S", content_type, soap_action
            )
        )

        if self.mode == "unavailable":
            headers = {"Retry-After": self.retry_after} if self.retry_after else {}
            page = b"<html><body><h1>503 Service Unavailable</h1></body></html>"
            return 503, "text/html", page, headers
        if self.mode == "forbidden":
            page = b"<html><body><main>Certificado no reconocido</main></body></html>"
            return self.forbidden_status, "text/html; charset=utf-8", page
        if self.mode == "fault":
            return 500, "text/xml; charset=utf-8", soap_fault(self.fault_code, "Codigo[4102].X")

        lines = []
        for (nif, num, fecha, op), (subsanacion, _rechazo, sin_registro) in zip(
            keys, flags, strict=True
        ):
            held = self.registered.get((num, fecha, op))
            alta_held = self.registered.get((num, fecha, "Alta"))
            if op == "Alta" and subsanacion and held is not None:
                held = None  # a subsanación replaces what the AEAT holds
            elif op == "Alta" and subsanacion and not _rechazo:
                # Subsanacion without RechazoPrevio corrects a record the AEAT holds.
                lines.append(Line(nif, num, fecha, op, "Incorrecto", 3002, "No existe."))
                continue
            if op == "Anulacion" and alta_held is None and not sin_registro:
                lines.append(
                    Line(nif, num, fecha, op, "Incorrecto", 3002, "No existe el registro.")
                )
                continue
            if held is not None:
                lines.append(
                    Line(nif, num, fecha, op, "Incorrecto", 3000, "Registro duplicado.", held)
                )
                continue
            estado, code, text = self.verdicts.get(num, ("Correcto", 0, ""))
            if estado == "Correcto":
                lines.append(Line(nif, num, fecha, op, estado))
            else:
                lines.append(Line(nif, num, fecha, op, estado, code, text))
            if estado != "Incorrecto":
                stored = "Correcta" if estado == "Correcto" else "AceptadaConErrores"
                self.registered[(num, fecha, op)] = (f"P{len(self.registered) + 1:05d}", stored)
        cabecera = list(root.find(f"{{{SUM}}}Cabecera"))
        # Lines come back in reverse order: records are matched by key, never by position.
        answer = respuesta(cabecera, lines[::-1], wait=self.wait)
        self.answers.append(answer)
        return 200, "text/xml; charset=utf-8", answer


def _handler(fake: FakeAeat) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        timeout = 5  # a stuck client never holds a server thread for long

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.path != PATH:
                self.send_error(404)
                return
            status, ctype, payload, *extra = fake.handle(
                self.headers.get("Content-Type"), self.headers.get("SOAPAction"), body
            )
            if fake.mode == "slow":
                time.sleep(SLOW_SECONDS)  # processed, but the answer comes too late
            try:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                for name, value in (extra[0] if extra else {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def fake_aeat() -> Iterator[FakeAeat]:
    fake = FakeAeat()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_port}{PATH}"
    yield fake
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def sender(fake_aeat: FakeAeat) -> Iterator[aeat.SoapSender]:
    soap = aeat.SoapSender(fake_aeat.url, None, timeout=5)
    yield soap
    soap.close()


# --- Helpers -------------------------------------------------------------------------------


def issue_invoices(rt: Runtime, count: int) -> list[int]:
    ids = []
    for _ in range(count):
        draft = make_draft(rt)
        with rt.sessions.begin() as s:
            issuing.issue(s, draft, now=NOW)
        ids.append(draft)
    return ids


def submit(rt: Runtime, sender: aeat.RecordSender, **kwargs: Any) -> aeat.SubmissionReport:
    with rt.sessions.begin() as s:
        return aeat.submit_pending(s, sender, now=NOW, **kwargs)


def records(rt: Runtime) -> list[VerifactuRecord]:
    with rt.sessions() as s:
        return list(s.scalars(select(VerifactuRecord).order_by(VerifactuRecord.sequence)))


def chain_keys(rows: list[VerifactuRecord]) -> list[tuple[str, str]]:
    return [(r.num_serie, "Alta" if r.kind == "alta" else "Anulacion") for r in rows]


def assert_answers_valid(fake: FakeAeat) -> None:
    assert fake.problems == []
    for answer in fake.answers:
        assert_valid_answer(answer)


# --- Scenarios against the fake endpoint -------------------------------------------------------


def test_all_correct_accepts_every_record_sent_once_in_chain_order(
    rt: Runtime, fake_aeat: FakeAeat, sender: aeat.SoapSender
) -> None:
    make_issuer(rt)
    invoices = issue_invoices(rt, 3)
    with rt.sessions.begin() as s:
        corrections.cancel(s, invoices[0], "emitida por error", now=NOW)

    report = submit(rt, sender)

    rows = records(rt)
    assert [r.kind for r in rows] == ["alta", "alta", "alta", "anulacion"]
    assert len(fake_aeat.received) == 1
    sent = fake_aeat.received[0]
    assert list(sent.records) == chain_keys(rows)  # chain order; an alta and its anulación
    assert (sent.content_type, sent.soap_action, sent.incidencia) == (
        "text/xml; charset=utf-8",
        '""',
        False,
    )
    assert [(r.status, r.attempts, r.last_error) for r in rows] == [("accepted", 1, None)] * 4
    assert all(r.submitted_at == NOW for r in rows)
    (batch,) = report.batches
    assert batch.record_ids == tuple(r.id for r in rows)
    assert batch.accepted == batch.record_ids
    assert (batch.estado_envio, batch.csv, batch.error, batch.remaining) == (
        "Correcto",
        "A-TEST-CSV-0001",
        None,
        0,
    )
    assert report.wait_seconds == 60 and report.retry_at == NOW + timedelta(seconds=60)
    assert not report.more_pending
    assert_answers_valid(fake_aeat)

    again = submit(rt, sender)  # accepted records are never sent again
    assert again.batches == () and not again.more_pending
    assert len(fake_aeat.received) == 1


def test_one_incorrect_record_is_rejected_with_its_code_and_never_sent_again(
    rt: Runtime, fake_aeat: FakeAeat, sender: aeat.SoapSender
) -> None:
    make_issuer(rt)
    issue_invoices(rt, 3)
    fake_aeat.verdicts["F2026-00002"] = ("Incorrecto", 1105, "El NIF del destinatario no existe.")
    fake_aeat.wait = "90"

    report = submit(rt, sender)

    rows = records(rt)
    assert [(r.status, r.last_error) for r in rows] == [
        ("accepted", None),
        ("rejected", "[1105] El NIF del destinatario no existe."),
        ("accepted", None),
    ]
    assert all(r.attempts == 1 and r.submitted_at == NOW for r in rows)
    (batch,) = report.batches
    assert batch.estado_envio == "ParcialmenteCorrecto"
    assert batch.rejected == (rows[1].id,) and batch.accepted == (rows[0].id, rows[2].id)
    assert report.wait_seconds == 90  # TiempoEsperaEnvio, as the AEAT said

    issue_invoices(rt, 2)
    submit(rt, sender)
    assert [k for k, _ in fake_aeat.received[1].records] == ["F2026-00004", "F2026-00005"]
    assert [r.status for r in records(rt)][3:] == ["accepted", "accepted"]
    assert_answers_valid(fake_aeat)


def test_accepted_with_errors_keeps_the_error_text(
    rt: Runtime, fake_aeat: FakeAeat, sender: aeat.SoapSender
) -> None:
    make_issuer(rt)
    issue_invoices(rt, 2)
    fake_aeat.verdicts["F2026-00001"] = (
        "AceptadoConErrores",
        2004,
        "El valor del campo FechaHoraHusoGenRegistro debe ser la fecha actual.",
    )

    report = submit(rt, sender)

    first, second = records(rt)
    assert first.status == "accepted_with_errors"
    assert first.last_error == (
        "[2004] El valor del campo FechaHoraHusoGenRegistro debe ser la fecha actual."
    )
    assert (second.status, second.last_error) == ("accepted", None)
    assert report.batches[0].accepted_with_errors == (first.id,)
    assert submit(rt, sender).batches == ()  # accepted with errors is final too
    assert len(fake_aeat.received) == 1
    assert_answers_valid(fake_aeat)


def test_a_503_leaves_the_records_pending_and_says_when_to_retry(
    rt: Runtime, fake_aeat: FakeAeat, sender: aeat.SoapSender
) -> None:
    make_issuer(rt)
    issue_invoices(rt, 2)
    fake_aeat.mode = "unavailable"

    first = submit(rt, sender)
    rows = records(rt)
    assert [(r.status, r.attempts, r.submitted_at) for r in rows] == [("pending", 1, None)] * 2
    assert rows[0].last_error is not None and "HTTP 503" in rows[0].last_error
    (batch,) = first.batches
    assert batch.transient is True and batch.error is not None and "503" in batch.error
    assert first.more_pending and first.wait_seconds == 60

    fake_aeat.retry_after = "300"
    second = submit(rt, sender)
    assert [r.attempts for r in records(rt)] == [2, 2]
    assert second.wait_seconds == 300  # the server's Retry-After beats our backoff (120)

    fake_aeat.mode = "answer"
    third = submit(rt, sender)
    assert [(r.status, r.attempts, r.last_error) for r in records(rt)] == [
        ("accepted", 3, None)
    ] * 2
    assert not third.more_pending
    # Retries go out flagged as delayed by a technical incident, still valid per the XSD.
    assert [r.incidencia for r in fake_aeat.received] == [False, True, True]
    assert third.batches[0].incidencia
    assert_answers_valid(fake_aeat)


def test_a_soap_fault_is_a_clear_error_client_faults_permanent_server_faults_transient(
    rt: Runtime, fake_aeat: FakeAeat, sender: aeat.SoapSender
) -> None:
    make_issuer(rt)
    issue_invoices(rt, 2)
    fake_aeat.mode = "fault"

    report = submit(rt, sender)
    rows = records(rt)
    assert [(r.status, r.attempts) for r in rows] == [("failed", 1)] * 2
    assert rows[0].last_error == "SOAP fault env:Client: Codigo[4102].X (at es.aeat...)"
    assert report.batches[0].transient is False and report.errors
    with rt.sessions() as s:  # failed records stay queued, first, in chain order
        issuer_id = rows[0].issuer_id
        assert [r.id for r in aeat.pending(s, issuer_id)] == [r.id for r in rows]

    fake_aeat.fault_code = "env:Server"
    report = submit(rt, sender)
    assert [(r.status, r.attempts) for r in records(rt)] == [("pending", 2)] * 2
    assert report.batches[0].transient is True and report.wait_seconds == 120

    fake_aeat.mode = "answer"
    submit(rt, sender)
    assert [r.status for r in records(rt)] == ["accepted", "accepted"]
    # Our refused document was no technical incident; the AEAT's own failure was.
    assert [r.incidencia for r in fake_aeat.received] == [False, False, True]
    assert_answers_valid(fake_aeat)


def test_a_slow_answer_times_out_and_the_retry_recognises_what_the_aeat_already_holds(
    rt: Runtime, fake_aeat: FakeAeat, sender: aeat.SoapSender
) -> None:
    make_issuer(rt)
    issue_invoices(rt, 2)
    fake_aeat.mode = "slow"
    impatient = aeat.SoapSender(fake_aeat.url, None, timeout=0.3)

    started = time.monotonic()
    report = submit(rt, impatient)
    assert time.monotonic() - started < SLOW_SECONDS  # bounded by our timeout, not theirs
    impatient.close()

    rows = records(rt)
    assert [(r.status, r.attempts) for r in rows] == [("pending", 1)] * 2
    assert rows[0].last_error is not None and "within 0.3 s" in rows[0].last_error
    assert report.batches[0].transient is True and report.more_pending

    # The AEAT did register them; resent, they come back as duplicates of what it holds.
    fake_aeat.mode = "answer"
    issue_invoices(rt, 1)
    report = submit(rt, sender)
    rows = records(rt)
    assert [r.status for r in rows] == ["accepted", "accepted", "accepted"]
    assert rows[0].last_error is not None
    assert rows[0].last_error.startswith("already registered by an earlier submission")
    assert rows[2].last_error is None
    assert [len(r.records) for r in fake_aeat.received] == [2, 3]
    assert_answers_valid(fake_aeat)


@pytest.mark.parametrize("status", [403, 200])
def test_an_access_denied_page_is_a_permanent_error_naming_the_certificate(
    rt: Runtime, fake_aeat: FakeAeat, sender: aeat.SoapSender, status: int
) -> None:
    make_issuer(rt)
    issue_invoices(rt, 1)
    fake_aeat.mode = "forbidden"
    fake_aeat.forbidden_status = status  # an HTML page, whatever the status

    report = submit(rt, sender)

    (row,) = records(rt)
    assert row.status == "failed" and row.last_error is not None
    assert f"HTTP {status}" in row.last_error and "certificate" in row.last_error
    assert "Certificado no reconocido" in row.last_error
    assert report.batches[0].transient is False


def test_an_unreachable_endpoint_leaves_the_records_pending(rt: Runtime) -> None:
    make_issuer(rt)
    issue_invoices(rt, 1)
    with socket.socket() as probe:  # a free port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    nowhere = aeat.SoapSender(f"http://127.0.0.1:{port}{PATH}", None, timeout=2)

    report = submit(rt, nowhere)

    (row,) = records(rt)
    assert (row.status, row.attempts) == ("pending", 1)
    assert row.last_error is not None and "cannot reach" in row.last_error
    assert report.batches[0].transient is True and report.more_pending


def test_batches_follow_the_chain_and_never_exceed_the_limit(
    rt: Runtime, fake_aeat: FakeAeat, sender: aeat.SoapSender
) -> None:
    make_issuer(rt)
    issue_invoices(rt, 5)
    rows = records(rt)
    with rt.sessions() as s:
        assert [r.id for r in aeat.pending(s, rows[0].issuer_id, limit=2)] == [
            rows[0].id,
            rows[1].id,
        ]
        with pytest.raises(ValueError):
            aeat.pending(s, rows[0].issuer_id, limit=aeat.MAX_RECORDS + 1)

    reports = [submit(rt, sender, limit=2) for _ in range(4)]

    sent = [list(r.records) for r in fake_aeat.received]
    assert [len(batch) for batch in sent] == [2, 2, 1]
    assert [key for batch in sent for key in batch] == chain_keys(rows)  # each once, in order
    assert [r.more_pending for r in reports] == [True, True, False, False]
    assert [b.remaining for r in reports for b in r.batches] == [3, 1, 0]
    assert reports[3].batches == ()
    assert {r.status for r in records(rt)} == {"accepted"}
    with pytest.raises(ValueError), rt.sessions.begin() as s:
        aeat.submit_pending(s, sender, limit=0)
    assert_answers_valid(fake_aeat)


# --- Without HTTP ------------------------------------------------------------------------------


class Canned:
    """A RecordSender answering from a function of the document."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.documents: list[bytes] = []

    def submit(self, document: bytes) -> aeat.SubmissionResponse:
        self.documents.append(document)
        result: aeat.SubmissionResponse = self.answer(document)
        return result


def test_a_duplicate_on_a_first_attempt_is_a_rejection_and_missing_lines_fail(
    rt: Runtime,
) -> None:
    make_issuer(rt)
    issue_invoices(rt, 2)
    first, second = records(rt)
    fecha = first.fecha_expedicion

    def answer(document: bytes) -> aeat.SubmissionResponse:
        duplicate = aeat.ResponseLine(
            nif="A58818501",
            num_serie=first.num_serie,
            fecha_expedicion=fecha,
            operacion="Alta",
            estado="Incorrecto",
            error_code=3000,
            error_description="Registro de facturación duplicado.",
            duplicate=aeat.Duplicate("P00042", "Correcta"),
        )
        stray = aeat.ResponseLine("A58818501", "X-1", fecha, "Alta", "Correcto")
        return aeat.SubmissionResponse("Incorrecto", 60, (duplicate, stray))

    report = submit(rt, Canned(answer))

    first, second = records(rt)
    assert first.status == "rejected"
    assert first.last_error == (
        "[3000] Registro de facturación duplicado. (the AEAT holds it as Correcta, "
        "IdPeticion P00042)"
    )
    assert second.status == "failed" and second.submitted_at is None
    assert second.last_error == (
        "the AEAT answered EstadoEnvio Incorrecto without a line for this record"
    )
    (batch,) = report.batches
    assert batch.unanswered == (second.id,) and batch.unmatched == (("X-1", fecha, "alta"),)
    assert batch.error == "1 record(s) without an answer line (EstadoEnvio Incorrecto)"
    assert report.errors and batch.transient is False


def test_flow_control_and_backoff() -> None:
    assert aeat.next_wait(60, remaining=999, limit=1000) == 60
    assert aeat.next_wait(60, remaining=1000, limit=1000) == 0  # a full batch goes at once
    assert aeat.next_wait(60, remaining=5000, limit=2) == 60  # ours is not a full batch
    assert [aeat.backoff(n) for n in (1, 2, 3, 7, 50)] == [60, 120, 240, 3600, 3600]
    assert aeat.backoff(1, retry_after=7200) == 7200


# --- The wire format ---------------------------------------------------------------------------


def _document(rt: Runtime) -> bytes:
    make_issuer(rt)
    issue_invoices(rt, 1)
    with rt.sessions() as s:
        issuer = s.scalars(select(Issuer)).one()
        return chain.wrap(issuer, [r.xml for r in s.scalars(select(VerifactuRecord))])


def test_the_envelope_and_the_incidencia_keep_the_document_valid(rt: Runtime) -> None:
    document = _document(rt)

    envelope = etree.fromstring(aeat.soap_envelope(document))
    assert envelope.tag == f"{{{SOAP}}}Envelope"
    assert [c.tag for c in envelope] == [f"{{{SOAP}}}Header", f"{{{SOAP}}}Body"]
    (payload,) = envelope.find(f"{{{SOAP}}}Body")
    vf.validate(etree.tostring(payload))

    flagged = aeat.with_incidencia(document)
    vf.validate(flagged)
    cabecera = etree.fromstring(flagged).find(f"{{{SUM}}}Cabecera")
    assert [etree.QName(c).localname for c in cabecera] == ["ObligadoEmision", "RemisionVoluntaria"]
    assert cabecera.findtext(f"{{{SF}}}RemisionVoluntaria/{{{SF}}}Incidencia") == "S"
    assert aeat.with_incidencia(flagged) == flagged


CABECERA = etree.fromstring(
    f'<sum1:ObligadoEmision xmlns:sum1="{SF}"><sum1:NombreRazon>Puente Demo SL</sum1:NombreRazon>'
    "<sum1:NIF>A58818501</sum1:NIF></sum1:ObligadoEmision>"
)


def test_parse_response_reads_the_documented_answer() -> None:
    lines = [
        Line("A58818501", "F2026-00001", "01-07-2026", "Alta", "Correcto"),
        Line(
            "A58818501", "F2026-00002", "01-07-2026", "Anulacion", "AceptadoConErrores", 2004, "x"
        ),
        Line(
            "A58818501",
            "F2026-00003",
            "01-07-2026",
            "Alta",
            "Incorrecto",
            3000,
            "dup",
            ("P1", "Correcta"),
        ),
    ]
    for envelope in (True, False):
        xml = respuesta([CABECERA], lines, wait="75", envelope=envelope)
        assert_valid_answer(xml)
        parsed = aeat.parse_response(xml)
        assert (parsed.estado_envio, parsed.wait_seconds, parsed.csv, parsed.nif) == (
            "ParcialmenteCorrecto",
            75,
            "A-TEST-CSV-0001",
            "A58818501",
        )
        ok, with_errors, duplicate = parsed.lines
        assert ok.key == ("F2026-00001", date(2026, 7, 1), "alta") and ok.error_text is None
        assert with_errors.kind == "anulacion" and with_errors.error_text == "[2004] x"
        assert duplicate.duplicate == aeat.Duplicate("P1", "Correcta")


def test_parse_response_refuses_what_is_not_the_documented_answer() -> None:
    empty_wait = respuesta([CABECERA], [], wait="", csv=None, estado_envio="Incorrecto")
    assert_valid_answer(empty_wait)  # \d{0,4} admits it
    assert aeat.parse_response(empty_wait).wait_seconds == 60

    with pytest.raises(aeat.ResponseError, match="not well-formed"):
        aeat.parse_response(b"<html><body>Error</body>")
    with pytest.raises(aeat.ResponseError, match="EstadoEnvio 'Aceptado'"):
        aeat.parse_response(respuesta([CABECERA], [], estado_envio="Aceptado"))
    bad_date = Line("A58818501", "F1", "2026-07-01", "Alta", "Correcto")
    with pytest.raises(aeat.ResponseError, match="DD-MM-YYYY"):
        aeat.parse_response(respuesta([CABECERA], [bad_date]))
    with pytest.raises(aeat.ResponseError, match="no RespuestaRegFactuSistemaFacturacion"):
        aeat.parse_response(
            f'<e:Envelope xmlns:e="{SOAP}"><e:Body><x/></e:Body></e:Envelope>'.encode()
        )
    xxe = b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>'
    with pytest.raises(aeat.ResponseError, match="unexpected root"):
        aeat.parse_response(xxe)

    with pytest.raises(aeat.SoapFaultError) as client:
        aeat.parse_response(soap_fault("env:Client", "Codigo[4102].El XML no cumple el esquema."))
    assert client.value.transient is False and client.value.fault_code == "env:Client"
    with pytest.raises(aeat.SoapFaultError) as server:
        aeat.parse_response(soap_fault("soapenv:Server", "Error interno"))
    assert server.value.transient is True


def test_the_fake_endpoint_really_checks_both_schemas(
    fake_aeat: FakeAeat, sender: aeat.SoapSender
) -> None:
    no_records = (
        f'<sum:RegFactuSistemaFacturacion xmlns:sum="{SUM}" xmlns:sum1="{SF}"><sum:Cabecera>'
        "<sum1:ObligadoEmision><sum1:NombreRazon>X</sum1:NombreRazon><sum1:NIF>A58818501"
        "</sum1:NIF></sum1:ObligadoEmision></sum:Cabecera></sum:RegFactuSistemaFacturacion>"
    ).encode()
    with pytest.raises(aeat.SoapFaultError) as fault:
        sender.submit(no_records)
    assert fault.value.transient is False and "4102" in fault.value.fault_string
    assert fake_aeat.problems and "invalid request" in fake_aeat.problems[0]

    with pytest.raises(AssertionError):
        assert_valid_answer(respuesta([CABECERA], [], estado_envio="Aceptado"))


def test_the_submit_command_sends_the_queue_to_the_configured_endpoint(
    rt: Runtime, fake_aeat: FakeAeat, settings: Any
) -> None:
    from actions.invoicing import INVOICING_SETTINGS
    from connector.runtime import build_runtime
    from invoicing.settings import InvoicingSettings
    from web.cli import _submit_loop

    make_issuer(rt)
    issue_invoices(rt, 2)
    endpoint = InvoicingSettings(verifactu_url=fake_aeat.url)
    configured = build_runtime(settings, services={INVOICING_SETTINGS: endpoint})
    try:
        assert _submit_loop(configured, every=0) == 0
    finally:
        configured.close()

    assert [r.status for r in records(rt)] == ["accepted", "accepted"]
    assert len(fake_aeat.received) == 1
    unconfigured = build_runtime(settings, services={INVOICING_SETTINGS: InvoicingSettings()})
    try:
        assert _submit_loop(unconfigured, every=0) == 2  # says so, sends nothing
    finally:
        unconfigured.close()


# --- Corrections after a refusal -------------------------------------------------------------

SF_TAG = f"{{{SF}}}"


def _recomputed_chain_is_valid(rows: list[VerifactuRecord]) -> None:
    """Every huella recomputed from the stored XML, independently of our code, and each record
    pointing at the one before it."""
    import hashlib

    previous = ""
    for row in rows:
        node = etree.fromstring(row.xml)
        alta = node.tag.endswith("RegistroAlta")
        idf = node.find(f"{SF_TAG}IDFactura")
        suffix = "" if alta else "Anulada"
        fields = [
            (f"IDEmisorFactura{suffix}", idf.findtext(f"{SF_TAG}IDEmisorFactura{suffix}")),
            (f"NumSerieFactura{suffix}", idf.findtext(f"{SF_TAG}NumSerieFactura{suffix}")),
            (
                f"FechaExpedicionFactura{suffix}",
                idf.findtext(f"{SF_TAG}FechaExpedicionFactura{suffix}"),
            ),
        ]
        if alta:
            fields += [
                (name, node.findtext(f"{SF_TAG}{name}"))
                for name in ("TipoFactura", "CuotaTotal", "ImporteTotal")
            ]
        fields += [
            ("Huella", previous),
            ("FechaHoraHusoGenRegistro", node.findtext(f"{SF_TAG}FechaHoraHusoGenRegistro")),
        ]
        text = "&".join(f"{name}={(value or '').strip()}" for name, value in fields)
        expected = hashlib.sha256(text.encode()).hexdigest().upper()
        assert node.findtext(f"{SF_TAG}Huella") == row.huella == expected
        assert (row.previous_huella or "") == previous
        previous = row.huella


def test_a_rejected_alta_is_corrected_by_a_chained_subsanacion_the_aeat_accepts(
    rt: Runtime, fake_aeat: FakeAeat, sender: aeat.SoapSender
) -> None:
    from invoicing.models import Customer, Invoice

    make_issuer(rt)
    first, _second = issue_invoices(rt, 2)
    fake_aeat.verdicts["F2026-00001"] = (
        "Incorrecto",
        4109,
        "El NIF no está identificado en el censo de la AEAT.",
    )
    submit(rt, sender)
    rejected = records(rt)[0]
    assert (rejected.status, rejected.error_code) == ("rejected", 4109)
    assert rejected.error_description == "El NIF no está identificado en el censo de la AEAT."

    # The cause is fixed (the customer's name as the census has it), then the record corrected.
    with rt.sessions.begin() as s:
        invoice = s.get_one(Invoice, first)
        s.get_one(Customer, invoice.customer_id).name = "ACME SOLUCIONES SL"
    with rt.sessions.begin() as s:
        corrections.correct_record(s, rejected.id, now=NOW + timedelta(minutes=5))
    rows = records(rt)
    assert [(r.kind, r.num_serie, r.status) for r in rows] == [
        ("alta", "F2026-00001", "corrected"),
        ("alta", "F2026-00002", "accepted"),
        ("alta", "F2026-00001", "pending"),
    ]
    fix = rows[2]
    assert (fix.corrects_id, fix.subsanacion, fix.rechazo_previo) == (rejected.id, True, "S")
    node = etree.fromstring(fix.xml)
    assert node.findtext(f"{SF_TAG}Subsanacion") == "S"
    assert node.findtext(f"{SF_TAG}RechazoPrevio") == "S"
    assert node.findtext(f"{SF_TAG}Destinatarios/{SF_TAG}IDDestinatario/{SF_TAG}NombreRazon") == (
        "ACME SOLUCIONES SL"
    )
    _recomputed_chain_is_valid(rows)
    with rt.sessions() as s:
        assert chain.alta_of(s.get_one(Invoice, first)).id == fix.id  # the newest counts

    # Corrected once is enough; an accepted record has nothing to correct.
    for record_id in (rejected.id, rows[1].id):
        with pytest.raises(issuing.DocumentStateError), rt.sessions.begin() as s:
            corrections.correct_record(s, record_id)

    del fake_aeat.verdicts["F2026-00001"]
    submit(rt, sender)
    assert records(rt)[2].status == "accepted" and records(rt)[2].error_code is None
    assert [k for k, _ in fake_aeat.received[-1].records] == ["F2026-00001"]
    assert_answers_valid(fake_aeat)
    assert not fake_aeat.problems


def test_an_alta_accepted_with_errors_is_corrected_without_rechazo_previo(
    rt: Runtime, fake_aeat: FakeAeat, sender: aeat.SoapSender
) -> None:
    make_issuer(rt)
    issue_invoices(rt, 1)
    fake_aeat.verdicts["F2026-00001"] = ("AceptadoConErrores", 1237, "Dato incorrecto.")
    submit(rt, sender)
    del fake_aeat.verdicts["F2026-00001"]

    with rt.sessions.begin() as s:
        fix = corrections.correct_record(s, records(rt)[0].id, now=NOW)
        node = etree.fromstring(fix.xml)
    assert node.findtext(f"{SF_TAG}Subsanacion") == "S"
    assert node.find(f"{SF_TAG}RechazoPrevio") is None
    submit(rt, sender)
    assert [r.status for r in records(rt)] == ["corrected", "accepted"]
    assert_answers_valid(fake_aeat)


def test_a_refused_anulacion_is_shown_and_sent_again_with_rechazo_previo(
    rt: Runtime, fake_aeat: FakeAeat, sender: aeat.SoapSender
) -> None:
    from invoicing.models import Invoice

    make_issuer(rt)
    [invoice_id] = issue_invoices(rt, 1)
    fake_aeat.verdicts["F2026-00001"] = ("Incorrecto", 1100, "Valor o tipo incorrecto.")
    submit(rt, sender)  # the alta is rejected: the AEAT never holds it
    with rt.sessions.begin() as s:
        corrections.cancel(s, invoice_id, "emitida por error", now=NOW)
    anulacion = records(rt)[1]
    assert anulacion.sin_registro_previo  # the AEAT never received the alta it cancels
    del fake_aeat.verdicts["F2026-00001"]

    # Suppose the AEAT refuses it all the same: it is kept as refused, with its code.
    fake_aeat.verdicts["F2026-00001"] = ("Incorrecto", 3002, "No existe el registro.")
    submit(rt, sender)
    refused = records(rt)[1]
    assert (refused.status, refused.error_code) == ("rejected", 3002)
    del fake_aeat.verdicts["F2026-00001"]

    with rt.sessions.begin() as s:
        again = corrections.correct_record(s, refused.id, now=NOW)
        node = etree.fromstring(again.xml)
    assert node.findtext(f"{SF_TAG}RechazoPrevio") == "S"
    assert node.findtext(f"{SF_TAG}SinRegistroPrevio") == "S"
    submit(rt, sender)
    assert [r.status for r in records(rt)] == ["rejected", "corrected", "accepted"]
    with rt.sessions() as s:
        assert chain.current(s, s.get_one(Invoice, invoice_id), "anulacion").status == "accepted"
    _recomputed_chain_is_valid(records(rt))
    assert_answers_valid(fake_aeat)
    assert not fake_aeat.problems


def test_a_correction_is_refused_without_verifactu(
    rt: Runtime, fake_aeat: FakeAeat, sender: aeat.SoapSender, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_issuer(rt)
    issue_invoices(rt, 1)
    fake_aeat.verdicts["F2026-00001"] = ("Incorrecto", 4109, "NIF no identificado.")
    submit(rt, sender)
    monkeypatch.setenv("PUENTE_VERIFACTU_MODE", "no_verifactu")

    with pytest.raises(issuing.DocumentStateError) as refused, rt.sessions.begin() as s:
        corrections.correct_record(s, records(rt)[0].id)
    assert "PUENTE_VERIFACTU_MODE=verifactu" in refused.value.args[0].es
    assert len(records(rt)) == 1


def test_without_verifactu_records_are_kept_not_sent_and_the_qr_says_so(
    rt: Runtime, fake_aeat: FakeAeat, sender: aeat.SoapSender, monkeypatch: pytest.MonkeyPatch
) -> None:
    from invoicing.models import Invoice

    monkeypatch.delenv("PUENTE_VERIFACTU_MODE")  # the default: no VERI*FACTU
    make_issuer(rt)
    [invoice_id] = issue_invoices(rt, 1)

    assert submit(rt, sender).batches == () and fake_aeat.received == []
    [row] = records(rt)
    assert (row.mode, row.status) == ("no_verifactu", "kept")
    system = etree.fromstring(row.xml).find(f"{SF_TAG}SistemaInformatico")
    assert system.findtext(f"{SF_TAG}NombreSistemaInformatico") == "Puente"
    assert system.findtext(f"{SF_TAG}TipoUsoPosibleSoloVerifactu") == "N"
    with rt.sessions() as s:
        url = chain.qr_url_of(s.get_one(Invoice, invoice_id))
    assert url.startswith(vf.QR_URL_NO_VERIFACTU + "?nif=")


def test_after_sending_records_this_year_the_mode_cannot_drop_verifactu(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_issuer(rt)
    issue_invoices(rt, 1)  # VERI*FACTU: queued for the AEAT
    monkeypatch.setenv("PUENTE_VERIFACTU_MODE", "no_verifactu")

    draft = make_draft(rt)
    with pytest.raises(issuing.DocumentStateError) as refused, rt.sessions.begin() as s:
        issuing.issue(s, draft, now=NOW)
    assert "hasta que acabe el año" in refused.value.args[0].es
    assert len(records(rt)) == 1


def test_the_system_is_described_from_the_installation_settings(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PUENTE_SIF_PRODUCER_NAME", "Integraciones Puente SL")
    monkeypatch.setenv("PUENTE_SIF_PRODUCER_NIF", "B65410011")
    monkeypatch.setenv("PUENTE_SIF_INSTALLATION", "ACME-01")
    make_issuer(rt)
    issue_invoices(rt, 1)

    system = etree.fromstring(records(rt)[0].xml).find(f"{SF_TAG}SistemaInformatico")
    assert [child.text for child in system] == [
        "Integraciones Puente SL",
        "B65410011",
        "Puente",
        "PU",
        "0.1.0",
        "ACME-01",
        "N",  # works in both modes, not only VERI*FACTU
        "N",
        "N",
    ]


def test_without_verifactu_each_record_is_signed_with_the_business_certificate(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.serialization import pkcs12
    from signxml.exceptions import InvalidSignature
    from signxml.xades import XAdESVerifier

    from tests.certificates import self_signed

    key, certificate = self_signed("Puente Demo SL")
    p12 = tmp_path / "empresa.p12"
    p12.write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"empresa", key, certificate, None, serialization.BestAvailableEncryption(b"clave")
        )
    )
    monkeypatch.delenv("PUENTE_VERIFACTU_MODE")
    monkeypatch.setenv("PUENTE_FACTURAE_P12", str(p12))
    monkeypatch.setenv("PUENTE_FACTURAE_P12_PASSWORD", "clave")
    make_issuer(rt)
    [invoice_id] = issue_invoices(rt, 1)
    with rt.sessions.begin() as s:
        corrections.cancel(s, invoice_id, "emitida por error", now=NOW)

    rows = records(rt)
    assert [(r.kind, r.status) for r in rows] == [("alta", "kept"), ("anulacion", "kept")]
    for row in rows:
        node = etree.fromstring(row.xml)
        assert node[-1].tag == "{http://www.w3.org/2000/09/xmldsig#}Signature"
        # The record as kept verifies with the business's certificate, and is still valid.
        XAdESVerifier().verify(row.xml.encode(), x509_cert=certificate)
        tampered = row.xml.replace(row.num_serie, row.num_serie[:-1] + "9", 1)
        with pytest.raises(InvalidSignature):  # a changed record no longer verifies
            XAdESVerifier().verify(tampered.encode(), x509_cert=certificate)
    with rt.sessions() as s:
        issuer = s.scalars(select(Issuer)).one()
        xsd_checked = chain.wrap(issuer, [r.xml for r in rows])
    vf.validate(xsd_checked)
    _recomputed_chain_is_valid(rows)


def test_a_missing_certificate_file_is_a_clear_refusal_and_nothing_is_issued(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.delenv("PUENTE_VERIFACTU_MODE")
    monkeypatch.setenv("PUENTE_FACTURAE_P12", str(tmp_path / "no-such.p12"))
    make_issuer(rt)
    draft = make_draft(rt)

    with pytest.raises(issuing.DocumentStateError) as refused, rt.sessions.begin() as s:
        issuing.issue(s, draft, now=NOW)

    assert "no-such.p12" in refused.value.args[0].es and "no existe" in refused.value.args[0].es
    assert records(rt) == []
