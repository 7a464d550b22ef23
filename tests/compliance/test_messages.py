"""Violation explanations in Chinese: every kind of rule, from real engine decisions.

The engine's English ``message`` stays as it is (audit log, API); ``violation_text`` renders the
same explanation in the active language.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import translation

from compliance.messages import violation_text
from compliance.rules import BorrowerFacts, Proposal, evaluate
from tests.compliance.rules.helpers import POLICIES, call, check, days, local

SH, NY, SY = "Asia/Shanghai", "America/New_York", "Australia/Sydney"
CNP = local(SH, 2025, 6, 11, 12, 0)
NUM = "+8613800000000"


def _decisions():
    """(name, decision) for one refusal of each kind."""
    yield "quiet hours", check("CN", local(SH, 2025, 6, 11, 22, 30), zones=(SH,))
    yield "two zones", check("US", local(NY, 2025, 6, 11, 7, 30), zones=(NY, "America/Los_Angeles"))
    yield "public holiday", check("AU", local(SY, 2025, 12, 25, 12, 0), zones=(SY,))
    yield "daily cap per number", check("CN", CNP, zones=(SH,), phone=NUM, history=[
        call(local(SH, 2025, 6, 11, 8, 10 * k), "no_answer", phone=NUM) for k in range(6)])
    yield "rolling cap", check("US", local(NY, 2025, 6, 11, 12, 0), history=[
        call(local(NY, 2025, 6, 11, 12, 0) - days(k) - timedelta(hours=1), "voicemail") for k in range(7)])
    yield "cooldown", check("US", local(NY, 2025, 6, 11, 12, 0), history=[
        call(local(NY, 2025, 6, 10, 12, 0), "right_party_contact")])
    yield "hold", check("CN", CNP, zones=(SH,), holds=frozenset({"cease"}))
    # December 2026 versions: unknown zone, later conversation, person-wide hold, consent, several debts
    yield "unknown zone", check("US", local(NY, 2026, 12, 9, 22, 0), zones=())
    yield "later call", check("US", local(NY, 2026, 12, 9, 12, 0), outcome="right_party_contact", history=[
        call(local(NY, 2026, 12, 9, 14, 0), "no_answer")])
    yield "person hold", evaluate(policy=POLICIES["CN"], facts=BorrowerFacts(time_zones=(SH,), person_holds=frozenset(
        {"cease"})), history=[], proposal=Proposal(at=local(SH, 2026, 12, 9, 12, 0), channel="call", account_id=1))
    yield "opt-out", evaluate(policy=POLICIES["CN"], facts=BorrowerFacts(
        time_zones=(SH,), consented=frozenset({"email"}), opted_out=frozenset({NUM})), history=[],
        proposal=Proposal(at=local(SH, 2026, 12, 9, 12, 0), channel="sms", account_id=1, address=NUM))
    yield "several debts", check("US", local(NY, 2026, 12, 9, 12, 0), account_id=1, accounts=(2,), history=[
        call(local(NY, 2026, 12, 9, 11, 0) - days(k), "no_answer", account_id=2) for k in range(7)])
    yield "third party", check("CN", CNP, zones=(SH,), party="third_party", history=[
        call(CNP - timedelta(hours=1), "no_answer"), call(CNP - days(1), "promise", channel="visit")])


CASES = list(_decisions())
HAN = re.compile(r"[\u4e00-\u9fff]")
LATIN_WORD = re.compile(r"\b(?!UTC\b)[A-Za-z]{3,}\b")  # English words left in a Chinese sentence


@pytest.mark.parametrize(("name", "decision"), CASES, ids=[n for n, _ in CASES])
def test_each_refusal_reads_in_chinese(name, decision):
    assert not decision.allowed and decision.violations, name
    for v in decision.violations:
        assert v.parts and " ".join(p.render() for p in v.parts) == v.message  # the English is the same data
        with translation.override("zh-hans"):
            zh = violation_text(v)
        with translation.override("en"):
            assert violation_text(v) == v.message
        assert HAN.search(zh), zh
        # Only zone names (Asia/Shanghai), phone numbers and numbers stay Latin.
        leftover = LATIN_WORD.findall(re.sub(r"[A-Za-z_]+/[A-Za-z_]+", "", zh))
        assert leftover == [], (name, zh)
        # The facts survive translation: every number in the English explanation is in the Chinese one.
        assert {int(n) for n in re.findall(r"\d+", v.message)} <= {int(n) for n in re.findall(r"\d+", zh)}, (name, zh)


def test_a_policy_label_without_a_translation_is_shown_as_written():
    from compliance.rules import Violation
    from compliance.rules.text import Text, Word

    v = Violation("X.CUSTOM", "3 robo-calls", "", (Text("%(message)s", (("message", Word("robo-calls only")),)),))
    with translation.override("zh-hans"):
        assert violation_text(v) == "robo-calls only"


@pytest.mark.django_db
def test_the_case_page_shows_the_chinese_explanation():
    """The agent's refusal panel: translated title and translated details."""
    from cases.views.presenters import present_decision
    from tests import factories as f

    lender = f.lender()
    agent = f.user(role="agent")
    borrower = f.borrower(lender=lender, jurisdiction="CN", zones=(SH,), cease=True)
    decision = check("CN", CNP, zones=(SH,), holds=frozenset({"cease"}))
    with translation.override("zh-hans"):
        shown = present_decision(decision, borrower=borrower, user=agent, channel="call")
    (v,) = shown["violations"]
    assert v["message"] == "借款人已要求停止联系（停止催收通知）；不得进行任何联系。"
