"""`make run` loads demo data; it must work on an empty database and be idempotent."""

import pytest
from django.core.management import call_command

from cases.models import ContactAttempt, OverdueAccount, User
from compliance.audit import audit_verify
from compliance.models import AuditEvent, Incident


@pytest.mark.django_db
def test_seed_demo_loads_history_through_the_gate_and_is_idempotent(capsys):
    call_command("seed_demo", accounts=40)
    out = capsys.readouterr().out
    assert "agent1" in out and "supervisor" in out and "demo-pass-2026" in out
    assert OverdueAccount.objects.count() == 40
    assert User.objects.filter(role="lender").count() == 3
    recorded = ContactAttempt.objects.count()
    assert recorded > 0
    assert AuditEvent.objects.filter(action="cases.contact_attempt.recorded").count() == recorded
    # The history is lawful but for one deliberate breach, which the incident queue shows.
    assert ContactAttempt.objects.filter(is_breach=True).count() == 1
    assert Incident.objects.count() == 1
    assert audit_verify(record=False).ok
    assert User.objects.get(username="supervisor").has_perm("django_celery_beat.change_periodictask")
    call_command("seed_demo", accounts=40)
    assert OverdueAccount.objects.count() == 40 and ContactAttempt.objects.count() == recorded
