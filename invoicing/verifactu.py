"""VERI*FACTU billing records (AEAT): huella, RegistroAlta/RegistroAnulacion XML, QR.

Pure functions over frozen inputs: no database, no Flask, no network.

Sources (AEAT, "Sistemas Informáticos de Facturación y VERI*FACTU"):

* "Detalle de las especificaciones técnicas para la generación de la huella o hash de los
  registros de facturación" (v0.1.2, 27/08/2024): the fields and their order, ``name=value``
  pairs joined by ``&``, values trimmed, an empty value still written (``Huella=`` on the first
  record), SHA-256 over the UTF-8 bytes, upper-case hexadecimal. §6 gives worked examples
  (reproduced in ``tests/invoicing/test_verifactu.py``).
* "Características del QR y especificaciones del servicio de cotejo o remisión de información
  por parte del receptor de la factura": the ``ValidarQR`` URL with ``nif``, ``numserie``,
  ``fecha`` (DD-MM-YYYY) and ``importe``, each value URL-encoded (UTF-8); ISO/IEC 18004 QR with
  error correction level M, printed between 30x30 and 40x40 mm.
* ``SuministroLR.xsd`` / ``SuministroInformacion.xsd`` (shared/standards/verifactu): element
  names, order and types of the records.
"""

from __future__ import annotations

import hashlib
import io
import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, get_args
from urllib.parse import quote
from zoneinfo import ZoneInfo

import segno
from lxml import etree

from invoicing import xsd

# --- Namespaces and constants ---------------------------------------------------------------

_AEAT_WS = "https://www2.agenciatributaria.gob.es/static_files/common/internet/dep/aplicaciones/es/aeat/tike/cont/ws"
NS_SUM = f"{_AEAT_WS}/SuministroLR.xsd"  # RegFactuSistemaFacturacion, Cabecera, RegistroFactura
NS_SUM1 = f"{_AEAT_WS}/SuministroInformacion.xsd"  # RegistroAlta, RegistroAnulacion and types
NSMAP = {"sum": NS_SUM, "sum1": NS_SUM1}

ID_VERSION = "1.0"  # sf:VersionType
TIPO_HUELLA_SHA256 = "01"  # sf:TipoHuellaType (list L12): 01 = SHA-256
MADRID = ZoneInfo("Europe/Madrid")

QR_URL_PRODUCTION = "https://www2.agenciatributaria.gob.es/wlpl/TIKE-CONT/ValidarQR"
QR_URL_TESTS = "https://prewww2.aeat.es/wlpl/TIKE-CONT/ValidarQR"
# Invoices of a system that does not send its records (no VERI*FACTU) are checked here.
QR_URL_NO_VERIFACTU = "https://www2.agenciatributaria.gob.es/wlpl/TIKE-CONT/ValidarQRNoVerifactu"
QR_ERROR_CORRECTION = "M"  # AEAT QR spec: ISO/IEC 18004, level M
QR_MIN_MM = Decimal(30)  # AEAT QR spec: between 30x30 and 40x40 mm
QR_MAX_MM = Decimal(40)
QR_QUIET_ZONE_MODULES = 4  # ISO/IEC 18004 quiet zone for QR symbols
QR_MIN_MARGIN_MM = Decimal(2)  # AEAT QR spec: at least 2 mm of white margin around the code


TipoFactura = Literal["F1", "F2", "F3", "R1", "R2", "R3", "R4", "R5"]
TipoRectificativa = Literal["S", "I"]
Calificacion = Literal["S1", "S2", "N1", "N2"]
CausaExencion = Literal["E1", "E2", "E3", "E4", "E5", "E6", "E7", "E8"]

_TIPOS_FACTURA = frozenset(get_args(TipoFactura))
_RECTIFICATIVAS = frozenset({"R1", "R2", "R3", "R4", "R5"})
# F2 and R5 are simplified invoices: the record carries no Destinatarios block.
_SIN_DESTINATARIO = frozenset({"F2", "R5"})
_CALIFICACIONES = frozenset(get_args(Calificacion))
_EXENCIONES = frozenset(get_args(CausaExencion))
_IMPUESTOS = frozenset({"01", "02", "03", "05"})  # sf:ImpuestoType
_CLAVES_REGIMEN = frozenset(
    {"01", "02", "03", "04", "05", "06", "07", "08", "09", "10", "11"}
    | {"14", "15", "17", "18", "19", "20", "21"}
)  # sf:IdOperacionesTrascendenciaTributariaType
_HUELLA_RE = re.compile(r"[0-9A-F]{64}")
_MAX_AMOUNT_INTEGER_DIGITS = 12  # sf:ImporteSgn12.2Type
_MAX_DETALLES = 12  # sf:DesgloseType maxOccurs
_MAX_REGISTROS = 1000  # RegFactuSistemaFacturacion/RegistroFactura maxOccurs


class VerifactuError(ValueError):
    """Input that cannot become a valid VERI*FACTU record."""


class VerifactuSchemaError(VerifactuError):
    """A document that does not validate against SuministroLR.xsd."""

    def __init__(self, message: str, errors: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.errors: tuple[str, ...] = tuple(errors)


# --- Value formatting (shared by the huella and the XML, so they can never differ) ----------


def format_amount(value: Decimal, what: str = "amount") -> str:
    """An amount as the AEAT reads it: dot as separator, exactly two decimals (12.3 -> "12.30").

    The huella is computed over the text written in the XML, so this one function feeds both.
    Values with more than two decimals are refused rather than silently rounded.
    """
    if not isinstance(value, Decimal) or not value.is_finite():
        raise VerifactuError(f"{what} must be a finite Decimal, got {value!r}")
    quantized = value.quantize(Decimal("0.01"))
    if quantized != value:
        raise VerifactuError(f"{what} has more than two decimals: {value}")
    if quantized.is_zero():
        quantized = abs(quantized)  # never "-0.00"
    text = f"{quantized:.2f}"
    if len(text.lstrip("-").split(".")[0]) > _MAX_AMOUNT_INTEGER_DIGITS:
        raise VerifactuError(f"{what} has more than {_MAX_AMOUNT_INTEGER_DIGITS} integer digits")
    return text


def format_rate(value: Decimal) -> str:
    """A tax rate for sf:Tipo2.2Type: non-negative, up to three integers and two decimals."""
    if not isinstance(value, Decimal) or not value.is_finite() or value < 0:
        raise VerifactuError(f"rate must be a non-negative Decimal, got {value!r}")
    text = format_amount(value, "rate")
    if len(text.split(".")[0]) > 3:
        raise VerifactuError(f"rate too large: {value}")
    return text


def format_date(value: date) -> str:
    """A date as DD-MM-YYYY (sf:fecha), the form used in the XML, the huella and the QR."""
    if isinstance(value, datetime) or not isinstance(value, date):
        raise VerifactuError(f"expected a date (not a datetime), got {value!r}")
    return value.strftime("%d-%m-%Y")


def format_timestamp(value: datetime) -> str:
    """FechaHoraHusoGenRegistro: ISO 8601 in Spanish peninsular time with its offset, seconds.

    2024-01-01T18:20:30Z -> "2024-01-01T19:20:30+01:00"; in summer the offset is +02:00.
    """
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise VerifactuError(f"generated_at must be a timezone-aware datetime, got {value!r}")
    return value.astimezone(MADRID).replace(microsecond=0).isoformat()


def _text(value: str, what: str, max_len: int, min_len: int = 1) -> str:
    """A trimmed text value within the XSD's length limits (the huella trims values too)."""
    if not isinstance(value, str):
        raise VerifactuError(f"{what} must be text, got {value!r}")
    text = value.strip()
    if not min_len <= len(text) <= max_len:
        raise VerifactuError(f"{what} must have {min_len}..{max_len} characters, got {text!r}")
    return text


def _nif(value: str, what: str = "NIF") -> str:
    text = _text(value, what, 9)
    if len(text) != 9:  # sf:NIFType: length 9
        raise VerifactuError(f"{what} must have 9 characters, got {text!r}")
    return text


def _num_serie(value: str) -> str:
    """NumSerieFactura: 1..60 characters (sf:TextoIDFacturaType), printable ASCII only."""
    text = _text(value, "num_serie", 60)
    if any(not 32 <= ord(ch) <= 126 for ch in text):
        raise VerifactuError(f"num_serie must be printable ASCII (32-126), got {text!r}")
    return text


def _si_no(flag: bool) -> str:
    return "S" if flag else "N"


# --- Inputs ----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class SystemInfo:
    """SistemaInformatico: the invoicing system that generated the record and its producer."""

    producer_name: str  # NombreRazon of the producer
    producer_nif: str  # NIF of the producer
    system_name: str  # NombreSistemaInformatico (max 30)
    system_id: str  # IdSistemaInformatico (max 2)
    version: str  # Version (max 50)
    installation_number: str  # NumeroInstalacion (max 100)
    solo_verifactu: bool  # TipoUsoPosibleSoloVerifactu
    multi_ot: bool  # TipoUsoPosibleMultiOT
    multiples_ot: bool  # IndicadorMultiplesOT

    def __post_init__(self) -> None:
        _text(self.producer_name, "producer_name", 120)
        _nif(self.producer_nif, "producer_nif")
        _text(self.system_name, "system_name", 30)
        _text(self.system_id, "system_id", 2)
        _text(self.version, "version", 50)
        _text(self.installation_number, "installation_number", 100)


@dataclass(frozen=True)
class Issuer:
    """The obligado a expedir la factura (IDEmisorFactura / NombreRazonEmisor)."""

    nif: str
    name: str

    def __post_init__(self) -> None:
        _nif(self.nif, "issuer nif")
        _text(self.name, "issuer name", 120)


# IDOtro/IDType: 02 NIF-IVA (EU VAT number), 03 passport, 04 ID in the country of residence,
# 05 certificate of residence, 06 other supporting document, 07 not registered.
ID_TYPES = frozenset({"02", "03", "04", "05", "06", "07"})


@dataclass(frozen=True)
class Recipient:
    """IDDestinatario: a Spanish NIF, or (IDOtro) a foreign id with its country and type."""

    name: str
    nif: str | None = None
    country: str | None = None  # IDOtro/CodigoPais, ISO 3166-1 alpha-2
    id_type: str | None = None  # IDOtro/IDType, see ID_TYPES
    other_id: str | None = None  # IDOtro/ID, up to 20 characters

    def __post_init__(self) -> None:
        _text(self.name, "recipient name", 120)
        if (self.nif is None) == (self.other_id is None):
            raise VerifactuError("a recipient has either a Spanish NIF or a foreign id (IDOtro)")
        if self.nif is not None:
            _nif(self.nif, "recipient nif")
            return
        _text(self.other_id or "", "recipient id", 20)
        if self.id_type not in ID_TYPES:
            raise VerifactuError(f"IDOtro IDType must be one of {sorted(ID_TYPES)}")
        if self.country is not None and not re.fullmatch(r"[A-Z]{2}", self.country):
            raise VerifactuError(f"IDOtro CodigoPais must be two capital letters: {self.country!r}")


@dataclass(frozen=True)
class InvoiceRef:
    """An invoice identified by issuer NIF, series+number and issue date."""

    nif: str
    num_serie: str
    fecha: date

    def __post_init__(self) -> None:
        _nif(self.nif)
        _num_serie(self.num_serie)
        format_date(self.fecha)


@dataclass(frozen=True)
class ChainLink:
    """The previous record of the chain (Encadenamiento/RegistroAnterior).

    For an anulación the identifiers are those of the cancelled invoice, as in its record.
    """

    nif: str
    num_serie: str
    fecha_expedicion: date
    huella: str

    def __post_init__(self) -> None:
        _nif(self.nif)
        _num_serie(self.num_serie)
        format_date(self.fecha_expedicion)
        if not isinstance(self.huella, str) or not _HUELLA_RE.fullmatch(self.huella):
            raise VerifactuError(f"huella must be 64 upper-case hex digits, got {self.huella!r}")


@dataclass(frozen=True)
class TaxLine:
    """One DetalleDesglose.

    * Subject and not exempt (the default, ``S1``): ``TaxLine(Decimal("21"), base, cuota)``.
    * Exempt: ``TaxLine.exempt("E1", base)`` writes OperacionExenta and no rate or cuota.
    * Not subject: ``TaxLine.not_subject("N1", base)`` writes CalificacionOperacion N1/N2.
    """

    rate: Decimal | None
    base: Decimal
    amount: Decimal | None = None
    calificacion: Calificacion | None = None
    exencion: CausaExencion | None = None
    clave_regimen: str = "01"  # general regime
    impuesto: str = "01"  # IVA
    # Recargo de equivalencia charged to a retailer in that regime (TipoRecargoEquivalencia,
    # CuotaRecargoEquivalencia): on the same base, only on lines that charge tax. The issuer
    # stays in its own regime (ClaveRegimen 01): 18 is for an issuer that is itself in it.
    surcharge_rate: Decimal | None = None
    surcharge_amount: Decimal | None = None

    def __post_init__(self) -> None:
        if self.calificacion is not None and self.exencion is not None:
            raise VerifactuError("a tax line is either exempt (E*) or qualified (S*/N*), not both")
        if self.calificacion is None and self.exencion is None:
            object.__setattr__(self, "calificacion", "S1")
        if self.calificacion is not None and self.calificacion not in _CALIFICACIONES:
            raise VerifactuError(f"unknown CalificacionOperacion {self.calificacion!r}")
        if self.exencion is not None and self.exencion not in _EXENCIONES:
            raise VerifactuError(f"unknown OperacionExenta {self.exencion!r}")
        if self.impuesto not in _IMPUESTOS:
            raise VerifactuError(f"unknown Impuesto {self.impuesto!r}")
        if self.clave_regimen not in _CLAVES_REGIMEN:
            raise VerifactuError(f"unknown ClaveRegimen {self.clave_regimen!r}")
        format_amount(self.base, "base")
        if self.charges_tax:
            if self.rate is None or self.amount is None:
                raise VerifactuError(f"{self.calificacion} line needs a rate and a tax amount")
            format_rate(self.rate)
            format_amount(self.amount, "tax amount")
        else:
            for what, value in (("rate", self.rate), ("tax amount", self.amount)):
                if value is not None and value != 0:
                    raise VerifactuError(
                        f"{self.exencion or self.calificacion} line carries no {what}, got {value}"
                    )
        if (self.surcharge_rate is None) != (self.surcharge_amount is None):
            raise VerifactuError("a surcharge needs both its rate and its amount")
        if self.surcharge_rate is not None and self.surcharge_amount is not None:
            if not self.charges_tax:
                raise VerifactuError(
                    f"{self.exencion or self.calificacion} line carries no recargo de equivalencia"
                )
            format_rate(self.surcharge_rate)
            format_amount(self.surcharge_amount, "surcharge amount")

    @property
    def charges_tax(self) -> bool:
        """Subject and not exempt (S1/S2): TipoImpositivo and CuotaRepercutida are written."""
        return self.calificacion in ("S1", "S2")

    @classmethod
    def exempt(cls, cause: CausaExencion, base: Decimal, clave_regimen: str = "01") -> TaxLine:
        return cls(None, base, exencion=cause, clave_regimen=clave_regimen)

    @classmethod
    def not_subject(
        cls, calificacion: Literal["N1", "N2"], base: Decimal, clave_regimen: str = "01"
    ) -> TaxLine:
        return cls(None, base, calificacion=calificacion, clave_regimen=clave_regimen)


@dataclass(frozen=True, kw_only=True)
class Rectification:
    """What a rectifying invoice (R1–R5) corrects.

    ``tipo`` "I" (por diferencias): the record's amounts are the differences, often negative.
    ``tipo`` "S" (por sustitución): ImporteRectificacion carries the base and cuota of the
    rectified invoices, so ``base_rectificada`` and ``cuota_rectificada`` are required.
    """

    tipo: TipoRectificativa
    facturas: tuple[InvoiceRef, ...] = ()
    base_rectificada: Decimal | None = None
    cuota_rectificada: Decimal | None = None
    cuota_recargo_rectificado: Decimal | None = None  # the rectified invoices' surcharge

    def __post_init__(self) -> None:
        if self.tipo not in ("S", "I"):
            raise VerifactuError(f"TipoRectificativa must be 'S' or 'I', got {self.tipo!r}")
        object.__setattr__(self, "facturas", tuple(self.facturas))
        if len(self.facturas) > _MAX_REGISTROS:
            raise VerifactuError("at most 1000 FacturasRectificadas")
        has_amounts = self.base_rectificada is not None or self.cuota_rectificada is not None
        if self.tipo == "S":
            if self.base_rectificada is None or self.cuota_rectificada is None:
                raise VerifactuError(
                    "a rectification by substitution (S) needs ImporteRectificacion"
                )
            format_amount(self.base_rectificada, "base_rectificada")
            format_amount(self.cuota_rectificada, "cuota_rectificada")
            if self.cuota_recargo_rectificado is not None:
                format_amount(self.cuota_recargo_rectificado, "cuota_recargo_rectificado")
        elif has_amounts or self.cuota_recargo_rectificado is not None:
            raise VerifactuError("ImporteRectificacion is only for rectification by substitution")


@dataclass(frozen=True, kw_only=True)
class AltaRecord:
    """A registro de facturación de alta (one issued invoice)."""

    issuer: Issuer
    num_serie: str
    fecha_expedicion: date
    tipo_factura: TipoFactura
    descripcion_operacion: str
    tax_lines: tuple[TaxLine, ...]
    cuota_total: Decimal
    importe_total: Decimal
    generated_at: datetime  # FechaHoraHusoGenRegistro, any aware datetime
    destinatario: Recipient | None = None
    previous: ChainLink | None = None  # None: PrimerRegistro
    rectificacion: Rectification | None = None
    facturas_sustituidas: tuple[InvoiceRef, ...] = ()  # F3 only
    fecha_operacion: date | None = None
    # A corrected alta of an invoice already recorded (Subsanacion = S); RechazoPrevio "S" when
    # the AEAT rejected the earlier record outright, "X" when it never received one. The AEAT's
    # validation 3.1.3.2: RechazoPrevio S or X only with Subsanacion = S.
    subsanacion: bool = False
    rechazo_previo: Literal["S", "X"] | None = None

    def __post_init__(self) -> None:
        if self.rechazo_previo is not None:
            if self.rechazo_previo not in ("S", "X"):
                raise VerifactuError(f"RechazoPrevio is 'S' or 'X', not {self.rechazo_previo!r}")
            if not self.subsanacion:
                raise VerifactuError("RechazoPrevio S or X goes only with Subsanacion = S")
        object.__setattr__(self, "tax_lines", tuple(self.tax_lines))
        object.__setattr__(self, "facturas_sustituidas", tuple(self.facturas_sustituidas))
        _num_serie(self.num_serie)
        format_date(self.fecha_expedicion)
        if self.fecha_operacion is not None:
            format_date(self.fecha_operacion)
        if self.tipo_factura not in _TIPOS_FACTURA:
            raise VerifactuError(f"unknown TipoFactura {self.tipo_factura!r}")
        _text(self.descripcion_operacion, "descripcion_operacion", 500)
        if not 1 <= len(self.tax_lines) <= _MAX_DETALLES:
            raise VerifactuError(f"a record needs 1..{_MAX_DETALLES} tax lines")
        format_amount(self.cuota_total, "cuota_total")
        format_amount(self.importe_total, "importe_total")
        format_timestamp(self.generated_at)
        if self.tipo_factura in _SIN_DESTINATARIO:
            if self.destinatario is not None:
                raise VerifactuError(f"a {self.tipo_factura} invoice carries no Destinatarios")
        elif self.destinatario is None:
            raise VerifactuError(f"a {self.tipo_factura} invoice needs a destinatario")
        if self.tipo_factura in _RECTIFICATIVAS:
            if self.rectificacion is None:
                raise VerifactuError(f"a {self.tipo_factura} invoice needs TipoRectificativa")
        elif self.rectificacion is not None:
            raise VerifactuError("only R1–R5 invoices carry rectification data")
        if self.facturas_sustituidas and self.tipo_factura != "F3":
            raise VerifactuError("only F3 invoices carry FacturasSustituidas")


@dataclass(frozen=True, kw_only=True)
class AnulacionRecord:
    """A registro de facturación de anulación (cancels a previously registered invoice)."""

    issuer: Issuer
    num_serie: str  # of the cancelled invoice
    fecha_expedicion: date  # of the cancelled invoice
    generated_at: datetime
    previous: ChainLink | None = None
    # SinRegistroPrevio: the AEAT never received the alta being cancelled (it was rejected, or
    # made in no VERI*FACTU mode). RechazoPrevio: this anulación is sent again after the AEAT
    # rejected it.
    sin_registro_previo: bool = False
    rechazo_previo: bool = False

    def __post_init__(self) -> None:
        _num_serie(self.num_serie)
        format_date(self.fecha_expedicion)
        format_timestamp(self.generated_at)


Record = AltaRecord | AnulacionRecord


# --- Huella ----------------------------------------------------------------------------------


def _chain(fields: Iterable[tuple[str, str]]) -> str:
    """``name=value`` pairs joined by ``&``, each value trimmed (empty values still written)."""
    return "&".join(f"{name}={value.strip()}" for name, value in fields)


def _previous_huella(previous: ChainLink | None) -> str:
    return previous.huella if previous is not None else ""


def cadena_huella_alta(record: AltaRecord) -> str:
    """The exact text hashed for a registro de alta (AEAT huella spec, registro de alta)."""
    return _chain(
        [
            ("IDEmisorFactura", record.issuer.nif),
            ("NumSerieFactura", record.num_serie),
            ("FechaExpedicionFactura", format_date(record.fecha_expedicion)),
            ("TipoFactura", record.tipo_factura),
            ("CuotaTotal", format_amount(record.cuota_total, "cuota_total")),
            ("ImporteTotal", format_amount(record.importe_total, "importe_total")),
            ("Huella", _previous_huella(record.previous)),
            ("FechaHoraHusoGenRegistro", format_timestamp(record.generated_at)),
        ]
    )


def cadena_huella_anulacion(record: AnulacionRecord) -> str:
    """The exact text hashed for a registro de anulación (AEAT huella spec)."""
    return _chain(
        [
            ("IDEmisorFacturaAnulada", record.issuer.nif),
            ("NumSerieFacturaAnulada", record.num_serie),
            ("FechaExpedicionFacturaAnulada", format_date(record.fecha_expedicion)),
            ("Huella", _previous_huella(record.previous)),
            ("FechaHoraHusoGenRegistro", format_timestamp(record.generated_at)),
        ]
    )


def _sha256_upper(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest().upper()


def huella_of(fields: Iterable[tuple[str, str]]) -> str:
    """The huella of ``name=value`` pairs in the AEAT's order (as read back from a stored
    record's XML, to check it against the huella it carries)."""
    return _sha256_upper(_chain(fields))


def huella_alta(record: AltaRecord) -> str:
    """SHA-256 (upper-case hex) of :func:`cadena_huella_alta`."""
    return _sha256_upper(cadena_huella_alta(record))


def huella_anulacion(record: AnulacionRecord) -> str:
    """SHA-256 (upper-case hex) of :func:`cadena_huella_anulacion`."""
    return _sha256_upper(cadena_huella_anulacion(record))


def huella(record: Record) -> str:
    return huella_alta(record) if isinstance(record, AltaRecord) else huella_anulacion(record)


def chain_link(record: Record) -> ChainLink:
    """The Encadenamiento/RegistroAnterior that the next record of the chain must carry."""
    return ChainLink(
        record.issuer.nif.strip(), record.num_serie.strip(), record.fecha_expedicion, huella(record)
    )


# --- XML -------------------------------------------------------------------------------------


def _q(ns: str, tag: str) -> str:
    return f"{{{ns}}}{tag}"


def _sub(parent: Any, tag: str, text: str | None = None, ns: str = NS_SUM1) -> Any:
    element = etree.SubElement(parent, _q(ns, tag))
    if text is not None:
        element.text = text
    return element


def _id_factura_ar(parent: Any, tag: str, ref: InvoiceRef) -> None:
    node = _sub(parent, tag)
    _sub(node, "IDEmisorFactura", _nif(ref.nif))
    _sub(node, "NumSerieFactura", _num_serie(ref.num_serie))
    _sub(node, "FechaExpedicionFactura", format_date(ref.fecha))


def _encadenamiento(parent: Any, previous: ChainLink | None) -> None:
    node = _sub(parent, "Encadenamiento")
    if previous is None:
        _sub(node, "PrimerRegistro", "S")
        return
    anterior = _sub(node, "RegistroAnterior")
    _sub(anterior, "IDEmisorFactura", _nif(previous.nif))
    _sub(anterior, "NumSerieFactura", _num_serie(previous.num_serie))
    _sub(anterior, "FechaExpedicionFactura", format_date(previous.fecha_expedicion))
    _sub(anterior, "Huella", previous.huella)


def _sistema_informatico(parent: Any, system: SystemInfo) -> None:
    node = _sub(parent, "SistemaInformatico")
    _sub(node, "NombreRazon", _text(system.producer_name, "producer_name", 120))
    _sub(node, "NIF", _nif(system.producer_nif, "producer_nif"))
    _sub(node, "NombreSistemaInformatico", _text(system.system_name, "system_name", 30))
    _sub(node, "IdSistemaInformatico", _text(system.system_id, "system_id", 2))
    _sub(node, "Version", _text(system.version, "version", 50))
    _sub(node, "NumeroInstalacion", _text(system.installation_number, "installation", 100))
    _sub(node, "TipoUsoPosibleSoloVerifactu", _si_no(system.solo_verifactu))
    _sub(node, "TipoUsoPosibleMultiOT", _si_no(system.multi_ot))
    _sub(node, "IndicadorMultiplesOT", _si_no(system.multiples_ot))


def _detalle(parent: Any, line: TaxLine) -> None:
    node = _sub(parent, "DetalleDesglose")
    _sub(node, "Impuesto", line.impuesto)
    _sub(node, "ClaveRegimen", line.clave_regimen)
    if line.exencion is not None:
        _sub(node, "OperacionExenta", line.exencion)
    else:
        assert line.calificacion is not None  # set in __post_init__
        _sub(node, "CalificacionOperacion", line.calificacion)
    if line.charges_tax:
        assert line.rate is not None
        _sub(node, "TipoImpositivo", format_rate(line.rate))
    _sub(node, "BaseImponibleOimporteNoSujeto", format_amount(line.base, "base"))
    if line.charges_tax:
        assert line.amount is not None
        _sub(node, "CuotaRepercutida", format_amount(line.amount, "tax amount"))
    if line.surcharge_rate is not None and line.surcharge_amount is not None:
        _sub(node, "TipoRecargoEquivalencia", format_rate(line.surcharge_rate))
        _sub(node, "CuotaRecargoEquivalencia", format_amount(line.surcharge_amount, "surcharge"))


def registro_alta_xml(record: AltaRecord, system: SystemInfo) -> Any:
    """``sum1:RegistroAlta`` in the XSD's element order, with its huella."""
    root = etree.Element(_q(NS_SUM1, "RegistroAlta"), nsmap={"sum1": NS_SUM1})
    _sub(root, "IDVersion", ID_VERSION)
    id_factura = _sub(root, "IDFactura")
    _sub(id_factura, "IDEmisorFactura", _nif(record.issuer.nif, "issuer nif"))
    _sub(id_factura, "NumSerieFactura", _num_serie(record.num_serie))
    _sub(id_factura, "FechaExpedicionFactura", format_date(record.fecha_expedicion))
    _sub(root, "NombreRazonEmisor", _text(record.issuer.name, "issuer name", 120))
    if record.subsanacion:
        _sub(root, "Subsanacion", "S")
    if record.rechazo_previo is not None:
        _sub(root, "RechazoPrevio", record.rechazo_previo)
    _sub(root, "TipoFactura", record.tipo_factura)
    rect = record.rectificacion
    if rect is not None:
        _sub(root, "TipoRectificativa", rect.tipo)
        if rect.facturas:
            rectificadas = _sub(root, "FacturasRectificadas")
            for ref in rect.facturas:
                _id_factura_ar(rectificadas, "IDFacturaRectificada", ref)
    if record.facturas_sustituidas:
        sustituidas = _sub(root, "FacturasSustituidas")
        for ref in record.facturas_sustituidas:
            _id_factura_ar(sustituidas, "IDFacturaSustituida", ref)
    if rect is not None and rect.tipo == "S":
        assert rect.base_rectificada is not None and rect.cuota_rectificada is not None
        importe = _sub(root, "ImporteRectificacion")
        _sub(importe, "BaseRectificada", format_amount(rect.base_rectificada))
        _sub(importe, "CuotaRectificada", format_amount(rect.cuota_rectificada))
        if rect.cuota_recargo_rectificado is not None:
            _sub(importe, "CuotaRecargoRectificado", format_amount(rect.cuota_recargo_rectificado))
    if record.fecha_operacion is not None:
        _sub(root, "FechaOperacion", format_date(record.fecha_operacion))
    _sub(root, "DescripcionOperacion", _text(record.descripcion_operacion, "descripcion", 500))
    if record.destinatario is not None:
        destinatarios = _sub(root, "Destinatarios")
        destinatario = _sub(destinatarios, "IDDestinatario")
        recipient = record.destinatario
        _sub(destinatario, "NombreRazon", _text(recipient.name, "recipient", 120))
        if recipient.nif is not None:
            _sub(destinatario, "NIF", _nif(recipient.nif, "recipient nif"))
        else:
            otro = _sub(destinatario, "IDOtro")
            if recipient.country is not None:
                _sub(otro, "CodigoPais", recipient.country)
            _sub(otro, "IDType", recipient.id_type)
            _sub(otro, "ID", recipient.other_id)
    desglose = _sub(root, "Desglose")
    for line in record.tax_lines:
        _detalle(desglose, line)
    _sub(root, "CuotaTotal", format_amount(record.cuota_total, "cuota_total"))
    _sub(root, "ImporteTotal", format_amount(record.importe_total, "importe_total"))
    _encadenamiento(root, record.previous)
    _sistema_informatico(root, system)
    _sub(root, "FechaHoraHusoGenRegistro", format_timestamp(record.generated_at))
    _sub(root, "TipoHuella", TIPO_HUELLA_SHA256)
    _sub(root, "Huella", huella_alta(record))
    return root


def registro_anulacion_xml(record: AnulacionRecord, system: SystemInfo) -> Any:
    """``sum1:RegistroAnulacion`` in the XSD's element order, with its huella."""
    root = etree.Element(_q(NS_SUM1, "RegistroAnulacion"), nsmap={"sum1": NS_SUM1})
    _sub(root, "IDVersion", ID_VERSION)
    id_factura = _sub(root, "IDFactura")
    _sub(id_factura, "IDEmisorFacturaAnulada", _nif(record.issuer.nif, "issuer nif"))
    _sub(id_factura, "NumSerieFacturaAnulada", _num_serie(record.num_serie))
    _sub(id_factura, "FechaExpedicionFacturaAnulada", format_date(record.fecha_expedicion))
    if record.sin_registro_previo:
        _sub(root, "SinRegistroPrevio", "S")
    if record.rechazo_previo:
        _sub(root, "RechazoPrevio", "S")
    _encadenamiento(root, record.previous)
    _sistema_informatico(root, system)
    _sub(root, "FechaHoraHusoGenRegistro", format_timestamp(record.generated_at))
    _sub(root, "TipoHuella", TIPO_HUELLA_SHA256)
    _sub(root, "Huella", huella_anulacion(record))
    return root


def reg_factu_document(issuer: Issuer, records: Sequence[Record], system: SystemInfo) -> bytes:
    """``sum:RegFactuSistemaFacturacion``: Cabecera/ObligadoEmision and 1..1000 records.

    Returns UTF-8 bytes with an XML declaration (the SOAP envelope is the caller's business).
    """
    if not 1 <= len(records) <= _MAX_REGISTROS:
        raise VerifactuError(f"a submission carries 1..{_MAX_REGISTROS} records")
    obligado = _nif(issuer.nif, "issuer nif")
    root = etree.Element(_q(NS_SUM, "RegFactuSistemaFacturacion"), nsmap=NSMAP)
    cabecera = _sub(root, "Cabecera", ns=NS_SUM)
    obligado_emision = _sub(cabecera, "ObligadoEmision")
    _sub(obligado_emision, "NombreRazon", _text(issuer.name, "issuer name", 120))
    _sub(obligado_emision, "NIF", obligado)
    for record in records:
        if record.issuer.nif.strip() != obligado:
            raise VerifactuError(
                f"record {record.num_serie!r} belongs to {record.issuer.nif}, not to {obligado}"
            )
        registro = _sub(root, "RegistroFactura", ns=NS_SUM)
        if isinstance(record, AltaRecord):
            registro.append(registro_alta_xml(record, system))
        elif isinstance(record, AnulacionRecord):
            registro.append(registro_anulacion_xml(record, system))
        else:
            raise VerifactuError(f"not a VERI*FACTU record: {record!r}")
    etree.cleanup_namespaces(root, top_nsmap=NSMAP)
    result: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    return result


# --- XSD validation (offline) ----------------------------------------------------------------


def standards_dir() -> Path:
    """The folder holding SuministroLR.xsd and its imports (PUENTE_STANDARDS_DIR names the
    `standards` folder; by default the project's, the official files byte for byte)."""
    return xsd.standards_dir("verifactu")


_schema_lock = threading.Lock()  # lxml validators are not meant to be shared across threads


@lru_cache(maxsize=4)
def _load_schema(folder: Path) -> Any:
    main = folder / "SuministroLR.xsd"
    for needed in (main, folder / "SuministroInformacion.xsd", folder / "xmldsig-core-schema.xsd"):
        if not needed.is_file():
            raise VerifactuSchemaError(
                f"VERI*FACTU schema file not found: {needed} "
                "(set PUENTE_STANDARDS_DIR to the 'standards' folder)"
            )
    # The W3C xmldsig schema carries a DOCTYPE with an internal subset: parse without the
    # network and without loading external DTDs; only its internal entities may expand.
    parser = etree.XMLParser(no_network=True, load_dtd=False, resolve_entities="internal")
    parser.resolvers.add(xsd.OfflineResolver(folder, VerifactuSchemaError))
    try:
        return etree.XMLSchema(etree.parse(str(main), parser))
    except (etree.XMLSchemaParseError, etree.XMLSyntaxError) as exc:
        raise VerifactuSchemaError(f"cannot load {main}: {exc}") from exc


def _readable(message: str) -> str:
    return message.replace(f"{{{NS_SUM1}}}", "sum1:").replace(f"{{{NS_SUM}}}", "sum:")


def validate(xml: bytes | Any) -> None:
    """Validate a document (bytes or an lxml element) against SuministroLR.xsd, offline.

    Raises :class:`VerifactuSchemaError` listing every schema error with its line.
    """
    schema = _load_schema(standards_dir())
    if isinstance(xml, bytes | bytearray):
        parser = etree.XMLParser(no_network=True, load_dtd=False, resolve_entities=False)
        try:
            document = etree.fromstring(bytes(xml), parser).getroottree()
        except etree.XMLSyntaxError as exc:
            raise VerifactuSchemaError(f"not well-formed XML: {exc}", [str(exc)]) from exc
    else:
        document = etree.ElementTree(xml)
    with _schema_lock:
        ok = schema.validate(document)
        errors = [f"line {e.line}: {_readable(e.message)}" for e in schema.error_log]
    if not ok:
        listing = "\n".join(f"  - {e}" for e in errors)
        raise VerifactuSchemaError(
            f"document does not validate against SuministroLR.xsd ({len(errors)} errors):\n"
            f"{listing}",
            errors,
        )


# --- QR --------------------------------------------------------------------------------------


def qr_url(
    nif: str,
    num_serie: str,
    fecha: date,
    importe: Decimal,
    production: bool,
    verifactu: bool = True,
) -> str:
    """The AEAT's cotejo URL for an invoice: ValidarQR (VERI*FACTU, production or the test
    portal) or ValidarQRNoVerifactu (a system that keeps its records instead of sending them).

    Values are URL-encoded as UTF-8 with nothing left unescaped ("&" -> %26, " " -> %20,
    "/" -> %2F); ``importe`` is written like ImporteTotal in the record (two decimals).
    """
    params = [
        ("nif", _nif(nif)),
        ("numserie", _num_serie(num_serie)),
        ("fecha", format_date(fecha)),
        ("importe", format_amount(importe, "importe")),
    ]
    query = "&".join(f"{name}={quote(value, safe='', encoding='utf-8')}" for name, value in params)
    if not verifactu:
        base = QR_URL_NO_VERIFACTU
    else:
        base = QR_URL_PRODUCTION if production else QR_URL_TESTS
    return f"{base}?{query}"


def is_verifactu_qr(url: str) -> bool:
    """A QR of a VERI*FACTU invoice (ValidarQR), not of one kept without VERI*FACTU."""
    return not url.startswith(QR_URL_NO_VERIFACTU)


def qr_url_for(record: AltaRecord, production: bool, verifactu: bool = True) -> str:
    return qr_url(
        record.issuer.nif,
        record.num_serie,
        record.fecha_expedicion,
        record.importe_total,
        production,
        verifactu,
    )


def _qr(url: str) -> Any:
    # boost_error=False: keep exactly level M, as the AEAT specifies, instead of letting segno
    # raise the level when the data would fit.
    return segno.make_qr(url, error=QR_ERROR_CORRECTION, boost_error=False)


def _check_size(size_mm: Decimal | int) -> Decimal:
    size = Decimal(str(size_mm))
    if not QR_MIN_MM <= size <= QR_MAX_MM:
        raise VerifactuError(f"the AEAT asks for a QR of 30 to 40 mm, got {size_mm} mm")
    return size


def _quiet_zone(module_mm: Decimal) -> int:
    """Quiet zone in modules: ISO's 4 modules, or more if that were under the AEAT's 2 mm."""
    needed = int((QR_MIN_MARGIN_MM / module_mm).to_integral_value(rounding="ROUND_CEILING"))
    return max(QR_QUIET_ZONE_MODULES, needed)


def qr_png(url: str, *, size_mm: Decimal | int = 35, dpi: int = 300) -> bytes:
    """PNG of the QR: the symbol prints about ``size_mm`` wide at ``dpi`` (30–40 mm per AEAT).

    The quiet zone is 4 modules (ISO/IEC 18004), widened if needed to the AEAT's 2 mm white
    margin. The PNG records ``dpi`` in its pHYs chunk so it prints at the intended size.
    """
    size = _check_size(size_mm)
    qr = _qr(url)
    modules = qr.symbol_size(scale=1, border=0)[0]
    target_px = size / Decimal("25.4") * dpi
    scale = max(1, int((target_px / modules).to_integral_value()))
    module_mm = Decimal(scale) * Decimal("25.4") / dpi
    out = io.BytesIO()
    qr.save(out, kind="png", scale=scale, border=_quiet_zone(module_mm), dpi=dpi)
    return out.getvalue()


def qr_svg(url: str, *, size_mm: Decimal | int = 35) -> bytes:
    """SVG of the QR whose symbol measures ``size_mm`` (30–40 mm), in millimetres.

    The quiet zone is 4 modules (ISO/IEC 18004), widened if needed to the AEAT's 2 mm margin.
    """
    size = _check_size(size_mm)
    qr = _qr(url)
    modules = qr.symbol_size(scale=1, border=0)[0]
    module_mm = size / modules
    out = io.BytesIO()
    qr.save(
        out,
        kind="svg",
        scale=float(module_mm),
        border=_quiet_zone(module_mm),
        unit="mm",
        xmldecl=True,
        svgns=True,
        title="QR tributario",
    )
    return out.getvalue()


__all__ = [
    "NSMAP",
    "NS_SUM",
    "NS_SUM1",
    "QR_URL_NO_VERIFACTU",
    "QR_URL_PRODUCTION",
    "QR_URL_TESTS",
    "AltaRecord",
    "AnulacionRecord",
    "ChainLink",
    "InvoiceRef",
    "Issuer",
    "Recipient",
    "Record",
    "Rectification",
    "SystemInfo",
    "TaxLine",
    "VerifactuError",
    "VerifactuSchemaError",
    "cadena_huella_alta",
    "cadena_huella_anulacion",
    "chain_link",
    "format_amount",
    "format_date",
    "format_rate",
    "format_timestamp",
    "huella",
    "huella_alta",
    "huella_anulacion",
    "huella_of",
    "is_verifactu_qr",
    "qr_png",
    "qr_svg",
    "qr_url",
    "qr_url_for",
    "reg_factu_document",
    "registro_alta_xml",
    "registro_anulacion_xml",
    "standards_dir",
    "validate",
]
