"""Many agents logging calls on one account at the same moment cannot break a frequency cap."""

import threading
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import connection, connections

from cases import services
from cases.models import ContactAttempt
from compliance.models import AuditEvent
from tests import factories as f

THREADS = 24


def race(n: int, attempt) -> list[str]:
    """Run ``attempt(i)`` for i in range(n) on n threads released together; each returns an outcome word, and
    an unexpected exception becomes "error: ..." (reported by the caller's assertions). Each thread closes its
    own database connection."""
    barrier = threading.Barrier(n)
    results: list[str] = []
    lock = threading.Lock()

    def work(i: int):
        try:
            barrier.wait(timeout=30)
            outcome = attempt(i)
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            outcome = f"error: {exc!r}"
        finally:
            connections.close_all()
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return results


@pytest.mark.postgres
@pytest.mark.parametrize("jurisdiction,cap", [("US", 7), ("US-MA", 2)])
def test_parallel_calls_respect_cap(transactional_db, require_postgres, now_at, jurisdiction, cap):
    agents = [f.user() for _ in range(THREADS)]
    acc = f.account(lender=f.lender(), jurisdiction=jurisdiction, zones=("America/New_York",), currency="USD")
    base = datetime(2027, 4, 14, 12, 0, tzinfo=ZoneInfo("America/New_York"))  # US v2 / US-MA v2
    now_at(base + timedelta(seconds=THREADS))  # present-time outreach: the gate refuses past the cap

    def attempt(i: int) -> str:
        try:
            services.contact_attempt_record(account=acc, actor=agents[i], channel="call", outcome="voicemail",
                                            occurred_at=base + timedelta(seconds=i), source="api")
            return "recorded"
        except services.ContactRefused:
            return "refused"

    results = race(THREADS, attempt)
    assert connection.vendor == "postgresql"
    assert sorted(set(results)) <= ["recorded", "refused"], results
    assert results.count("recorded") == cap
    assert results.count("refused") == THREADS - cap
    assert ContactAttempt.objects.filter(account=acc).count() == cap
    assert AuditEvent.objects.filter(account_id=acc.pk, action="cases.contact_attempt.recorded").count() == cap
    assert AuditEvent.objects.filter(account_id=acc.pk, action="compliance.contact.blocked").count() == THREADS - cap


@pytest.mark.postgres
def test_twenty_writers_across_two_lenders_respect_the_persons_cap(transactional_db, require_postgres, now_at):
    """CN v3 counts conversations per person across lenders; a started call may become one, so at
    most three can be started today however many agents of however many lenders try at once."""
    writers = 20
    now_at(datetime(2027, 4, 14, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai")))
    accounts = []
    for _ in range(2):
        lender = f.lender()
        borrower = f.borrower(lender=lender)
        from cases.models import Borrower

        Borrower.objects.filter(pk=borrower.pk).update(national_id="110101199003074514", name="张三")
        accounts.append(f.account(lender=lender, borrower=Borrower.objects.get(pk=borrower.pk)))
    assert accounts[0].borrower.person_key == accounts[1].borrower.person_key
    agents = [f.user() for _ in range(writers)]

    def attempt(i: int) -> str:
        try:
            services.contact_attempt_start(account=accounts[i % 2], actor=agents[i], channel="call")
            return "started"
        except services.ContactRefused:
            return "refused"

    results = race(writers, attempt)
    assert sorted(set(results)) <= ["refused", "started"], results
    assert results.count("started") == 3
    assert ContactAttempt.objects.filter(state="started").count() == 3
    assert AuditEvent.objects.filter(action="compliance.contact.blocked").count() == writers - 3


@pytest.mark.postgres
def test_two_sign_ups_with_one_name_at_once_make_one_lender(transactional_db, require_postgres):
    """The name (and code, and username) checks run under one registration lock: racing sign-ups cannot both pass."""
    from django.core.exceptions import ValidationError

    from cases.importers.lenders import lender_register
    from cases.models import Lender
    from tests.cases.test_throttle import _uscc

    threads_n = 8

    def attempt(i: int) -> str:
        try:
            lender_register(name="同名金融", registration_no=_uscc(10 + i), contact_name="王五",
                            contact_phone="13800000000", contact_email=f"o{i}@example.com", username=f"race{i}",
                            password="Lender-pass-2026", kind="bank")
            return "registered"
        except ValidationError as exc:
            return "refused" if "name" in exc.message_dict else f"other: {exc.message_dict}"

    results = race(threads_n, attempt)
    assert sorted(results) == ["refused"] * (threads_n - 1) + ["registered"], results
    assert Lender.objects.filter(name="同名金融").count() == 1
