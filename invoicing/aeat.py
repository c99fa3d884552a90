"""Submission of VERI*FACTU records to the AEAT: the queue and the SOAP sender.

Every issue and cancellation chains a ``VerifactuRecord`` with status ``pending``
(``invoicing.chain``). :func:`submit_pending` sends, per issuer, the oldest queued records in
chain order as one ``RegFactuSistemaFacturacion`` document and applies the AEAT's answer to
each record. Sending sits behind :class:`RecordSender`; :class:`SoapSender` is the real one.

Record statuses (``VerifactuRecord.status``):

* ``pending``: queued, never answered for; a transport failure (timeout, connection error,
  HTTP 5xx, SOAP ``Server`` fault) leaves the record here with ``attempts`` + 1 and the error
  in ``last_error``.
* ``failed``: the last attempt was refused as a whole (SOAP ``Client`` fault, access denied,
  an answer we could not read) or the answer had no line for the record. Still queued: it is
  sent again, first, in its chain position, but the report marks the failure as permanent so
  that someone looks at it.
* ``accepted`` (``EstadoRegistro`` Correcto), ``accepted_with_errors`` (AceptadoConErrores,
  the AEAT's ``error_code`` and ``error_description`` kept on the record) and ``rejected``
  (Incorrecto, idem) are final: those records are never sent again. ``submitted_at`` is when
  the AEAT answered. A rejected or accepted-with-errors record is corrected by a new record of
  the same invoice (``corrections.correct_record``: a subsanación, or the anulación again),
  chained and queued like any other; the old one becomes ``corrected``.
* ``kept`` (no VERI*FACTU mode): never queued, never sent.

Flow control: the AEAT answers every submission with ``TiempoEsperaEnvio``, the seconds to
wait before the next one (60 by default); a full batch of 1000 records may go without waiting.
Nothing here sleeps: the report's ``wait_seconds``/``retry_at`` say when to call again.

Sources (AEAT, "Sistemas Informáticos de Facturación y Sistemas VERI*FACTU"):

* ``SistemaFacturacion.wsdl`` (service ``sfVerifactu``, as quoted by public integrations): the
  endpoints below, a SOAP 1.1 document/literal binding with an empty ``soapAction``, the
  ``RegFactuSistemaFacturacion`` request as the Body's only child; TLS client authentication
  with the certificate of the obligado, its representative or a colaborador social.
* ``SuministroLR.xsd``: 1..1000 ``RegistroFactura`` per submission; ``SuministroInformacion.xsd``:
  ``Cabecera/RemisionVoluntaria/Incidencia`` (S when a technical incident delayed the
  remission).
* ``RespuestaSuministro.xsd``: ``RespuestaRegFactuSistemaFacturacion`` with ``CSV``,
  ``DatosPresentacion``, ``Cabecera``, ``TiempoEsperaEnvio`` (``\\d{0,4}``), ``EstadoEnvio``
  (Correcto / ParcialmenteCorrecto / Incorrecto) and up to 1000 ``RespuestaLinea`` with
  ``IDFactura``, ``Operacion/TipoOperacion`` (Alta / Anulacion), ``EstadoRegistro`` (Correcto /
  AceptadoConErrores / Incorrecto), ``CodigoErrorRegistro``, ``DescripcionErrorRegistro`` and,
  only when a record is refused as a duplicate, ``RegistroDuplicado`` (the state the AEAT holds).
* SOAP 1.1 (W3C note, §4.4 and §6.2): faults carry ``faultcode``/``faultstring``, are sent with
  HTTP 500, and ``Client`` faults mean the message itself must change; ``Server`` faults may
  succeed later.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal, Protocol, cast

import requests
from lxml import etree
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from database import utcnow
from invoicing import chain
from invoicing import verifactu as vf
from invoicing.models import Issuer, VerifactuRecord

# --- Contract constants ----------------------------------------------------------------------

ENDPOINT_PRODUCTION = (
    "https://www1.agenciatributaria.gob.es/wlpl/TIKE-CONT/ws/SistemaFacturacion/VerifactuSOAP"
)
ENDPOINT_PRODUCTION_SEAL = (  # for "certificado de sello" (company seal certificates)
    "https://www10.agenciatributaria.gob.es/wlpl/TIKE-CONT/ws/SistemaFacturacion/VerifactuSOAP"
)
ENDPOINT_TESTS = "https://prewww1.aeat.es/wlpl/TIKE-CONT/ws/SistemaFacturacion/VerifactuSOAP"
ENDPOINT_TESTS_SEAL = "https://prewww10.aeat.es/wlpl/TIKE-CONT/ws/SistemaFacturacion/VerifactuSOAP"

NS_SOAP = "http://schemas.xmlsoap.org/soap/envelope/"  # SOAP 1.1
NS_RESPUESTA = vf.NS_SUM.replace("SuministroLR.xsd", "RespuestaSuministro.xsd")
SOAP_HEADERS = {
    "Content-Type": "text/xml; charset=utf-8",
    "SOAPAction": '""',  # the WSDL's soapAction is empty: the request URI says it all
    "Accept": "text/xml",
}

MAX_RECORDS = 1000  # RegistroFactura maxOccurs; RespuestaLinea maxOccurs
DEFAULT_WAIT_SECONDS = 60  # TiempoEsperaEnvio before the AEAT says otherwise
MAX_BACKOFF_SECONDS = 3600  # retries after failures never wait longer than this

PENDING = chain.PENDING
FAILED = chain.FAILED
ACCEPTED = chain.ACCEPTED
ACCEPTED_WITH_ERRORS = chain.ACCEPTED_WITH_ERRORS
REJECTED = chain.REJECTED
QUEUED = (PENDING, FAILED)  # what pending() returns and submit_pending() sends
STATUSES = (*QUEUED, ACCEPTED, ACCEPTED_WITH_ERRORS, REJECTED, chain.CORRECTED, chain.KEPT)

EstadoEnvio = Literal["Correcto", "ParcialmenteCorrecto", "Incorrecto"]
EstadoRegistro = Literal["Correcto", "AceptadoConErrores", "Incorrecto"]
TipoOperacion = Literal["Alta", "Anulacion"]
_ESTADOS_ENVIO = ("Correcto", "ParcialmenteCorrecto", "Incorrecto")
_ESTADOS_REGISTRO = ("Correcto", "AceptadoConErrores", "Incorrecto")
_OPERACIONES = {"Alta": "alta", "Anulacion": "anulacion"}

RecordKey = tuple[str, date, str]  # (NumSerieFactura, FechaExpedicionFactura, kind)


# --- Errors ----------------------------------------------------------------------------------


class SubmissionError(Exception):
    """A submission that got no per-record answer.

    ``transient``: the same document may succeed later (timeouts, 5xx, SOAP Server faults);
    otherwise something must change first (certificate, document, our parser).
    ``retry_after``: seconds the server asked us to wait, when it said so.
    """

    def __init__(self, message: str, *, transient: bool, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.transient = transient
        self.retry_after = retry_after


class TransportError(SubmissionError):
    """No AEAT answer reached us: timeout, connection or TLS failure, HTTP 5xx, 408, 429."""

    def __init__(
        self, message: str, *, transient: bool = True, retry_after: int | None = None
    ) -> None:
        super().__init__(message, transient=transient, retry_after=retry_after)


class HttpStatusError(SubmissionError):
    """An HTTP error without a SOAP answer (e.g. 403 in HTML when the certificate is refused)."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message, transient=False)
        self.status_code = status_code


class SoapFaultError(SubmissionError):
    """A SOAP 1.1 Fault: ``Server`` faults are transient, ``Client`` (and other) faults are not."""

    def __init__(
        self,
        fault_code: str,
        fault_string: str,
        detail: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        local = fault_code.rpartition(":")[2]
        transient = local.split(".")[0] == "Server"
        text = f"SOAP fault {fault_code}: {fault_string}" + (f" ({detail})" if detail else "")
        super().__init__(text, transient=transient, retry_after=retry_after)
        self.fault_code = fault_code
        self.fault_string = fault_string
        self.detail = detail


class ResponseError(SubmissionError):
    """An answer that is not a RespuestaRegFactuSistemaFacturacion we can read."""

    def __init__(self, message: str) -> None:
        super().__init__(f"unreadable AEAT answer: {message}", transient=False)


# --- The answer ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Duplicate:
    """``RegistroDuplicado``: what the AEAT already holds for a record refused as duplicate."""

    id_peticion: str
    estado: str  # Correcta / AceptadaConErrores / Anulada
    error_code: int | None = None
    error_description: str | None = None


@dataclass(frozen=True)
class ResponseLine:
    """One ``RespuestaLinea``: the AEAT's verdict on one record."""

    nif: str
    num_serie: str
    fecha_expedicion: date
    operacion: TipoOperacion
    estado: EstadoRegistro
    error_code: int | None = None
    error_description: str | None = None
    duplicate: Duplicate | None = None
    ref_externa: str | None = None

    @property
    def kind(self) -> str:
        """``alta`` / ``anulacion``, as ``VerifactuRecord.kind``."""
        return _OPERACIONES[self.operacion]

    @property
    def key(self) -> RecordKey:
        return (self.num_serie, self.fecha_expedicion, self.kind)

    @property
    def error_text(self) -> str | None:
        return _error_text(self.error_code, self.error_description)


@dataclass(frozen=True)
class SubmissionResponse:
    """``RespuestaRegFactuSistemaFacturacion``, the parts we act on."""

    estado_envio: EstadoEnvio
    wait_seconds: int  # TiempoEsperaEnvio
    lines: tuple[ResponseLine, ...] = ()
    csv: str | None = None
    nif: str | None = None  # Cabecera/ObligadoEmision/NIF as echoed


class RecordSender(Protocol):
    """Delivers one RegFactuSistemaFacturacion document and returns the AEAT's answer.

    Raises :class:`SubmissionError` when there is no per-record answer.
    """

    def submit(self, document: bytes) -> SubmissionResponse: ...


# --- Parsing ---------------------------------------------------------------------------------


def _parser() -> etree.XMLParser:
    # No DTDs, no entities, no network: the answer comes from outside.
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


def _parse_xml(xml: bytes, what: str) -> Any:
    try:
        return etree.fromstring(xml, _parser())
    except (etree.XMLSyntaxError, ValueError) as exc:
        raise ResponseError(f"{what} is not well-formed XML: {exc}") from exc


def _local(element: Any) -> str:
    return str(etree.QName(element).localname) if isinstance(element.tag, str) else ""


def _child(parent: Any, ns: str, name: str) -> Any:
    return parent.find(f"{{{ns}}}{name}")


def _text_of(parent: Any, ns: str, name: str) -> str | None:
    node = _child(parent, ns, name)
    if node is None:
        return None
    return (node.text or "").strip()


def _required(parent: Any, ns: str, name: str, where: str) -> str:
    value = _text_of(parent, ns, name)
    if not value:
        raise ResponseError(f"{where} has no {name}")
    return value


def _integer(value: str | None, what: str) -> int | None:
    if value is None or value == "":
        return None
    if not re.fullmatch(r"-?\d+", value):
        raise ResponseError(f"{what} is not an integer: {value!r}")
    return int(value)


def _error_text(code: int | None, description: str | None) -> str | None:
    if code is None and not description:
        return None
    if code is None:
        return description
    return f"[{code}] {description}" if description else f"[{code}]"


def _fault_of(fault: Any, retry_after: int | None = None) -> SoapFaultError:
    # SOAP 1.1 fault children are unqualified; some servers qualify them anyway.
    parts = {_local(child): child for child in fault}
    code = (parts["faultcode"].text or "").strip() if "faultcode" in parts else "Server"
    string = (parts["faultstring"].text or "").strip() if "faultstring" in parts else ""
    detail = None
    if "detail" in parts:
        detail = " ".join(" ".join(parts["detail"].itertext()).split()) or None
    return SoapFaultError(code or "Server", string or "(no faultstring)", detail, retry_after)


def find_fault(xml: bytes) -> SoapFaultError | None:
    """The SOAP Fault in ``xml`` (as an exception, not raised), or None."""
    try:
        root = etree.fromstring(xml, _parser())
    except (etree.XMLSyntaxError, ValueError):
        return None
    fault = root.find(f"{{{NS_SOAP}}}Body/{{{NS_SOAP}}}Fault")
    return None if fault is None else _fault_of(fault)


def _date(value: str, where: str) -> date:
    try:
        return datetime.strptime(value, "%d-%m-%Y").date()
    except ValueError:
        raise ResponseError(
            f"{where}: FechaExpedicionFactura {value!r} is not DD-MM-YYYY"
        ) from None


def _line(node: Any, index: int) -> ResponseLine:
    where = f"RespuestaLinea {index}"
    r, sf = NS_RESPUESTA, vf.NS_SUM1
    id_factura = _child(node, r, "IDFactura")
    if id_factura is None:
        raise ResponseError(f"{where} has no IDFactura")
    operacion_node = _child(node, r, "Operacion")
    operacion = None if operacion_node is None else _text_of(operacion_node, sf, "TipoOperacion")
    if operacion not in _OPERACIONES:
        raise ResponseError(f"{where}: TipoOperacion {operacion!r} is not Alta or Anulacion")
    estado = _text_of(node, r, "EstadoRegistro")
    if estado not in _ESTADOS_REGISTRO:
        raise ResponseError(f"{where}: EstadoRegistro {estado!r} is not one of {_ESTADOS_REGISTRO}")
    duplicate = None
    dup = _child(node, r, "RegistroDuplicado")
    if dup is not None:
        duplicate = Duplicate(
            id_peticion=_text_of(dup, sf, "IdPeticionRegistroDuplicado") or "",
            estado=_text_of(dup, sf, "EstadoRegistroDuplicado") or "",
            error_code=_integer(_text_of(dup, sf, "CodigoErrorRegistro"), where),
            error_description=_text_of(dup, sf, "DescripcionErrorRegistro") or None,
        )
    return ResponseLine(
        nif=_required(id_factura, sf, "IDEmisorFactura", where),
        num_serie=_required(id_factura, sf, "NumSerieFactura", where),
        fecha_expedicion=_date(_required(id_factura, sf, "FechaExpedicionFactura", where), where),
        operacion=cast(TipoOperacion, operacion),
        estado=cast(EstadoRegistro, estado),
        error_code=_integer(
            _text_of(node, r, "CodigoErrorRegistro"), f"{where} CodigoErrorRegistro"
        ),
        error_description=_text_of(node, r, "DescripcionErrorRegistro") or None,
        duplicate=duplicate,
        ref_externa=_text_of(node, r, "RefExterna") or None,
    )


def parse_response(xml: bytes) -> SubmissionResponse:
    """Read a RespuestaRegFactuSistemaFacturacion, inside a SOAP envelope or bare.

    Raises :class:`SoapFaultError` for a SOAP Fault and :class:`ResponseError` for anything
    that is not the documented answer.
    """
    root = _parse_xml(xml, "the answer")
    respuesta_tag = f"{{{NS_RESPUESTA}}}RespuestaRegFactuSistemaFacturacion"
    if root.tag == f"{{{NS_SOAP}}}Envelope":
        body = _child(root, NS_SOAP, "Body")
        if body is None:
            raise ResponseError("SOAP envelope without Body")
        fault = _child(body, NS_SOAP, "Fault")
        if fault is not None:
            raise _fault_of(fault)
        answer = body.find(respuesta_tag)
        if answer is None:
            found = [_local(child) for child in body]
            raise ResponseError(f"no RespuestaRegFactuSistemaFacturacion in the Body ({found})")
    elif root.tag == respuesta_tag:
        answer = root
    else:
        raise ResponseError(f"unexpected root element {root.tag}")

    estado = _text_of(answer, NS_RESPUESTA, "EstadoEnvio")
    if estado not in _ESTADOS_ENVIO:
        raise ResponseError(f"EstadoEnvio {estado!r} is not one of {_ESTADOS_ENVIO}")
    wait_text = _text_of(answer, NS_RESPUESTA, "TiempoEsperaEnvio")
    wait = _integer(wait_text, "TiempoEsperaEnvio")
    if wait is None or wait < 0:
        wait = DEFAULT_WAIT_SECONDS  # \d{0,4} allows it empty: assume the documented default
    cabecera = _child(answer, NS_RESPUESTA, "Cabecera")
    obligado = None if cabecera is None else _child(cabecera, vf.NS_SUM1, "ObligadoEmision")
    nodes = answer.findall(f"{{{NS_RESPUESTA}}}RespuestaLinea")
    return SubmissionResponse(
        estado_envio=cast(EstadoEnvio, estado),
        wait_seconds=wait,
        lines=tuple(_line(node, i) for i, node in enumerate(nodes, 1)),
        csv=_text_of(answer, NS_RESPUESTA, "CSV") or None,
        nif=None if obligado is None else _text_of(obligado, vf.NS_SUM1, "NIF"),
    )


# --- The SOAP sender -------------------------------------------------------------------------


def soap_envelope(document: bytes) -> bytes:
    """``document`` (a RegFactuSistemaFacturacion) as the only child of a SOAP 1.1 Body."""
    try:
        payload = etree.fromstring(document, _parser())
    except etree.XMLSyntaxError as exc:
        raise ValueError(f"the document is not well-formed XML: {exc}") from exc
    envelope = etree.Element(f"{{{NS_SOAP}}}Envelope", nsmap={"soapenv": NS_SOAP, **vf.NSMAP})
    etree.SubElement(envelope, f"{{{NS_SOAP}}}Header")
    etree.SubElement(envelope, f"{{{NS_SOAP}}}Body").append(payload)
    etree.cleanup_namespaces(envelope, top_nsmap={"soapenv": NS_SOAP, **vf.NSMAP})
    result: bytes = etree.tostring(envelope, xml_declaration=True, encoding="UTF-8")
    return result


def _retry_after(response: requests.Response) -> int | None:
    value = response.headers.get("Retry-After", "").strip()
    return int(value) if value.isdigit() else None  # the HTTP-date form is not used


def _excerpt(response: requests.Response, limit: int = 300) -> str:
    text = re.sub(r"<[^>]+>", " ", response.text or "")
    text = " ".join(text.split())
    return text[:limit] + ("…" if len(text) > limit else "")


class SoapSender:
    """POSTs the document to the AEAT SOAP endpoint over mutual TLS.

    ``cert`` is the (certificate PEM path, private key PEM path) pair of the obligado's
    certificate (or its representative's); None only for test endpoints over plain HTTP.
    ``timeout`` bounds the connection and each wait for data, in seconds.
    """

    def __init__(
        self,
        url: str,
        cert: tuple[str, str] | None = None,
        timeout: float = 60.0,
        *,
        verify: bool | str = True,
        session: requests.Session | None = None,
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.url = url
        self.cert = cert
        self.timeout = timeout
        self.verify = verify
        self._session = session or requests.Session()

    def close(self) -> None:
        self._session.close()

    def submit(self, document: bytes) -> SubmissionResponse:
        body = soap_envelope(document)
        try:
            response = self._session.post(
                self.url,
                data=body,
                headers=SOAP_HEADERS,
                cert=self.cert,
                verify=self.verify,
                timeout=self.timeout,
                allow_redirects=False,
            )
        except requests.Timeout as exc:
            raise TransportError(f"no answer from {self.url} within {self.timeout:g} s") from exc
        except requests.exceptions.SSLError as exc:
            raise TransportError(
                f"TLS with {self.url} failed (check the client certificate): {exc}",
                transient=False,
            ) from exc
        except requests.ConnectionError as exc:
            raise TransportError(f"cannot reach {self.url}: {exc}") from exc
        except requests.RequestException as exc:
            raise TransportError(f"request to {self.url} failed: {exc}") from exc
        except OSError as exc:  # e.g. the certificate or key file cannot be read
            raise TransportError(f"cannot send to {self.url}: {exc}", transient=False) from exc
        return self._answer(response)

    def _answer(self, response: requests.Response) -> SubmissionResponse:
        status = response.status_code
        # SOAP 1.1 sends faults with HTTP 500; read any fault before judging the status.
        fault = find_fault(response.content) if response.content else None
        if fault is not None:
            fault.retry_after = _retry_after(response)
            raise fault
        if status >= 500 or status in (408, 429):
            raise TransportError(
                f"HTTP {status} from {self.url}: {_excerpt(response)}",
                retry_after=_retry_after(response),
            )
        html = response.headers.get("Content-Type", "").lower().startswith("text/html")
        if 200 <= status < 300 and not html:
            return parse_response(response.content)
        if status in (401, 403) or html:
            # The AEAT answers refused access with an HTML page instead of SOAP.
            raise HttpStatusError(
                status,
                f"HTTP {status} from {self.url}: access denied, check the certificate and that "
                f"it may present records for this NIF: {_excerpt(response)}",
            )
        raise HttpStatusError(status, f"HTTP {status} from {self.url}: {_excerpt(response)}")


# --- The queue -------------------------------------------------------------------------------


def pending(
    session: Session, issuer_id: int, limit: int = MAX_RECORDS, *, lock: bool = False
) -> list[VerifactuRecord]:
    """The issuer's queued records (pending or failed), oldest first in chain order.

    ``lock`` takes the rows FOR UPDATE (PostgreSQL), so two submitters never send the same
    batch; a second one waits and then sees what the first one left.
    """
    if not 1 <= limit <= MAX_RECORDS:
        raise ValueError(f"limit must be 1..{MAX_RECORDS}, got {limit}")
    query = (
        select(VerifactuRecord)
        .where(VerifactuRecord.issuer_id == issuer_id, VerifactuRecord.status.in_(QUEUED))
        .order_by(VerifactuRecord.sequence)
        .limit(limit)
    )
    if lock:
        query = query.with_for_update()
    return list(session.scalars(query))


def queued_count(session: Session, issuer_id: int) -> int:
    count = session.scalar(
        select(func.count())
        .select_from(VerifactuRecord)
        .where(VerifactuRecord.issuer_id == issuer_id, VerifactuRecord.status.in_(QUEUED))
    )
    return int(count or 0)


@dataclass(frozen=True)
class BatchResult:
    """What happened to one issuer's batch."""

    issuer_id: int
    record_ids: tuple[int, ...]  # as sent, in chain order
    wait_seconds: int  # before this issuer's next submission
    remaining: int  # records of the issuer still queued afterwards
    incidencia: bool = False  # sent with RemisionVoluntaria/Incidencia = S
    estado_envio: str | None = None
    csv: str | None = None
    accepted: tuple[int, ...] = ()
    accepted_with_errors: tuple[int, ...] = ()
    rejected: tuple[int, ...] = ()
    unanswered: tuple[int, ...] = ()  # no RespuestaLinea for them: now "failed"
    unmatched: tuple[RecordKey, ...] = ()  # answer lines for records we did not send
    error: str | None = None  # the submission failed as a whole
    transient: bool | None = None  # for error: may the same document succeed later?


@dataclass(frozen=True)
class SubmissionReport:
    now: datetime
    batches: tuple[BatchResult, ...] = ()

    @property
    def wait_seconds(self) -> int:
        """Seconds before the next submit_pending call (the strictest issuer's wait)."""
        return max((b.wait_seconds for b in self.batches), default=0)

    @property
    def retry_at(self) -> datetime:
        """Not before this may submit_pending send again."""
        return self.now + timedelta(seconds=self.wait_seconds)

    @property
    def more_pending(self) -> bool:
        """Records are still queued: schedule a call at retry_at."""
        return any(b.remaining for b in self.batches)

    @property
    def errors(self) -> list[str]:
        return [f"issuer {b.issuer_id}: {b.error}" for b in self.batches if b.error]


def next_wait(aeat_wait: int, remaining: int, limit: int) -> int:
    """Flow control after an answered submission: the AEAT's wait, unless a full batch of
    MAX_RECORDS is already queued (that one may be sent straight away)."""
    if limit >= MAX_RECORDS and remaining >= MAX_RECORDS:
        return 0
    return max(aeat_wait, 0)


def backoff(attempts: int, retry_after: int | None = None) -> int:
    """Seconds before retrying a failed submission: 60, 120, 240… up to an hour, or longer
    if the server asked for it."""
    exponent = min(max(attempts, 1) - 1, 16)
    wait = min(DEFAULT_WAIT_SECONDS * 2**exponent, MAX_BACKOFF_SECONDS)
    return max(wait, retry_after or 0)


def with_incidencia(document: bytes) -> bytes:
    """Mark a RegFactuSistemaFacturacion as delayed by a technical incident:
    ``Cabecera/RemisionVoluntaria/Incidencia = S`` (after ObligadoEmision/Representante)."""
    root = etree.fromstring(document, _parser())
    cabecera = _child(root, vf.NS_SUM, "Cabecera")
    if cabecera is None:
        raise ValueError("the document has no sum:Cabecera")
    sum1 = f"{{{vf.NS_SUM1}}}"
    if cabecera.find(sum1 + "RemisionVoluntaria") is not None:
        return document
    remision = etree.Element(sum1 + "RemisionVoluntaria")
    etree.SubElement(remision, sum1 + "Incidencia").text = "S"
    anchor = cabecera.find(sum1 + "Representante")
    if anchor is None:
        anchor = cabecera.find(sum1 + "ObligadoEmision")
    if anchor is None:
        raise ValueError("the document's Cabecera has no ObligadoEmision")
    anchor.addnext(remision)
    result: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    return result


def submit_pending(
    session: Session,
    sender: RecordSender,
    *,
    now: datetime | None = None,
    limit: int = MAX_RECORDS,
    issuer_id: int | None = None,
    incidencia: bool | None = None,
) -> SubmissionReport:
    """Send each issuer's oldest queued batch (≤ ``limit`` records, chain order) and apply the
    answer to every record; all in the caller's transaction (the caller commits).

    Call it again at ``report.retry_at`` while ``report.more_pending`` (and, after new
    records are queued, not before ``retry_at`` either). ``incidencia``: mark the batch as
    delayed by a technical incident; by default, when one of its records was held back by one
    (a transient failure: no answer, or the AEAT's own), not when our document was refused.
    One sender (one certificate) serves every issuer: pass ``issuer_id`` to submit for one
    issuer with its own sender.
    """
    if not 1 <= limit <= MAX_RECORDS:
        raise ValueError(f"limit must be 1..{MAX_RECORDS}, got {limit}")
    now = now or utcnow()
    query = select(Issuer).where(
        Issuer.id.in_(select(VerifactuRecord.issuer_id).where(VerifactuRecord.status.in_(QUEUED)))
    )
    if issuer_id is not None:
        query = query.where(Issuer.id == issuer_id)
    batches = []
    for issuer in session.scalars(query.order_by(Issuer.id)).all():
        result = _submit_batch(session, sender, issuer, now, limit, incidencia)
        if result is not None:
            batches.append(result)
    return SubmissionReport(now=now, batches=tuple(batches))


def _submit_batch(
    session: Session,
    sender: RecordSender,
    issuer: Issuer,
    now: datetime,
    limit: int,
    incidencia: bool | None,
) -> BatchResult | None:
    records = pending(session, issuer.id, limit, lock=True)
    if not records:
        return None
    flagged = any(r.incident for r in records) if incidencia is None else incidencia
    document = chain.wrap(issuer, [r.xml for r in records])
    if flagged:
        document = with_incidencia(document)
    tried_before = {r.id: r.attempts > 0 for r in records}
    for record in records:
        record.attempts += 1
    ids = tuple(r.id for r in records)
    try:
        response = sender.submit(document)
    except SubmissionError as exc:
        for record in records:
            record.status = PENDING if exc.transient else FAILED
            record.incident = record.incident or exc.transient
            record.last_error = str(exc)
        session.flush()
        return BatchResult(
            issuer_id=issuer.id,
            record_ids=ids,
            wait_seconds=backoff(records[0].attempts, exc.retry_after),
            remaining=queued_count(session, issuer.id),
            incidencia=flagged,
            error=str(exc),
            transient=exc.transient,
        )

    answers: dict[RecordKey, ResponseLine] = {}
    for line in response.lines:
        answers[line.key] = line
    outcome: dict[str, list[int]] = {
        ACCEPTED: [],
        ACCEPTED_WITH_ERRORS: [],
        REJECTED: [],
        FAILED: [],
    }
    for record in records:
        key: RecordKey = (record.num_serie, record.fecha_expedicion, record.kind)
        answer = answers.pop(key) if key in answers else None
        if answer is None:
            record.status = FAILED
            record.last_error = (
                f"the AEAT answered EstadoEnvio {response.estado_envio} without a line for "
                f"this record"
            )
        else:
            record.status, record.last_error = _verdict(answer, tried_before[record.id])
            record.error_code, record.error_description = _error_of(answer, record.status)
            record.submitted_at = now
        outcome[record.status].append(record.id)
    session.flush()
    remaining = queued_count(session, issuer.id)
    unanswered = outcome[FAILED]
    return BatchResult(
        issuer_id=issuer.id,
        record_ids=ids,
        wait_seconds=next_wait(response.wait_seconds, remaining, limit),
        remaining=remaining,
        incidencia=flagged,
        estado_envio=response.estado_envio,
        csv=response.csv,
        accepted=tuple(outcome[ACCEPTED]),
        accepted_with_errors=tuple(outcome[ACCEPTED_WITH_ERRORS]),
        rejected=tuple(outcome[REJECTED]),
        unanswered=tuple(unanswered),
        unmatched=tuple(answers),
        error=(
            f"{len(unanswered)} record(s) without an answer line (EstadoEnvio "
            f"{response.estado_envio})"
            if unanswered
            else None
        ),
        transient=False if unanswered else None,
    )


def _error_of(line: ResponseLine, status: str) -> tuple[int | None, str | None]:
    """The AEAT's own code and description for the record, as it gave them (none if accepted:
    a duplicate recognised as our earlier attempt carries the state the AEAT holds)."""
    if status == ACCEPTED:
        return None, None
    dup = line.duplicate
    if status == ACCEPTED_WITH_ERRORS and dup is not None and line.estado == "Incorrecto":
        return dup.error_code, dup.error_description
    return line.error_code, line.error_description


def _verdict(line: ResponseLine, tried_before: bool) -> tuple[str, str | None]:
    """(status, last_error) for a record from its answer line."""
    if line.estado == "Correcto":
        return ACCEPTED, None
    if line.estado == "AceptadoConErrores":
        return ACCEPTED_WITH_ERRORS, line.error_text or "AceptadoConErrores (no detail given)"
    dup = line.duplicate
    if dup is not None and tried_before and dup.estado in ("Correcta", "AceptadaConErrores"):
        # An earlier attempt got through although its answer never reached us (timeout):
        # the AEAT holds this very record (a num_serie is never reused).
        note = f"already registered by an earlier submission (IdPeticion {dup.id_peticion})"
        if dup.estado == "Correcta":
            return ACCEPTED, note
        return ACCEPTED_WITH_ERRORS, f"{note}: {_error_text(dup.error_code, dup.error_description)}"
    text = line.error_text or "Incorrecto (no detail given)"
    if dup is not None:
        text += f" (the AEAT holds it as {dup.estado}, IdPeticion {dup.id_peticion})"
    return REJECTED, text
