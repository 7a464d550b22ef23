"""Agent workspace views: permissions (404 for what you may not see), the queue (order, bulk contact
status, constant query count), and every action on the case page going through its service, audited."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from cases import services
from cases.models import Callback, ContactAttempt, Note, OverdueAccount, PromiseToPay, RepaymentPlan
from cases.selectors import mask_phone
from compliance.models import AuditEvent
from finance import services as finance_services
from tests import factories as f

pytestmark = pytest.mark.django_db


def zone_at_local_hour(hour: int, now: datetime | None = None) -> str:
    """An IANA zone (Etc/GMT±N) where the wall clock now reads ``hour``:xx - deterministic day/night borrowers."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    off = (hour - now.hour) % 24
    if off > 14:
        off -= 24
    return "Etc/GMT" if off == 0 else (f"Etc/GMT-{off}" if off > 0 else f"Etc/GMT+{-off}")


DAY = zone_at_local_hour(12)
NIGHT = zone_at_local_hour(3)


@pytest.fixture
def world():
    lender, other_lender = f.lender(), f.lender()
    agent, agent2 = f.user(role="agent"), f.user(role="agent")
    supervisor = f.user(role="supervisor")
    return {
        "lender": lender, "agent": agent, "agent2": agent2, "supervisor": supervisor,
        "own": f.account(lender=lender, agent=agent, zones=(DAY,)),
        "night": f.account(lender=lender, agent=agent, zones=(NIGHT,)),
        "colleague": f.account(lender=lender, agent=agent2, zones=(DAY,)),
        "foreign": f.account(lender=other_lender, agent=agent2, zones=(DAY,)),
        "lender_user": f.user(role="lender", lender=lender),
    }


def login(client, user):
    client.force_login(user)
    return client


# ---- permissions ---------------------------------------------------------------------------


def test_agent_cannot_open_another_agents_or_another_lenders_case(client, world):
    login(client, world["agent"])
    assert client.get(reverse("case-detail", args=[world["own"].pk])).status_code == 200
    for key in ("colleague", "foreign"):
        pk = world[key].pk
        assert client.get(reverse("case-detail", args=[pk])).status_code == 404
        # Writes too: nothing recorded on an account the agent cannot see.
        r = client.post(reverse("case-note", args=[pk]), {"body": "x"})
        assert r.status_code == 404
        r = client.post(reverse("case-outreach", args=[pk]), {"channel": "call", "outcome": "no_answer",
                                                              "direction": "outbound", "party": "borrower"})
        assert r.status_code == 404
    assert not Note.objects.exists() and not ContactAttempt.objects.exists()


def test_anonymous_lender_users_and_agents_on_supervisor_pages(client, world):
    r = client.get(reverse("queue"))
    assert r.status_code == 302 and reverse("login") in r["Location"]
    login(client, world["lender_user"])
    assert client.get(reverse("queue")).status_code == 403
    assert client.get(reverse("case-detail", args=[world["own"].pk])).status_code == 403
    login(client, world["agent"])
    assert client.get(reverse("assignment")).status_code == 403
    r = client.post(reverse("case-assign", args=[world["own"].pk]), {"agent": world["agent2"].pk})
    assert r.status_code == 403
    assert OverdueAccount.objects.get(pk=world["own"].pk).assigned_agent == world["agent"]


def test_home_routes_an_agent_to_the_queue(client, world):
    login(client, world["agent"])
    r = client.get(reverse("home"))
    assert r.status_code == 302 and r["Location"] == reverse("queue")


# ---- queue ---------------------------------------------------------------------------------


def test_queue_shows_only_own_open_accounts_with_contact_status_now(client, world):
    OverdueAccount.objects.filter(pk=world["own"].pk)
    closed = f.account(lender=world["lender"], agent=world["agent"], status="paid")
    login(client, world["agent"])
    r = client.get(reverse("queue"))
    assert r.status_code == 200
    rows = {row.account.pk: row for row in r.context["rows"]}
    assert set(rows) == {world["own"].pk, world["night"].pk}
    assert closed.pk not in rows
    assert rows[world["own"].pk].decision.allowed is True
    night = rows[world["night"].pk].decision
    assert night.allowed is False and night.violations[0].code == "CN.QUIET_HOURS"
    # The next lawful time is 08:00 on the borrower's wall clock.
    assert night.next_allowed_at.astimezone(timezone.get_fixed_timezone(0)).minute == 0
    body = r.content.decode()
    assert "Not now" in body or "现在不可" in body


def test_queue_order_follows_the_documented_priority(client, world):
    lender, agent = world["lender"], world["agent"]
    OverdueAccount.objects.filter(pk__in=[world["own"].pk, world["night"].pk]).update(status="closed")
    high_dpd = f.account(lender=lender, agent=agent, due_days_ago=150, zones=(DAY,))
    big = f.account(lender=lender, agent=agent, due_days_ago=40, balance="90000.00", zones=(DAY,))
    small = f.account(lender=lender, agent=agent, due_days_ago=40, balance="100.00", zones=(DAY,))
    broken = f.account(lender=lender, agent=agent, due_days_ago=10, zones=(DAY,))
    promise_today = f.account(lender=lender, agent=agent, due_days_ago=5, zones=(DAY,))
    callback_due = f.account(lender=lender, agent=agent, due_days_ago=1, zones=(DAY,))
    for acc in (high_dpd, big, small, broken, promise_today, callback_due):
        services.account_age(account_id=acc.pk)
    PromiseToPay.objects.create(account=broken, amount=Decimal("10"), currency="CNY", due_date=date.today(), status="broken")
    PromiseToPay.objects.create(account=promise_today, amount=Decimal("10"), currency="CNY",
                                due_date=timezone.localdate())
    Callback.objects.create(account=callback_due, agent=agent, due_at=timezone.now() - timedelta(minutes=5))
    login(client, agent)
    r = client.get(reverse("queue"))
    order = [row.account.pk for row in r.context["rows"]]
    assert order == [callback_due.pk, promise_today.pk, broken.pk, high_dpd.pk, big.pk, small.pk]
    assert "How is this queue ordered?" in r.content.decode() or "队列如何排序" in r.content.decode()


def test_queue_filters_and_search(client, world):
    login(client, world["agent"])
    acc = world["own"]
    phone = acc.borrower.phones[0]
    for params in ({"q": acc.external_ref}, {"q": acc.borrower.name}, {"q": phone[-6:]}):
        rows = client.get(reverse("queue"), params).context["rows"]
        assert [row.account.pk for row in rows] == [acc.pk], params
    assert client.get(reverse("queue"), {"bucket": "M7+"}).context["rows"] == []
    assert len(client.get(reverse("queue"), {"status": "assigned"}).context["rows"]) == 2


@pytest.mark.parametrize("n_small,n_big", [(3, 60)])
def test_queue_query_count_does_not_grow_with_page_size(client, world, n_small, n_big):
    agent, lender = world["agent"], world["lender"]
    for i in range(n_big):
        acc = f.account(lender=lender, agent=agent, zones=(DAY if i % 2 else NIGHT,))
        services.contact_attempt_record(account=acc, actor=agent, channel="call", outcome="right_party_contact",
                                        direction="inbound")
    login(client, agent)
    client.get(reverse("queue"))  # warm session / content types

    def count(per: int) -> int:
        with CaptureQueriesContext(connection) as ctx:
            r = client.get(reverse("queue"), {"per": per})
        assert r.status_code == 200 and len(r.context["rows"]) == min(per, n_big + 2)
        return len(ctx.captured_queries)

    small, big = count(25), count(100)
    assert small == big, (small, big)
    assert big <= 10


def test_queue_max_queries(client, world, django_assert_max_num_queries):
    login(client, world["agent"])
    client.get(reverse("queue"))
    with django_assert_max_num_queries(10):
        client.get(reverse("queue"), {"per": 100})


def test_queue_shows_soft_lock_of_another_user(client, world):
    services.account_lock_acquire(actor=world["supervisor"], account=world["own"])
    login(client, world["agent"])
    rows = {row.account.pk: row for row in client.get(reverse("queue")).context["rows"]}
    assert rows[world["own"].pk].locked_by_other and not rows[world["night"].pk].locked_by_other
    assert world["supervisor"].username in client.get(reverse("queue")).content.decode()


# ---- case page and actions -----------------------------------------------------------------


def test_case_page_shows_status_per_channel_and_takes_the_lock(client, world):
    login(client, world["agent"])
    r = client.get(reverse("case-detail", args=[world["night"].pk]))
    assert r.status_code == 200
    contact = {d["channel"]: d for d in r.context["contact"]}
    assert set(contact) == {"call", "sms", "email", "letter", "visit"}
    assert contact["call"]["allowed"] is False and contact["call"]["next_agent"]
    assert contact["call"]["next_borrower"][0][0] == NIGHT
    acc = OverdueAccount.objects.get(pk=world["night"].pk)
    assert acc.locked_by == world["agent"] and acc.locked_until > timezone.now()
    assert AuditEvent.objects.filter(action="cases.account.locked", account_id=acc.pk).count() == 1
    client.get(reverse("case-detail", args=[acc.pk]))  # re-opening extends, not re-audits
    assert AuditEvent.objects.filter(action="cases.account.locked", account_id=acc.pk).count() == 1
    # PII masked by default.
    assert acc.borrower.phones[0] not in r.content.decode()


def test_log_outreach_allowed_is_recorded_and_on_the_timeline(client, world):
    login(client, world["agent"])
    acc = world["own"]
    r = client.post(reverse("case-outreach", args=[acc.pk]), {
        "channel": "call", "outcome": "no_answer", "direction": "outbound", "party": "borrower", "notes": "rang 3 times",
    })
    assert r.status_code == 302
    attempt = ContactAttempt.objects.get(account=acc)
    assert attempt.agent == world["agent"] and attempt.source == "web" and attempt.notes == "rang 3 times"
    assert AuditEvent.objects.filter(action="cases.contact_attempt.recorded", account_id=acc.pk).exists()
    page = client.get(reverse("case-detail", args=[acc.pk]))
    assert "rang 3 times" in page.content.decode()


def test_log_outreach_refused_records_nothing_and_shows_next_lawful_time(client, world):
    login(client, world["agent"])
    acc = world["night"]
    r = client.post(reverse("case-outreach", args=[acc.pk]), {
        "channel": "call", "outcome": "no_answer", "direction": "outbound", "party": "borrower",
    })
    assert r.status_code == 409
    assert not ContactAttempt.objects.filter(account=acc).exists()
    refusal = r.context["refusal"]
    assert refusal["violations"][0]["code"] == "CN.QUIET_HOURS"
    assert refusal["next_borrower"][0][1].split()[1] == "08:00"
    assert AuditEvent.objects.filter(action="compliance.contact.blocked", account_id=acc.pk).count() == 1


def test_live_check_uses_the_same_check_and_records_nothing(client, world):
    login(client, world["agent"])
    acc = world["night"]
    r = client.get(reverse("case-check", args=[acc.pk]), {"channel": "call"})
    assert r.status_code == 200 and 'data-allowed="0"' in r.content.decode() and "CN.QUIET_HOURS" in r.content.decode()
    r = client.get(reverse("case-check", args=[acc.pk]), {"channel": "letter"})
    assert 'data-allowed="1"' in r.content.decode()
    assert client.get(reverse("case-check", args=[acc.pk]), {"channel": "fax"}).status_code == 400
    assert not AuditEvent.objects.filter(action__startswith="compliance.contact").exists()


def test_promise_payment_note_and_status_change_through_services(client, world):
    login(client, world["agent"])
    acc = world["own"]
    tomorrow = (timezone.localdate() + timedelta(days=1)).isoformat()
    r = client.post(reverse("case-promise", args=[acc.pk]), {"amount": "300.00", "due_date": tomorrow})
    assert r.status_code == 302
    assert PromiseToPay.objects.get(account=acc).amount == Decimal("300.00")
    r = client.post(reverse("case-promise", args=[acc.pk]), {"amount": "99999.00", "due_date": tomorrow})
    assert r.status_code == 400 and PromiseToPay.objects.filter(account=acc).count() == 1
    r = client.post(reverse("case-payment", args=[acc.pk]), {
        "pay-amount": "300.00", "pay-paid_at": timezone.localtime().strftime("%Y-%m-%dT%H:%M"), "pay-method": "alipay"})
    assert r.status_code == 302
    acc.refresh_from_db()
    assert acc.balance == Decimal("700.00") and PromiseToPay.objects.get(account=acc).status == "kept"
    assert client.post(reverse("case-note", args=[acc.pk]), {"body": "wants a plan"}).status_code == 302
    r = client.post(reverse("case-status", args=[acc.pk]), {"status": "dispute", "reason": "says already paid"})
    assert r.status_code == 302
    acc.refresh_from_db()
    assert acc.status == "dispute" and acc.borrower.dispute is True
    actions = set(AuditEvent.objects.filter(account_id=acc.pk).values_list("action", flat=True))
    assert {"cases.promise.created", "cases.payment.recorded", "cases.note.added", "cases.account.status_changed"} <= actions


def test_repayment_plan_total_must_equal_instalments(client, world):
    login(client, world["agent"])
    acc = world["own"]
    # 600 of 1000 is a settlement (issue 13); these terms let it be active at once (tests/cases/test_plans_settlement.py).
    finance_services.settlement_rule_publish(actor=None, lender_id=acc.lender_id, min_percent={},
                                             default_min_percent=Decimal("60"), max_instalments=6,
                                             effective_from=timezone.now() - timedelta(hours=1))
    d1, d2 = timezone.localdate() + timedelta(days=7), timezone.localdate() + timedelta(days=37)
    data = {"plan-total_amount": "600.00", "inst-TOTAL_FORMS": "3", "inst-INITIAL_FORMS": "0",
            "inst-MIN_NUM_FORMS": "0", "inst-MAX_NUM_FORMS": "36",
            "inst-0-due_date": d1.isoformat(), "inst-0-amount": "300.00",
            "inst-1-due_date": d2.isoformat(), "inst-1-amount": "200.00"}
    r = client.post(reverse("case-plan", args=[acc.pk]), data)
    assert r.status_code == 400 and not RepaymentPlan.objects.exists()
    assert "500.00" in r.content.decode()
    data["inst-1-amount"] = "300.00"
    r = client.post(reverse("case-plan", args=[acc.pk]), data)
    assert r.status_code == 302
    plan = RepaymentPlan.objects.get(account=acc)
    assert [(i.seq, i.due_date, i.amount) for i in plan.instalments.all()] == [
        (1, d1, Decimal("300.00")), (2, d2, Decimal("300.00"))]
    acc.refresh_from_db()
    assert acc.status == "plan"
    assert AuditEvent.objects.filter(action="cases.repayment_plan.created", account_id=acc.pk).exists()


def test_callback_at_an_unlawful_time_is_refused_and_audited(client, world):
    login(client, world["agent"])
    acc = world["own"]  # borrower's clock reads 12:xx now, so +13 h is 01:xx: quiet hours
    bad = timezone.localtime() + timedelta(hours=13)
    r = client.post(reverse("case-callback", args=[acc.pk]), {"due_at": bad.strftime("%Y-%m-%dT%H:%M"), "channel": "call"})
    assert r.status_code == 409 and r.context["refusal"]["next_agent"]
    assert not Callback.objects.exists()
    ev = AuditEvent.objects.get(action="compliance.callback.blocked", account_id=acc.pk)
    assert ev.data["violations"][0]["code"] == "CN.QUIET_HOURS"
    good = timezone.localtime() + timedelta(hours=1)
    r = client.post(reverse("case-callback", args=[acc.pk]), {"due_at": good.strftime("%Y-%m-%dT%H:%M"), "channel": "call"})
    assert r.status_code == 302 and Callback.objects.filter(account=acc).count() == 1


def test_reveal_pii_is_audited(client, world):
    login(client, world["agent"])
    acc = world["own"]
    r = client.post(reverse("case-reveal", args=[acc.pk]), HTTP_ACCEPT="application/json")
    assert r.json()["national_id"] == acc.borrower.national_id
    assert r.json()["phones"] == [mask_phone(p) for p in acc.borrower.phones]
    r = client.post(reverse("case-reveal", args=[acc.pk]))
    # An agent gets a number only by starting an outreach the gate allows (issue 10); supervisors see it.
    assert acc.borrower.phones[0] not in r.content.decode()
    events = AuditEvent.objects.filter(action="cases.pii.viewed", account_id=acc.pk)
    assert events.count() == 2 and events.first().actor == world["agent"]
    login(client, world["supervisor"])
    assert acc.borrower.phones[0] in client.post(reverse("case-reveal", args=[acc.pk])).content.decode()


def test_writes_are_refused_while_another_user_holds_the_lock(client, world):
    acc = world["own"]
    services.account_lock_acquire(actor=world["agent"], account=acc)
    login(client, world["supervisor"])
    page = client.get(reverse("case-detail", args=[acc.pk]))
    assert page.context["locked_by_other"]
    r = client.post(reverse("case-note", args=[acc.pk]), {"body": "supervisor note"})
    assert r.status_code == 302 and not Note.objects.exists()
    # Released by its holder: now the supervisor can write.
    login(client, world["agent"])
    client.post(reverse("case-release", args=[acc.pk]))
    login(client, world["supervisor"])
    assert client.post(reverse("case-note", args=[acc.pk]), {"body": "supervisor note"}).status_code == 302
    assert Note.objects.count() == 1


# ---- assignment ----------------------------------------------------------------------------


def test_supervisor_bulk_assigns_and_each_is_audited(client, world):
    lender = world["lender"]
    new = [f.account(lender=lender) for _ in range(3)]
    login(client, world["supervisor"])
    r = client.get(reverse("assignment"), {"agent": "none"})
    assert {a.pk for a in r.context["page"]} >= {a.pk for a in new}
    r = client.post(reverse("assignment"), {"account": [a.pk for a in new], "agent": world["agent2"].pk})
    assert r.status_code == 302
    assert set(OverdueAccount.objects.filter(pk__in=[a.pk for a in new]).values_list("assigned_agent", "status")) == {
        (world["agent2"].pk, "assigned")}
    assert AuditEvent.objects.filter(action="cases.account.assigned", account_id__in=[a.pk for a in new]).count() == 3


def test_bulk_assign_is_all_or_nothing(client, world):
    ok = f.account(lender=world["lender"])
    closed = f.account(lender=world["lender"], status="closed")
    login(client, world["supervisor"])
    client.post(reverse("assignment"), {"account": [ok.pk, closed.pk], "agent": world["agent"].pk})
    assert OverdueAccount.objects.get(pk=ok.pk).assigned_agent is None


def test_supervisor_reassigns_one_account_from_the_case_page(client, world):
    login(client, world["supervisor"])
    acc = world["own"]
    r = client.post(reverse("case-assign", args=[acc.pk]), {"agent": world["agent2"].pk})
    assert r.status_code == 302
    assert OverdueAccount.objects.get(pk=acc.pk).assigned_agent == world["agent2"]
    # The previous agent no longer sees it.
    login(client, world["agent"])
    assert client.get(reverse("case-detail", args=[acc.pk])).status_code == 404


# ---- language ------------------------------------------------------------------------------


def test_queue_and_case_page_in_both_languages(client, world):
    login(client, world["agent"])
    zh = client.get(reverse("queue"), HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    en = client.get(reverse("queue"), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "工作队列" in zh and "Work queue" not in zh
    assert "Work queue" in en
    case_zh = client.get(reverse("case-detail", args=[world["own"].pk]), HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "记录联系" in case_zh and "Log an outreach" not in case_zh
