"""Issue 12, agent items: the call bar on the case page (outcomes per channel, save & next, refusal next
to it), unique HTML ids, and query counts of the queue and case page."""

from __future__ import annotations

import re
from collections import Counter
from html.parser import HTMLParser

import pytest
from django.urls import reverse

from cases import services
from cases.models import ContactAttempt
from tests import factories as f
from tests.cases.test_workspace import DAY, NIGHT

pytestmark = pytest.mark.django_db


@pytest.fixture
def desk():
    lender = f.lender()
    agent = f.user(role="agent")
    return {
        "agent": agent,
        "day": f.account(lender=lender, agent=agent, zones=(DAY,), due_days_ago=90),
        "day2": f.account(lender=lender, agent=agent, zones=(DAY,), due_days_ago=60),
        "night": f.account(lender=lender, agent=agent, zones=(NIGHT,), due_days_ago=120),
    }


def bar_post(**extra):
    return {"bar": "1", "channel": "call", "direction": "outbound", "party": "borrower", **extra}


class _Ids(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids: list[str] = []
        self.label_for: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id"):
            self.ids.append(a["id"])
        if tag == "label" and a.get("for"):
            self.label_for.append(a["for"])


def parse_ids(html: str) -> _Ids:
    p = _Ids()
    p.feed(html)
    return p


def test_case_page_has_no_duplicate_ids_and_every_label_points_at_one_field(client, desk):
    client.force_login(desk["agent"])
    html = client.get(reverse("case-detail", args=[desk["day"].pk])).content.decode()
    parsed = parse_ids(html)
    dupes = [i for i, n in Counter(parsed.ids).items() if n > 1]
    assert dupes == []
    assert set(parsed.label_for) <= set(parsed.ids), set(parsed.label_for) - set(parsed.ids)
    # The payment's Amount label focuses the payment field, not the promise's.
    assert 'for="id_pay-amount"' in html and 'id="id_amount"' in html


def test_call_bar_offers_outcomes_by_channel_and_none_by_default(client, desk):
    client.force_login(desk["agent"])
    r = client.get(reverse("case-detail", args=[desk["day"].pk]))
    bar = {ch["value"]: [o["value"] for o in ch["outcomes"]] for ch in r.context["call_bar"]["channels"]}
    assert "delivered" not in bar["call"] and "busy" in bar["call"] and len(bar["call"]) == 8
    assert "busy" not in bar["letter"] and bar["letter"] == ["delivered", "failed"]
    assert "delivered" not in bar["visit"] and "no_answer" in bar["visit"]
    html = r.content.decode()
    section = html[html.index('id="call-bar"'):html.index('class="case-top"')]
    assert "checked" not in section  # no default outcome
    assert "Ctrl+Enter" in section and "Alt+N" in section and "<kbd>1</kbd>" in section
    # The log panel below stays, collapsed.
    assert re.search(r'<details class="card"\s+id="panel-outreach">', html)


def test_call_bar_saves_through_the_gate(client, desk):
    client.force_login(desk["agent"])
    acc = desk["day"]
    r = client.post(reverse("case-outreach", args=[acc.pk]), bar_post(outcome="busy", notes="line busy"))
    assert r.status_code == 302 and r["Location"].startswith(reverse("case-detail", args=[acc.pk]))
    attempt = ContactAttempt.objects.get(account=acc)
    assert (attempt.outcome, attempt.notes, attempt.source) == ("busy", "line busy", "web")


def test_save_and_next_opens_the_next_callable_account(client, desk):
    client.force_login(desk["agent"])
    # The night account ranks first (more days past due) but may not be called now: skipped.
    client.get(reverse("case-detail", args=[desk["day"].pk]))  # opening it takes the soft lock
    r = client.post(reverse("case-outreach", args=[desk["day"].pk]), bar_post(outcome="no_answer", then="next"))
    assert r.status_code == 302 and r["Location"] == reverse("case-detail", args=[desk["day2"].pk])
    desk["day"].refresh_from_db()
    assert desk["day"].locked_by_id is None  # left for the next account: released for colleagues
    # Nothing else callable: back to the queue.
    r = client.post(reverse("case-outreach", args=[desk["day2"].pk]), bar_post(outcome="no_answer", then="next"))
    assert r["Location"] in (reverse("case-detail", args=[desk["day"].pk]), reverse("queue"))
    desk["day"].status = "closed"
    desk["day"].save(update_fields=["status"])
    r = client.post(reverse("case-outreach", args=[desk["day2"].pk]), bar_post(outcome="busy", then="next"))
    assert r["Location"] == reverse("queue")
    assert ContactAttempt.objects.count() == 3


def test_call_bar_refusal_is_shown_next_to_it(client, desk):
    client.force_login(desk["agent"])
    acc = desk["night"]
    r = client.post(reverse("case-outreach", args=[acc.pk]), bar_post(outcome="no_answer", then="next"))
    assert r.status_code == 409 and r.context["active"] == "bar"
    assert not ContactAttempt.objects.filter(account=acc).exists()
    html = r.content.decode()
    assert html.count('id="refusal"') == 1
    bar = html[html.index('id="call-bar"'):html.index('class="case-top"')]
    assert 'id="refusal"' in bar and "CN.QUIET_HOURS" in bar and "callback-next" in bar
    assert [i for i, n in Counter(parse_ids(html).ids).items() if n > 1] == []


@pytest.mark.parametrize("channel,outcome", [("call", "delivered"), ("letter", "busy"), ("visit", "voicemail")])
def test_an_outcome_the_channel_cannot_have_is_refused(client, desk, channel, outcome):
    client.force_login(desk["agent"])
    r = client.post(reverse("case-outreach", args=[desk["day"].pk]), bar_post(channel=channel, outcome=outcome))
    assert r.status_code == 400 and not ContactAttempt.objects.exists()
    assert r.context["call_bar"]["errors"] and r.context["call_bar"]["channel"] == channel


def test_no_outcome_chosen_is_an_error_on_the_bar(client, desk):
    client.force_login(desk["agent"])
    r = client.post(reverse("case-outreach", args=[desk["day"].pk]), bar_post(notes="kept"))
    assert r.status_code == 400 and r.context["call_bar"]["notes"] == "kept"
    assert [e.split(":")[0] for e in r.context["call_bar"]["errors"]] in (["Outcome"], ["结果"])


def test_payment_form_is_prefixed(client, desk):
    client.force_login(desk["agent"])
    acc = desk["day"]
    from django.utils import timezone
    r = client.post(reverse("case-payment", args=[acc.pk]), {
        "pay-amount": "10.00", "pay-paid_at": timezone.localtime().strftime("%Y-%m-%dT%H:%M"), "pay-method": "cash"})
    assert r.status_code == 302 and acc.payments.count() == 1


def test_case_page_query_count(client, desk, django_assert_max_num_queries):
    client.force_login(desk["agent"])
    url = reverse("case-detail", args=[desk["day"].pk])
    client.get(url)
    services.contact_attempt_record(account=desk["day"], actor=desk["agent"], channel="call", outcome="busy")
    with django_assert_max_num_queries(CASE_PAGE_MAX_QUERIES):
        assert client.get(url).status_code == 200


CASE_PAGE_MAX_QUERIES = 32  # 30 measured with the call bar (it adds none)


# ---- queue ---------------------------------------------------------------------------------


def test_queue_rows_show_last_outcome_attempts_today_and_open_promise(client, desk):
    from datetime import timedelta
    from decimal import Decimal

    from django.utils import timezone

    from cases.models import PromiseToPay

    agent, acc = desk["agent"], desk["day"]
    services.contact_attempt_record(account=acc, actor=agent, channel="call", outcome="no_answer")
    services.contact_attempt_record(account=acc, actor=agent, channel="call", outcome="busy")
    PromiseToPay.objects.create(account=acc, amount=Decimal("1234.50"), currency="CNY",
                                due_date=timezone.localdate() + timedelta(days=2))
    client.force_login(agent)
    r = client.get(reverse("queue"), HTTP_ACCEPT_LANGUAGE="en")
    row = next(row for row in r.context["rows"] if row.account.pk == acc.pk)
    assert row.account.attempts_today == 2 and row.account.open_promise_amount == Decimal("1234.50")
    assert row.account.last_outcome == "busy" and row.last_outcome in ("Busy", "占线")
    html = r.content.decode()
    assert "1,234.50 CNY" in html
    other = next(row for row in r.context["rows"] if row.account.pk == desk["day2"].pk)
    assert other.account.attempts_today == 0 and other.account.open_promise_amount is None and other.last_outcome == ""
    # "Callable now" decides its rows without the columns and adds them for the rows shown: the same values.
    r = client.get(reverse("queue"), {"callable": "on"}, HTTP_ACCEPT_LANGUAGE="en")
    row = next(row for row in r.context["rows"] if row.account.pk == acc.pk)
    assert row.account.attempts_today == 2 and row.account.open_promise_amount == Decimal("1234.50")
    assert row.last_outcome == "Busy" and "1,234.50 CNY" in r.content.decode()


def test_callable_now_filter_and_holds_apart(client, desk):
    held = f.account(lender=desk["day"].lender, agent=desk["agent"], zones=(DAY,))
    held.borrower.dispute = True
    held.borrower.save(update_fields=["dispute"])
    client.force_login(desk["agent"])
    r = client.get(reverse("queue"))
    assert {row.account.pk for row in r.context["workable"]} == {desk["day"].pk, desk["day2"].pk}
    assert {row.account.pk for row in r.context["apart"]} == {desk["night"].pk, held.pk}
    r = client.get(reverse("queue"), {"callable": "on"})
    assert {row.account.pk for row in r.context["rows"]} == {desk["day"].pk, desk["day2"].pk}
    assert r.context["apart"] == [] and r.context["page"].paginator.count == 2
    assert str(held.external_ref) not in r.content.decode()


def test_queue_query_count_with_the_new_columns_and_filter(client, desk, django_assert_max_num_queries):
    for _ in range(30):
        acc = f.account(lender=desk["day"].lender, agent=desk["agent"], zones=(DAY,))
        services.contact_attempt_record(account=acc, actor=desk["agent"], channel="call", outcome="busy")
    client.force_login(desk["agent"])
    client.get(reverse("queue"))
    for params in ({"per": 100}, {"per": 100, "callable": "on"}, {"per": 25, "callable": "on"}):
        with django_assert_max_num_queries(10):
            assert client.get(reverse("queue"), params).status_code == 200


def test_save_and_next_looks_past_a_first_chunk_of_sleeping_borrowers():
    """Save & next decides the queue in chunks: when every account of the first chunk may not be called
    now, the first callable one further down is still found; nothing callable within the scan is None."""
    from django.utils import timezone

    from cases import selectors

    lender, agent = f.lender(), f.user(role="agent")
    current = f.account(lender=lender, agent=agent, zones=(DAY,), due_days_ago=200)
    for _ in range(7):  # rank above the callable one (more days past due), all asleep
        f.account(lender=lender, agent=agent, zones=(NIGHT,), due_days_ago=150)
    callable_ = f.account(lender=lender, agent=agent, zones=(DAY,), due_days_ago=30)
    now = timezone.now()
    assert selectors.queue_next_workable(user=agent, after_id=current.pk, now=now, look_ahead=3) == callable_.pk
    assert selectors.queue_next_workable(user=agent, after_id=current.pk, now=now, look_ahead=3, scan=6) is None
    assert selectors.queue_next_workable(user=agent, after_id=current.pk, now=now, look_ahead=50) == callable_.pk
