"""Supervisor audit log, issue 12: names and references instead of ids, readable action labels, search by
reference or borrower name, a bounded count, the event detail, and *Verify chain* as a background job."""

from __future__ import annotations

import pytest
from django.urls import reverse

from cases.models import Lender
from compliance.audit import audit_log
from compliance.models import AuditEvent, AuditVerification
from compliance.selectors import AuditFilters
from supervision.selectors import audit_search_count, mask_name
from tests import factories as f

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    lender = Lender.objects.create(name="和信消费金融", code="hexin", status="active")
    agent = f.user(role="agent", username="agent_wang")
    sup = f.user(role="supervisor")
    acc = f.account(lender=lender, agent=agent)
    acc.borrower.name = "张三丰"
    acc.borrower.save()
    other = f.account(lender=lender, agent=agent)
    for a in (acc, other):
        audit_log(action="cases.note.added", actor=agent, lender_id=lender.pk, account_id=a.pk,
                  borrower_id=a.borrower_id, data={"body": f"note on {a.external_ref}"})
    return {"lender": lender, "agent": agent, "sup": sup, "acc": acc, "other": other}


def _get(client, **params):
    return client.get(reverse("supervisor-audit"), params, HTTP_ACCEPT_LANGUAGE="en").content.decode()


def test_rows_show_names_references_and_labels_not_ids(client, world):
    client.force_login(world["sup"])
    page = _get(client, action="cases.note.added")
    acc = world["acc"]
    assert "和信消费金融" in page and acc.external_ref in page and "张三丰" in page and "agent_wang" in page
    assert ">Note added</td>" in page and ">cases.note.added<" not in page
    assert 'id="audit-reset"' in page and 'data-count="2"' in page


def test_labels_are_translated(client, world):
    client.force_login(world["sup"])
    page = client.get(reverse("supervisor-audit"), {"action": "cases.note.added"}, HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert ">已添加备注</td>" in page.content.decode()


def test_search_by_reference_and_by_part_of_the_borrower_name(client, world):
    client.force_login(world["sup"])
    acc, other = world["acc"], world["other"]
    page = _get(client, ref=acc.external_ref)
    assert f'data-id="{AuditEvent.objects.get(account_id=acc.pk).pk}"' in page
    assert f'data-id="{AuditEvent.objects.get(account_id=other.pk).pk}"' not in page and 'data-count="1"' in page
    assert 'data-count="1"' in _get(client, ref="三丰")
    assert 'data-count="0"' in _get(client, ref="nobody at all")
    # The export follows the search.
    body = b"".join(client.get(reverse("supervisor-audit-export", args=["csv"]), {"ref": acc.external_ref})
                    .streaming_content).decode("utf-8-sig")
    assert f"note on {acc.external_ref}" in body and f"note on {other.external_ref}" not in body


def test_count_is_bounded(world):
    for i in range(5):
        audit_log(action="cases.note.added", lender_id=world["lender"].pk, data={"body": str(i)})
    assert audit_search_count(filters=AuditFilters(action="cases.note.added"), cap=3) == (3, True)
    assert audit_search_count(filters=AuditFilters(action="cases.note.added"), cap=10) == (7, False)


def test_page_queries_do_not_grow_with_the_rows(client, world, django_assert_max_num_queries):
    client.force_login(world["sup"])
    _get(client)  # warm the session and the content types
    with django_assert_max_num_queries(10):
        small = _get(client, action="cases.note.added")
    for _ in range(25):
        a = f.account(lender=world["lender"], agent=world["agent"])
        audit_log(action="cases.note.added", actor=world["agent"], lender_id=world["lender"].pk, account_id=a.pk,
                  borrower_id=a.borrower_id, data={"body": "x"})
    # session, user, page, count, last verification, lenders, accounts, borrowers, the filter form's
    # lender and agent choices: 10 for any number of rows
    with django_assert_max_num_queries(10):
        big = _get(client, action="cases.note.added")
    assert big.count("<tr data-action=") == 27 > small.count("<tr data-action=")


def test_event_detail_shows_all_its_data(client, world):
    client.force_login(world["sup"])
    e = AuditEvent.objects.get(account_id=world["acc"].pk)
    page = client.get(reverse("supervisor-audit-event", args=[e.pk]), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert e.hash in page and e.prev_hash in page and world["acc"].external_ref in page and "张三丰" in page
    assert f'&quot;body&quot;: &quot;note on {world["acc"].external_ref}&quot;' in page
    assert client.get(reverse("supervisor-audit-event", args=[10**9])).status_code == 404


def test_verify_chain_runs_as_a_task_and_shows_the_result(client, world):
    client.force_login(world["sup"])
    with pytest.raises(AuditVerification.DoesNotExist):
        AuditVerification.objects.get()
    r = client.post(reverse("supervisor-audit-verify"), {"next": "action=cases.note.added"})
    assert r.status_code == 302 and r["Location"].endswith("?action=cases.note.added")
    assert AuditEvent.objects.filter(action="compliance.audit.verify_requested", actor=world["sup"]).exists()


@pytest.mark.django_db(transaction=True)
def test_verify_chain_result_is_on_the_page(client):
    sup = f.user(role="supervisor")
    audit_log(action="cases.note.added", data={"body": "x"})
    client.force_login(sup)
    client.post(reverse("supervisor-audit-verify"))  # eager in tests, as in the embedded run
    v = AuditVerification.objects.get()
    assert v.ok and v.events_checked >= 2
    page = _get(client)
    assert 'class="badge ok"' in page and 'id="verify-running"' not in page


def test_verify_and_event_are_for_supervisors_only(client, world):
    client.force_login(world["agent"])
    e = AuditEvent.objects.first()
    assert client.get(reverse("supervisor-audit-event", args=[e.pk])).status_code == 403
    assert client.post(reverse("supervisor-audit-verify")).status_code == 403
    assert not AuditVerification.objects.exists()


def test_mask_name():
    assert (mask_name("张三丰"), mask_name("John Smith"), mask_name("")) == ("张**", "J*** S****", "")
