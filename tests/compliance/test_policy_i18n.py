"""Policy data in Chinese: every citation, name, description and counted label of the seeded
policies has a zh-Hans wording (the CI check fails otherwise), and the UI words are unambiguous."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest
from django.utils import translation
from django.utils.translation import gettext, pgettext

ROOT = Path(__file__).resolve().parents[2]
CJK = re.compile(r"[\u4e00-\u9fff]")


def _build_locale():
    spec = importlib.util.spec_from_file_location("build_locale", ROOT / "scripts" / "build_locale.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BUILD = _build_locale()
STRINGS = BUILD.policy_strings()


def test_policy_strings_cover_every_citation_name_and_label():
    from compliance.rules.seeds import POLICY_UPDATES, SEED_POLICIES

    texts = {t for _c, t in STRINGS}
    for policy in [*SEED_POLICIES, *POLICY_UPDATES]:
        assert policy["name"] in texts
        for rule in policy["rules"]:
            assert rule["citation"] in texts
            assert rule.get("label", rule["citation"]) in texts


@pytest.mark.parametrize(("ctx", "text"), STRINGS, ids=[t[:60] for _c, t in STRINGS])
def test_seeded_policy_string_has_a_zh_translation(ctx, text):
    sources = BUILD.load_sources()
    zh = sources.get(f"{ctx}::{text}") or sources.get(text)
    assert zh, f"no zh-Hans translation for {ctx}::{text!r} (add it to locale_src/policies.json)"
    assert CJK.search(zh), zh
    # The compiled catalogue serves it (build_locale.py was run after the source changed).
    with translation.override("zh-hans"):
        assert pgettext(ctx, text) == zh


def test_cn_citations_render_in_chinese():
    from compliance.rules.seeds import SEED_POLICIES

    cn = next(p for p in SEED_POLICIES if p["code"] == "CN")
    with translation.override("zh-hans"):
        for rule in cn["rules"]:
            assert not re.search(r"[A-Za-z]{4,}", pgettext("policy", rule["citation"])), rule["citation"]


def test_reminders_recipient_column_is_not_the_date_filter_word():
    with translation.override("zh-hans"):
        assert pgettext("recipient", "To") == "收件人"
        assert gettext("To") == "结束日期"


def test_one_word_for_lender():
    for path in (ROOT / "locale_src").glob("*.json"):
        for en, zh in json.loads(path.read_text(encoding="utf-8")).items():
            if "lender" in en.lower():
                assert not re.search("贷款机构|放款机构|委托机构|出借方|贷款方", zh), (path.name, en, zh)
