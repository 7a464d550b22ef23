"""The one write path for outreach: check, then record or refuse; both audited; nothing bypasses it."""

import ast
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from cases import services
from cases.models import ContactAttempt, GateClosed
from compliance.models import AuditEvent
from tests import factories as f
from tests.cases.test_api import lawful_past_time

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.django_db


def test_direct_creation_is_refused():
    acc = f.account(lender=f.lender())
    with pytest.raises(GateClosed):
        ContactAttempt.objects.create(
            lender=acc.lender, borrower=acc.borrower, account=acc, channel="call", outcome="no_answer",
            occurred_at=timezone.now(), policy_code="CN", policy_version=1,
        )
    with pytest.raises(GateClosed):
        ContactAttempt(lender=acc.lender, borrower=acc.borrower, account=acc, channel="call", outcome="busy",
                       occurred_at=timezone.now(), policy_code="CN", policy_version=1).save()
    assert not ContactAttempt.objects.exists()


def test_no_module_creates_attempts_outside_the_service():
    """Static guard: only cases/services.py may construct ContactAttempt or bulk-create them."""
    offenders = []
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT)
        if rel.parts[0] in {".venv", "tests", "bench"} or "migrations" in rel.parts or rel == Path("cases/services.py"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                fn = node.func
                name = fn.attr if isinstance(fn, ast.Attribute) else getattr(fn, "id", "")
                owner = ast.unparse(fn.value) if isinstance(fn, ast.Attribute) else ""
                if name == "ContactAttempt" or ("ContactAttempt" in owner and name in {"create", "bulk_create", "get_or_create", "update_or_create"}):
                    offenders.append(f"{rel}:{node.lineno}")
    assert offenders == []


def test_bulk_create_is_refused_too():
    acc = f.account(lender=f.lender())
    with pytest.raises(GateClosed):
        ContactAttempt.objects.bulk_create([
            ContactAttempt(lender=acc.lender, borrower=acc.borrower, account=acc, channel="call", outcome="busy",
                           occurred_at=timezone.now(), policy_code="CN", policy_version=1)
        ])


def test_allowed_attempt_recorded_with_audit_in_same_transaction():
    agent = f.user()
    acc = f.account(lender=f.lender(), agent=agent)
    attempt = services.contact_attempt_record(account=acc, actor=agent, channel="call", outcome="right_party_contact",
                                              occurred_at=lawful_past_time())
    assert attempt.pk and attempt.policy_code == "CN" and attempt.policy_version >= 1
    acc.refresh_from_db()
    assert acc.status == "in_contact"
    ev = AuditEvent.objects.get(action="cases.contact_attempt.recorded")
    assert ev.subject_id == str(attempt.pk) and ev.policy_version == attempt.policy_version


@pytest.mark.parametrize("flag", ["cease", "dispute", "attorney", "bankruptcy", "deceased"])
def test_holds_block_and_refusal_is_audited(flag, now_at):
    agent = f.user()
    acc = f.account(lender=f.lender(), agent=agent, **{flag: True})
    now_at(lawful_past_time())
    with pytest.raises(services.ContactRefused) as exc:
        services.contact_attempt_record(account=acc, actor=agent, channel="sms", outcome="delivered")
    assert exc.value.decision.next_allowed_at is None
    assert not ContactAttempt.objects.exists()
    ev = AuditEvent.objects.get(action="compliance.contact.blocked")
    assert ev.actor == agent and ev.data["allowed"] is False and ev.data["next_allowed_at"] is None


def test_inbound_call_recorded_despite_hold():
    agent = f.user()
    acc = f.account(lender=f.lender(), agent=agent, cease=True)
    attempt = services.contact_attempt_record(account=acc, actor=agent, channel="call", outcome="right_party_contact",
                                              direction="inbound", occurred_at=lawful_past_time().replace(hour=23))
    assert attempt.direction == "inbound"


def test_bad_input_raises_validation_error_and_records_nothing():
    acc = f.account(lender=f.lender())
    with pytest.raises(ValidationError):
        services.contact_attempt_record(account=acc, actor=None, channel="fax", outcome="no_answer")
    with pytest.raises(ValidationError):
        services.contact_attempt_record(account=acc, actor=None, channel="call", outcome="no_answer",
                                        occurred_at=timezone.now() + timedelta(hours=2))
    assert not ContactAttempt.objects.exists() and not AuditEvent.objects.exists()


def test_frequency_cap_counts_history_per_debt(now_at):
    """US-MA: a third telephone communication within 7 days is refused, with the time the oldest ages out.
    Version 2 counts calls placed: a busy call does not count, an unanswered one does."""
    agent = f.user()
    acc = f.account(lender=f.lender(), agent=agent, jurisdiction="US-MA", zones=("America/New_York",), currency="USD")
    base = now_at(datetime(2027, 4, 14, 10, 0, tzinfo=ZoneInfo("America/New_York")))  # a Wednesday, US-MA v2
    services.contact_attempt_record(account=acc, actor=agent, channel="call", outcome="busy")
    now_at(base + timedelta(hours=1))
    services.contact_attempt_record(account=acc, actor=agent, channel="call", outcome="no_answer")
    now_at(base + timedelta(days=1))
    services.contact_attempt_record(account=acc, actor=agent, channel="call", outcome="voicemail")
    now_at(base + timedelta(days=2))
    with pytest.raises(services.ContactRefused) as exc:
        services.contact_attempt_record(account=acc, actor=agent, channel="call", outcome="voicemail")
    codes = [v.code for v in exc.value.decision.violations]
    assert codes == ["US-MA.940CMR.TELEPHONE_FREQUENCY"]
    assert exc.value.decision.next_allowed_at == base + timedelta(hours=1, days=7)


def test_published_version_takes_effect_for_checks_at_once():
    """Read-only checks cache policies per process; publishing clears that cache."""
    from cases.gate import contact_check
    from compliance import rules
    from compliance.models import Policy
    from compliance.services import policy_draft_create, policy_publish

    supervisor = f.user(role="supervisor")
    acc = f.account(lender=f.lender())
    # Tomorrow 21:30 in Shanghai (CN allows it): after the publication, which takes effect from now on.
    at = (timezone.localtime(timezone.now(), ZoneInfo("Asia/Shanghai")) + timedelta(days=1)).replace(
        hour=21, minute=30, second=0, microsecond=0)
    assert contact_check(account=acc, channel="call", at=at).allowed
    data = rules.Policy.from_dict(Policy.objects.get(code="CN", version=1).rules).to_dict()
    for rule in data["rules"]:
        if rule["type"] == "time_window":
            for window in rule["windows"]:
                window["end"] = "21:00"
    draft = policy_draft_create(actor=supervisor, code="CN", data=data, effective_from=at - timedelta(days=30))
    assert contact_check(account=acc, channel="call", at=at).allowed  # a draft changes nothing
    policy_publish(actor=supervisor, policy=draft)
    decision = contact_check(account=acc, channel="call", at=at)
    assert not decision.allowed and decision.policy_version == draft.version
