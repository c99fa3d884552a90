"""VERI*FACTU: huella (AEAT worked examples), chaining, XML valid against the XSD, QR."""

from __future__ import annotations

import re
import shutil
import struct
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit
from zoneinfo import ZoneInfo

import pytest
from lxml import etree

from invoicing import verifactu
from invoicing.verifactu import (
    NS_SUM1,
    AltaRecord,
    AnulacionRecord,
    ChainLink,
    InvoiceRef,
    Issuer,
    Recipient,
    Rectification,
    SystemInfo,
    TaxLine,
    VerifactuError,
    VerifactuSchemaError,
    cadena_huella_alta,
    cadena_huella_anulacion,
    chain_link,
    format_amount,
    format_timestamp,
    huella_alta,
    huella_anulacion,
    qr_png,
    qr_svg,
    qr_url,
    qr_url_for,
    reg_factu_document,
    registro_alta_xml,
    registro_anulacion_xml,
    validate,
)

D = Decimal
MADRID = ZoneInfo("Europe/Madrid")
NS = {"sum1": NS_SUM1}

SYSTEM = SystemInfo(
    producer_name="Puente Software SL",
    producer_nif="B12345674",
    system_name="Puente",
    system_id="PU",
    version="1.0.0",
    installation_number="INST-0001",
    solo_verifactu=True,
    multi_ot=True,
    multiples_ot=False,
)
ISSUER = Issuer("89890001K", "Empresa Emisora SL")
CUSTOMER = Recipient("Cliente Ejemplo SA", "A78222114")

# --- AEAT worked examples --------------------------------------------------------------------
# Source: AEAT, «Detalle de las especificaciones técnicas para la generación de la huella o hash
# de los registros de facturación», v0.1.2 (27/08/2024), §6 «Ejemplos»: 6.1 first registro de
# alta, 6.2 registro de alta chained to it, 6.3 registro de anulación chained to 6.2.
# (The same strings and digests are reproduced as "official vectors" by several public
# implementations, e.g. Odoo's l10n_es_edi_verifactu tests; the digests below were not computed
# by this module.)
AEAT_ALTA_1_INPUT = (
    "IDEmisorFactura=89890001K&NumSerieFactura=12345678/G33&FechaExpedicionFactura=01-01-2024"
    "&TipoFactura=F1&CuotaTotal=12.35&ImporteTotal=123.45&Huella="
    "&FechaHoraHusoGenRegistro=2024-01-01T19:20:30+01:00"
)
AEAT_ALTA_1_HUELLA = "3C464DAF61ACB827C65FDA19F352A4E3BDC2C640E9E9FC4CC058073F38F12F60"
AEAT_ALTA_2_INPUT = (
    "IDEmisorFactura=89890001K&NumSerieFactura=12345679/G34&FechaExpedicionFactura=01-01-2024"
    "&TipoFactura=F1&CuotaTotal=12.35&ImporteTotal=123.45"
    "&Huella=3C464DAF61ACB827C65FDA19F352A4E3BDC2C640E9E9FC4CC058073F38F12F60"
    "&FechaHoraHusoGenRegistro=2024-01-01T19:20:35+01:00"
)
AEAT_ALTA_2_HUELLA = "F7B94CFD8924EDFF273501B01EE5153E4CE8F259766F88CF6ACB8935802A2B97"
AEAT_ANULACION_INPUT = (
    "IDEmisorFacturaAnulada=89890001K&NumSerieFacturaAnulada=12345679/G34"
    "&FechaExpedicionFacturaAnulada=01-01-2024"
    "&Huella=F7B94CFD8924EDFF273501B01EE5153E4CE8F259766F88CF6ACB8935802A2B97"
    "&FechaHoraHusoGenRegistro=2024-01-01T19:20:40+01:00"
)
AEAT_ANULACION_HUELLA = "177547C0D57AC74748561D054A9CEC14B4C4EA23D1BEFD6F2E69E3A388F90C68"


def aeat_alta(num_serie: str, generated_at: datetime, previous: ChainLink | None) -> AltaRecord:
    """The AEAT examples' invoice: F1 of 01-01-2024, cuota 12.35, total 123.45."""
    return AltaRecord(
        issuer=ISSUER,
        num_serie=num_serie,
        fecha_expedicion=date(2024, 1, 1),
        tipo_factura="F1",
        descripcion_operacion="Ejemplo AEAT",
        destinatario=CUSTOMER,
        # The examples give only the totals; the breakdown does not enter the huella.
        tax_lines=(TaxLine(D("21"), D("111.10"), D("12.35")),),
        cuota_total=D("12.35"),
        importe_total=D("123.45"),
        generated_at=generated_at,
        previous=previous,
    )


AEAT_ALTA_1 = aeat_alta("12345678/G33", datetime(2024, 1, 1, 19, 20, 30, tzinfo=MADRID), None)
AEAT_ALTA_2 = aeat_alta(
    "12345679/G34",
    datetime(2024, 1, 1, 19, 20, 35, tzinfo=MADRID),
    ChainLink("89890001K", "12345678/G33", date(2024, 1, 1), AEAT_ALTA_1_HUELLA),
)
AEAT_ANULACION = AnulacionRecord(
    issuer=ISSUER,
    num_serie="12345679/G34",
    fecha_expedicion=date(2024, 1, 1),
    generated_at=datetime(2024, 1, 1, 19, 20, 40, tzinfo=MADRID),
    previous=ChainLink("89890001K", "12345679/G34", date(2024, 1, 1), AEAT_ALTA_2_HUELLA),
)


def test_the_first_alta_record_hashes_like_the_aeat_example_6_1() -> None:
    assert cadena_huella_alta(AEAT_ALTA_1) == AEAT_ALTA_1_INPUT
    assert huella_alta(AEAT_ALTA_1) == AEAT_ALTA_1_HUELLA


def test_a_chained_alta_record_hashes_like_the_aeat_example_6_2() -> None:
    assert cadena_huella_alta(AEAT_ALTA_2) == AEAT_ALTA_2_INPUT
    assert huella_alta(AEAT_ALTA_2) == AEAT_ALTA_2_HUELLA


def test_an_anulacion_record_hashes_like_the_aeat_example_6_3() -> None:
    assert cadena_huella_anulacion(AEAT_ANULACION) == AEAT_ANULACION_INPUT
    assert huella_anulacion(AEAT_ANULACION) == AEAT_ANULACION_HUELLA


def test_the_aeat_examples_chain_through_chain_link() -> None:
    assert chain_link(AEAT_ALTA_1).huella == AEAT_ALTA_1_HUELLA
    second = replace(AEAT_ALTA_2, previous=chain_link(AEAT_ALTA_1))
    assert huella_alta(second) == AEAT_ALTA_2_HUELLA
    cancel = replace(AEAT_ANULACION, previous=chain_link(second))
    assert huella_anulacion(cancel) == AEAT_ANULACION_HUELLA


def test_the_huella_trims_values_and_the_xml_carries_the_trimmed_text() -> None:
    padded = replace(AEAT_ALTA_1, num_serie="  12345678/G33  ", issuer=Issuer(" 89890001K ", "X"))
    assert huella_alta(padded) == AEAT_ALTA_1_HUELLA
    xml = registro_alta_xml(padded, SYSTEM)
    assert xml.findtext("sum1:IDFactura/sum1:NumSerieFactura", namespaces=NS) == "12345678/G33"
    assert xml.findtext("sum1:IDFactura/sum1:IDEmisorFactura", namespaces=NS) == "89890001K"


def test_a_generation_time_given_in_utc_is_hashed_in_madrid_time() -> None:
    in_utc = replace(AEAT_ALTA_1, generated_at=datetime(2024, 1, 1, 18, 20, 30, tzinfo=UTC))
    assert huella_alta(in_utc) == AEAT_ALTA_1_HUELLA


def test_the_huella_is_64_upper_case_hex_digits() -> None:
    assert re.fullmatch(r"[0-9A-F]{64}", huella_alta(AEAT_ALTA_2))


# --- Formatting ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("12.3", "12.30"),
        ("12", "12.00"),
        ("0", "0.00"),
        ("-0.00", "0.00"),
        ("-12.1", "-12.10"),
        ("123456789012.99", "123456789012.99"),
    ],
)
def test_amounts_are_written_with_exactly_two_decimals(value: str, text: str) -> None:
    assert format_amount(D(value)) == text


@pytest.mark.parametrize("value", [D("12.345"), D("1234567890123.00"), D("NaN"), 12.3])
def test_amounts_that_the_aeat_cannot_read_are_refused(value: object) -> None:
    with pytest.raises(VerifactuError):
        format_amount(value)  # type: ignore[arg-type]


def test_madrid_offset_is_plus_two_in_summer_and_plus_one_in_winter() -> None:
    summer = datetime(2026, 7, 15, 8, 0, 0, tzinfo=UTC)
    winter = datetime(2026, 1, 15, 8, 0, 0, tzinfo=UTC)
    assert format_timestamp(summer) == "2026-07-15T10:00:00+02:00"
    assert format_timestamp(winter) == "2026-01-15T09:00:00+01:00"


def test_the_generation_time_drops_microseconds() -> None:
    moment = datetime(2026, 3, 2, 11, 5, 9, 987654, tzinfo=UTC)
    assert format_timestamp(moment) == "2026-03-02T12:05:09+01:00"


def test_a_naive_generation_time_is_refused() -> None:
    with pytest.raises(VerifactuError, match="timezone-aware"):
        replace(AEAT_ALTA_1, generated_at=datetime(2024, 1, 1, 19, 20, 30))


def test_the_xml_writes_the_same_amounts_and_huella_that_were_hashed() -> None:
    record = replace(AEAT_ALTA_1, cuota_total=D("12.3"), importe_total=D("123.4"))
    xml = registro_alta_xml(record, SYSTEM)
    assert xml.findtext("sum1:CuotaTotal", namespaces=NS) == "12.30"
    assert xml.findtext("sum1:ImporteTotal", namespaces=NS) == "123.40"
    assert "&CuotaTotal=12.30&ImporteTotal=123.40&" in cadena_huella_alta(record)
    assert xml.findtext("sum1:Huella", namespaces=NS) == huella_alta(record)
    assert xml.findtext("sum1:TipoHuella", namespaces=NS) == "01"
    stamp = xml.findtext("sum1:FechaHoraHusoGenRegistro", namespaces=NS)
    assert stamp == "2024-01-01T19:20:30+01:00"


# --- Chaining --------------------------------------------------------------------------------


def invoice(
    num_serie: str, generated_at: datetime, previous: ChainLink | None = None, **changes: Any
) -> AltaRecord:
    record = AltaRecord(
        issuer=ISSUER,
        num_serie=num_serie,
        fecha_expedicion=generated_at.astimezone(MADRID).date(),
        tipo_factura="F1",
        descripcion_operacion="Servicios de consultoría",
        destinatario=CUSTOMER,
        tax_lines=(TaxLine(D("21"), D("100.00"), D("21.00")),),
        cuota_total=D("21.00"),
        importe_total=D("121.00"),
        generated_at=generated_at,
        previous=previous,
    )
    return replace(record, **changes) if changes else record


FIRST = invoice("2026/0001", datetime(2026, 3, 2, 9, 0, tzinfo=UTC))


def test_the_first_record_of_a_chain_says_primer_registro() -> None:
    xml = registro_alta_xml(FIRST, SYSTEM)
    assert xml.findtext("sum1:Encadenamiento/sum1:PrimerRegistro", namespaces=NS) == "S"
    assert xml.find("sum1:Encadenamiento/sum1:RegistroAnterior", namespaces=NS) is None
    assert "&Huella=&" in cadena_huella_alta(FIRST)


def test_the_second_record_carries_the_first_records_huella() -> None:
    second = invoice("2026/0002", datetime(2026, 3, 2, 10, 0, tzinfo=UTC), chain_link(FIRST))
    xml = registro_alta_xml(second, SYSTEM)
    anterior = xml.find("sum1:Encadenamiento/sum1:RegistroAnterior", namespaces=NS)
    assert anterior is not None
    assert anterior.findtext("sum1:IDEmisorFactura", namespaces=NS) == "89890001K"
    assert anterior.findtext("sum1:NumSerieFactura", namespaces=NS) == "2026/0001"
    assert anterior.findtext("sum1:FechaExpedicionFactura", namespaces=NS) == "02-03-2026"
    assert anterior.findtext("sum1:Huella", namespaces=NS) == huella_alta(FIRST)
    assert f"&Huella={huella_alta(FIRST)}&" in cadena_huella_alta(second)


def test_changing_the_first_record_changes_the_second_records_chain_and_huella() -> None:
    when = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    second = invoice("2026/0002", when, chain_link(FIRST))
    tampered_first = replace(FIRST, importe_total=D("121.01"))
    second_after_tampering = invoice("2026/0002", when, chain_link(tampered_first))
    assert huella_alta(tampered_first) != huella_alta(FIRST)
    assert chain_link(tampered_first).huella != chain_link(FIRST).huella
    assert huella_alta(second_after_tampering) != huella_alta(second)


# --- XSD validation --------------------------------------------------------------------------


def scenarios() -> dict[str, list[AltaRecord | AnulacionRecord]]:
    t = datetime(2026, 7, 1, 9, 30, tzinfo=UTC)
    second = invoice("2026/0002", t, chain_link(FIRST))
    simplified = AltaRecord(
        issuer=ISSUER,
        num_serie="T-2026-15",
        fecha_expedicion=date(2026, 7, 1),
        tipo_factura="F2",
        descripcion_operacion="Venta al contado",
        tax_lines=(TaxLine(D("10"), D("10.00"), D("1.00")),),
        cuota_total=D("1.00"),
        importe_total=D("11.00"),
        generated_at=t,
        previous=chain_link(second),
    )
    by_differences = AltaRecord(
        issuer=ISSUER,
        num_serie="R-2026/0001",
        fecha_expedicion=date(2026, 7, 1),
        tipo_factura="R1",
        descripcion_operacion="Abono parcial por descuento posterior",
        destinatario=CUSTOMER,
        rectificacion=Rectification(
            tipo="I", facturas=(InvoiceRef("89890001K", "2026/0001", date(2026, 3, 2)),)
        ),
        tax_lines=(TaxLine(D("21"), D("-10.00"), D("-2.10")),),
        cuota_total=D("-2.10"),
        importe_total=D("-12.10"),
        generated_at=t,
        previous=chain_link(simplified),
    )
    by_substitution = replace(
        by_differences,
        num_serie="R-2026/0002",
        rectificacion=Rectification(
            tipo="S",
            facturas=(InvoiceRef("89890001K", "2026/0001", date(2026, 3, 2)),),
            base_rectificada=D("100.00"),
            cuota_rectificada=D("21.00"),
        ),
        tax_lines=(TaxLine(D("21"), D("90.00"), D("18.90")),),
        cuota_total=D("18.90"),
        importe_total=D("108.90"),
        previous=chain_link(by_differences),
    )
    exempt = invoice(
        "2026/0003",
        t,
        chain_link(by_substitution),
        tax_lines=(
            TaxLine(D("21"), D("100.00"), D("21.00")),
            TaxLine.exempt("E1", D("50.00")),
            TaxLine.not_subject("N1", D("5.00")),
        ),
        importe_total=D("176.00"),
        fecha_operacion=date(2026, 6, 30),
    )
    replacement = invoice(
        "2026/0004",
        t,
        chain_link(exempt),
        tipo_factura="F3",
        facturas_sustituidas=(InvoiceRef("89890001K", "T-2026-15", date(2026, 7, 1)),),
    )
    cancel = AnulacionRecord(
        issuer=ISSUER,
        num_serie="2026/0003",
        fecha_expedicion=date(2026, 7, 1),
        generated_at=t,
        previous=chain_link(replacement),
    )
    first_cancel = replace(cancel, previous=None)
    return {
        "first record": [FIRST],
        "chained record": [FIRST, second],
        "F2 without recipient": [simplified],
        "R1 by differences with FacturasRectificadas": [by_differences],
        "R1 by substitution with ImporteRectificacion": [by_substitution],
        "exempt and not-subject lines": [exempt],
        "F3 with FacturasSustituidas": [replacement],
        "anulación": [cancel],
        "anulación as first record": [first_cancel],
        "a whole chain": [FIRST, second, simplified, by_differences, exempt, cancel],
    }


@pytest.mark.parametrize("name", list(scenarios()))
def test_every_generated_document_validates_against_the_xsd(name: str) -> None:
    document = reg_factu_document(ISSUER, scenarios()[name], SYSTEM)
    assert document.startswith(b"<?xml")
    validate(document)


@pytest.mark.parametrize("name", list(scenarios()))
def test_each_record_element_validates_on_its_own(name: str) -> None:
    for record in scenarios()[name]:
        if isinstance(record, AltaRecord):
            validate(registro_alta_xml(record, SYSTEM))
        else:
            validate(registro_anulacion_xml(record, SYSTEM))


def test_the_document_has_the_cabecera_and_one_registro_factura_per_record() -> None:
    root = etree.fromstring(reg_factu_document(ISSUER, scenarios()["a whole chain"], SYSTEM))
    ns = {"sum": verifactu.NS_SUM, "sum1": NS_SUM1}
    assert root.tag == f"{{{verifactu.NS_SUM}}}RegFactuSistemaFacturacion"
    assert root.findtext("sum:Cabecera/sum1:ObligadoEmision/sum1:NIF", namespaces=ns) == "89890001K"
    kinds = [etree.QName(r[0]).localname for r in root.findall("sum:RegistroFactura", ns)]
    assert kinds == ["RegistroAlta"] * 5 + ["RegistroAnulacion"]


def test_the_r1_by_differences_writes_negative_amounts_and_the_rectified_invoice() -> None:
    record = scenarios()["R1 by differences with FacturasRectificadas"][0]
    assert isinstance(record, AltaRecord)
    xml = registro_alta_xml(record, SYSTEM)
    assert xml.findtext("sum1:TipoRectificativa", namespaces=NS) == "I"
    rectified = "sum1:FacturasRectificadas/sum1:IDFacturaRectificada/sum1:NumSerieFactura"
    assert xml.findtext(rectified, namespaces=NS) == "2026/0001"
    assert xml.findtext("sum1:ImporteTotal", namespaces=NS) == "-12.10"
    assert "&CuotaTotal=-2.10&ImporteTotal=-12.10&" in cadena_huella_alta(record)


def test_an_exempt_line_writes_operacion_exenta_without_rate_or_cuota() -> None:
    record = scenarios()["exempt and not-subject lines"][0]
    assert isinstance(record, AltaRecord)
    detalles = registro_alta_xml(record, SYSTEM).findall(
        "sum1:Desglose/sum1:DetalleDesglose", namespaces=NS
    )
    exempt = detalles[1]
    assert exempt.findtext("sum1:OperacionExenta", namespaces=NS) == "E1"
    assert exempt.find("sum1:TipoImpositivo", namespaces=NS) is None
    assert exempt.find("sum1:CuotaRepercutida", namespaces=NS) is None
    assert detalles[0].findtext("sum1:CalificacionOperacion", namespaces=NS) == "S1"
    assert detalles[0].findtext("sum1:TipoImpositivo", namespaces=NS) == "21.00"


def test_a_broken_document_fails_validation_with_a_readable_message() -> None:
    good = reg_factu_document(ISSUER, [FIRST], SYSTEM)
    broken = good.replace(b"<sum1:CuotaTotal>21.00<", b"<sum1:CuotaTotal>21,00<")
    with pytest.raises(VerifactuSchemaError) as caught:
        validate(broken)
    message = str(caught.value)
    assert "does not validate against SuministroLR.xsd" in message
    assert "sum1:CuotaTotal" in message
    assert "21,00" in message
    assert re.search(r"line \d+:", message)
    assert caught.value.errors


def test_a_document_missing_its_huella_fails_validation() -> None:
    root = etree.fromstring(reg_factu_document(ISSUER, [FIRST], SYSTEM))
    huella = root.find(".//sum1:RegistroAlta/sum1:Huella", namespaces=NS)
    huella.getparent().remove(huella)
    with pytest.raises(VerifactuSchemaError, match="Huella"):
        validate(etree.tostring(root))


def test_xml_that_is_not_well_formed_is_reported_as_such() -> None:
    with pytest.raises(VerifactuSchemaError, match="not well-formed"):
        validate(b"<sum:RegFactuSistemaFacturacion>")


def test_the_schema_folder_can_be_moved_with_puente_standards_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(verifactu.standards_dir(), tmp_path / "standards" / "verifactu")
    monkeypatch.setenv("PUENTE_STANDARDS_DIR", str(tmp_path / "standards"))
    assert verifactu.standards_dir() == tmp_path / "standards" / "verifactu"
    validate(reg_factu_document(ISSUER, [FIRST], SYSTEM))


def test_a_missing_schema_folder_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PUENTE_STANDARDS_DIR", str(tmp_path))
    with pytest.raises(VerifactuSchemaError, match="PUENTE_STANDARDS_DIR"):
        validate(reg_factu_document(ISSUER, [FIRST], SYSTEM))


# --- Input rules -----------------------------------------------------------------------------


def test_a_simplified_invoice_may_not_name_a_recipient() -> None:
    with pytest.raises(VerifactuError, match="F2"):
        replace(FIRST, tipo_factura="F2")  # keeps CUSTOMER


def test_a_full_invoice_needs_a_recipient() -> None:
    with pytest.raises(VerifactuError, match="destinatario"):
        replace(FIRST, destinatario=None)


def test_a_rectifying_invoice_needs_its_rectification_type() -> None:
    with pytest.raises(VerifactuError, match="TipoRectificativa"):
        replace(FIRST, tipo_factura="R1")


def test_a_rectification_by_substitution_needs_the_rectified_amounts() -> None:
    with pytest.raises(VerifactuError, match="ImporteRectificacion"):
        Rectification(tipo="S")


def test_an_exempt_line_cannot_carry_a_tax_amount() -> None:
    with pytest.raises(VerifactuError, match="E1"):
        TaxLine(None, D("50.00"), D("10.50"), exencion="E1")


def test_a_chain_link_needs_a_real_huella() -> None:
    with pytest.raises(VerifactuError, match="64"):
        ChainLink("89890001K", "2026/0001", date(2026, 3, 2), "abc")


def test_num_serie_must_be_printable_ascii() -> None:
    with pytest.raises(VerifactuError, match="ASCII"):
        replace(FIRST, num_serie="2026/Ñ1")


def test_a_document_refuses_records_of_another_issuer() -> None:
    other = Issuer("B12345674", "Otra SL")
    with pytest.raises(VerifactuError, match="belongs to"):
        reg_factu_document(other, [FIRST], SYSTEM)


def test_a_document_needs_at_least_one_record() -> None:
    with pytest.raises(VerifactuError, match=r"1\.\.1000"):
        reg_factu_document(ISSUER, [], SYSTEM)


# --- QR --------------------------------------------------------------------------------------


def test_the_qr_url_follows_the_aeat_example() -> None:
    # AEAT, «Características del QR y especificaciones del servicio de cotejo…» (v0.5.0, §4):
    # https://prewww2.aeat.es/wlpl/TIKE-CONT/ValidarQR?nif=89890001K&numserie=12345678%26G33
    #   &fecha=01-01-2024&importe=241.4
    # This module writes importe as ImporteTotal is written in the record: 241.40.
    url = qr_url("89890001K", "12345678&G33", date(2024, 1, 1), D("241.4"), production=False)
    assert url == (
        "https://prewww2.aeat.es/wlpl/TIKE-CONT/ValidarQR"
        "?nif=89890001K&numserie=12345678%26G33&fecha=01-01-2024&importe=241.40"
    )


def test_the_production_qr_url_points_at_the_agency() -> None:
    url = qr_url("89890001K", "12345678-G33", date(2024, 9, 1), D("241.4"), production=True)
    assert url.startswith("https://www2.agenciatributaria.gob.es/wlpl/TIKE-CONT/ValidarQR?")
    assert "prewww" not in url


def test_the_qr_url_encodes_ampersands_spaces_and_slashes_in_num_serie() -> None:
    url = qr_url("89890001K", "A&B 12/3", date(2026, 7, 1), D("1210"), production=True)
    assert "numserie=A%26B%2012%2F3&" in url
    params = parse_qsl(urlsplit(url).query, keep_blank_values=True)
    assert params == [
        ("nif", "89890001K"),
        ("numserie", "A&B 12/3"),
        ("fecha", "01-07-2026"),
        ("importe", "1210.00"),
    ]


def test_the_qr_url_for_a_record_uses_its_issuer_number_date_and_total() -> None:
    assert qr_url_for(FIRST, production=False) == (
        "https://prewww2.aeat.es/wlpl/TIKE-CONT/ValidarQR"
        "?nif=89890001K&numserie=2026%2F0001&fecha=02-03-2026&importe=121.00"
    )


def test_the_qr_uses_error_correction_level_m() -> None:
    url = qr_url_for(FIRST, production=True)
    assert verifactu._qr(url).error == "M"


def png_size_and_dpi(png: bytes) -> tuple[int, int, int]:
    width, height = struct.unpack(">II", png[16:24])  # IHDR follows the 8-byte signature
    at = png.index(b"pHYs")
    ppm_x, _ppm_y, unit = struct.unpack(">IIB", png[at + 4 : at + 13])
    assert unit == 1  # pixels per metre
    return width, height, round(ppm_x * 0.0254)


def test_the_qr_png_is_a_png_that_prints_between_30_and_40_mm() -> None:
    url = qr_url_for(FIRST, production=True)
    png = qr_png(url)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    width, height, dpi = png_size_and_dpi(png)
    assert width == height
    assert dpi == 300
    qr = verifactu._qr(url)
    modules = qr.symbol_size(scale=1, border=0)[0]
    scale, rest = divmod(width, modules + 2 * 4)
    assert rest == 0
    symbol_mm = modules * scale / dpi * 25.4
    assert 30 <= symbol_mm <= 40
    quiet_zone_mm = 4 * scale / dpi * 25.4
    assert quiet_zone_mm >= 2


def test_the_qr_svg_is_an_svg_document_sized_in_millimetres() -> None:
    svg = qr_svg(qr_url_for(FIRST, production=True), size_mm=30)
    root = etree.fromstring(svg)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    width = root.get("width")
    assert width is not None and width.endswith("mm")
    assert 30 < float(width[:-2]) <= 40  # 30 mm symbol plus its quiet zone


def test_a_qr_outside_the_aeat_size_range_is_refused() -> None:
    with pytest.raises(VerifactuError, match="30 to 40 mm"):
        qr_svg("https://example.invalid", size_mm=25)
