"""Supervisor dashboard: KPI tiles, daily trends, formatted money and rates, rule names, bounded queries."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from cases.models import Payment, PromiseToPay
from cases.services import ContactRefused
from supervision import dashboards
from tests import factories as f

# The console tests' fixtures (seeded policies; a lender, agent, supervisor and account) and helpers.
from tests.compliance.test_console import _past_local, _record, _seeded_policies, world  # noqa: F401

pytestmark = pytest.mark.django_db


def _activity(world, now_at):  # noqa: F811
    acc, agent = world["account"], world["agent"]
    _record(acc, agent, _past_local(2, 10), outcome="right_party_contact")
    _record(acc, agent, _past_local(2, 11), outcome="no_answer")
    with pytest.raises(ContactRefused):
        _record(acc, agent, _past_local(1, 23), now_at=now_at)
    PromiseToPay.objects.create(account=acc, amount=Decimal("500"), currency=acc.currency, status="kept",
                                due_date=timezone.localdate() - timedelta(days=1), created_by=agent)
    Payment.objects.create(account=acc, amount=Decimal("1234567.80"), currency=acc.currency,
                           paid_at=_past_local(1, 12))


def test_dashboard_tiles_trends_money_and_rule_names(client, world, now_at):  # noqa: F811
    _activity(world, now_at)
    client.force_login(world["sup"])
    html = client.get(reverse("supervisor-home"), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert 'data-kpi="attempts"><span>Attempts</span><strong>2</strong>' in html
    assert 'data-kpi="promises"><span>Promises made / kept</span><strong>1 / 1</strong>' in html
    assert "1,234,567.80" in html  # thousands separators in the recovered tile and tables
    assert html.count('class="chart trend"') == 3  # contacts, promises kept, recovered (one currency)
    # The refusal row names the rule (its code stays beside it, small).
    assert 'Outside the hours the borrower may be contacted <span class="mono muted">CN.QUIET_HOURS</span>' in html
    assert "50%" in html  # contact rate 1 of 2, as in the charts
    zh = client.get(reverse("supervisor-home"), HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "1,234,567.80" in zh and "每日接通数" in zh and "CN.QUIET_HOURS" in zh

    trends = dashboards.daily_trends(dashboards.DashboardFilters(
        date_from=timezone.localdate() - timedelta(days=6), date_to=timezone.localdate()))
    day = _past_local(2, 10).date()
    assert len(trends.days) == 7 and trends.attempts[day] == 2 and trends.contacts[day] == 1
    assert sum(trends.promises_kept.values()) == 1
    assert list(trends.recovered) == [world["account"].currency]


def test_rates_rounded_like_the_charts():
    assert dashboards.pct(None) == "–"
    assert dashboards.pct(0.0456) == "4.6%"
    assert dashboards.pct(0.5) == "50%"


def test_dashboard_query_count_is_bounded(client, world, now_at, django_assert_max_num_queries):  # noqa: F811
    _activity(world, now_at)
    client.force_login(world["sup"])
    client.get(reverse("supervisor-home"))  # warm the session and caches
    # 23 today: session and user, 2 x 4 GROUP BYs (by lender, by agent), names, buckets, rules, 3 trends,
    # open incidents, complaints (one GROUP BY per lender UNION ALL the total), last verification.
    with django_assert_max_num_queries(23) as captured:
        small = client.get(reverse("supervisor-home"))
    # Ten times the lenders, agents and attempts: the same number of queries (GROUP BY, not per row).
    for _ in range(10):
        lender, agent = f.lender(), f.user(role="agent")
        _record(f.account(lender=lender, agent=agent), agent, _past_local(3, 10), outcome="right_party_contact")
    with django_assert_max_num_queries(23) as captured_big:
        big = client.get(reverse("supervisor-home"))
    assert small.status_code == big.status_code == 200
    assert len(captured_big.captured_queries) == len(captured.captured_queries)
