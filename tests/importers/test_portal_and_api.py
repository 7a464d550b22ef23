"""Portal pages, registration/approval and the placement API: behaviour and cross-lender isolation."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from cases.models import Lender, OverdueAccount, Payment, PlacementBatch, PromiseToPay, User
from compliance.models import AuditEvent
from tests import factories as f

from .conftest import fixture_file

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_lenders(upload):
    a = f.user(role="lender", lender=f.lender(code="alpha"))
    b = f.user(role="lender", lender=f.lender(code="beta"))
    batch_a = upload(a, "placements_utf8.csv")
    batch_b = upload(b, "placements_gbk.csv")
    return a, b, batch_a, batch_b


def test_portal_pages_show_only_own_data(client, two_lenders):
    a, b, batch_a, batch_b = two_lenders
    client.force_login(a)
    home = client.get(reverse("portal-home")).content.decode()
    assert "placements_utf8.csv" in home and "placements_gbk.csv" not in home
    assert client.get(reverse("portal-batch", args=[batch_a.pk])).status_code == 200
    for name in ("portal-batch", "portal-batch-progress"):
        assert client.get(reverse(name, args=[batch_b.pk])).status_code == 404
    accounts = client.get(reverse("portal-accounts")).content.decode()
    assert "U-001" in accounts and "C-001" not in accounts
    assert "138****8000" in accounts and "13800138000" not in accounts  # phones masked
    searched = client.get(reverse("portal-accounts"), {"q": "C-001"}).content.decode()
    assert 'data-ref="C-001"' not in searched and "No accounts match" in searched or "没有" in searched
    found = client.get(reverse("portal-accounts"), {"q": "李四"}).content.decode()
    assert 'data-ref="U-003"' in found and 'data-ref="U-001"' not in found
    csv_body = b"".join(client.get(reverse("portal-export-csv")).streaming_content).decode("utf-8-sig")
    assert "U-001" in csv_body and "C-001" not in csv_body
    rows = json.loads(b"".join(client.get(reverse("portal-export-json")).streaming_content))
    assert {r["external_ref"] for r in rows} == {"U-001", "U-002", "U-003", "U-004"}
    # Recall through the portal form only touches the caller's accounts.
    client.post(reverse("portal-recall"), {"external_refs": "U-001\nC-001"})
    assert OverdueAccount.objects.get(lender=a.lender, external_ref="U-001").status == "recalled"
    assert OverdueAccount.objects.get(lender=b.lender, external_ref="C-001").status == "new"


def test_portal_is_for_lender_users_only(client, two_lenders):
    client.force_login(f.user(role="agent"))
    for name in ("portal-home", "portal-accounts", "portal-mapping", "portal-export-csv"):
        assert client.get(reverse(name)).status_code == 403
    client.logout()
    assert client.get(reverse("portal-home")).status_code == 302  # to the login page


def test_progress_json_and_batch_report(client, two_lenders):
    a, _b, batch_a, _ = two_lenders
    client.force_login(a)
    p = client.get(reverse("portal-batch-progress", args=[batch_a.pk])).json()
    assert (p["state"], p["done"], p["percent"], p["created"], p["errors"]) == ("applied", True, 100, 4, 1)
    page = client.get(reverse("portal-batch", args=[batch_a.pk])).content.decode()
    assert "<progress" in page and 'id="row-errors"' in page and "<td>6</td>" in page


def test_upload_through_the_portal_form(client, django_capture_on_commit_callbacks):
    user = f.user(role="lender", lender=f.lender())
    client.force_login(user)
    with django_capture_on_commit_callbacks(execute=True):
        r = client.post(reverse("portal-home"), {"file": fixture_file("placements_gbk.csv"), "kind": "placement",
                                                 "mode": "partial", "encoding": "gb18030"})
    batch = PlacementBatch.objects.get()
    assert r.status_code == 302 and r["Location"] == reverse("portal-batch", args=[batch.pk])
    batch.refresh_from_db()
    assert (batch.state, batch.created_count, batch.encoding) == ("applied", 3, "gb18030")
    bad = client.post(reverse("portal-home"), {"file": fixture_file("placements_gbk.csv").__class__("x.pdf", b"%PDF"),
                                               "kind": "placement", "mode": "partial"})
    assert bad.status_code == 200 and PlacementBatch.objects.count() == 1


def test_results_export_is_formula_safe_and_has_the_outcomes(client):
    user = f.user(role="lender", lender=f.lender())
    acc = f.account(lender=user.lender, balance="500.00")
    OverdueAccount.objects.filter(pk=acc.pk).update(external_ref="=HYPERLINK(\"http://x\")")
    Payment.objects.create(account=acc, amount=Decimal("120.50"), currency="CNY", paid_at=timezone.now())
    Payment.objects.create(account=acc, amount=Decimal("10.00"), currency="CNY", paid_at=timezone.now())
    PromiseToPay.objects.create(account=acc, amount=Decimal("50"), currency="CNY", due_date=timezone.localdate())
    PromiseToPay.objects.create(account=acc, amount=Decimal("50"), currency="CNY", due_date=timezone.localdate(), status="broken")
    client.force_login(user)
    body = b"".join(client.get(reverse("portal-export-csv"), HTTP_ACCEPT_LANGUAGE="en").streaming_content).decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(body)))
    assert rows[0]["External reference"] == "'=HYPERLINK(\"http://x\")"
    assert (rows[0]["Recovered"], rows[0]["Open promises"], rows[0]["Broken promises"], rows[0]["Kept promises"]) == ("130.50", "1", "1", "0")


def test_export_is_one_query_whatever_the_number_of_accounts(client, django_assert_max_num_queries):
    user = f.user(role="lender", lender=f.lender())
    for _ in range(30):
        f.account(lender=user.lender)
    client.force_login(user)
    response = client.get(reverse("portal-export-json"))
    with django_assert_max_num_queries(6):  # session + user + the export (no query per account)
        rows = json.loads(b"".join(response.streaming_content))
    assert len(rows) == 30


def test_registration_then_approval(client):
    r = client.post(reverse("lender-register"), {
        "name": "和信消费金融", "kind": "consumer_finance", "registration_no": "91110000600037341L",
        "contact_name": "刘经理", "contact_phone": "13800000000", "contact_email": "ops@hexin.example",
        "username": "hexin", "password": "A-strong-pass-2026"})
    assert r.status_code == 302, r.content.decode()[:2000]
    lender = Lender.objects.get(name="和信消费金融")
    user = User.objects.get(username="hexin")
    assert (lender.status, user.is_active, user.role, user.lender_id) == ("pending", False, "lender", lender.pk)
    assert not client.login(username="hexin", password="A-strong-pass-2026")
    assert AuditEvent.objects.filter(action="cases.lender.registered", lender_id=lender.pk).exists()

    client.force_login(f.user(role="agent"))
    assert client.get(reverse("lender-approvals")).status_code == 403
    assert client.post(reverse("lender-approve", args=[lender.pk])).status_code == 403
    sup = f.user(role="supervisor")
    client.force_login(sup)
    assert "和信消费金融" in client.get(reverse("lender-approvals")).content.decode()
    client.post(reverse("lender-approve", args=[lender.pk]))
    lender.refresh_from_db()
    user.refresh_from_db()
    assert (lender.status, lender.approved_by, user.is_active) == ("active", sup, True)
    assert AuditEvent.objects.get(action="cases.lender.approved", lender_id=lender.pk).actor == sup
    client.logout()
    assert client.login(username="hexin", password="A-strong-pass-2026")


def test_registration_rejects_bad_input(client):
    f.user(role="agent", username="taken")
    r = client.post(reverse("lender-register"), {
        "name": "X", "registration_no": "123", "contact_name": "a", "contact_phone": "1", "contact_email": "a@b.cn",
        "username": "taken", "password": "A-strong-pass-2026"})
    page = r.content.decode()
    assert r.status_code == 200 and "username is taken" in page.lower() or "用户名" in page
    assert not Lender.objects.exists()


# ---------------------------------------------------------------------------------------------
# API


def api(user) -> APIClient:
    c = APIClient()
    c.force_authenticate(user)
    return c


def test_api_upload_returns_202_and_the_batch_reports_row_errors(django_capture_on_commit_callbacks):
    user = f.user(role="lender", lender=f.lender())
    with django_capture_on_commit_callbacks(execute=True):
        r = api(user).post("/api/v1/placements/", {"file": fixture_file("placements_broken.csv")}, format="multipart")
    assert r.status_code == 202, r.content
    assert r["Location"].endswith(f"/api/v1/placements/{r.data['id']}/")
    d = api(user).get(f"/api/v1/placements/{r.data['id']}/").json()
    assert (d["state"], d["created_count"], d["error_count"]) == ("applied", 2, 7)
    assert d["row_errors"][0] == {"line": 3, "column": "due_date", "reason": d["row_errors"][0]["reason"]}
    assert len(d["row_errors"]) == 7
    assert api(user).get("/api/v1/accounts/", {"external_ref": "B-001"}).json()["count"] == 1


def test_api_isolation_and_permissions(two_lenders):
    a, b, batch_a, batch_b = two_lenders
    assert api(a).get(f"/api/v1/placements/{batch_b.pk}/").status_code == 404
    assert [x["id"] for x in api(a).get("/api/v1/placements/").json()["results"]] == [batch_a.pk]
    assert api(a).get("/api/v1/accounts/", {"external_ref": "C-001"}).json()["count"] == 0
    body = b"".join(api(a).get("/api/v1/placements/results/").streaming_content).decode("utf-8-sig")
    assert "U-001" in body and "C-001" not in body
    rows = json.loads(b"".join(api(b).get("/api/v1/placements/results/", {"as": "json"}).streaming_content))
    assert {r["external_ref"] for r in rows} == {"C-001", "C-002", "C-003"}
    assert api(a).post("/api/v1/placements/recall/", {"external_refs": ["C-001"]}, format="json").json() == \
        {"recalled": [], "unchanged": [], "unknown": ["C-001"]}
    agent = f.user(role="agent")
    assert api(agent).post("/api/v1/placements/", {"file": fixture_file("placements_utf8.csv")}, format="multipart").status_code == 403
    assert api(agent).get(f"/api/v1/placements/{batch_a.pk}/").status_code == 404
    assert api(agent).get("/api/v1/placements/results/").status_code == 403
    assert APIClient().get("/api/v1/placements/").status_code in (401, 403)


def test_api_recall_and_bad_input(two_lenders):
    a, *_ = two_lenders
    r = api(a).post("/api/v1/placements/recall/", {"external_refs": ["U-001", "U-002", "nope"], "reason": "sold"}, format="json")
    assert r.status_code == 200 and r.json() == {"recalled": ["U-001", "U-002"], "unchanged": [], "unknown": ["nope"]}
    assert api(a).post("/api/v1/placements/recall/", {"external_refs": []}, format="json").status_code == 400
    assert api(a).post("/api/v1/placements/", {"kind": "placement"}, format="multipart").status_code == 400
    assert api(a).post("/api/v1/placements/", {"file": fixture_file("placements_utf8.csv"), "mode": "sometimes"},
                       format="multipart").status_code == 400


def test_portal_speaks_chinese_by_default_and_reports_in_the_uploaders_language(client, upload):
    user = f.user(role="lender", lender=f.lender())
    client.force_login(user)
    page = client.get(reverse("portal-home")).content.decode()
    assert "委托方门户" in page and "上传文件" in page
    from cases.importers.services import placement_batch_create, placement_batch_process

    batch = placement_batch_create(actor=user, file=fixture_file("placements_broken.csv"), language="zh-hans")
    batch = placement_batch_process(batch_id=batch.pk)
    assert batch.row_errors.get(line=4).reason == "金额不能为负。"
