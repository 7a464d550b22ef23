"""Supervisor console: access control, audit search/pagination/exports, verify fast path, what-if, agents."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from cases.services import ContactRefused, contact_attempt_record
from compliance import services
from compliance.audit import audit_log, audit_verify, event_hash, row_hash
from compliance.models import AuditEvent, Policy
from compliance.selectors import AuditFilters, audit_event_page
from supervision import services as supervision_services
from tests import factories as f

pytestmark = pytest.mark.django_db

PW = "pw-Secret-123"


@pytest.fixture(autouse=True)
def _seeded_policies(django_db_blocker, request):
    """A transactional test elsewhere in the run flushes the seeded policies; make sure they exist."""
    if "transactional_db" in request.fixturenames:
        return  # restored by tests/conftest.py
    request.getfixturevalue("db")
    import json

    from tests.conftest import ROOT

    for data in json.loads((ROOT / "compliance/migrations/policies_v1.json").read_text(encoding="utf-8")):
        Policy.objects.get_or_create(
            code=data["code"], version=data["version"],
            defaults={"name": data["name"], "status": "published", "rules": data,
                      "effective_from": datetime.fromisoformat(data["effective_from"]).replace(tzinfo=UTC)},
        )


def supervisor_urls(policy_pk: int, agent_pk: int, account_pk: int) -> list[tuple[str, str]]:
    return [
        ("get", reverse("supervisor-home")),
        ("get", reverse("supervisor-audit")),
        ("get", reverse("supervisor-audit-export", args=["csv"])),
        ("get", reverse("supervisor-audit-export", args=["xlsx"])),
        ("get", reverse("supervisor-audit-account", args=[account_pk])),
        ("get", reverse("supervisor-policies")),
        ("get", reverse("supervisor-policy-draft", args=["CN"])),
        ("post", reverse("supervisor-policy-draft", args=["CN"])),
        ("get", reverse("supervisor-policy", args=[policy_pk]) + "?days=7"),
        ("post", reverse("supervisor-policy-publish", args=[policy_pk])),
        ("get", reverse("supervisor-agents")),
        ("get", reverse("supervisor-agent-edit", args=[agent_pk])),
        ("post", reverse("supervisor-agent-edit", args=[agent_pk])),
    ]


@pytest.fixture
def world():
    lender = f.lender()
    agent = f.user(role="agent")
    sup = f.user(role="supervisor")
    lender_user = f.user(role="lender", lender=lender)
    account = f.account(lender=lender, agent=agent)
    return {"lender": lender, "agent": agent, "sup": sup, "lender_user": lender_user, "account": account}


@pytest.mark.parametrize("who", ["agent", "lender_user", "anonymous"])
def test_non_supervisors_cannot_reach_any_supervisor_url(client, world, who):
    draft = Policy.objects.create(code="CN", version=99, name="x", effective_from=timezone.now(), rules={})
    if who != "anonymous":
        client.force_login(world[who])
    before = AuditEvent.objects.exclude(action__startswith="auth.").count()
    for method, url in supervisor_urls(draft.pk, world["agent"].pk, world["account"].pk):
        response = getattr(client, method)(url, {"name": "x", "rules": "[]", "lenders": [world["lender"].pk]})
        if who == "anonymous":
            assert response.status_code == 302 and "/accounts/login/" in response["Location"], url
        else:
            assert response.status_code == 403, (who, method, url, response.status_code)
    draft.refresh_from_db()
    assert draft.status == "draft"  # nothing was published
    assert AuditEvent.objects.exclude(action__startswith="auth.").count() == before  # nothing was written


def test_supervisor_reaches_every_page(client, world):
    draft = Policy.objects.create(code="CN", version=99, name="x", effective_from=timezone.now(),
                                  rules=Policy.objects.get(code="CN", version=1).rules | {"version": 99})
    client.force_login(world["sup"])
    for method, url in supervisor_urls(draft.pk, world["agent"].pk, world["account"].pk):
        if method == "get":
            assert client.get(url).status_code == 200, url


def test_audit_page_filters_and_keyset_pagination(client, world):
    other = f.lender()
    for i in range(120):
        audit_log(action="tests.event", lender_id=world["lender"].pk, account_id=world["account"].pk, data={"i": i})
    audit_log(action="tests.event", lender_id=other.pk, account_id=999, data={"i": "other"})
    filters = AuditFilters(lender_id=world["lender"].pk, action="tests.")
    first = audit_event_page(filters=filters)
    assert len(first.events) == 50 and first.next_before_id == first.events[-1].id
    assert [e.data["i"] for e in first.events[:3]] == [119, 118, 117]
    second = audit_event_page(filters=filters, before_id=first.next_before_id)
    third = audit_event_page(filters=filters, before_id=second.next_before_id)
    assert len(third.events) == 20 and third.next_before_id is None
    ids = [e.id for e in first.events + second.events + third.events]
    assert len(set(ids)) == 120 and ids == sorted(ids, reverse=True)
    client.force_login(world["sup"])
    response = client.get(reverse("supervisor-audit"), {"lender": world["lender"].pk, "action": "tests."})
    assert response.status_code == 200
    assert f"before={first.next_before_id}" in response.content.decode()
    assert "other" not in response.content.decode()


def _record(account, agent, at, outcome="no_answer", now_at=None):
    """Outreach made at ``at``: with ``now_at`` the clock is there too, so the gate judges it before the
    act (and refuses); without, it is a contact reported afterwards (stored, a breach flagged)."""
    if now_at is not None:
        now_at(at)
    return contact_attempt_record(account=account, actor=agent, channel="call", outcome=outcome, occurred_at=at,
                                  notes=f"note {outcome}")


def _past_local(days: int, hour: int) -> datetime:
    local = timezone.localtime() - timedelta(days=days)
    return local.replace(hour=hour, minute=0, second=0, microsecond=0)


def test_outcome_filter_and_formula_safe_exports(client, world, now_at):
    acc, agent = world["account"], world["agent"]
    _record(acc, agent, _past_local(2, 10))
    with pytest.raises(ContactRefused):
        _record(acc, agent, _past_local(1, 23), now_at=now_at)  # quiet hours: refused and audited
    other_agent = f.user(role="agent")
    with pytest.raises(ContactRefused):
        _record(acc, other_agent, _past_local(1, 23), now_at=now_at)
    audit_log(action="cases.note.added", actor=agent, lender_id=acc.lender_id, account_id=acc.pk,
              data={"body": "=HYPERLINK(\"http://evil\")"})
    page = audit_event_page(filters=AuditFilters(actor_id=agent.pk, outcome="refused"))
    assert [e.action for e in page.events] == ["compliance.contact.blocked"]
    assert page.events[0].actor_id == agent.pk

    client.force_login(world["sup"])
    response = client.get(reverse("supervisor-audit-export", args=["csv"]), {"agent": agent.pk, "outcome": "refused"})
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig"))))
    assert rows[0][0] == "id" and len(rows) == 2 and rows[1][4] == "compliance.contact.blocked"
    assert "CN.QUIET_HOURS" in rows[1][9]

    response = client.get(reverse("supervisor-audit-export", args=["csv"]), {"action": "cases.note.added"})
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig"))))
    assert rows[1][9].startswith("'=HYPERLINK")

    from openpyxl import load_workbook

    response = client.get(reverse("supervisor-audit-export", args=["xlsx"]), {"action": "cases.note.added"})
    ws = load_workbook(io.BytesIO(response.content)).active
    cell = ws.cell(row=2, column=10)
    assert cell.data_type == "s" and cell.value.startswith("'=HYPERLINK")


def test_notes_search(world):
    acc = world["account"]
    audit_log(action="cases.note.added", lender_id=acc.lender_id, account_id=acc.pk, data={"body": "借款人说下周发工资 hardship"})
    audit_log(action="cases.note.added", lender_id=acc.lender_id, account_id=acc.pk, data={"body": "nothing here"})
    audit_log(action="cases.account.status_changed", lender_id=acc.lender_id, data={"reason": "Hardship case"})
    found = audit_event_page(filters=AuditFilters(q="hardship")).events
    assert len(found) == 2
    assert [e.data.get("body") for e in audit_event_page(filters=AuditFilters(q="发工资")).events] == ["借款人说下周发工资 hardship"]
    assert audit_event_page(filters=AuditFilters(q="100%_")).events == []  # LIKE wildcards are literal


def test_account_timeline_scoped(client, world):
    acc = world["account"]
    audit_log(action="cases.note.added", lender_id=acc.lender_id, account_id=acc.pk, data={"body": "timeline note"})
    client.force_login(world["sup"])
    response = client.get(reverse("supervisor-audit-account", args=[acc.pk]))
    assert "timeline note" in response.content.decode()
    assert client.get(reverse("supervisor-audit-account", args=[10**9])).status_code == 404


def test_row_hash_matches_event_hash_on_awkward_content():
    user = f.user(role="supervisor")
    ev = audit_log(action="tests.awkward", actor=user, lender_id=None, policy_code="CN", policy_version=3,
                   data={"text": 'quote " back\\slash\ttab\nnewline \u2028 中文 😀', "n": [1, 2.5, None, True],
                         "nested": {"b": 1, "a": {"z": "", "é": "x"}}, "big": 10**15})
    ev = AuditEvent.objects.get(pk=ev.pk)
    assert event_hash(ev) == ev.hash
    row = (ev.id, ev.seq, ev.created_at, ev.actor_id, ev.actor_label, ev.lender_id, ev.action, ev.subject_type,
           ev.subject_id, ev.account_id, ev.borrower_id, ev.data, ev.policy_code, ev.policy_version, ev.prev_hash, ev.hash)
    assert row_hash(ev.chain, row) == ev.hash
    result = audit_verify(record=False)  # the raw COPY path on PostgreSQL parses the same row from text
    assert result.ok, result.detail


@pytest.mark.django_db(transaction=True)
def test_parallel_verify_finds_altered_row_and_reports_lowest_id(require_postgres):
    a, b = f.lender(), f.lender()
    events = []
    for i in range(40):
        events.append(audit_log(action="tests.event", lender_id=(a if i % 2 else b).pk, data={"i": i, "s": "x\\y"}))
    assert audit_verify(record=False, workers=3).ok
    first, second = events[25], events[30]
    with connection.cursor() as cur:
        cur.execute("ALTER TABLE compliance_auditevent DISABLE TRIGGER compliance_auditevent_append_only")
        cur.execute("UPDATE compliance_auditevent SET data = %s WHERE id = %s", ['{"i": 99}', second.pk])
        cur.execute("UPDATE compliance_auditevent SET actor_label = %s WHERE id = %s", ["forged", first.pk])
        cur.execute("ALTER TABLE compliance_auditevent ENABLE TRIGGER compliance_auditevent_append_only")
    for workers in (1, 3):
        result = audit_verify(record=False, workers=workers)
        assert not result.ok and result.first_broken_id == first.pk and "altered" in result.detail


@pytest.mark.django_db(transaction=True)
def test_parallel_verify_finds_deleted_row_and_missing_tail(require_postgres):
    lender = f.lender()
    events = [audit_log(action="tests.event", lender_id=lender.pk, data={"i": i}) for i in range(30)]
    with connection.cursor() as cur:
        cur.execute("ALTER TABLE compliance_auditevent DISABLE TRIGGER compliance_auditevent_append_only")
        cur.execute("DELETE FROM compliance_auditevent WHERE id = %s", [events[29].pk])
        cur.execute("ALTER TABLE compliance_auditevent ENABLE TRIGGER compliance_auditevent_append_only")
    result = audit_verify(record=False, workers=2)
    assert not result.ok and "missing" in result.detail
    with connection.cursor() as cur:
        cur.execute("ALTER TABLE compliance_auditevent DISABLE TRIGGER compliance_auditevent_append_only")
        cur.execute("DELETE FROM compliance_auditevent WHERE id = %s", [events[10].pk])
        cur.execute("ALTER TABLE compliance_auditevent ENABLE TRIGGER compliance_auditevent_append_only")
    result = audit_verify(record=False, workers=2)
    assert not result.ok and result.first_broken_id == events[11].pk and "deleted" in result.detail


def _stricter_cn(actor, max_calls: int = 1):
    base = Policy.objects.get(code="CN", version=1).rules
    rules = [r for r in base["rules"]] + [{
        "type": "frequency", "code": "CN.TEST.ONE_CALL_A_WEEK", "citation": "what-if test", "channels": ["call"],
        "count_channels": ["call"], "count_outcomes": ["no_answer", "busy", "right_party_contact", "not_connected"],
        "scope": "borrower", "period": "rolling", "days": 7, "max": max_calls, "label": "calls",
    }]
    return services.policy_draft_create(actor=actor, code="CN", data={"name": "CN stricter", "rules": rules},
                                        effective_from=timezone.now() + timedelta(days=30))


def test_whatif_replay_counts_refusals_by_rule(client, world):
    acc, agent = world["account"], world["agent"]
    for days in (5, 4, 3):
        _record(acc, agent, _past_local(days, 10))
    old = _record(acc, agent, _past_local(40, 10))  # outside the replay window: history only
    assert old.pk
    draft = _stricter_cn(world["sup"])
    result = supervision_services.policy_whatif_replay(policy=draft, days=30)
    assert result.attempts == 3
    assert result.draft.refused == 2 and result.draft.by_rule == {"CN.TEST.ONE_CALL_A_WEEK": 2}
    assert result.baseline is not None and result.baseline.refused == 0
    assert Policy.objects.get(pk=draft.pk).status == "draft"
    client.force_login(world["sup"])
    page = client.get(reverse("supervisor-policy", args=[draft.pk]), {"days": 30}).content.decode()
    assert "CN.TEST.ONE_CALL_A_WEEK" in page


def test_whatif_replay_is_bounded(world):
    acc, agent = world["account"], world["agent"]
    for days in (5, 4, 3):
        _record(acc, agent, _past_local(days, 10))
    result = supervision_services.policy_whatif_replay(policy=_stricter_cn(world["sup"]), days=30, max_attempts=2)
    assert result.truncated and result.attempts == 2 and result.notes


def test_draft_and_publish_through_the_console_are_audited(client, world):
    client.force_login(world["sup"])
    rules = Policy.objects.get(code="CN", version=1).rules["rules"]
    nxt = Policy.objects.filter(code="CN").order_by("-version").first().version + 1
    import json

    response = client.post(reverse("supervisor-policy-draft", args=["CN"]), {
        "name": f"CN v{nxt}", "effective_from": "2030-01-01T09:00", "rules": json.dumps(rules)})
    draft = Policy.objects.get(code="CN", version=nxt)
    assert response.status_code == 302 and draft.status == "draft"
    bad = client.post(reverse("supervisor-policy-draft", args=["CN"]), {
        "name": "x", "effective_from": "2030-01-01T09:00", "rules": '[{"type": "nonsense"}]'})
    assert bad.status_code == 200 and not Policy.objects.filter(code="CN", version=nxt + 1).exists()
    client.post(reverse("supervisor-policy-publish", args=[draft.pk]))
    draft.refresh_from_db()
    assert draft.status == "published"
    ev = AuditEvent.objects.filter(action="compliance.policy.published").get()
    assert ev.actor_id == world["sup"].pk and ev.data["version"] == nxt


def test_agent_settings_are_audited(client, world):
    other = f.lender()
    client.force_login(world["sup"])
    response = client.post(reverse("supervisor-agent-edit", args=[world["agent"].pk]),
                           {"lenders": [world["lender"].pk, other.pk], "jurisdictions": ["CN", "AU"]})
    assert response.status_code == 302
    agent = world["agent"]
    agent.refresh_from_db()
    assert set(agent.lenders.values_list("pk", flat=True)) == {world["lender"].pk, other.pk}
    assert agent.jurisdictions == ["AU", "CN"]
    ev = AuditEvent.objects.get(action="cases.agent.settings_changed")
    assert ev.actor_id == world["sup"].pk and ev.data["after"]["jurisdictions"] == ["AU", "CN"]
    bad = client.post(reverse("supervisor-agent-edit", args=[agent.pk]), {"jurisdictions": ["XX"]})
    assert bad.status_code == 200 and AuditEvent.objects.filter(action="cases.agent.settings_changed").count() == 1
    assert client.get(reverse("supervisor-agent-edit", args=[world["sup"].pk])).status_code == 404


def test_logins_logouts_and_failures_are_audited(client, world):
    assert client.login(username=world["agent"].username, password=PW)
    client.post(reverse("logout"))
    assert not client.login(username=world["agent"].username, password="wrong")
    actions = list(AuditEvent.objects.filter(action__startswith="auth.").order_by("id").values_list("action", flat=True))
    assert actions == ["auth.login", "auth.logout", "auth.login_failed"]
    failed = AuditEvent.objects.get(action="auth.login_failed")
    assert failed.data["username"] == world["agent"].username and "wrong" not in str(failed.data)


def test_dashboard_shows_charts_and_figures(client, world, now_at):
    acc, agent = world["account"], world["agent"]
    _record(acc, agent, _past_local(2, 10), outcome="right_party_contact")
    _record(acc, agent, _past_local(2, 11), outcome="no_answer")
    with pytest.raises(ContactRefused):
        _record(acc, agent, _past_local(1, 23), now_at=now_at)
    client.force_login(world["sup"])
    response = client.get(reverse("supervisor-home"))
    html = response.content.decode()
    assert response.status_code == 200 and html.count("<svg") >= 4
    assert "CN.QUIET_HOURS" in html
    from supervision import dashboards

    today = timezone.localdate()
    board = dashboards.dashboard(filters=dashboards.DashboardFilters(date_from=today - timedelta(days=7), date_to=today))
    row = next(r for r in board.by_agent if r.key == agent.pk)
    assert (row.attempts, row.accounts_worked, row.contacts, row.rpc, row.refusals) == (2, 1, 1, 1, 1)
    assert board.refusals_by_rule == [("CN.QUIET_HOURS", 1)]
    empty = dashboards.dashboard(filters=dashboards.DashboardFilters(
        date_from=datetime(2001, 1, 1, tzinfo=UTC).date(), date_to=datetime(2001, 1, 2, tzinfo=UTC).date()))
    assert empty.totals.attempts == 0


def test_publishing_a_backdated_draft_takes_effect_from_now_not_retroactively(world):
    from compliance.selectors import policy_row_in_force

    before = policy_row_in_force(code="CN", at=timezone.now() - timedelta(days=10))
    backdated = timezone.now() - timedelta(days=30)
    draft = services.policy_draft_create(actor=world["sup"], code="CN", data={"name": "CN backdated",
                                         "rules": Policy.objects.get(code="CN", version=1).rules["rules"]},
                                         effective_from=backdated)
    published = services.policy_publish(actor=world["sup"], policy=draft)
    published.refresh_from_db()
    assert published.effective_from == published.published_at > backdated
    # Outreach already made stays judged by the version in force then.
    assert policy_row_in_force(code="CN", at=timezone.now() - timedelta(days=10)).pk == before.pk
    assert policy_row_in_force(code="CN", at=timezone.now()).pk == published.pk
    ev = AuditEvent.objects.get(action="compliance.policy.published", subject_id=str(published.pk))
    assert datetime.fromisoformat(ev.data["requested_effective_from"]) == backdated
    assert datetime.fromisoformat(ev.data["effective_from"]) == published.effective_from

    # A future date is kept as drafted.
    future = timezone.now() + timedelta(days=30)
    later = services.policy_draft_create(actor=world["sup"], code="CN", data={"name": "CN later",
                                         "rules": Policy.objects.get(code="CN", version=1).rules["rules"]},
                                         effective_from=future)
    assert services.policy_publish(actor=world["sup"], policy=later).effective_from == future
    assert audit_verify(record=False).ok
