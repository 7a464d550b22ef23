"""Every ValidationError a user can see is translated: no service, form or serializer raises one with a bare
string literal or f-string (as the message, or as a value of a {field: message} dict). Checked on the source,
so a new untranslated message fails here rather than reaching a Chinese screen in English."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APPS = ("cases", "compliance", "finance", "borrowers", "reminders", "scoring", "supervision", "servicing")


def _is_literal(node: ast.AST) -> bool:
    return (isinstance(node, ast.Constant) and isinstance(node.value, str)) or isinstance(node, ast.JoinedStr)


def _untranslated() -> list[str]:
    found = []
    for app in APPS:
        for path in (ROOT / app).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if not (isinstance(node, ast.Call) and node.args):
                    continue
                name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
                if name != "ValidationError":
                    continue
                arg = node.args[0]
                values = arg.values if isinstance(arg, ast.Dict) else [arg]
                if any(_is_literal(v) for v in values):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_no_validation_error_carries_an_untranslated_literal():
    assert _untranslated() == []


def test_the_check_sees_a_literal(tmp_path):
    (tmp_path / "cases").mkdir()
    (tmp_path / "cases" / "x.py").write_text('raise ValidationError({"a": f"bad {x}"})\nraise ValidationError(_("ok"))\n')
    globals()["ROOT"], old = tmp_path, ROOT
    try:
        assert _untranslated() == ["cases/x.py:1"]
    finally:
        globals()["ROOT"] = old
