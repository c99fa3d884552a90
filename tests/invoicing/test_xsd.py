"""The official XSDs are read offline: the xmldsig import from disk, nothing from the network."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from lxml import etree

from invoicing import xsd

IMPORTING = """<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"
  xmlns:ds="http://www.w3.org/2000/09/xmldsig#" targetNamespace="urn:test">
  <xs:import namespace="http://www.w3.org/2000/09/xmldsig#" schemaLocation="{url}"/>
</xs:schema>"""


def load(
    tmp_path: Path, url: str, error: Callable[[str], Exception] = LookupError
) -> etree.XMLSchema:
    path = tmp_path / "importing.xsd"
    path.write_text(IMPORTING.format(url=url))
    parser = etree.XMLParser(no_network=True, load_dtd=False, resolve_entities="internal")
    parser.resolvers.add(xsd.OfflineResolver(xsd.standards_dir("verifactu"), error))
    return etree.XMLSchema(etree.parse(str(path), parser))


def test_the_xmldsig_schema_is_served_from_the_standards_folder(tmp_path):
    schema = load(tmp_path, xsd.XMLDSIG_SCHEMA_URL)  # no network here: it came from disk

    signature = etree.fromstring(b'<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"/>')
    assert schema.validate(etree.ElementTree(signature)) is False  # a real xmldsig type


def test_any_other_network_url_is_refused_with_the_callers_error(tmp_path):
    refused: list[str] = []

    def error(message: str) -> Exception:
        refused.append(message)
        return LookupError(message)

    # libxml2 reports the refused import as a schema that cannot be loaded.
    with pytest.raises(etree.XMLSchemaParseError, match=r"example\.invalid"):
        load(tmp_path, "https://example.invalid/x.xsd", error)

    assert refused == ["refusing to fetch https://example.invalid/x.xsd while loading the schema"]
