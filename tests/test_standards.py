"""The XSDs we validate against are the official files, byte for byte, as SOURCES.md lists."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from connector.settings import PROJECT_ROOT

STANDARDS = PROJECT_ROOT / "standards"


def listed() -> dict[str, str]:
    """file → sha256, from the provenance table in standards/SOURCES.md."""
    table = (STANDARDS / "SOURCES.md").read_text(encoding="utf-8")
    rows = re.findall(
        r"^\| ([\w/.-]+\.xsd) \|.*\| ([0-9a-f]{64}|\(same file as [^)]+\)) \|$", table, re.M
    )
    sums = {name: digest for name, digest in rows if len(digest) == 64}
    for name, note in rows:
        if len(note) != 64:
            sums[name] = sums[note.removeprefix("(same file as ").rstrip(")")]
    return sums


def test_every_shipped_schema_matches_its_published_checksum():
    sums = listed()
    shipped = sorted(p.relative_to(STANDARDS).as_posix() for p in STANDARDS.rglob("*.xsd"))
    assert shipped == sorted(sums), "standards/ and SOURCES.md list different files"
    for name in shipped:
        digest = hashlib.sha256(Path(STANDARDS / name).read_bytes()).hexdigest()
        assert digest == sums[name], f"{name} is not the official file"
