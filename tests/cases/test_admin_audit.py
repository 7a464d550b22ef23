"""Edits in the Django admin are audited like any other state change, in the same transaction."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from cases.models import Borrower, Lender, User
from compliance.audit import audit_verify
from compliance.models import AuditEvent
from tests import factories as f

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    admin = f.user(role="admin")
    admin.is_staff = admin.is_superuser = True
    admin.save()
    client.force_login(admin)
    client.admin = admin
    return client


def borrower_post(b: Borrower, **changes) -> dict:
    data = {
        "lender": b.lender_id, "name": b.name, "national_id": b.national_id, "phones": json.dumps(b.phones),
        "emails": json.dumps(b.emails), "address": b.address, "region": b.region, "jurisdiction": b.jurisdiction,
        "time_zones": json.dumps(b.time_zones),
        # Fields with a callable default carry their initial value in a hidden input, as the browser posts it.
        **{f"initial-{name}": json.dumps(getattr(b, name)) for name in ("phones", "emails", "time_zones")},
        **{flag: "on" for flag in ("sms_consent", "email_consent", "after_hours_consent", *Borrower.HOLD_FIELDS,
                                   "vulnerable") if getattr(b, flag)},
    }
    for name, value in changes.items():
        if isinstance(value, bool):
            data.pop(name, None)
            if value:
                data[name] = "on"
        else:
            data[name] = value
    return data


def test_changing_a_borrower_hold_in_the_admin_is_audited(admin_client):
    lender = f.lender()
    b = f.borrower(lender=lender)
    url = reverse("admin:cases_borrower_change", args=[b.pk])
    r = admin_client.post(url, borrower_post(b, cease=True, national_id="110101199003074477"))
    assert r.status_code == 302, r.content.decode()[:2000]
    b.refresh_from_db()
    assert b.cease is True
    event = AuditEvent.objects.get(action="admin.cases.borrower.changed")
    assert (event.actor_id, event.lender_id, event.borrower_id) == (admin_client.admin.pk, lender.pk, b.pk)
    assert (event.subject_type, event.subject_id) == ("cases.borrower", str(b.pk))
    assert sorted(event.data["fields"]) == ["cease", "national_id"]
    assert event.data["changes"]["cease"] == {"from": False, "to": True}
    assert "110101199003074477" not in json.dumps(event.data)  # secrets are named, never logged
    assert audit_verify(record=False).ok


def test_admin_user_role_change_add_and_password_never_log_secrets(admin_client):
    lender = f.lender()
    r = admin_client.post(reverse("admin:cases_user_add"), {
        "username": "newagent", "password1": "Very-secret-pw-42", "password2": "Very-secret-pw-42",
        "usable_password": "true", "role": "supervisor", "lender": "",
    })
    assert r.status_code == 302, r.content.decode()[:2000]
    user = User.objects.get(username="newagent")
    added = AuditEvent.objects.get(action="admin.cases.user.added")
    assert "password1" in added.data["fields"] and "password1" not in added.data["changes"]
    assert added.data["changes"]["role"] == {"from": None, "to": "supervisor"}

    r = admin_client.post(reverse("admin:auth_user_password_change", args=[user.pk]), {
        "password1": "Another-secret-pw-43", "password2": "Another-secret-pw-43",
        "usable_password": "true", "set-password": "1"})
    assert r.status_code == 302
    assert User.objects.get(pk=user.pk).check_password("Another-secret-pw-43")
    assert AuditEvent.objects.filter(action="admin.cases.user.password_changed", subject_id=str(user.pk)).count() == 1

    user.refresh_from_db()
    change = reverse("admin:cases_user_change", args=[user.pk])
    r = admin_client.post(change, {
        "username": user.username, "first_name": "", "last_name": "", "email": "", "is_active": "on",
        "role": "agent", "lender": "", "lenders": [lender.pk], "jurisdictions": "[]", "initial-jurisdictions": "[]",
        "time_zone": user.time_zone,
        "last_login_0": "", "last_login_1": "", "date_joined_0": user.date_joined.strftime("%Y-%m-%d"),
        "date_joined_1": user.date_joined.strftime("%H:%M:%S"),
    })
    assert r.status_code == 302, r.content.decode()[:3000]
    changed = AuditEvent.objects.get(action="admin.cases.user.changed")
    assert changed.data["changes"]["role"] == {"from": "supervisor", "to": "agent"}
    assert changed.data["changes"]["lenders"] == {"from": [], "to": [lender.pk]}
    user.refresh_from_db()
    for event in AuditEvent.objects.filter(action__startswith="admin.cases.user."):
        text = json.dumps(event.data)
        assert user.password not in text and "secret-pw" not in text


def test_admin_lender_change_and_delete_are_audited(admin_client):
    lender = f.lender(status="pending")
    r = admin_client.post(reverse("admin:cases_lender_change", args=[lender.pk]), {
        "name": lender.name, "code": lender.code, "kind": lender.kind, "status": "active",
        "default_jurisdiction": lender.default_jurisdiction, "approved_at_0": "", "approved_at_1": "",
    })
    assert r.status_code == 302, r.content.decode()[:3000]
    event = AuditEvent.objects.get(action="admin.cases.lender.changed")
    assert event.lender_id == lender.pk and event.data["changes"]["status"] == {"from": "pending", "to": "active"}

    r = admin_client.post(reverse("admin:cases_lender_delete", args=[lender.pk]), {"post": "yes"})
    assert r.status_code == 302
    assert not Lender.objects.filter(pk=lender.pk).exists()
    deleted = AuditEvent.objects.get(action="admin.cases.lender.deleted")
    assert (deleted.subject_id, deleted.lender_id) == (str(lender.pk), lender.pk)


def test_admin_delete_selected_action_audits_each_object(admin_client):
    lenders = [f.lender(), f.lender()]
    r = admin_client.post(reverse("admin:cases_lender_changelist"), {
        "action": "delete_selected", "post": "yes", "_selected_action": [lender.pk for lender in lenders],
    })
    assert r.status_code == 302
    assert not Lender.objects.filter(pk__in=[lender.pk for lender in lenders]).exists()
    assert sorted(AuditEvent.objects.filter(action="admin.cases.lender.deleted").values_list("lender_id", flat=True)) == [
        lender.pk for lender in lenders]
