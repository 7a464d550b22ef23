"""Statements as XLSX (portal) and through the API (list, JSON/CSV/PDF/XLSX downloads, scoped per lender)."""

from __future__ import annotations

import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from openpyxl import load_workbook
from rest_framework.authtoken.models import Token

from cases import services
from cases.models import OverdueAccount
from finance import statements
from tests import factories as f

pytestmark = pytest.mark.django_db


@pytest.fixture
def issued(monkeypatch):
    monkeypatch.setattr(statements, "SETTLE", timedelta(0))  # issued right after the payment
    lender = f.lender()
    agent = f.user(role="agent")
    account = f.account(lender=lender, agent=agent, balance="1000.00")
    OverdueAccount.objects.filter(pk=account.pk).update(external_ref="=HYPERLINK(1)")
    account.refresh_from_db()
    services.payment_record(actor=agent, account=account, amount=Decimal("123.45"), paid_at=timezone.now())
    (st,) = statements.statement_issue(actor=None, lender=lender, period_end=timezone.now() + timedelta(hours=1))
    return {"lender": lender, "agent": agent, "statement": st, "lender_user": f.user(role="lender", lender=lender)}


def _api(client, user):
    client.defaults["HTTP_AUTHORIZATION"] = f"Token {Token.objects.create(user=user).key}"
    return client


def _rows(content: bytes) -> list[tuple]:
    return list(load_workbook(io.BytesIO(content)).active.iter_rows(values_only=True))


def test_portal_xlsx_is_a_real_workbook_with_numeric_amounts_and_formula_safe_text(issued, client):
    client.force_login(issued["lender_user"])
    st = issued["statement"]
    assert f"/finance/statements/{st.pk}.xlsx" in client.get("/finance/statements/").content.decode()
    r = client.get(f"/finance/statements/{st.pk}.xlsx")
    assert r.status_code == 200 and r["Content-Type"] == statements.CONTENT_TYPES["xlsx"]
    rows = _rows(r.content)
    payment = next(row for row in rows if row and row[2] == "'=HYPERLINK(1)")  # the payment line
    assert payment[2] == "'=HYPERLINK(1)"  # never a formula
    assert payment[4] == pytest.approx(123.45) and not isinstance(payment[4], str)
    client.force_login(f.user(role="lender", lender=f.lender()))
    assert client.get(f"/finance/statements/{st.pk}.xlsx").status_code == 404


def test_api_lists_and_downloads_a_lenders_statements_scoped(issued, client):
    st = issued["statement"]
    api = _api(client, issued["lender_user"])
    listed = api.get("/api/v1/statements/")
    assert listed.status_code == 200
    assert [(s["id"], s["amount_due"]) for s in listed.json()["results"]] == [(st.pk, "123.45")]
    detail = api.get(f"/api/v1/statements/{st.pk}/")
    assert detail.status_code == 200 and detail.json()["payments_total"] == "123.45"
    csv = api.get(f"/api/v1/statements/{st.pk}/?format=csv")
    assert csv.status_code == 200 and csv["Content-Type"].startswith("text/csv")
    assert "'=HYPERLINK(1)" in csv.content.decode("utf-8-sig")
    pdf = api.get(f"/api/v1/statements/{st.pk}/?format=pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    xlsx = api.get(f"/api/v1/statements/{st.pk}/?format=xlsx")
    assert xlsx.status_code == 200 and any(row and row[4] == 123.45 for row in _rows(xlsx.content))
    bad = api.get(f"/api/v1/statements/{st.pk}/?format=doc")
    assert bad.status_code == 400 and "format" in bad.json()


def test_api_another_lenders_statement_is_404_and_agents_are_refused(issued, client):
    st = issued["statement"]
    other = _api(client, f.user(role="lender", lender=f.lender()))
    assert other.get("/api/v1/statements/").json()["results"] == []
    for fmt in ("", "?format=csv", "?format=pdf"):
        r = other.get(f"/api/v1/statements/{st.pk}/{fmt}")
        assert r.status_code == 404 and r["Content-Type"].startswith("application/json")
    agent = _api(client, issued["agent"])
    assert agent.get("/api/v1/statements/").status_code == 403
    assert agent.get(f"/api/v1/statements/{st.pk}/?format=csv").status_code == 403
    sup = _api(client, f.user(role="supervisor"))
    assert sup.get(f"/api/v1/statements/{st.pk}/?format=xlsx").status_code == 200
