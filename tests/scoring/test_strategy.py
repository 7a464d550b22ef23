"""Strategies: validated data, steps through the gate (refused under a hold), stable balanced arms."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from borrowers.services import complaint_register
from cases.models import ContactAttempt, OverdueAccount
from compliance.models import AuditEvent
from reminders.senders import LocmemSender
from scoring import strategy_services
from scoring.models import Experiment, StrategyStepRun
from scoring.strategy import CHALLENGER, CHAMPION, HOLDOUT, StrategyError, StrategySpec, arm_for
from tests import factories as f

pytestmark = pytest.mark.django_db

SPEC = {"bands": {"high": 0.5, "medium": 0.2},
        "steps": [{"day": 1, "channel": "sms"}, {"day": 3, "channel": "call"},
                  {"day": 10, "channel": "letter"}, {"day": 20, "channel": "visit", "min_balance": "20000"}]}


def zone_at_local_hour(hour: int) -> str:
    now = datetime.now(UTC)
    off = (hour - now.hour) % 24
    if off > 14:
        off -= 24
    return "Etc/GMT" if off == 0 else (f"Etc/GMT-{off}" if off > 0 else f"Etc/GMT+{-off}")


DAY = zone_at_local_hour(12)


def test_strategy_is_validated_on_load():
    spec = StrategySpec.from_dict(SPEC)
    assert [s.channel for s in spec.steps] == ["sms", "call", "letter", "visit"]
    with pytest.raises(StrategyError) as exc:
        StrategySpec.from_dict({"bands": {"high": 0.1, "medium": 0.5},
                                "steps": [{"day": 0, "channel": "fax", "buckets": ["M9"], "oops": 1}]})
    for part in ("medium < high", "day", "channel", "buckets", "unknown keys"):
        assert part in str(exc.value)
    with pytest.raises(ValidationError):
        strategy_services.strategy_publish(actor=None, code="bad", name="Bad", rules={"steps": []})


def test_next_step_by_day_band_bucket_and_balance():
    spec = StrategySpec.from_dict(SPEC)
    assert spec.next_step(day=1, bucket="M1", probability=0.9, balance=Decimal("100"), done=set()).channel == "sms"
    assert spec.next_step(day=2, bucket="M1", probability=0.9, balance=Decimal("100"), done={0}) is None
    assert spec.next_step(day=25, bucket="M1", probability=0.9, balance=Decimal("100"), done={0, 1, 2}) is None
    assert spec.next_step(day=25, bucket="M1", probability=0.9, balance=Decimal("20000"), done={0, 1, 2}).channel == "visit"
    assert spec.band(0.6) == "high" and spec.band(0.3) == "medium" and spec.band(0.1) == "low" and spec.band(None) == "low"


def test_arms_are_stable_and_balanced():
    arms = [arm_for(seed="s1", account_id=i, challenger_share=0.3, holdout_share=0.1) for i in range(20_000)]
    again = [arm_for(seed="s1", account_id=i, challenger_share=0.3, holdout_share=0.1) for i in range(20_000)]
    assert arms == again
    share = {k: v / len(arms) for k, v in Counter(arms).items()}
    assert share[HOLDOUT] == pytest.approx(0.1, abs=0.01)
    assert share[CHALLENGER] == pytest.approx(0.3, abs=0.015)
    assert share[CHAMPION] == pytest.approx(0.6, abs=0.015)
    # Another seed is another split; growing the challenger only moves champions into it.
    other = [arm_for(seed="s2", account_id=i, challenger_share=0.3, holdout_share=0.1) for i in range(20_000)]
    assert sum(a != b for a, b in zip(arms, other, strict=True)) > 5000
    grown = [arm_for(seed="s1", account_id=i, challenger_share=0.4, holdout_share=0.1) for i in range(20_000)]
    assert all(a == b or (a == CHAMPION and b == CHALLENGER) for a, b in zip(arms, grown, strict=True))


@pytest.fixture
def experiment(require_postgres, settings, tmp_path):
    settings.REMINDER_SMS_BACKEND = "reminders.senders.LocmemSender"
    settings.REMINDER_SEND_WINDOW = ""
    lender = f.lender()
    strategy_services.strategy_publish(actor=None, code="std", name="Standard", rules=SPEC,
                                       effective_from=timezone.now() - timedelta(days=1))
    exp = strategy_services.experiment_set(actor=None, lender=lender, champion="std", challenger="",
                                           challenger_share=Decimal("0"), holdout_share=Decimal("0"))
    Experiment.objects.filter(pk=exp.pk).update(started_at=timezone.now() - timedelta(days=1))
    return lender


def test_strategy_step_goes_through_the_gate_and_is_refused_under_a_hold(experiment):
    lender = experiment
    ok = f.account(lender=lender, zones=(DAY,))
    held = f.account(lender=lender, zones=(DAY,), cease=True)
    counts = strategy_services.strategy_steps_run()
    assert counts["done"] == 1 and counts["refused"] == 1
    attempt = ContactAttempt.objects.get(account=ok)
    assert attempt.channel == "sms" and attempt.agent_id is None and attempt.source == "reminder"
    sent = StrategyStepRun.objects.get(account=ok)
    assert sent.state == "done" and sent.detail["attempt_id"] == attempt.pk
    # The message went out through the reminders' sender, keyed by the claimed step (idempotent).
    assert LocmemSender.outbox[f"strategy-{sent.pk}"].to == ok.borrower.phones[0]
    assert AuditEvent.objects.filter(action="cases.contact_attempt.recorded", account_id=ok.pk).exists()
    assert not ContactAttempt.objects.filter(account=held).exists()
    refused = AuditEvent.objects.get(action="compliance.contact.blocked", account_id=held.pk)
    assert refused.data["source"] == "reminder"
    run = StrategyStepRun.objects.get(account=held)
    assert run.state == "refused" and run.detail["violations"]
    assert AuditEvent.objects.filter(action="scoring.strategy.step_refused", account_id=held.pk).exists()
    # Idempotent: the same day again sends nothing twice.
    assert strategy_services.strategy_steps_run()["done"] == 0
    assert ContactAttempt.objects.filter(account=ok).count() == 1


def test_experiment_dashboard_per_arm_with_intervals(client, experiment):
    lender = experiment
    for _ in range(60):
        f.account(lender=lender, zones=(DAY,))
    Experiment.objects.filter(lender=lender).update(challenger="std", challenger_share=Decimal("0.4"),
                                                    holdout_share=Decimal("0.2"))
    strategy_services.strategy_steps_run()
    supervisor = f.user(role="supervisor")
    # Complaints come from the register (one here), counted per arm apart from disputes raised.
    complained = OverdueAccount.objects.filter(lender=lender).first()
    complaint_register(actor=supervisor, account=complained, complainant="A neighbour", contact="",
                       text="Called me about someone else's debt.")
    client.force_login(supervisor)
    r = client.get(reverse("scoring:experiments"), HTTP_ACCEPT_LANGUAGE="en")
    assert r.status_code == 200
    (exp, arms), = r.context["experiments"]
    assert {a["arm"] for a in arms} == {CHAMPION, CHALLENGER, HOLDOUT} and sum(a["n"] for a in arms) == 60
    for a in arms:
        rate, lo, hi = a["contacted_rate"]
        assert 0 <= lo <= rate <= hi <= 1
    assert sum(a["complaints"] for a in arms) == 1 and sum(a["disputes"] for a in arms) == 0
    assert "Complaints received" in r.content.decode()
    agent = f.user(role="agent")
    client.force_login(agent)
    assert client.get(reverse("scoring:experiments")).status_code == 403
