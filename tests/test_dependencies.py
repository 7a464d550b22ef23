"""Dependencies point one way: the compliance core (rules, policies, the check's data, the audit log,
incidents) never imports the cases app or the apps built on it; the cases app never imports the
supervisor console. Checked on the source, so an import inside a function counts too."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ABOVE_COMPLIANCE = {"cases", "supervision", "reminders", "scoring", "borrowers", "finance"}


def _imports(app: str) -> list[tuple[str, str]]:
    found = []
    for path in (ROOT / app).rglob("*.py"):
        if "migrations" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.append((str(path.relative_to(ROOT)), node.module))
            elif isinstance(node, ast.Import):
                found += [(str(path.relative_to(ROOT)), alias.name) for alias in node.names]
    return found


def test_the_compliance_core_does_not_import_the_apps_built_on_it():
    bad = [(f, m) for f, m in _imports("compliance") if m.split(".")[0] in ABOVE_COMPLIANCE]
    assert bad == []


def test_cases_does_not_import_the_supervisor_console():
    bad = [(f, m) for f, m in _imports("cases") if m.split(".")[0] == "supervision"]
    assert bad == []
