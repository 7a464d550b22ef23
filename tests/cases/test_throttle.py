"""Limits on failed sign-ins (per username) and public lender sign-ups (per client address)."""

from __future__ import annotations

import time

import pytest
from django.contrib.auth import authenticate
from django.test import Client
from django.urls import reverse

from cases.models import Lender
from compliance.models import AuditEvent
from servicing import throttle
from tests import factories as f

pytestmark = pytest.mark.django_db

PASSWORD = "pw-Secret-123"


def _login(client: Client, username: str, password: str):
    return client.post(reverse("login"), {"username": username, "password": password})


def test_a_username_is_locked_after_ten_failures_then_free_again(settings, monkeypatch):
    settings.LANGUAGE_CODE = "en"
    agent, other = f.user(role="agent", password=PASSWORD), f.user(role="agent", password=PASSWORD)
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    for _ in range(10):
        assert _login(client, agent.username, "wrong-guess").status_code == 200
    # The right password is refused now, with the reason, and without being checked.
    r = _login(client, agent.username, PASSWORD)
    assert r.status_code == 200 and "_auth_user_id" not in client.session
    assert "Too many failed sign-ins for this username. Try again in 15 minute(s)." in r.content.decode()
    assert authenticate(username=agent.username, password=PASSWORD) is None  # admin and API go through this too
    assert AuditEvent.objects.filter(action="auth.login_failed", data__username=agent.username).count() == 12
    # Another username is not affected.
    assert _login(Client(), other.username, PASSWORD).status_code == 302

    later = time.time() + 15 * 60 + 1
    monkeypatch.setattr(throttle.time, "time", lambda: later)
    assert _login(client, agent.username, PASSWORD).status_code == 302
    assert throttle.LOGIN_FAILURES.retry_after(ident=agent.username) == 0


def test_a_successful_sign_in_clears_the_failures():
    agent = f.user(role="agent", password=PASSWORD)
    for _ in range(9):
        _login(Client(), agent.username, "wrong-guess")
    assert _login(Client(), agent.username, PASSWORD).status_code == 302
    for _ in range(9):
        _login(Client(), agent.username, "wrong-guess")
    assert _login(Client(), agent.username, PASSWORD).status_code == 302  # 9 + 9 failures, never 10 in a row


def _uscc(n: int) -> str:
    """A valid unified social credit code per sign-up (the code is required and unique)."""
    from stdnum.cn import uscc

    base = f"911100006000373{n:02d}"
    return base + uscc.calc_check_digit(base)


def _signup(client: Client, n: int):
    return client.post(reverse("lender-register"), {
        "name": f"放心贷 {n}", "contact_name": "王五", "contact_phone": "13800000000", "kind": "online_lender",
        "registration_no": _uscc(n),
        "contact_email": f"ops{n}@example.com", "username": f"fangxin{n}", "password": "Lender-pass-2026",
    }, HTTP_ACCEPT_LANGUAGE="en")


def test_public_sign_ups_are_limited_per_client_address(settings):
    settings.LANGUAGE_CODE = "en"
    client = Client(REMOTE_ADDR="203.0.113.7")
    for n in range(5):
        assert _signup(client, n).status_code == 302
    r = _signup(client, 5)
    assert r.status_code == 429 and "Too many sign-ups from your address." in r.content.decode()
    assert not Lender.objects.filter(name="放心贷 5").exists()
    assert _signup(Client(REMOTE_ADDR="198.51.100.2"), 6).status_code == 302
    assert Lender.objects.filter(name__startswith="放心贷").count() == 6


# --- client address behind trusted proxies --------------------------------------------------------

@pytest.mark.parametrize("proxies,remote,xff,expected", [
    ([], "203.0.113.7", "198.51.100.1", "203.0.113.7"),  # no trusted proxy: the header is the client's to forge
    (["10.0.0.0/8"], "203.0.113.7", "198.51.100.1", "203.0.113.7"),  # not from a trusted proxy: ignored
    (["10.0.0.0/8"], "10.0.0.2", "198.51.100.1", "198.51.100.1"),
    (["10.0.0.0/8"], "10.0.0.2", "1.2.3.4, 198.51.100.1, 10.0.0.9", "198.51.100.1"),  # forged left entry skipped
    (["10.0.0.2"], "10.0.0.2", "", "10.0.0.2"),
])
def test_client_address_believes_only_trusted_proxies(settings, rf, proxies, remote, xff, expected):
    settings.TRUSTED_PROXIES = proxies
    request = rf.get("/", REMOTE_ADDR=remote, HTTP_X_FORWARDED_FOR=xff)
    assert throttle.client_address(request) == expected


def test_sign_up_limit_counts_the_client_behind_the_proxy(settings):
    settings.LANGUAGE_CODE = "en"
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    for n in range(5):
        assert _signup(Client(REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="203.0.113.7"), n).status_code == 302
    # Same client, another proxy and a forged left-most entry: still limited.
    forged = Client(REMOTE_ADDR="10.0.0.3", HTTP_X_FORWARDED_FOR="192.0.2.1, 203.0.113.7")
    assert _signup(forged, 5).status_code == 429
    # Another client through the same proxy is not.
    assert _signup(Client(REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="198.51.100.2"), 6).status_code == 302


# --- counters atomic across processes (real Redis) -------------------------------------------------

def _hammer(args):
    ident, n = args
    from django.db import connections

    connections.close_all()  # a forked child must not use the parent's database connection
    return [throttle.LOGIN_FAILURES.hit(ident=ident) for _ in range(n)]


def test_failure_counter_is_atomic_across_processes(settings, redis_url):
    import multiprocessing
    import uuid

    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": redis_url,
                                   "KEY_PREFIX": f"test-{uuid.uuid4().hex}"}}
    settings.THROTTLE_LOGIN_FAILURES = (1000, 60)
    ident = "someone"
    with multiprocessing.get_context("fork").Pool(4) as pool:
        counts = sum(pool.map(_hammer, [(ident, 50)] * 4), [])
    # get+set would lose updates here; add+incr hands every hit its own number.
    assert sorted(counts) == list(range(1, 201))
    assert throttle.LOGIN_FAILURES.retry_after(ident=ident) == 0
    settings.THROTTLE_LOGIN_FAILURES = (200, 60)
    assert throttle.LOGIN_FAILURES.retry_after(ident=ident) > 0
    throttle.LOGIN_FAILURES.reset(ident=ident)
    assert throttle.LOGIN_FAILURES.retry_after(ident=ident) == 0


# --- sessions ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("role,browser_close", [
    ("agent", True), ("supervisor", True), ("admin", True), ("lender", False),
])
def test_staff_sessions_end_with_the_browser(settings, role, browser_close):
    user = f.user(role=role, lender=f.lender() if role == "lender" else None, password=PASSWORD)
    client = Client()
    assert _login(client, user.username, PASSWORD).status_code == 302
    assert client.session.get_expire_at_browser_close() is browser_close
    assert client.session.get_expiry_age() == settings.SESSION_COOKIE_AGE  # server side: at most the age
    cookie = client.cookies[settings.SESSION_COOKIE_NAME]
    assert (cookie["max-age"] == "") is browser_close


def test_session_age_is_eight_hours_unless_set():
    import os
    import subprocess
    import sys

    code = "import django; django.setup(); from django.conf import settings; print(settings.SESSION_COOKIE_AGE)"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "servicing.settings"}
    env.pop("SESSION_COOKIE_AGE", None)
    assert subprocess.check_output([sys.executable, "-c", code], env=env, text=True).strip() == str(8 * 3600)
    env["SESSION_COOKIE_AGE"] = "3600"
    assert subprocess.check_output([sys.executable, "-c", code], env=env, text=True).strip() == "3600"
