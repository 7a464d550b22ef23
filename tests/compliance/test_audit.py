"""Audit log: hash chain, verification, append-only (in Python everywhere, in the database on PostgreSQL)."""

import pytest
from django.db import connection, transaction
from django.db.utils import DatabaseError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compliance.audit import audit_log, audit_verify, jsonb_text
from compliance.models import AuditEvent, AuditVerification
from tests import factories as f

pytestmark = pytest.mark.django_db


def make_events(n=5):
    lender = f.lender()
    return [audit_log(action="tests.event", lender_id=lender.pk, data={"i": i, "amount": "12.50"}) for i in range(n)]


def test_chain_links_and_verifies():
    events = make_events()
    assert events[0].prev_hash == "0" * 64 and events[0].seq == 1
    assert all(b.prev_hash == a.hash for a, b in zip(events, events[1:], strict=False))
    result = audit_verify()
    assert result.ok and result.checked == 5
    assert AuditVerification.objects.get().ok


def test_secrets_are_masked():
    ev = audit_log(action="tests.secret", data={"password": "hunter2", "national_id": "110101199003074258", "x": 1})
    assert ev.data == {"password": "***", "national_id": "***", "x": 1}


def test_python_refuses_update_and_delete():
    ev = make_events(1)[0]
    with pytest.raises(RuntimeError):
        ev.save()
    with pytest.raises(RuntimeError):
        ev.delete()


def test_verify_finds_row_altered_with_trigger_disabled(require_postgres):
    events = make_events()
    target = events[2]
    with connection.cursor() as cur:
        cur.execute("ALTER TABLE compliance_auditevent DISABLE TRIGGER compliance_auditevent_append_only")
        cur.execute("UPDATE compliance_auditevent SET data = %s WHERE id = %s", ['{"i": 99}', target.pk])
        cur.execute("ALTER TABLE compliance_auditevent ENABLE TRIGGER compliance_auditevent_append_only")
    result = audit_verify()
    assert not result.ok and result.first_broken_id == target.pk and "altered" in result.detail


def test_verify_finds_deleted_row(require_postgres):
    events = make_events()
    with connection.cursor() as cur:
        cur.execute("ALTER TABLE compliance_auditevent DISABLE TRIGGER compliance_auditevent_append_only")
        cur.execute("DELETE FROM compliance_auditevent WHERE id = %s", [events[1].pk])
        cur.execute("ALTER TABLE compliance_auditevent ENABLE TRIGGER compliance_auditevent_append_only")
    result = audit_verify()
    assert not result.ok and result.first_broken_id == events[2].pk


@pytest.mark.parametrize("sql", [
    "UPDATE compliance_auditevent SET action = 'x' WHERE id = %s",
    "DELETE FROM compliance_auditevent WHERE id = %s",
])
def test_postgres_trigger_refuses_raw_sql(require_postgres, sql):
    ev = make_events(1)[0]
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cur:
        cur.execute(sql, [ev.pk])
    assert AuditEvent.objects.filter(pk=ev.pk, action="tests.event").exists()


@pytest.mark.parametrize("table", ["compliance_auditevent", "compliance_auditchainhead"])
def test_postgres_trigger_refuses_truncate(require_postgres, table):
    ev = make_events(1)[0]
    # The harness allows TRUNCATE for its flushes (tests/conftest.py); the app's sessions never do.
    with pytest.raises(DatabaseError, match="TRUNCATE refused"), transaction.atomic(), connection.cursor() as cur:
        cur.execute("SET LOCAL servicing.allow_truncate = 'off'")
        cur.execute(f"TRUNCATE {table} CASCADE")
    assert AuditEvent.objects.filter(pk=ev.pk).exists()


def test_truncate_allowed_only_with_the_session_switch(require_postgres):
    make_events(1)
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute("SET LOCAL servicing.allow_truncate = 'on'")
        cur.execute("TRUNCATE compliance_auditevent, compliance_auditchainhead")
        assert not AuditEvent.objects.exists()
        transaction.set_rollback(True)
    assert AuditEvent.objects.exists()


json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=12),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=6),
                      inner, max_size=5),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=json_values)
def test_jsonb_text_matches_postgresql(require_postgres, django_db_blocker, value):
    """The hash covers ``data`` as PostgreSQL prints jsonb; the Python rendering must agree exactly."""
    import json

    with django_db_blocker.unblock(), connection.cursor() as cur:
        cur.execute("SELECT %s::jsonb::text", [json.dumps(value, ensure_ascii=False)])
        assert jsonb_text(value) == cur.fetchone()[0]


def test_concurrent_appends_to_a_new_chain_stay_one_exact_chain(transactional_db, require_postgres):
    """Threads (own connections) race to create a chain's head and append: one gap-free chain, ids in seq order."""
    import threading

    from django.db import connections

    lender = f.lender()
    errors = []

    def work(i):
        try:
            for j in range(10):
                with transaction.atomic():
                    audit_log(action="tests.race", lender_id=lender.pk, data={"i": i, "j": j})
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    rows = list(AuditEvent.objects.filter(chain=lender.pk).order_by("id").values_list("seq", flat=True))
    assert rows == list(range(1, 81))
    result = audit_verify()
    assert result.ok and result.checked == 80, result.detail
