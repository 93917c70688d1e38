"""Dependencies point inward: the core and the policies import no web framework, CLI library or PKCS#11."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {
    "flask",
    "flask_login",
    "flask_wtf",
    "werkzeug",
    "waitress",
    "uvicorn",
    "click",
    "PyKCS11",
    "tokens",
    "web",
}
# Adapters that may import them: the CLI package imports click (and starts web/ for `pkictl serve`);
# bootstrap wires tokens/ in.
ALLOWED = {
    **{p: {"click", "web", "waitress", "uvicorn"} for p in (ROOT / "pki" / "cli").glob("*.py")},
    ROOT / "pki" / "bootstrap.py": {"tokens"},
    # The USB key commands open the PKCS#11 module and the token (an adapter, like bootstrap).
    ROOT / "pki" / "cli" / "token_commands.py": {"click", "tokens"},
    ROOT / "pki" / "cli" / "token_admin_commands.py": {"click", "tokens"},
}
CORE_FILES = sorted([*(ROOT / "pki").rglob("*.py"), *(ROOT / "policies").rglob("*.py")])


def _imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("path", CORE_FILES, ids=[str(p.relative_to(ROOT)) for p in CORE_FILES])
def test_core_source_imports_nothing_outward(path: Path) -> None:
    bad = (_imported_roots(path) & FORBIDDEN) - ALLOWED.get(path, set())
    assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_loading_the_service_loads_no_adapter_library() -> None:
    code = (
        "import sys, pki.services, pki.bootstrap, pki.serialize, policies;"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {sorted(FORBIDDEN)!r});"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == ""


def test_cli_help_does_not_load_the_database_stack() -> None:
    heavy = ("sqlalchemy", "sqlmodel", "alembic", "argon2")
    code = f"import sys, pki.cli; print(','.join(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == ""
