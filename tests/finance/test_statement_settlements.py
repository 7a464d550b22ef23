"""Settlements reported to the lender (issue 13): on the remittance statements (lines ``settled`` and
``settlement_reopened``, totals ``settlements_count`` / ``written_off_total``, frozen once issued, never in the
amount due) and in the results export (``settlement_amount`` / ``written_off``)."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db.models import Sum
from django.urls import reverse
from django.utils import timezone, translation
from openpyxl import load_workbook
from rest_framework.authtoken.models import Token

from cases import services
from cases.models import OverdueAccount
from compliance.models import AuditEvent
from finance import services as finance
from finance import statements
from finance.models import Settlement, SettlementEntry, Statement
from tests import factories as f
from tests.finance.conftest import parts_set

pytestmark = pytest.mark.django_db


@pytest.fixture
def no_settling_minute(monkeypatch):
    """Statements stop a minute before now in production; here they are issued right after the payments."""
    monkeypatch.setattr(statements, "SETTLE", timedelta(0))


@pytest.fixture
def world():
    lender = f.lender()
    agent = f.user(role="agent")
    finance.commission_plan_publish(actor=None, lender_id=lender.pk, percent_by_bucket={}, default_percent=Decimal("10"),
                                    flat_fee=Decimal("0"), remit_net=True,
                                    effective_from=timezone.now() - timedelta(days=1))
    return {"lender": lender, "agent": agent, "supervisor": f.user(role="supervisor"),
            "lender_user": f.user(role="lender", lender=lender)}


def soon(days: int = 5):
    return timezone.localdate() + timedelta(days=days)


def pay(w, account, amount: str):
    return services.payment_record(actor=w["agent"], account=account, amount=Decimal(amount), paid_at=timezone.now())


def settled_account(w, *, balance: str = "1000.00", amount: str = "950.00", first: str = "500.00"):
    """An account settled for ``amount`` (approved by a supervisor if below the floor): (account, the payment that
    settled it). The balance is principal + 150 interest + 50 fees; the remainder is written off (principal)."""
    acc = f.account(lender=w["lender"], agent=w["agent"], balance=balance)
    parts_set(acc, principal=str(Decimal(balance) - 200), interest="150", fees="50")
    rest = Decimal(amount) - Decimal(first)
    offer = finance.settlement_offer(actor=w["agent"], account=acc, amount=Decimal(amount),
                                     instalments=[(soon(), Decimal(first)), (soon(35), rest)])
    if offer.status == Settlement.Status.PENDING:  # below the lender's floor
        finance.settlement_approve(actor=w["supervisor"], settlement=offer)
    pay(w, acc, first)
    last = pay(w, acc, str(rest))
    acc.refresh_from_db()
    assert acc.status == OverdueAccount.Status.SETTLED
    return acc, last


def issue(w) -> Statement:
    (st,) = statements.statement_issue(actor=w["supervisor"], lender=w["lender"])
    return st


def money_due(lines) -> Decimal:
    """The amount due recomputed from the money lines alone (payments, reversals, commission)."""
    return (sum((x["amount"] or 0) for x in lines) - sum((x["commission"] or 0) for x in lines))


def test_a_settled_account_is_on_the_next_statement_with_its_write_off_and_totals_reconcile(world, no_settling_minute):
    before = issue(world)  # nothing yet
    assert (before.settlements_count, before.written_off_total) == (0, Decimal("0"))
    a, pay_a = settled_account(world)
    b, _pay_b = settled_account(world, balance="2000.00", amount="1500.00")  # principal 1800 - 1300 = 500 written off
    open_acc = f.account(lender=world["lender"], agent=world["agent"], balance="300.00")
    pay(world, open_acc, "100.00")  # a plain payment next to them

    st = issue(world)
    assert st.period_start == before.period_end
    assert (st.settlements_count, st.settlements_reopened_count, st.written_off_total) == (2, 0, Decimal("550.00"))
    lines = statements.statement_lines(statement=st)
    settled = [x for x in lines if x["kind"] == "settled"]
    assert {(x["account"], x["settlement"], x["written_off"]) for x in settled} == {
        (a.external_ref, Decimal("950.00"), Decimal("50.00")), (b.external_ref, Decimal("1500.00"), Decimal("500.00"))}
    line_a = next(x for x in settled if x["account"] == a.external_ref)
    assert line_a["reference"] == pay_a.reference and line_a["amount"] is None and line_a["commission"] is None
    # Reported at the time it was settled.
    assert line_a["at"] == Settlement.objects.get(account=a).settled_at
    # Totals reconcile: the settled lines' write-offs are the total; the write-off is not money due.
    assert sum(x["written_off"] for x in settled) == st.written_off_total
    assert st.payments_total == Decimal("2550.00") and st.commission_total == Decimal("255.00")
    assert st.amount_due == st.payments_total - st.reversals_total - st.commission_total == Decimal("2295.00")
    assert money_due(lines) == st.amount_due
    event = AuditEvent.objects.filter(action="finance.statement.issued").order_by("-pk").first()
    assert event.data["statements"][0]["written_off"] == "550.00" and event.data["statements"][0]["settlements"] == 2


def test_a_reversal_that_reopens_it_is_on_a_later_statement_and_the_issued_one_does_not_change(world, no_settling_minute):
    acc, last = settled_account(world)
    st1 = issue(world)
    lines1 = statements.statement_lines(statement=st1)
    frozen = (st1.settlements_count, st1.written_off_total, st1.amount_due, st1.payments_total)
    assert frozen[:2] == (1, Decimal("50.00"))

    finance.payment_reverse(payment=last, actor=world["agent"], reason="bounced")
    assert Settlement.objects.get(account=acc).status == Settlement.Status.APPROVED
    st2 = issue(world)
    assert (st2.settlements_count, st2.settlements_reopened_count, st2.written_off_total) == (0, 1, Decimal("-50.00"))
    (reopened,) = [x for x in statements.statement_lines(statement=st2) if x["kind"] in statements.SETTLEMENT_KINDS]
    assert (reopened["kind"], reopened["account"], reopened["written_off"], reopened["reference"]) == (
        "settlement_reopened", acc.external_ref, Decimal("-50.00"), last.reference)
    # The reversal is money (reversed, commission taken back); the restored write-off is not.
    assert st2.amount_due == -Decimal("450.00") + Decimal("45.00")

    # Paid again: settled again, on the statement after; every earlier statement stays as issued.
    pay(world, acc, "450.00")
    st3 = issue(world)
    assert (st3.settlements_count, st3.written_off_total) == (1, Decimal("50.00"))
    st1.refresh_from_db()
    assert (st1.settlements_count, st1.written_off_total, st1.amount_due, st1.payments_total) == frozen
    assert statements.statement_lines(statement=st1) == lines1
    assert [x["kind"] for x in statements.statement_lines(statement=st2) if x["kind"] in statements.SETTLEMENT_KINDS] \
        == ["settlement_reopened"]
    # Over all the statements, the write-offs add up to what stands written off now.
    issued = Statement.objects.filter(lender=world["lender"])
    assert issued.aggregate(s=Sum("written_off_total"))["s"] == \
        Settlement.objects.filter(lender=world["lender"]).aggregate(s=Sum("written_off"))["s"] == Decimal("50.00")
    assert SettlementEntry.objects.filter(settlement__account=acc).count() == 3


def test_a_settlement_in_the_settling_minute_lands_in_the_next_statement(world, monkeypatch):
    # The real cut-off: a statement issued now ends a minute ago, so a settlement recorded since is not on it
    # (as a payment whose transaction was still open at the cut-off would not be).
    from cases.models import Lender

    Lender.objects.filter(pk=world["lender"].pk).update(created_at=timezone.now() - timedelta(hours=1))
    world["lender"].refresh_from_db()
    settled_account(world)
    st1 = issue(world)
    assert st1.period_end <= timezone.now() - statements.SETTLE
    assert (st1.settlements_count, st1.written_off_total, st1.payments_total) == (0, Decimal("0"), Decimal("0"))
    monkeypatch.setattr(statements, "SETTLE", timedelta(0))
    st2 = issue(world)
    assert (st2.settlements_count, st2.written_off_total, st2.payments_total) == (1, Decimal("50.00"), Decimal("950.00"))
    st1.refresh_from_db()
    assert st1.written_off_total == 0 and not statements.statement_lines(statement=st1)


def test_the_run_counts_settlements_with_one_more_grouped_aggregate_for_all_lenders(world, no_settling_minute):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    settled_account(world)
    other = {**world, "lender": f.lender()}
    settled_account(other, balance="500.00", amount="400.00", first="200.00")  # 300 - 200 = 100 written off
    from cases.models import Lender

    Lender.objects.filter(pk__in=[world["lender"].pk, other["lender"].pk]).update(  # a shared start, as in a monthly run
        created_at=timezone.now() - timedelta(days=1))
    with CaptureQueriesContext(connection) as ctx:
        issued = statements._issue(actor=None, lender_ids=[world["lender"].pk, other["lender"].pk],
                                   end=timezone.now(), kind=Statement.Kind.ON_DEMAND, label="")
    assert {(s.lender_id, s.settlements_count, s.written_off_total) for s in issued} == {
        (world["lender"].pk, 1, Decimal("50.00")), (other["lender"].pk, 1, Decimal("100.00"))}
    # One grouped aggregate for both lenders, never a query per lender or per settlement.
    (read,) = [q["sql"] for q in ctx.captured_queries if "finance_settlemententry" in q["sql"]]
    assert "GROUP BY" in read


def _rows(content: bytes) -> list[tuple]:
    return list(load_workbook(io.BytesIO(content)).active.iter_rows(values_only=True))


def test_every_export_shows_the_write_offs_in_their_own_column(world, no_settling_minute, client):
    acc, _last = settled_account(world)
    st = issue(world)
    client.force_login(world["lender_user"])
    page = client.get("/finance/statements/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Written off (settlements)" in page and '<td class="written-off">50.00 (1)</td>' in page

    body = client.get(f"/finance/statements/{st.pk}.csv", HTTP_ACCEPT_LANGUAGE="en").content.decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(body)))
    summary = {r[0]: r[1] for r in rows if len(r) == 2}
    assert summary["Written off (settlements)"] == "50.00" and summary["Amount due to the lender"] == "855.00"
    assert summary["Settlements"] == "1 settled, 0 reopened"
    header = next(r for r in rows if r and r[0] == "Recorded at")
    assert header[-2:] == ["Settled for", "Written off (settlements)"]
    line = dict(zip(header, next(r for r in rows if len(r) > 2 and r[1] == "Settlement settled"), strict=True))
    assert (line["Account"], line["Amount"], line["Settled for"], line["Written off (settlements)"]) == (
        acc.external_ref, "", "950.00", "50.00")

    xlsx = _rows(client.get(f"/finance/statements/{st.pk}.xlsx", HTTP_ACCEPT_LANGUAGE="en").content)
    settled = next(r for r in xlsx if r and r[1] == "Settlement settled")
    assert settled[6] == pytest.approx(950) and settled[7] == pytest.approx(50) and not isinstance(settled[7], str)

    for language in ("en", "zh-hans"):
        pdf = client.get(f"/finance/statements/{st.pk}.pdf", HTTP_ACCEPT_LANGUAGE=language)
        assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    with translation.override("zh-hans"):
        assert statements.statement_pdf(statement=st).startswith(b"%PDF")
        zh = statements.statement_csv(statement=st)
    assert ",950.00,50.00" in zh  # the settled line's own columns, whatever the language

    api = client.__class__()
    api.defaults["HTTP_AUTHORIZATION"] = f"Token {Token.objects.create(user=world['lender_user']).key}"
    detail = api.get(f"/api/v1/statements/{st.pk}/").json()
    assert (detail["settlements_count"], detail["settlements_reopened_count"], detail["written_off_total"]) == (
        1, 0, "50.00")
    assert detail["amount_due"] == "855.00"
    assert "Written off (settlements)" in api.get(f"/api/v1/statements/{st.pk}/?format=csv",
                                                  HTTP_ACCEPT_LANGUAGE="en").content.decode("utf-8-sig")


def _stream(response) -> str:
    return b"".join(response.streaming_content).decode("utf-8-sig")


def test_results_export_carries_the_settlement(world, client, django_assert_max_num_queries):
    from cases.importers.selectors import EXPORT_FIELDS

    acc, last = settled_account(world)
    plain = f.account(lender=world["lender"], agent=world["agent"], balance="100.00")
    assert EXPORT_FIELDS[-2:] == ("settlement_amount", "written_off") and EXPORT_FIELDS[0] == "external_ref"

    api = client.__class__()
    api.defaults["HTTP_AUTHORIZATION"] = f"Token {Token.objects.create(user=world['lender_user']).key}"
    rows = {r["external_ref"]: r for r in csv.DictReader(io.StringIO(_stream(api.get("/api/v1/placements/results/"))))}
    assert (rows[acc.external_ref]["settlement_amount"], rows[acc.external_ref]["written_off"]) == ("950.00", "50.00")
    assert (rows[plain.external_ref]["settlement_amount"], rows[plain.external_ref]["written_off"]) == ("", "")
    assert rows[acc.external_ref]["status"] == "settled"

    client.force_login(world["lender_user"])
    response = client.get(reverse("portal-export-json"))
    with django_assert_max_num_queries(6):  # still one query for the export, whatever the number of accounts
        data = {r["external_ref"]: r for r in json.loads(_stream(response))}
    assert (data[acc.external_ref]["settlement_amount"], data[acc.external_ref]["written_off"]) == ("950.00", "50.00")
    assert data[plain.external_ref]["settlement_amount"] is None and data[plain.external_ref]["written_off"] is None

    # A big one, to see the separators in the file for people.
    big, _p = settled_account(world, balance="2000000.00", amount="1500000.00", first="1000000.00")
    readable = list(csv.DictReader(io.StringIO(_stream(client.get(reverse("portal-export-csv"),
                                                                  HTTP_ACCEPT_LANGUAGE="en")))))
    by_ref = {r["External reference"]: r for r in readable}
    assert (by_ref[big.external_ref]["Settled for"], by_ref[big.external_ref]["Written off"]) == (
        "1,500,000.00", "500,000.00")
    assert (by_ref[plain.external_ref]["Settled for"], by_ref[plain.external_ref]["Written off"]) == ("", "")
    zh = list(csv.reader(io.StringIO(_stream(client.get(reverse("portal-export-csv"), HTTP_ACCEPT_LANGUAGE="zh-hans")))))
    assert zh[0][-2:] == ["和解金额", "核销"]

    # Reopened (its payment bounced): no longer a settled settlement, so the columns are empty again.
    finance.payment_reverse(payment=last, actor=world["agent"], reason="bounced")
    data = {r["external_ref"]: r for r in json.loads(_stream(client.get(reverse("portal-export-json"))))}
    assert data[acc.external_ref]["settlement_amount"] is None
