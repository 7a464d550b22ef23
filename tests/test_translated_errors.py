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


def _gettext_in_fstrings(root: Path = ROOT) -> list[str]:
    """``f"{_('text')}"`` is translated at run time only if the catalogue has the text, and makemessages does not
    read calls inside f-strings: once no plain call is left, the translation silently disappears."""
    found = []
    for app in APPS:
        for path in (root / app).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.JoinedStr):
                    for inner in ast.walk(node):
                        if (isinstance(inner, ast.Call) and getattr(inner.func, "id", "") in ("_", "gettext", "pgettext")):
                            found.append(f"{path.relative_to(root)}:{inner.lineno}")
    return found


def test_no_gettext_call_inside_an_f_string(tmp_path):
    assert _gettext_in_fstrings() == []
    (tmp_path / "cases").mkdir()
    (tmp_path / "cases" / "x.py").write_text('body = f"{body} {_(\'Reply STOP to opt out.\')}"\n')
    assert _gettext_in_fstrings(tmp_path) == ["cases/x.py:1"]
