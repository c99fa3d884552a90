"""The UI package's shape: one blueprint per area under /ui, areas that import only the shared
module (never each other), and no link in a page or a view naming an endpoint that is gone."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import web.ui
from web.ui import BLUEPRINTS

PACKAGE = Path(web.ui.__file__).parent
SHARED = "common"
AREAS = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem not in ("__init__", SHARED))
TEMPLATES = PACKAGE.parent / "templates"
ENDPOINT = re.compile(r"""url_for\(\s*(['"])([\w.]+)\1""")


def ui_modules_imported_by(name: str, package: Path = PACKAGE) -> set[str]:
    """The web.ui modules a module of the package imports, by their short names."""
    tree = ast.parse((package / f"{name}.py").read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("web.ui."):
                    found.add(alias.name.split(".")[2])
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # from . import x, from .x import y
                module = node.module or ""
                found |= {module.split(".")[0]} if module else {a.name for a in node.names}
            elif node.module == "web.ui":
                found |= {alias.name for alias in node.names}
            elif node.module and node.module.startswith("web.ui."):
                found.add(node.module.split(".")[2])
    return found


def test_there_is_a_module_per_area_and_one_shared_module():
    assert (PACKAGE / f"{SHARED}.py").is_file()
    assert {"runs", "flows", "invoices", "catalog", "documents", "reports", "settings"} <= set(
        AREAS
    )


def test_area_modules_import_no_other_area_only_the_shared_module():
    for area in AREAS:
        assert ui_modules_imported_by(area) <= {SHARED}, f"web/ui/{area}.py imports an area"


def test_the_shared_module_imports_no_area():
    assert ui_modules_imported_by(SHARED) == set()


def test_the_import_guard_sees_every_way_of_importing_an_area(tmp_path):
    source = (
        "import web.ui.runs\nfrom web.ui import flows\nfrom web.ui.invoices import bp\n"
        "from . import catalog\nfrom .reports import bp as b\nfrom web.ui.common import PAGE\n"
    )
    (tmp_path / "probe.py").write_text(source, encoding="utf-8")

    assert ui_modules_imported_by("probe", tmp_path) == {
        "runs",
        "flows",
        "invoices",
        "catalog",
        "reports",
        "common",
    }


def test_each_area_has_its_own_blueprint_registered_under_ui(app):
    names = [bp.name for bp in BLUEPRINTS]
    assert len(names) == len(set(names)) == len(AREAS)
    for area in AREAS:
        assert importlib.import_module(f"web.ui.{area}").bp in BLUEPRINTS, area
    for rule in app.url_map.iter_rules():
        if rule.endpoint.split(".")[0] in names:
            assert rule.rule.startswith("/ui/"), rule.rule


def test_every_endpoint_a_template_or_view_links_to_exists(app):
    sources = [*TEMPLATES.rglob("*.html"), *PACKAGE.parent.rglob("*.py")]
    named = {
        (path.name, match.group(2))
        for path in sources
        for match in ENDPOINT.finditer(path.read_text(encoding="utf-8"))
    }
    assert named, "the pages link somewhere"
    missing = sorted(item for item in named if item[1] not in app.view_functions)
    assert missing == []
