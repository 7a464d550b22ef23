"""Borrower actions through the page: each audited with the account's ids, holds enforced by the gate."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from borrowers import services
from borrowers.models import ConsentRecord, Dispute, DisputeEvidence, PlanProposal
from cases.models import Borrower, Callback, OverdueAccount, PromiseToPay, RepaymentPlan
from cases.services import ContactRefused, contact_attempt_start
from compliance.models import AuditEvent
from tests import factories as f

pytestmark = pytest.mark.django_db

PDF = b"%PDF-1.4\n%test evidence\n"


@pytest.fixture
def signed_in(client, person):
    _row, raw = services.access_link_issue(borrower=person["a1"].borrower, actor=None)
    assert client.post(reverse("borrowers:access", args=[raw]), {"factor": "002X"}).status_code == 302
    return client


def _event(action: str, account) -> AuditEvent:
    e = AuditEvent.objects.get(action=action, account_id=account.pk)
    assert (e.borrower_id, e.lender_id, e.actor_label) == (account.borrower_id, account.lender_id, "borrower")
    return e


def test_promise(signed_in, person):
    due = timezone.localdate() + timedelta(days=5)
    signed_in.post(reverse("borrowers:promise"), {"promise-account": person["a2"].pk, "promise-amount": "100.00",
                                                  "promise-due_date": due.isoformat()})
    promise = PromiseToPay.objects.get(account=person["a2"])
    assert promise.amount == 100 and promise.created_by.username == services.SYSTEM_USERNAME
    assert not promise.created_by.is_active and not promise.created_by.has_usable_password()
    assert _event("borrowers.promise.made", person["a2"]).data["promise_id"] == promise.pk


def test_another_persons_account_is_not_accepted(signed_in, person):
    due = timezone.localdate() + timedelta(days=5)
    signed_in.post(reverse("borrowers:promise"), {"promise-account": person["stranger"].pk,
                                                  "promise-amount": "10.00", "promise-due_date": due.isoformat()})
    assert not PromiseToPay.objects.exists()


def test_plan_proposal_then_agent_accepts(signed_in, person):
    first = timezone.localdate() + timedelta(days=3)
    signed_in.post(reverse("borrowers:plan"), {"plan-account": person["a1"].pk, "plan-count": "3",
                                               "plan-amount": "200.00", "plan-first_date": first.isoformat()})
    proposal = PlanProposal.objects.get(account=person["a1"])
    assert proposal.total_amount == 600 and len(proposal.instalments) == 3
    assert not RepaymentPlan.objects.exists()  # a proposal, not yet a plan
    _event("borrowers.plan.proposed", person["a1"])
    agent = f.user(role="agent")  # not assigned: cannot see it
    assert services.plan_proposal_accept  # the view scopes; check it through HTTP
    other = signed_in.__class__()
    other.force_login(agent)
    assert other.post(reverse("borrowers:proposal-accept", args=[proposal.pk])).status_code == 404
    other.force_login(person["agent"])
    other.post(reverse("borrowers:proposal-accept", args=[proposal.pk]))
    proposal.refresh_from_db()
    assert proposal.status == "accepted" and proposal.plan.total_amount == 600
    assert proposal.plan.instalments.count() == 3


def test_plan_over_the_balance_is_refused(signed_in, person):
    first = timezone.localdate() + timedelta(days=3)
    signed_in.post(reverse("borrowers:plan"), {"plan-account": person["a2"].pk, "plan-count": "2",
                                               "plan-amount": "500.00", "plan-first_date": first.isoformat()})
    assert not PlanProposal.objects.exists()


def test_dispute_puts_the_hold_on_and_blocks_agent_outreach(signed_in, person, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    account = person["a1"]
    contact_attempt_start(account=account, actor=person["agent"], channel="call")  # allowed before
    signed_in.post(reverse("borrowers:dispute"), {
        "dispute-account": account.pk, "dispute-reason": "amount_wrong", "dispute-text": "I paid 300 in May",
        "dispute-evidence": SimpleUploadedFile("receipt.pdf", PDF, content_type="application/pdf")})
    dispute = Dispute.objects.get(account=account)
    assert dispute.deadline == timezone.localdate() + timedelta(days=settings.BORROWER_DISPUTE_DAYS)
    ev = DisputeEvidence.objects.get(dispute=dispute)
    assert ev.original_name == "receipt.pdf" and "receipt" not in ev.file.name and ev.content_type == "application/pdf"
    assert ev.file.name.startswith("disputes/") and ev.file.name.endswith(".pdf")
    assert (tmp_path / ev.file.name).read_bytes() == PDF
    assert Borrower.objects.get(pk=account.borrower_id).dispute
    assert OverdueAccount.objects.get(pk=account.pk).status == "dispute"
    _event("borrowers.dispute.raised", account)
    with pytest.raises(ContactRefused):
        contact_attempt_start(account=account, actor=person["agent"], channel="call")


def test_evidence_type_and_size_are_checked(signed_in, person, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    # An executable renamed to .pdf is refused: the type is read from the bytes.
    signed_in.post(reverse("borrowers:dispute"), {
        "dispute-account": person["a1"].pk, "dispute-reason": "other",
        "dispute-evidence": SimpleUploadedFile("x.pdf", b"MZ\x90\x00binary", content_type="application/pdf")})
    settings.BORROWER_EVIDENCE_MAX_BYTES = 10
    signed_in.post(reverse("borrowers:dispute"), {
        "dispute-account": person["a1"].pk, "dispute-reason": "other",
        "dispute-evidence": SimpleUploadedFile("big.pdf", PDF, content_type="application/pdf")})
    assert not Dispute.objects.exists()
    assert not Borrower.objects.get(pk=person["a1"].borrower_id).dispute


def test_evidence_is_served_only_with_a_check(signed_in, person, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    dispute = services.borrower_dispute_raise(
        person=person["a1"].borrower.person, account_id=person["a1"].pk, reason="other", text="",
        files=[SimpleUploadedFile("r.png", b"\x89PNG\r\n\x1a\nxxxx", content_type="image/png")])
    ev = dispute.evidence.get()
    url = reverse("borrowers:evidence", args=[ev.pk])
    c = signed_in.__class__()
    assert c.get(url).status_code == 302  # not signed in: to the login page
    c.force_login(f.user(role="lender", lender=person["l2"]))
    assert c.get(url).status_code == 404  # another lender
    c.force_login(f.user(role="lender", lender=person["l1"]))
    response = c.get(url)
    assert response.status_code == 200 and b"".join(response.streaming_content).startswith(b"\x89PNG")
    assert AuditEvent.objects.filter(action="borrowers.evidence.viewed", account_id=person["a1"].pk).count() == 1


def test_opt_out_of_sms(signed_in, person):
    signed_in.post(reverse("borrowers:opt-out"), {"channel": "sms"})
    for key in ("a1", "a2"):
        b = Borrower.objects.get(pk=person[key].borrower_id)
        assert b.opted_out and b.opted_out[0].startswith("+86")
        _event("borrowers.opt_out.requested", person[key])
    assert not Borrower.objects.get(pk=person["stranger"].borrower_id).opted_out
    with pytest.raises(ContactRefused):
        from cases.services import contact_attempt_record

        contact_attempt_record(account=person["a1"], actor=None, channel="sms", outcome="delivered", source="reminder")


def test_after_hours_consent_is_recorded_and_audited(signed_in, person):
    signed_in.post(reverse("borrowers:preferences"), {"prefs-sms_consent": "on", "prefs-email_consent": "on",
                                                      "prefs-after_hours_consent": "on"})
    b = Borrower.objects.get(pk=person["a1"].borrower_id)
    assert b.after_hours_consent
    rec = ConsentRecord.objects.get(borrower=b, field="after_hours_consent")
    assert rec.value is True and rec.recorded_at is not None
    e = _event("borrowers.preferences.changed", person["a1"])
    assert e.data["changes"] == {"after_hours_consent": True}


def test_callback_at_a_lawful_time_only(signed_in, person):
    account = person["a1"]
    zone = ZoneInfo(account.borrower.zones[0])
    tomorrow = timezone.localtime(timezone.now(), zone).date() + timedelta(days=1)
    night = datetime.combine(tomorrow, datetime.min.time()).replace(hour=23)
    signed_in.post(reverse("borrowers:callback"), {"callback-account": account.pk,
                                                   "callback-due_at": night.strftime("%Y-%m-%dT%H:%M")})
    assert not Callback.objects.exists()
    _event("borrowers.callback.refused", account)
    noon = night.replace(hour=12)
    signed_in.post(reverse("borrowers:callback"), {"callback-account": account.pk,
                                                   "callback-due_at": noon.strftime("%Y-%m-%dT%H:%M")})
    cb = Callback.objects.get(account=account)
    assert cb.agent == person["agent"] and cb.due_at == noon.replace(tzinfo=zone)


def test_dispute_rejected_lifts_the_hold_upheld_closes(person, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    supervisor = f.user(role="supervisor")
    key = person["a1"].borrower.person
    d1 = services.borrower_dispute_raise(person=key, account_id=person["a1"].pk, reason="other", text="")
    services.dispute_verification_request(actor=person["agent"], dispute=d1)
    lender_user = f.user(role="lender", lender=person["l1"])
    services.dispute_resolve(actor=lender_user, dispute=d1, outcome="rejected", note="signed contract attached")
    assert not Borrower.objects.get(pk=person["a1"].borrower_id).dispute
    assert OverdueAccount.objects.get(pk=person["a1"].pk).status == "assigned"
    assert AuditEvent.objects.filter(action="borrowers.dispute.resolved", account_id=person["a1"].pk,
                                     data__hold_lifted=True).exists()
    d2 = services.borrower_dispute_raise(person=key, account_id=person["a2"].pk, reason="not_mine", text="")
    services.dispute_resolve(actor=supervisor, dispute=d2, outcome="upheld", note="identity theft confirmed")
    assert OverdueAccount.objects.get(pk=person["a2"].pk).status == "closed"


def test_lender_sees_and_resolves_only_its_disputes(client, person, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    key = person["a1"].borrower.person
    d = services.borrower_dispute_raise(person=key, account_id=person["a1"].pk, reason="other", text="")
    services.dispute_verification_request(actor=person["agent"], dispute=d)
    client.force_login(f.user(role="lender", lender=person["l2"]))
    assert person["a1"].external_ref not in client.get(reverse("borrowers:lender-disputes")).content.decode()
    url = reverse("borrowers:lender-dispute-resolve", args=[d.pk])
    assert client.post(url, {"outcome": "upheld", "note": "x"}).status_code == 404
    client.force_login(f.user(role="lender", lender=person["l1"]))
    assert person["a1"].external_ref in client.get(reverse("borrowers:lender-disputes")).content.decode()
    client.post(url, {"outcome": "upheld", "note": "paid off in full"})
    assert Dispute.objects.get(pk=d.pk).status == "upheld"


def test_supervisor_lifts_a_hold_in_the_app(client, person):
    Borrower.objects.filter(pk=person["a1"].borrower_id).update(dispute=True)
    agent_client = client.__class__()
    agent_client.force_login(person["agent"])
    url = reverse("borrowers:hold-lift", args=[person["a1"].borrower_id])
    assert agent_client.post(url, {"flag": "dispute", "reason": "x"}).status_code == 403
    client.force_login(f.user(role="supervisor"))
    client.post(url, {"flag": "dispute", "reason": "lender verified the debt by phone"})
    assert not Borrower.objects.get(pk=person["a1"].borrower_id).dispute
    e = AuditEvent.objects.get(action="borrowers.hold.lifted", account_id=person["a1"].pk)
    assert e.data["flag"] == "dispute"
    # Any hold is listed (masked name) and can be lifted the same way.
    Borrower.objects.filter(pk=person["a2"].borrower_id).update(cease=True)
    page = client.get(reverse("borrowers:staff")).content.decode()
    assert f'data-borrower="{person["a2"].borrower_id}"' in page and person["a2"].borrower.name not in page
    client.post(reverse("borrowers:hold-lift", args=[person["a2"].borrower_id]), {"flag": "cease", "reason": "r"})
    assert not Borrower.objects.get(pk=person["a2"].borrower_id).cease


def test_after_hours_consent_is_honoured_by_agent_outreach(client, db):
    """CN: no contact 22:00-08:00 unless the debtor agreed; the consent given on the page lifts that."""
    from tests.borrowers.conftest import with_id
    from tests.cases.test_workspace import zone_at_local_hour

    agent = f.user(role="agent")
    account = f.account(lender=f.lender(), agent=agent, zones=(zone_at_local_hour(23),))
    with_id(account.borrower)
    with pytest.raises(ContactRefused):
        contact_attempt_start(account=account, actor=agent, channel="call")
    services.borrower_preferences_set(person=Borrower.objects.get(pk=account.borrower_id).person,
                                      values={"after_hours_consent": True})
    assert contact_attempt_start(account=account, actor=agent, channel="call").state == "started"


def test_who_may_answer_proposals_and_disputes(person, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    from django.core.exceptions import ValidationError

    key = person["a1"].borrower.person
    first = timezone.localdate() + timedelta(days=3)
    proposal = services.borrower_plan_propose(person=key, account_id=person["a1"].pk,
                                              instalments=[(first, services.Decimal("100"))])
    with pytest.raises(ValidationError):
        services.plan_proposal_counter(actor=f.user(role="agent"), proposal=proposal, note="200 a month")
    services.plan_proposal_counter(actor=person["agent"], proposal=proposal, note="200 a month")
    assert PlanProposal.objects.get(pk=proposal.pk).status == "countered"
    _event_staff = AuditEvent.objects.get(action="borrowers.plan.countered", account_id=person["a1"].pk)
    assert _event_staff.actor_id == person["agent"].pk
    dispute = services.borrower_dispute_raise(person=key, account_id=person["a1"].pk, reason="other", text="")
    lender_user = f.user(role="lender", lender=person["l1"])
    with pytest.raises(ValidationError):  # the lender answers once verification was asked
        services.dispute_resolve(actor=lender_user, dispute=dispute, outcome="upheld", note="x")
    with pytest.raises(ValidationError):  # agents do not decide disputes
        services.dispute_resolve(actor=person["agent"], dispute=dispute, outcome="rejected", note="x")
    assert Dispute.objects.get(pk=dispute.pk).status == "open"


def test_dispute_with_several_files(signed_in, person, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    signed_in.post(reverse("borrowers:dispute"), {
        "dispute-account": person["a2"].pk, "dispute-reason": "already_paid",
        "dispute-evidence": [SimpleUploadedFile("a.pdf", PDF, content_type="application/pdf"),
                             SimpleUploadedFile("b.jpg", b"\xff\xd8\xff\xe0jpeg", content_type="image/jpeg")]})
    dispute = Dispute.objects.get(account=person["a2"])
    assert sorted(dispute.evidence.values_list("content_type", flat=True)) == ["application/pdf", "image/jpeg"]


def test_requests_page_lists_what_the_user_may_answer(client, person, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    key = person["a1"].borrower.person
    first = timezone.localdate() + timedelta(days=3)
    services.borrower_plan_propose(person=key, account_id=person["a1"].pk, instalments=[(first, services.Decimal("50"))])
    services.borrower_dispute_raise(person=key, account_id=person["a2"].pk, reason="other", text="see file")
    client.force_login(person["agent"])
    page = client.get(reverse("borrowers:staff")).content.decode()
    assert person["a1"].external_ref in page and person["a2"].external_ref in page
    assert "hold-lift" not in page and 'id="holds"' not in page  # supervisors only
    client.force_login(f.user(role="agent"))
    page = client.get(reverse("borrowers:staff")).content.decode()
    assert person["a1"].external_ref not in page
    client.force_login(f.user(role="supervisor"))
    page = client.get(reverse("borrowers:staff")).content.decode()
    assert 'id="holds"' in page and person["a2"].external_ref in page
    client.force_login(f.user(role="lender", lender=person["l1"]))
    assert client.get(reverse("borrowers:staff")).status_code == 403


def test_a_dispute_that_fails_leaves_no_evidence_file_behind(person, settings, tmp_path, monkeypatch):
    """The files are written before the transaction commits: a crash after them removes them again."""
    settings.MEDIA_ROOT = tmp_path

    def crash(*args, **kwargs):
        raise RuntimeError("audit store down")

    monkeypatch.setattr(services, "_audit_account", crash)
    files = [SimpleUploadedFile("a.pdf", PDF, content_type="application/pdf"),
             SimpleUploadedFile("b.jpg", b"\xff\xd8\xff\xe0jpeg", content_type="image/jpeg")]
    with pytest.raises(RuntimeError):
        services.borrower_dispute_raise(person=person["a1"].borrower.person, account_id=person["a2"].pk,
                                        reason="other", text="x", files=files)
    assert not Dispute.objects.exists() and not DisputeEvidence.objects.exists()
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
    assert OverdueAccount.objects.get(pk=person["a2"].pk).status != OverdueAccount.Status.DISPUTE


def test_the_page_shows_what_the_balance_is_made_of(signed_in, person):
    acc = person["a1"]  # 1,200.00 placed with interest and fees (the placement file's optional columns)
    OverdueAccount.objects.filter(pk=acc.pk).update(extra={"balance_parts": {"interest": "150.00", "fees": "50.00"}})
    page = signed_in.get(reverse("borrowers:home"), HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    card = page.split(f'data-account="{acc.pk}"', 1)[1].split("</section>", 1)[0]
    assert 'data-part="principal">1,000.00 CNY' in card
    assert 'data-part="interest">150.00 CNY' in card and 'data-part="fees">50.00 CNY' in card
    assert 'data-part="costs"' not in card  # a zero part is left out
    assert "利息" in card and "1,200.00 CNY" in card
