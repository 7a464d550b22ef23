"""Complaints register: from the borrower page or entered by staff, assigned, answered by a deadline, audited."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from borrowers import services
from borrowers.models import Complaint
from compliance.models import AuditEvent
from tests import factories as f

pytestmark = pytest.mark.django_db


@pytest.fixture
def signed_in(client, person):
    _row, raw = services.access_link_issue(borrower=person["a1"].borrower, actor=None)
    assert client.post(reverse("borrowers:access", args=[raw]), {"factor": "002X"}).status_code == 302
    return client


def test_borrower_complains_on_the_page(signed_in, person, settings):
    settings.BORROWER_COMPLAINT_DAYS = 10
    signed_in.post(reverse("borrowers:complaint"), {"complaint-account": person["a2"].pk,
                                                    "complaint-text": "They called me at 23:00."})
    c = Complaint.objects.get()
    assert (c.account, c.source, c.status) == (person["a2"], "borrower", "open")
    assert c.deadline == timezone.localdate() + timedelta(days=10)
    e = AuditEvent.objects.get(action="borrowers.complaint.received")
    assert (e.account_id, e.actor_label, e.data["complaint_id"]) == (person["a2"].pk, "borrower", c.pk)


def test_borrower_cannot_complain_about_someone_elses_account(signed_in, person):
    signed_in.post(reverse("borrowers:complaint"), {"complaint-account": person["stranger"].pk,
                                                    "complaint-text": "x"})
    assert not Complaint.objects.exists()


def test_third_party_complaint_entered_by_the_agent_keeps_names_out_of_the_audit(client, person):
    client.force_login(person["agent"])
    client.post(reverse("borrowers:complaint-new"), {
        "external_ref": person["a1"].external_ref, "complainant": "Wang Fang", "contact": "+8613800000000",
        "text": "Your agent called my office about my brother."})
    c = Complaint.objects.get()
    assert (c.source, c.complainant, c.entered_by) == ("third_party", "Wang Fang", person["agent"])
    e = AuditEvent.objects.get(action="borrowers.complaint.received")
    assert e.actor_id == person["agent"].pk and "Wang" not in str(e.data) and "13800000000" not in str(e.data)


def test_agent_cannot_record_against_an_account_not_theirs(client, person):
    other = f.user(role="agent")
    client.force_login(other)
    r = client.post(reverse("borrowers:complaint-new"), {
        "external_ref": person["a1"].external_ref, "complainant": "A", "text": "B"})
    assert r.status_code == 404 and not Complaint.objects.exists()


def test_assign_and_answer_by_the_assignee_only(client, person):
    boss, other = f.user(role="supervisor"), f.user(role="supervisor")
    c = services.complaint_register(actor=person["agent"], account=person["a1"], complainant="A", contact="",
                                    text="rude")
    with pytest.raises(ValidationError):
        services.complaint_assign(actor=person["agent"], complaint=c, assignee=boss)
    with pytest.raises(ValidationError):
        services.complaint_assign(actor=boss, complaint=c, assignee=person["agent"])
    client.force_login(boss)
    client.post(reverse("borrowers:complaint-assign", args=[c.pk]), {"assignee": other.pk})
    c.refresh_from_db()
    assert c.assigned_to == other
    client.post(reverse("borrowers:complaint-answer", args=[c.pk]), {"answer": "I answer it"})
    c.refresh_from_db()
    assert c.status == "open"  # boss is not the assignee
    services.complaint_answer(actor=other, complaint=c, answer="We apologised and retrained the agent.")
    c.refresh_from_db()
    assert (c.status, c.answered_by) == ("answered", other) and c.answered_at
    with pytest.raises(ValidationError):
        services.complaint_answer(actor=other, complaint=c, answer="again")
    actions = list(AuditEvent.objects.filter(action__startswith="borrowers.complaint.").order_by("pk")
                   .values_list("action", flat=True))
    assert actions == ["borrowers.complaint.received", "borrowers.complaint.assigned", "borrowers.complaint.answered"]
    assert AuditEvent.objects.get(action="borrowers.complaint.answered").data["late"] is False


def test_list_marks_overdue_and_is_for_supervisors(client, person):
    late = services.complaint_register(actor=person["agent"], account=person["a1"], complainant="A", contact="",
                                       text="late one")
    Complaint.objects.filter(pk=late.pk).update(deadline=timezone.localdate() - timedelta(days=1))
    fresh = services.complaint_register(actor=person["agent"], account=person["a2"], complainant="B", contact="",
                                        text="fresh one")
    client.force_login(person["agent"])
    assert client.get(reverse("borrowers:complaints")).status_code == 403
    client.force_login(f.user(role="supervisor"))
    html = client.get(reverse("borrowers:complaints")).content.decode()
    assert f'data-complaint="{late.pk}" class="overdue"' in html
    assert f'data-complaint="{fresh.pk}">' in html


def test_answer_constraint_in_the_database(person):
    from django.db import IntegrityError, transaction

    c = services.complaint_register(actor=person["agent"], account=person["a1"], complainant="A", contact="",
                                    text="x")
    with pytest.raises(IntegrityError), transaction.atomic():
        Complaint.objects.filter(pk=c.pk).update(status="answered")
