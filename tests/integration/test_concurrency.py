"""Many agents logging calls on one account at the same moment cannot break a frequency cap."""

import threading
from datetime import timedelta

import pytest
from django.db import connection, connections

from cases import services
from cases.models import ContactAttempt
from compliance.models import AuditEvent
from tests import factories as f
from tests.cases.test_api import lawful_past_time

THREADS = 24


@pytest.mark.postgres
@pytest.mark.parametrize("jurisdiction,cap", [("US", 7), ("US-MA", 2)])
def test_parallel_calls_respect_cap(transactional_db, require_postgres, jurisdiction, cap):
    agents = [f.user() for _ in range(THREADS)]
    acc = f.account(lender=f.lender(), jurisdiction=jurisdiction, zones=("America/New_York",), currency="USD")
    base = lawful_past_time("America/New_York", hour=12)
    barrier = threading.Barrier(THREADS)
    results: list[str] = []
    lock = threading.Lock()

    def work(i: int):
        try:
            barrier.wait(timeout=30)
            services.contact_attempt_record(account=acc, actor=agents[i], channel="call", outcome="voicemail",
                                            occurred_at=base + timedelta(seconds=i), source="api")
            outcome = "recorded"
        except services.ContactRefused:
            outcome = "refused"
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            outcome = f"error: {exc!r}"
        finally:
            connections.close_all()
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert connection.vendor == "postgresql"
    assert sorted(set(results)) <= ["recorded", "refused"], results
    assert results.count("recorded") == cap
    assert results.count("refused") == THREADS - cap
    assert ContactAttempt.objects.filter(account=acc).count() == cap
    assert AuditEvent.objects.filter(account_id=acc.pk, action="cases.contact_attempt.recorded").count() == cap
    assert AuditEvent.objects.filter(account_id=acc.pk, action="compliance.contact.blocked").count() == THREADS - cap
