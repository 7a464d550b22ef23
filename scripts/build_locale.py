"""Regenerate locale/zh_Hans from the templates and code plus the translation sources.

Translations live in ``locale_src/*.json`` (``{"English msgid": "中文"}``, one file per area),
so several people can add strings without merge conflicts in one .po file. This script runs
``makemessages``, fills every msgstr from those files, and compiles the .mo.

    .venv/bin/python scripts/build_locale.py          # rebuild
    .venv/bin/python scripts/build_locale.py --check  # list msgids without a translation (exit 1)
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PO = ROOT / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po"


def load_sources() -> dict[str, str]:
    merged: dict[str, str] = {}
    for path in sorted((ROOT / "locale_src").glob("*.json")):
        merged.update(json.loads(path.read_text(encoding="utf-8")))
    return merged


def _unquote(block: str) -> str:
    parts = re.findall(r'"((?:[^"\\]|\\.)*)"', block)
    # Each part is a C-style string literal; Python's literal syntax is the same for these escapes.
    return "".join(ast.literal_eval(f'"{p}"') for p in parts)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


ENTRY = re.compile(r'(?P<head>(?:#.*\n)*)(?:msgctxt (?P<ctx>(?:".*"\n)+))?msgid (?P<id>(?:".*"\n)+)(?:msgid_plural (?P<plural>(?:".*"\n)+))?(?P<strs>(?:msgstr(?:\[\d\])? (?:".*"\n?)+)+)')


def fill(po_text: str, sources: dict[str, str]) -> tuple[str, list[str]]:
    missing: list[str] = []
    out: list[str] = []
    for chunk in po_text.split("\n\n"):
        m = ENTRY.match(chunk + "\n")
        if not m or not m.group("id").strip() or _unquote(m.group("id")) == "":
            out.append(chunk)
            continue
        msgid = _unquote(m.group("id"))
        head = m.group("head").replace("#, fuzzy\n", "")
        head = re.sub(r"^#, fuzzy, ", "#, ", head, flags=re.M)
        # A context-specific entry ("context::msgid") wins over the plain one.
        ctx = _unquote(m.group("ctx")) if m.group("ctx") else ""
        text = sources.get(f"{ctx}::{msgid}") if ctx else None
        text = text if text is not None else sources.get(msgid)
        if text is None:
            missing.append(msgid)
            text = ""
        lines = [head.rstrip("\n")] if head.strip() else []
        if m.group("ctx"):
            lines.append("msgctxt " + m.group("ctx").rstrip("\n"))
        lines.append("msgid " + m.group("id").rstrip("\n"))
        if m.group("plural"):
            lines.append("msgid_plural " + m.group("plural").rstrip("\n"))
            lines.append("msgstr[0] " + _quote(text))
        else:
            lines.append("msgstr " + _quote(text))
        out.append("\n".join(lines))
    return "\n\n".join(out), missing


def policy_strings() -> list[tuple[str, str]]:
    """(context, text) of every citation, name, description and counted label in the seeded policies.

    They are data, not code, so makemessages cannot see them; they are added to the catalogue here so
    that a seeded policy without a zh-Hans wording fails ``--check`` like any other string. The UI
    shows them with ``pgettext("policy", ...)`` (labels through the engine's "compliance" context)."""
    sys.path.insert(0, str(ROOT))
    from compliance.rules.engine import BORROWER_TIMES_CITATION
    from compliance.rules.seeds import POLICY_UPDATES, SEED_POLICIES

    # The rule the borrower's own convenient times add to every policy is cited like policy data.
    found: dict[tuple[str, str], None] = {("policy", BORROWER_TIMES_CITATION): None}
    for policy in [*SEED_POLICIES, *POLICY_UPDATES]:
        for key in ("name", "description"):
            if policy.get(key):
                found[("policy", policy[key])] = None
        for rule in policy.get("rules", []):
            found[("policy", rule["citation"])] = None
            if rule.get("label"):
                found[("compliance", rule["label"])] = None
    return list(found)


def add_policy_entries(po_text: str) -> str:
    present = set()
    for chunk in po_text.split("\n\n"):
        m = ENTRY.match(chunk + "\n")
        if m and m.group("id").strip():
            present.add((_unquote(m.group("ctx")) if m.group("ctx") else "", _unquote(m.group("id"))))
    extra = [f"msgctxt {_quote(ctx)}\nmsgid {_quote(text)}\nmsgstr \"\"" for ctx, text in policy_strings()
             if (ctx, text) not in present]
    return po_text.rstrip("\n") + ("\n\n" + "\n\n".join(extra) if extra else "") + "\n"


def main() -> int:
    check = "--check" in sys.argv
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "servicing.settings"}
    py = sys.executable
    ignore = ["--ignore=.venv/*", "--ignore=tests/*", "--ignore=bench/*", "--ignore=staticfiles/*"]
    subprocess.run([py, "manage.py", "makemessages", "-l", "zh_Hans", "--no-location", "--no-obsolete", *ignore],
                   cwd=ROOT, env=env, check=True, capture_output=True)
    text, missing = fill(add_policy_entries(PO.read_text(encoding="utf-8")), load_sources())
    text = text.replace('"Plural-Forms: nplurals=INTEGER; plural=EXPRESSION;\\n"', '"Plural-Forms: nplurals=1; plural=0;\\n"')
    text = text.replace('#, fuzzy\nmsgid ""\nmsgstr ""', 'msgid ""\nmsgstr ""', 1)
    text = text.replace('"Language: \\n"', '"Language: zh_Hans\\n"')
    text = text.replace('"Content-Type: text/plain; charset=CHARSET\\n"', '"Content-Type: text/plain; charset=UTF-8\\n"')
    PO.write_text(text, encoding="utf-8")
    subprocess.run([py, "manage.py", "compilemessages", "-l", "zh_Hans"], cwd=ROOT, env=env, check=True, capture_output=True)
    if missing:
        print(f"{len(missing)} msgids without a translation (add them to locale_src/<area>.json):")
        for m in missing:
            print(f"  {m!r}")
    else:
        print("all msgids translated")
    return 1 if (check and missing) else 0


if __name__ == "__main__":
    sys.exit(main())
