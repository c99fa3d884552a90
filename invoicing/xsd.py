"""The official XSDs under standards/ (byte for byte, see standards/SOURCES.md), read offline."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from lxml import etree

from invoicing.settings import standards_root

XMLDSIG_SCHEMA_URL = "http://www.w3.org/TR/xmldsig-core/xmldsig-core-schema.xsd"


def standards_dir(part: str) -> Path:
    """standards/<part> of the project; PUENTE_STANDARDS_DIR names another `standards`."""
    return standards_root() / part


class OfflineResolver(etree.Resolver):
    """Serves the W3C xmldsig schema from `folder` and refuses every other network URL,
    raising `error(message)`; local files are left to libxml2."""

    def __init__(self, folder: Path, error: Callable[[str], Exception]) -> None:
        super().__init__()
        self.xmldsig = folder / "xmldsig-core-schema.xsd"
        self.error = error

    def resolve(self, url: str | None, pubid: str | None, context: Any) -> Any:
        if url == XMLDSIG_SCHEMA_URL:
            return self.resolve_filename(str(self.xmldsig), context)
        if url and "://" in url and not url.startswith("file:"):
            raise self.error(f"refusing to fetch {url} while loading the schema")
        return None
