"""Explanations match the features; the queue orders by expected recovery, keeps unlawful accounts
apart and runs a constant number of queries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone, translation

from cases import services as case_services
from cases.models import Payment, PromiseToPay
from scoring import services
from scoring.features import FEATURES, features_load
from scoring.models import AccountScore
from scoring.reasons import reason_text
from tests import factories as f

pytestmark = pytest.mark.django_db


def zone_at_local_hour(hour: int) -> str:
    now = datetime.now(UTC)
    off = (hour - now.hour) % 24
    if off > 14:
        off -= 24
    return "Etc/GMT" if off == 0 else (f"Etc/GMT-{off}" if off > 0 else f"Etc/GMT+{-off}")


DAY, NIGHT = zone_at_local_hour(12), zone_at_local_hour(3)


def _promise(account, *, status: str, days_ago: int) -> None:
    p = PromiseToPay.objects.create(account=account, amount=Decimal("100"), currency="CNY",
                                    due_date=timezone.localdate() - timedelta(days=days_ago), status=status)
    PromiseToPay.objects.filter(pk=p.pk).update(created_at=timezone.now() - timedelta(days=days_ago + 7))


def test_rule_reasons_quote_the_features_of_the_account(require_postgres):
    lender = f.lender()
    acc = f.account(lender=lender, due_days_ago=200, balance="5000.00")
    _promise(acc, status="kept", days_ago=20)
    _promise(acc, status="kept", days_ago=10)
    services.scores_refresh(account_ids=[acc.pk])
    score = AccountScore.objects.get(account=acc)
    assert score.method == "rules"
    batch = features_load(as_of=timezone.now(), account_ids=[acc.pk])
    x = dict(zip(FEATURES, batch.X[0].tolist(), strict=True))
    assert x["promises_kept"] == 2 and x["promises_broken"] == 0 and x["days_past_due"] == 200
    by_feature = {r["f"]: r for r in score.reasons}
    assert by_feature["promises_kept"]["v"] == {"kept": 2, "broken": 0, "total": 2}
    assert by_feature["promises_kept"]["e"] == 1
    with translation.override("en"):
        assert reason_text(by_feature["promises_kept"]) == "↑ kept 2 of 2 promises"
        texts = [reason_text(r) for r in score.reasons]
    assert "↓ never reached" in texts or "↓ 200 days past due" in texts
    with translation.override("zh-hans"):
        assert "2" in reason_text(by_feature["promises_kept"]) and "promises" not in reason_text(by_feature["promises_kept"])
    # The probability is the documented rule: base + points (2 kept, never reached, 200 days past due).
    assert score.probability == pytest.approx(0.30 + 0.20 - 0.10 - 200 / 360 * 0.25)
    assert score.expected_recovery == (Decimal(str(round(score.probability, 6))) * Decimal("5000.00")).quantize(Decimal("0.01"))


def test_no_contact_in_30_days_reason():
    lender = f.lender()
    agent = f.user()
    acc = f.account(lender=lender, agent=agent, zones=(DAY,))
    case_services.contact_attempt_record(account=acc, actor=agent, channel="call", outcome="right_party_contact",
                                         occurred_at=timezone.now() - timedelta(days=45))
    score = services.account_score_refresh(account_id=acc.pk)
    reason = next(r for r in score.reasons if r["f"] == "days_since_contact")
    assert reason["v"]["days"] == 45 and reason["e"] == -1
    with translation.override("en"):
        assert reason_text(reason) == "↓ no contact in 45 days"


def test_account_score_refresh_follows_a_new_payment():
    lender = f.lender()
    acc = f.account(lender=lender, balance="1000.00")
    before = services.account_score_refresh(account_id=acc.pk)
    case_services.payment_record(actor=f.user(), account=acc, amount=Decimal("100"), paid_at=timezone.now())
    after = services.account_score_refresh(account_id=acc.pk)
    assert Payment.objects.filter(account=acc).count() == 1
    assert after.probability > before.probability
    assert any(r["f"] == "days_since_payment" and r["e"] == 1 for r in after.reasons)
    assert after.expected_recovery == (Decimal(str(round(after.probability, 6))) * Decimal("900.00")).quantize(Decimal("0.01"))


@pytest.fixture
def queue_world():
    lender = f.lender()
    agent = f.user(role="agent")
    rich = f.account(lender=lender, agent=agent, balance="50000.00", due_days_ago=40, zones=(DAY,))
    poor = f.account(lender=lender, agent=agent, balance="200.00", due_days_ago=300, zones=(DAY,))
    night = f.account(lender=lender, agent=agent, balance="90000.00", due_days_ago=40, zones=(NIGHT,))
    held = f.account(lender=lender, agent=agent, balance="80000.00", due_days_ago=40, zones=(DAY,), cease=True)
    other = f.account(lender=f.lender(), agent=f.user(role="agent"), balance="99999.00", zones=(DAY,))
    return {"agent": agent, "rich": rich, "poor": poor, "night": night, "held": held, "other": other}


def test_queue_orders_by_expected_recovery_and_keeps_unlawful_accounts_apart(client, queue_world):
    w = queue_world
    # "poor" gets a higher expected recovery than its balance alone would give, by hand.
    services.scores_refresh()
    AccountScore.objects.filter(account=w["poor"]).update(expected_recovery=Decimal("60000"))
    client.force_login(w["agent"])
    r = client.get(reverse("queue"), HTTP_ACCEPT_LANGUAGE="en")
    workable = [row.account.pk for row in r.context["workable"]]
    apart = [row.account.pk for row in r.context["apart"]]
    assert workable == [w["poor"].pk, w["rich"].pk]
    assert set(apart) == {w["night"].pk, w["held"].pk}
    assert w["other"].pk not in workable + apart
    body = r.content.decode()
    assert "Not contactable now" in body and "Expected" in body
    # The reason is on the row: the score's top reasons in the reader's language.
    assert any("days past due" in t or "never reached" in t for t in r.context["workable"][0].score["reasons"])


def test_queue_query_count_is_constant_with_scores(client, queue_world):
    w = queue_world
    lender = w["rich"].lender
    for i in range(40):
        f.account(lender=lender, agent=w["agent"], zones=(DAY if i % 2 else NIGHT,))
    services.scores_refresh()
    client.force_login(w["agent"])
    client.get(reverse("queue"))

    def count(per: int) -> int:
        with CaptureQueriesContext(connection) as ctx:
            r = client.get(reverse("queue"), {"per": per})
        assert r.status_code == 200
        return len(ctx.captured_queries)

    small, big = count(25), count(100)
    assert small == big, (small, big)
    assert big <= 10
