"""Complaints register on the supervisor dashboard: received, open, overdue, answered late, median days
to answer, per lender and in total; the period and the lender filter; the open/overdue tile; one query."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from borrowers.models import Complaint
from supervision import dashboards
from tests import factories as f

pytestmark = pytest.mark.django_db


def _complaint(account, *, received_days_ago: int, deadline_days_ago: int, answered_days_ago: int | None = None,
               now=None) -> Complaint:
    now = now or timezone.now()
    today = timezone.localdate()
    answered = answered_days_ago is not None
    c = Complaint.objects.create(
        account=account, source="borrower", text="They called at night.",
        deadline=today - timedelta(days=deadline_days_ago),
        status="answered" if answered else "open", answer="We looked into it." if answered else "",
        answered_at=now - timedelta(days=answered_days_ago) if answered else None)
    Complaint.objects.filter(pk=c.pk).update(created_at=now - timedelta(days=received_days_ago))
    return c


@pytest.fixture
def register():
    now = timezone.now()
    l1, l2 = f.lender(), f.lender()
    a1, a2 = f.account(lender=l1), f.account(lender=l2)
    # Lender 1, all received in the last 30 days:
    _complaint(a1, received_days_ago=5, deadline_days_ago=-10, answered_days_ago=3, now=now)    # 2 days, on time
    _complaint(a1, received_days_ago=20, deadline_days_ago=10, answered_days_ago=10, now=now)   # 10 days, on the deadline day
    _complaint(a1, received_days_ago=25, deadline_days_ago=10, answered_days_ago=8, now=now)    # 17 days, late
    _complaint(a1, received_days_ago=20, deadline_days_ago=5, now=now)                          # open, overdue
    _complaint(a1, received_days_ago=90, deadline_days_ago=75, answered_days_ago=80, now=now)   # long ago: not counted
    # Lender 2: one open and in time; one received long ago, still open and overdue (backlog only).
    _complaint(a2, received_days_ago=3, deadline_days_ago=-12, now=now)
    _complaint(a2, received_days_ago=60, deadline_days_ago=45, now=now)
    return {"l1": l1, "l2": l2}


def _filters(**kw) -> dashboards.DashboardFilters:
    today = timezone.localdate()
    return dashboards.DashboardFilters(date_from=today - timedelta(days=29), date_to=today, **kw)


def _figures(row: dashboards.ComplaintRow) -> tuple:
    return (row.received, row.answered, row.answered_late, row.median_days_text, row.open, row.overdue,
            row.open_now, row.overdue_now)


def test_figures_per_lender_and_in_total(register):
    rows, total = dashboards.complaint_stats(_filters(), lender_names={})
    by_lender = {r.key: r for r in rows}
    # received, answered, late, median days (2, 10, 17 -> 10), still open, overdue, backlog open, backlog overdue
    assert _figures(by_lender[register["l1"].pk]) == (4, 3, 1, "10.0", 1, 1, 1, 1)
    assert _figures(by_lender[register["l2"].pk]) == (1, 0, 0, "–", 1, 0, 2, 1)
    assert _figures(total) == (5, 3, 1, "10.0", 2, 1, 3, 2)
    assert [r.key for r in rows] == [register["l1"].pk, register["l2"].pk]  # most received first


def test_median_of_an_even_number_is_interpolated(register):
    """Only the period's last 7 days: lender 1's 2-day answer and nothing else -> 2.0; widen to 21 days:
    2 and 10 days -> 6.0."""
    today = timezone.localdate()
    week = dashboards.DashboardFilters(date_from=today - timedelta(days=6), date_to=today)
    three_weeks = dashboards.DashboardFilters(date_from=today - timedelta(days=20), date_to=today)
    assert dashboards.complaint_stats(week, lender_names={})[1].median_days_text == "2.0"
    assert dashboards.complaint_stats(three_weeks, lender_names={})[1].median_days_text == "6.0"


def test_lender_filter(register):
    rows, total = dashboards.complaint_stats(_filters(lender_id=register["l2"].pk), lender_names={})
    assert [r.key for r in rows] == [register["l2"].pk]
    assert _figures(total) == (1, 0, 0, "–", 1, 0, 2, 1)


def test_a_period_with_no_complaints_still_shows_the_backlog(register):
    long_ago = timezone.localdate() - timedelta(days=400)
    f_ = dashboards.DashboardFilters(date_from=long_ago, date_to=long_ago + timedelta(days=10))
    rows, total = dashboards.complaint_stats(f_, lender_names={})
    assert (total.received, total.open_now, total.overdue_now) == (0, 3, 2)
    assert {r.key: r.received for r in rows} == {register["l1"].pk: 0, register["l2"].pk: 0}


def test_the_fallback_for_other_databases_gives_the_same_figures(register):
    today = timezone.localdate()
    for filters in (_filters(), _filters(lender_id=register["l1"].pk),
                    dashboards.DashboardFilters(date_from=today - timedelta(days=6), date_to=today)):
        sql = dashboards._complaint_stats_sql(filters, today)
        python = dashboards._complaint_stats_python(filters, today)
        assert sql.keys() == python.keys()
        for key in sql:
            assert {k: sql[key][k] or 0 for k in dashboards._COMPLAINT_FIELDS} == {
                k: python[key][k] or 0 for k in dashboards._COMPLAINT_FIELDS}, key


def test_one_query_whatever_the_number_of_lenders(register, django_assert_num_queries):
    for _ in range(5):
        _complaint(f.account(lender=f.lender()), received_days_ago=1, deadline_days_ago=-14)
    with django_assert_num_queries(1):
        rows, total = dashboards.complaint_stats(_filters(), lender_names={})
    assert len(rows) == 7 and total.received == 10


def test_dashboard_page_shows_the_tile_and_the_table(client, register):
    client.force_login(f.user(role="supervisor"))
    html = client.get(reverse("supervisor-home"), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    link = reverse("borrowers:complaints") + "?status=open"
    assert (f'data-kpi="complaints"><span>Complaints open / overdue</span><strong><a href="{link}">3 / 2</a>'
            in html)
    l1 = register["l1"]
    assert (f'<tr data-lender="{l1.pk}"><td>{l1.name}</td><td class="num">4</td><td class="num">3</td>'
            f'<td class="num">1</td><td class="num">10.0</td><td class="num">1</td><td class="num">1</td></tr>') in html
    # The lender filter narrows the tile and the table.
    page = client.get(reverse("supervisor-home"), {
        "date_from": (timezone.localdate() - timedelta(days=29)).isoformat(),
        "date_to": timezone.localdate().isoformat(), "lender": register["l2"].pk}, HTTP_ACCEPT_LANGUAGE="en")
    filtered = page.content.decode()
    assert f'<a href="{link}">2 / 1</a>' in filtered
    assert f'data-lender="{l1.pk}"' not in filtered and f'data-lender="{register["l2"].pk}"' in filtered
