"""The catalog: products by SKU with their price and IVA, and CRM product codes mapped to them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import BindParameter, String, bindparam, cast, null, select, union_all
from sqlalchemy.orm import Session, aliased

from invoicing.errors import DocumentStateError, InvalidDocumentError, Said, message_of
from invoicing.models import Product, SkuMapping
from invoicing.money import AmountError, to_decimal, too_many_decimals

IVA_RATES = frozenset(Decimal(r) for r in ("0", "4", "10", "21"))
# Why a 0 % line charges no IVA, as VERI*FACTU codes it, with the mention the invoice carries
# (art. 6.1 j and m RD 1619/2012): exempt (OperacionExenta E1–E6), not subject
# (CalificacionOperacion N1, N2) or the customer pays it (reverse charge, S2).
EXEMPTIONS = {
    "E1": "Operación exenta por el artículo 20 de la Ley 37/1992 del IVA",
    "E2": "Operación exenta por el artículo 21 de la Ley 37/1992 del IVA (exportación)",
    "E3": "Operación exenta por el artículo 22 de la Ley 37/1992 del IVA",
    "E4": "Operación exenta por los artículos 23 y 24 de la Ley 37/1992 del IVA",
    "E5": "Entrega intracomunitaria exenta por el artículo 25 de la Ley 37/1992 del IVA",
    "E6": "Operación exenta por otra causa",
    "N1": "Operación no sujeta al IVA (artículo 7 de la Ley 37/1992 u otros)",
    "N2": "Operación no sujeta al IVA español por las reglas de localización (artículos 68 a "
    "70 de la Ley 37/1992); inversión del sujeto pasivo",
    "S2": "Inversión del sujeto pasivo (artículo 84.Uno.2º de la Ley 37/1992): el IVA lo "
    "declara el destinatario",
}
NOT_SUBJECT = ("N1", "N2")
REVERSE_CHARGE = "S2"


def without_iva(cause: str) -> str:
    """A line's short word for it: "Exenta", "No sujeta" or "Inversión s. p."."""
    if cause in NOT_SUBJECT:
        return "No sujeta"
    return "Inversión s. p." if cause == REVERSE_CHARGE else "Exenta"


def exemption_mention(cause: str | None) -> str:
    """The words an exempt operation carries on every document: "Operación exenta por el
    artículo 20 de la Ley 37/1992 ..." (art. 6.1 j RD 1619/2012)."""
    return EXEMPTIONS.get(cause or "", "Operación exenta de IVA")


@dataclass(frozen=True)
class ProductData:
    sku: str
    name: str
    unit_price: object
    tax_rate: object
    exemption_cause: str | None = None
    withholding_rate: object | None = None  # IRPF the customer withholds, when it applies
    service: bool = False  # a service, not goods: no recargo de equivalencia on it


# IRPF withholding rates are set by the IRPF regulation (RD 439/2007, art. 101 and others: 15 %
# for professional services, 7 % in the first years, 19 % for rents...) and change over time:
# any rate above 0 and below 100 is accepted, with at most two decimals.
WITHHOLDING_DECIMALS = 2


def check_withholding(rate: Decimal, where: str) -> list[tuple[str, str]]:
    """Problems with an IRPF withholding rate (percent)."""
    exponent = rate.normalize().as_tuple().exponent
    if isinstance(exponent, int) and -exponent > WITHHOLDING_DECIMALS:
        return [(f"{where}withholding_rate", too_many_decimals(WITHHOLDING_DECIMALS))]
    if not Decimal(0) < rate < Decimal(100):
        return [
            (
                f"{where}withholding_rate",
                Said(
                    "must be more than 0 and less than 100 (percent)",
                    "debe ser más de 0 y menos de 100 (es un porcentaje, p. ej. 15)",
                ),
            )
        ]
    return []


def check_tax(rate: Decimal, exemption: str | None, where: str) -> list[tuple[str, str]]:
    """Problems with an IVA rate and exemption cause, for any line or product."""
    errors: list[tuple[str, str]] = []
    if rate not in IVA_RATES:
        errors.append(
            (
                f"{where}tax_rate",
                Said(
                    f"{rate} is not a Spanish IVA rate (21, 10, 4 or 0)",
                    f"{rate} no es un tipo de IVA español: usa el 21, el 10, el 4 o el 0",
                ),
            )
        )
    if exemption is not None:
        if exemption not in EXEMPTIONS:
            errors.append(
                (
                    f"{where}exemption_cause",
                    Said(
                        f"{exemption!r} is not an exemption cause ({', '.join(EXEMPTIONS)})",
                        f"«{exemption}» no es una causa de exención: usa una de estas: "
                        f"{', '.join(EXEMPTIONS)}",
                    ),
                )
            )
        elif rate != 0:
            errors.append(
                (
                    f"{where}exemption_cause",
                    Said(
                        "an exempt, not subject or reverse-charge operation carries 0 % IVA; "
                        "set tax_rate to 0",
                        "una operación exenta, no sujeta o con inversión del sujeto pasivo "
                        "lleva un 0 % de IVA: pon el tipo de IVA a 0",
                    ),
                )
            )
    return errors


def create_product(session: Session, data: ProductData) -> Product:
    sku = data.sku.strip()
    errors: list[tuple[str, str]] = []
    if not sku:
        errors.append(("sku", Said("must not be empty", "no puede quedar vacía")))
    if not data.name.strip():
        errors.append(("name", Said("must not be empty", "no puede quedar vacío")))
    values: dict[str, Decimal] = {}
    for name in ("unit_price", "tax_rate"):
        try:
            values[name] = to_decimal(getattr(data, name), name)
        except AmountError as exc:
            errors.append((name, message_of(exc)))
    if "unit_price" in values and values["unit_price"] < 0:
        errors.append(("unit_price", Said("must not be negative", "no puede ser negativo")))
    if "tax_rate" in values:
        errors.extend(check_tax(values["tax_rate"], data.exemption_cause, ""))
    withholding: Decimal | None = None
    if data.withholding_rate is not None:
        try:
            withholding = to_decimal(data.withholding_rate, "withholding_rate")
        except AmountError as exc:
            errors.append(("withholding_rate", message_of(exc)))
        else:
            errors.extend(check_withholding(withholding, ""))
    if errors:
        raise InvalidDocumentError(errors)
    if product_by_sku(session, sku) is not None:
        raise DocumentStateError(
            Said(
                f"product {sku!r} exists already; change it instead",
                f"Ya hay un producto con la referencia «{sku}»: cámbialo en vez de crearlo "
                "otra vez.",
            )
        )
    product = Product(
        sku=sku,
        name=data.name.strip(),
        unit_price=values["unit_price"],
        tax_rate=values["tax_rate"],
        exemption_cause=data.exemption_cause,
        withholding_rate=withholding,
        service=bool(data.service),
    )
    session.add(product)
    session.flush()
    return product


def product_by_sku(session: Session, sku: str) -> Product | None:
    return session.scalar(select(Product).where(Product.sku == sku))


def map_code(session: Session, source: str, external_code: str, sku: str) -> SkuMapping:
    """Make a CRM's product code mean one of our SKUs (replacing an earlier mapping)."""
    product = product_by_sku(session, sku)
    if product is None:
        raise InvalidDocumentError(
            [
                (
                    "sku",
                    Said(
                        f"there is no product {sku!r} in the catalog",
                        f"no hay ningún producto «{sku}» en el catálogo: créalo antes",
                    ),
                )
            ]
        )
    mapping = session.scalar(
        select(SkuMapping).where(
            SkuMapping.source == source, SkuMapping.external_code == external_code
        )
    )
    if mapping is None:
        mapping = SkuMapping(source=source, external_code=external_code)
        session.add(mapping)
    mapping.product_id = product.id
    session.flush()
    return mapping


def source_system(source: str | None) -> str | None:
    """The system a source names: "hubspot" of "hubspot@connection:hs" (a deal's source says
    which integration it came through; a code mapping is the system's, whichever delivered it)."""
    return source.partition("@")[0] if source else source


def resolve(session: Session, codes: Iterable[str], source: str | None) -> dict[str, Product]:
    """The active product each line code means: the source's mapping first, then our own SKU.

    Codes that mean no active product are left out. One statement, however many lines."""
    wanted = set(codes)
    if not wanted:
        return {}
    source = source_system(source)
    if not source:
        own = session.scalars(_OWN, {"codes": list(wanted)})
        return {product.sku: product for product in own if product.active}
    rows = session.execute(_MAPPED_OR_OWN, {"source": source, "codes": list(wanted)}).all()
    found = {code: product for code, product in rows if code is not None and product.active}
    return found | {
        product.sku: product
        for code, product in rows
        if code is None and product.active and product.sku not in found
    }


# Built once: building them (and their cache keys) cost as much as running them, every run.
_CODES: BindParameter[list[str]] = bindparam("codes", expanding=True)
_OWN = select(Product).where(Product.sku.in_(_CODES))
_candidates = union_all(  # (the code mapped, product), then (NULL, product by our own SKU)
    select(SkuMapping.external_code.label("mapped"), *Product.__table__.c)
    .join(Product, SkuMapping.product_id == Product.id)
    .where(SkuMapping.source == bindparam("source"), SkuMapping.external_code.in_(_CODES)),
    select(cast(null(), String).label("mapped"), *Product.__table__.c).where(
        Product.sku.in_(_CODES)
    ),
).subquery()
_MAPPED_OR_OWN = select(_candidates.c.mapped, aliased(Product, _candidates))
