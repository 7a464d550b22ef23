"""Placement files may carry balance parts (interest, fees, costs; Chinese headers too): validated, kept in the
account's ``extra`` by both pipelines, and the account's balance parts start from them on first use."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from cases import services
from cases.importers import pipelines
from cases.importers.services import placement_batch_create, placement_batch_process
from cases.models import OverdueAccount
from finance.models import AccountBalance
from finance.selectors import account_balance_parts
from tests import factories as f

pytestmark = pytest.mark.django_db

FILE = ("合同编号,借款人姓名,手机号,逾期金额,到期日,利息,费用,催收成本\n"
        "P-1,张三,13800138000,1000.00,2026-01-01,100.00,20.00,5.50\n"
        "P-2,李四,13800138001,500.00,2026-01-01,,,\n"
        "P-3,王五,13800138002,100.00,2026-01-01,90.00,20.00,0\n"
        "P-4,赵六,13800138003,100.00,2026-01-01,-1,0,0\n")


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture(params=["postgres", "orm"])
def pipeline(request, monkeypatch):
    if request.param == "orm":  # the embedded (SQLite) path, run here on PostgreSQL through the ORM
        monkeypatch.setattr(pipelines, "_postgres", lambda: False)
    return request.param


def _place(user, content: str):
    batch = placement_batch_create(actor=user, file=SimpleUploadedFile("p.csv", content.encode()), language="en")
    return placement_batch_process(batch_id=batch.pk)


def test_parts_are_validated_stored_and_used_by_the_first_payment(pipeline):
    user = f.user(role="lender", lender=f.lender())
    batch = _place(user, FILE)
    assert batch.state == "applied", batch.error_message
    errors = sorted((e.line, e.column) for e in batch.row_errors.all())
    assert errors == [(4, "利息"), (5, "利息")]  # parts above the balance; a negative part
    accounts = {a.external_ref: a for a in OverdueAccount.objects.filter(lender=user.lender)}
    assert set(accounts) == {"P-1", "P-2"}
    p1, p2 = accounts["P-1"], accounts["P-2"]
    assert p1.extra["balance_parts"] == {"interest": "100.00", "fees": "20.00", "costs": "5.50"}
    assert "balance_parts" not in p2.extra  # an old-style line: all principal
    assert account_balance_parts(account=p1) == {"costs": Decimal("5.50"), "fees": Decimal("20.00"),
                                                 "interest": Decimal("100.00"), "principal": Decimal("874.50")}
    assert account_balance_parts(account=p2)["principal"] == Decimal("500.00")

    agent = f.user(role="agent")
    services.payment_record(actor=agent, account=p1, amount=Decimal("30.00"), paid_at=timezone.now())
    ab = AccountBalance.objects.get(account=p1)
    # Default order costs -> fees -> interest -> principal.
    assert (ab.costs, ab.fees, ab.interest, ab.principal) == (Decimal("0"), Decimal("0"), Decimal("95.50"),
                                                              Decimal("874.50"))
    assert (ab.placed_interest, ab.placed_fees, ab.placed_costs) == (Decimal("100.00"), Decimal("20.00"),
                                                                    Decimal("5.50"))
    p1.refresh_from_db()
    assert ab.total == p1.balance == Decimal("970.00")


def test_parts_above_a_lowered_balance_are_cut_in_reverse_order():
    account = f.account(lender=f.lender(), balance="100.00")
    account.extra = {"balance_parts": {"interest": "80.00", "fees": "30.00", "costs": "10.00"}}
    account.save(update_fields=["extra"])
    # 120 of parts on a balance of 100: 20 comes off principal (none), then interest (reverse of the default order).
    assert account_balance_parts(account=account) == {"costs": Decimal("10.00"), "fees": Decimal("30.00"),
                                                      "interest": Decimal("60.00"), "principal": Decimal("0.00")}
