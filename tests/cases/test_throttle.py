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


def _signup(client: Client, n: int):
    return client.post(reverse("lender-register"), {
        "name": f"放心贷 {n}", "contact_name": "王五", "contact_phone": "13800000000",
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
