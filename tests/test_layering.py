"""The engine knows no domain: connector/ imports nothing from invoicing/, actions/,
triggers/, providers/ or web/, except the registries reading the explicit ALL tuples."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOMAINS = ("invoicing", "actions", "triggers", "providers", "templates", "web")
# The only doors: the registries read the ALL tuples (and actions.SERVICES) of the packages.
ALLOWED = {
    ("connector/registry.py", "actions"),
    ("connector/registry.py", "triggers"),
    ("connector/registry.py", "templates"),
    ("connector/connections.py", "providers"),
}


def imported(path: Path) -> list[str]:
    """Every module an file imports, at any depth (functions, TYPE_CHECKING blocks too)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def test_the_engine_imports_no_domain_package():
    wrong = [
        (str(path.relative_to(ROOT)), name)
        for path in sorted((ROOT / "connector").rglob("*.py"))
        for name in imported(path)
        if name.split(".")[0] in DOMAINS
        and (str(path.relative_to(ROOT)), name.split(".")[0]) not in ALLOWED
    ]

    assert wrong == []


def test_the_shared_database_module_imports_neither_side():
    assert not [
        n for n in imported(ROOT / "database.py") if n.split(".")[0] in (*DOMAINS, "connector")
    ]


def test_the_check_itself_sees_imports_hidden_in_functions(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from invoicing.service import Invoicing\n")

    assert imported(sample) == ["invoicing.service"]


def test_the_web_and_the_workers_load_the_signing_library_only_to_sign():
    """signxml costs ~11 MB in every process that imports it: only signing loads it."""
    import subprocess
    import sys

    probe = (
        "import sys; import web, connector.worker, invoicing.facturae, invoicing.chain; "
        "print('signxml' in sys.modules)"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )

    assert loaded.stdout.strip() == "False"


def test_the_web_and_the_workers_make_no_password_hash_on_start():
    """scrypt takes 32 MB: a process pays it on its first sign-in with an unknown e-mail
    (connector.accounts), not on start."""
    import subprocess
    import sys

    probe = (
        "import werkzeug.security as w; made = []; real = w.generate_password_hash; "
        "w.generate_password_hash = lambda *a, **k: made.append(1) or real(*a, **k); "
        "import web, connector.worker, connector.accounts; print(len(made))"
    )
    started = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )

    assert started.stdout.strip() == "0"
