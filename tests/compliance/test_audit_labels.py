"""Every audit action a user can see has a translated label (compliance/audit_labels.py).

The action codes are collected from the source, not from a list kept by hand: every literal passed as
``action=`` to ``audit_log`` (or an alias of it), every ``{"action": ...}`` event of ``audit_log_many``,
and every call of a *wrapper* - a function that passes one of its parameters (alone or inside an
f-string such as ``f"finance.settlement.{action}"``) as the action - with the values its callers pass.
So adding an audit action without a label, or a new wrapper, makes this test fail."""

from __future__ import annotations

import ast
import importlib
import re
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest
from django.contrib import admin
from django.urls import reverse
from django.utils import translation

from compliance.audit import audit_log
from compliance.audit_labels import ADMIN_OBJECT_LABELS, AUDIT_ACTION_LABELS, audit_action_label

ROOT = Path(__file__).resolve().parent.parent.parent
APPS = ("cases", "compliance", "finance", "borrowers", "reminders", "scoring", "supervision", "servicing")
CODE = re.compile(r"^[a-z_]+(\.[a-z_]+)+$")
CJK = re.compile(r"[\u4e00-\u9fff]")
ADMIN_VERBS = ("added", "changed", "deleted", "password_changed")


def _sources() -> list[tuple[str, ast.Module]]:
    found = []
    for app in APPS:
        for path in sorted((ROOT / app).rglob("*.py")):
            rel = path.relative_to(ROOT)
            if "migrations" in rel.parts or "tests" in rel.parts:
                continue
            module = ".".join(rel.with_suffix("").parts).removesuffix(".__init__")
            found.append((module, ast.parse(path.read_text(encoding="utf-8"))))
    return found


def _params(fn: ast.FunctionDef) -> list[str]:
    a = fn.args
    return [p.arg for p in (*a.posonlyargs, *a.args, *a.kwonlyargs)]


def _call_name(call: ast.Call) -> str | None:
    f = call.func
    return f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None


@dataclass
class Wrapper:
    module: str
    fn: ast.FunctionDef
    template: list  # str pieces and ("param", name) / ("expr", source) holes


class Scan:
    def __init__(self) -> None:
        self.sources = _sources()
        self.codes: dict[str, str] = {}  # code -> where
        self.problems: list[str] = []
        self.wrappers: list[Wrapper] = []
        for module, tree in self.sources:
            self._direct(module, tree)
        for module, tree in self.sources:
            self._wrapper_calls(module, tree)

    # -- audit_log(action=...) and {"action": ...} -----------------------------------------------

    def _add(self, code: str, where: str) -> None:
        if CODE.match(code):
            self.codes.setdefault(code, where)
        else:
            self.problems.append(f"{where}: {code!r} is not a dotted action code")

    def _emitters(self, tree: ast.Module) -> set[str]:
        names = {"audit_log"}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").endswith("audit"):
                names |= {a.asname for a in node.names if a.name == "audit_log" and a.asname}
        return names

    def _direct(self, module: str, tree: ast.Module) -> None:
        if module == "compliance.audit":
            return  # the writer itself (audit_log_many passes its events' actions on)
        emitters = self._emitters(tree)
        enclosing: dict[ast.AST, ast.FunctionDef] = {}
        for fn in ast.walk(tree):
            if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                for node in ast.walk(fn):
                    enclosing[node] = fn  # innermost wins: ast.walk visits outer functions first
        for node in ast.walk(tree):
            where = f"{module}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.Dict):
                for k, v in zip(node.keys, node.values, strict=True):
                    if (isinstance(k, ast.Constant) and k.value == "action" and isinstance(v, ast.Constant)
                            and isinstance(v.value, str) and CODE.match(v.value)):
                        self._add(v.value, where)
            if not (isinstance(node, ast.Call) and _call_name(node) in emitters):
                continue
            action = next((k.value for k in node.keywords if k.arg == "action"), None)
            if action is None:
                self.problems.append(f"{where}: audit_log without action=")
                continue
            fn = enclosing.get(node)
            params = _params(fn) if fn else []
            for piece in self._alternatives(action):
                if isinstance(piece, str):
                    self._add(piece, where)
                elif isinstance(piece, ast.Name) and piece.id in params:
                    self.wrappers.append(Wrapper(module, fn, [("param", piece.id)]))
                elif isinstance(piece, ast.JoinedStr) and fn is not None:
                    self.wrappers.append(Wrapper(module, fn, self._template(piece, params)))
                else:
                    self.problems.append(f"{where}: cannot tell which action {ast.unparse(piece)} is")

    @staticmethod
    def _alternatives(node: ast.expr) -> list:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return [node.value]
        if isinstance(node, ast.IfExp):
            return Scan._alternatives(node.body) + Scan._alternatives(node.orelse)
        return [node]

    @staticmethod
    def _template(node: ast.JoinedStr, params: list[str]) -> list:
        out: list = []
        for v in node.values:
            if isinstance(v, ast.Constant):
                out.append(v.value)
            elif isinstance(v.value, ast.Name) and v.value.id in params:
                out.append(("param", v.value.id))
            else:
                out.append(("expr", ast.unparse(v.value)))
        return out

    # -- calls of the wrappers -------------------------------------------------------------------

    def _values(self, node: ast.expr, namespace: dict, where: str) -> list[str]:
        values = []
        for piece in self._alternatives(node):
            if isinstance(piece, str):
                values.append(piece)
                continue
            try:  # e.g. PlacementBatch.State.APPLIED: formatted as the f-string formats it
                values.append(format(eval(compile(ast.Expression(piece), where, "eval"), namespace)))  # noqa: S307
            except Exception:  # noqa: BLE001
                self.problems.append(f"{where}: cannot tell which action {ast.unparse(piece)} stands for")
        return values

    def _wrapper_calls(self, module: str, tree: ast.Module) -> None:
        names = {w.fn.name for w in self.wrappers}
        if not any(isinstance(n, ast.Call) and _call_name(n) in names for n in ast.walk(tree)):
            return
        namespace = vars(importlib.import_module(module))
        for w in self.wrappers:
            params = _params(w.fn)
            method = bool(params) and params[0] in ("self", "cls")
            for node in ast.walk(tree):
                if not (isinstance(node, ast.Call) and _call_name(node) == w.fn.name):
                    continue
                where = f"{module}:{node.lineno}"
                f = node.func
                if isinstance(f, ast.Name):
                    if module != w.module:
                        continue
                elif isinstance(f, ast.Attribute) and not (isinstance(f.value, ast.Name) and f.value.id in ("self", "cls")):
                    try:
                        target = eval(compile(ast.Expression(f.value), where, "eval"), namespace)  # noqa: S307
                    except Exception:  # noqa: BLE001
                        continue
                    if getattr(target, "__name__", None) != w.module:
                        continue
                elif module != w.module:
                    continue
                positional = params[1:] if method else params
                given = dict(zip(positional, node.args, strict=False))
                given.update({k.arg: k.value for k in node.keywords if k.arg})
                codes = [""]
                for piece in w.template:
                    if isinstance(piece, str):
                        options = [piece]
                    elif piece[0] == "param" and piece[1] in given:
                        options = self._values(given[piece[1]], namespace, where)
                    elif piece[0] == "expr" and piece[1] in EXPANSIONS:
                        options = EXPANSIONS[piece[1]]()
                    else:
                        self.problems.append(f"{where}: cannot tell which action {piece} of {w.fn.name} stands for")
                        options = []
                    codes = [c + o for c in codes for o in options]
                for code in codes:
                    self._add(code, where)


def _audited_admin_models() -> list[str]:
    """``app.model`` of every model whose admin writes ``admin.<app>.<model>.<verb>`` events."""
    return sorted(m._meta.label_lower for m, a in admin.site._registry.items() if hasattr(a, "_audit"))


EXPANSIONS = {"obj._meta.label_lower": _audited_admin_models}


@pytest.fixture(scope="module")
def scan() -> Scan:
    return Scan()


def test_the_scan_understands_every_audit_call(scan):
    assert scan.problems == []
    # Sanity: the scan sees the literal calls, the wrappers and the f-string families.
    for code in ("cases.note.added", "borrowers.dispute.raised", "reminders.reminder.sent", "cases.ageing.run",
                 "finance.statement.issued", "finance.settlement.reopened", "cases.placement.applied",
                 "scoring.strategy.step_refused", "borrowers.access.failed", "admin.cases.user.password_changed",
                 "admin.cases.overdueaccount.deleted", "compliance.audit.verify_requested"):
        assert code in scan.codes, code
    assert len(scan.codes) > 100


def test_every_emitted_action_has_a_label(scan):
    with translation.override("en"):
        missing = sorted(code for code in scan.codes if audit_action_label(code) == code)
    assert missing == [], [f"{c} ({scan.codes[c]})" for c in missing]


def test_every_label_is_translated_to_chinese(scan):
    codes = sorted({*scan.codes, *AUDIT_ACTION_LABELS})
    with translation.override("zh-hans"):
        untranslated = [(c, str(audit_action_label(c))) for c in codes if not CJK.search(str(audit_action_label(c)))]
    assert untranslated == []


def test_admin_events_name_their_object_and_verb():
    for model in _audited_admin_models():
        assert model in ADMIN_OBJECT_LABELS, model
    with translation.override("en"):
        assert audit_action_label("admin.cases.borrower.deleted") == "Admin: borrower deleted"
        assert audit_action_label("admin.cases.user.password_changed") == "Admin: user password changed"
        assert audit_action_label("admin.cases.borrower.exploded") == "admin.cases.borrower.exploded"
        assert audit_action_label("no.such.code") == "no.such.code"
    with translation.override("zh-hans"):
        assert "借款人" in audit_action_label("admin.cases.borrower.deleted")
        assert "委托方" in audit_action_label("admin.cases.lender.changed")


def test_one_table_of_labels():
    from cases.views import presenters
    from supervision import selectors

    assert selectors.AUDIT_ACTION_LABELS is AUDIT_ACTION_LABELS and selectors.audit_action_label is audit_action_label
    assert not hasattr(presenters, "AUDIT_LABELS")  # the case page's timeline calls audit_action_label
    assert audit_action_label("finance.settlement.approved") == AUDIT_ACTION_LABELS["finance.settlement.approved"]
    with translation.override("en"):
        assert audit_action_label("admin.cases.overdueaccount.changed") == "Admin: overdue account changed"
        assert audit_action_label("no.such.code") == "no.such.code"


# ---- the pages ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_settlement_events_are_labelled_on_the_audit_log_and_the_case_page_in_chinese(client):
    from tests import factories as f

    agent, sup = f.user(role="agent"), f.user(role="supervisor")
    acc = f.account(lender=f.lender(), agent=agent)
    audit_log(action="finance.settlement.approved", actor=sup, lender_id=acc.lender_id, account_id=acc.pk,
              borrower_id=acc.borrower_id, data={"amount": Decimal("800.00")})
    with translation.override("zh-hans"):
        label = str(audit_action_label("finance.settlement.approved"))
    assert CJK.search(label)

    client.force_login(sup)
    page = client.get(reverse("supervisor-audit"), {"action": "finance.settlement.approved"},
                      HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert f">{label}</td>" in page

    client.force_login(agent)
    case = client.get(reverse("case-detail", args=[acc.pk]), HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert label in case and "finance.settlement.approved" in case  # the label, with its code beside it
