"""Payment files (lender portal) and bank statements (supervisors): matched by account reference, idempotent by
the line's external reference, every line not recorded reported with its number and reason."""

from __future__ import annotations

import io
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import translation
from openpyxl import Workbook

from cases.models import OverdueAccount, Payment
from compliance.models import AuditEvent
from finance import payment_files
from finance.models import PaymentAllocation
from tests import factories as f

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    lender, other = f.lender(), f.lender()
    a1 = f.account(lender=lender, balance="1000.00")
    a2 = f.account(lender=lender, balance="500.00")
    foreign = f.account(lender=other, balance="800.00")
    return {"lender": lender, "other": other, "a1": a1, "a2": a2, "foreign": foreign,
            "lender_user": f.user(role="lender", lender=lender), "supervisor": f.user(role="supervisor")}


def _csv(w, extra: str = "") -> bytes:
    body = ("账户编号,流水号,金额,交易日期,币种\n"
            f"{w['a1'].external_ref},TX-1,100.00,2026-01-05,CNY\n"
            f"{w['a2'].external_ref},TX-2,\"1,200.50\",2026-01-06 10:00,\n"
            f"NOPE-1,TX-3,10.00,2026-01-06,CNY\n"
            f"{w['foreign'].external_ref},TX-4,10.00,2026-01-06,CNY\n"
            f"{w['a1'].external_ref},TX-5,abc,2026-01-06,CNY\n"
            f"{w['a1'].external_ref},TX-6,5.00,2026-13-01,CNY\n"
            f"{w['a1'].external_ref},TX-7,5.00,2026-01-07,USD\n" + extra)
    return body.encode("utf-8-sig")


def test_lender_file_records_matched_lines_reports_the_rest_and_is_idempotent(world, client):
    client.force_login(world["lender_user"])
    upload = SimpleUploadedFile("paid.csv", _csv(world), content_type="text/csv")
    r = client.post("/finance/payments/upload/", {"file": upload}, HTTP_ACCEPT_LANGUAGE="en")
    assert r.status_code == 200
    result = r.context["result"]
    assert (result.lines, result.recorded, result.already) == (7, 2, 0)
    assert result.totals == {"CNY": Decimal("1300.50")}
    # Every line not recorded, by line number (header = line 1) and reason; another lender's account is unknown.
    assert [(i.line, i.reason[:20]) for i in result.issues] == [
        (4, "No account with this"), (5, "No account with this"), (6, "Amount 'abc' is not "),
        (7, "Date '2026-13-01' is"), (8, "The account is kept ")]
    body = r.content.decode()
    assert 'data-line="4"' in body and 'data-line="8"' in body
    world["a2"].refresh_from_db()
    assert world["a2"].balance == Decimal("0.00") and world["a2"].status == OverdueAccount.Status.PAID
    assert set(PaymentAllocation.objects.values_list("external_ref", "source")) == {
        ("TX-1", "lender_file"), ("TX-2", "lender_file")}
    assert not Payment.objects.filter(account=world["foreign"]).exists()
    event = AuditEvent.objects.get(action="finance.payment_file.imported")
    assert event.data["unmatched_count"] == 5 and event.data["recorded"] == 2

    # The same file again records nothing new.
    again = client.post("/finance/payments/upload/",
                        {"file": SimpleUploadedFile("paid.csv", _csv(world), content_type="text/csv")})
    assert (again.context["result"].recorded, again.context["result"].already) == (0, 2)
    assert Payment.objects.count() == 2


def test_a_reused_reference_with_other_details_is_reported_not_recorded(world):
    payment_files.payment_file_import(actor=world["lender_user"], content=_csv(world), name="a.csv",
                                      lender=world["lender"], source="lender_file")
    changed = f"account_ref,external_ref,amount,paid_at\n{world['a1'].external_ref},TX-1,99.00,2026-01-05\n"
    with translation.override("en"):
        result = payment_files.payment_file_import(actor=world["lender_user"], content=changed.encode(),
                                                   name="b.csv", lender=world["lender"], source="lender_file")
    assert result.recorded == 0 and result.issues[0].line == 2 and "already used" in result.issues[0].reason


def test_supervisor_bank_statement_xlsx_matches_any_lender_and_flags_ambiguous_references(world, client):
    dup = f.account(lender=world["other"], balance="100.00")
    OverdueAccount.objects.filter(pk=dup.pk).update(external_ref=world["a2"].external_ref)
    wb = Workbook()
    ws = wb.active
    ws.append(["account_ref", "transaction_id", "amount", "value_date"])
    ws.append([world["foreign"].external_ref, "BANK-1", 80.25, "2026-01-05"])
    ws.append([world["a2"].external_ref, "BANK-2", 10, "2026-01-05"])
    buf = io.BytesIO()
    wb.save(buf)
    client.force_login(world["supervisor"])
    r = client.post("/finance/payments/upload/", {"file": SimpleUploadedFile("bank.xlsx", buf.getvalue()), "lender": ""},
                    HTTP_ACCEPT_LANGUAGE="en")
    result = r.context["result"]
    assert result.recorded == 1 and [(i.line, "several lenders" in i.reason) for i in result.issues] == [(3, True)]
    alloc = PaymentAllocation.objects.get(external_ref="BANK-1")
    assert alloc.amount == Decimal("80.25") and alloc.account_id == world["foreign"].pk and alloc.source == "bank_file"


def test_bad_files_are_refused_whole_with_a_clear_error(world, client, monkeypatch):
    client.force_login(world["lender_user"])
    r = client.post("/finance/payments/upload/",
                    {"file": SimpleUploadedFile("x.csv", b"account_ref,amount\nA,1\n", content_type="text/csv")},
                    HTTP_ACCEPT_LANGUAGE="en")
    assert r.status_code == 400 and "missing column" in r.content.decode()
    monkeypatch.setattr(payment_files, "MAX_ROWS", 3)
    r = client.post("/finance/payments/upload/",
                    {"file": SimpleUploadedFile("x.csv", _csv(world), content_type="text/csv")})
    assert r.status_code == 400 and "超过 3 行" in r.content.decode() and not Payment.objects.exists()  # zh-Hans
    agent = f.user(role="agent")
    client.force_login(agent)
    assert client.get("/finance/payments/upload/").status_code == 403
