"""Borrower page access: link + second factor, expiry, reuse, no enumeration, rate limits, scoping."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.http import Http404
from django.urls import reverse
from django.utils import timezone

from borrowers import selectors
from borrowers.models import AccessToken
from borrowers.services import access_link_issue
from compliance.models import AuditEvent

pytestmark = pytest.mark.django_db


def _body(response, token: str) -> str:
    # The CSRF token differs per response and the page's own path holds the link; the rest must be identical.
    text = response.content.decode().replace(token, "TOKEN")
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", text)


def _try(client, raw: str, factor: str):
    return client.post(reverse("borrowers:access", args=[raw]), {"factor": factor})


def test_link_and_factor_open_the_persons_page(client, person):
    _row, raw = access_link_issue(borrower=person["a1"].borrower, actor=None)
    response = _try(client, raw, "002x")  # case-insensitive X
    assert response.status_code == 302 and response["Location"] == reverse("borrowers:home")
    page = client.get(reverse("borrowers:home")).content.decode()
    # Both lenders' accounts of the same person, not the stranger's.
    assert person["a1"].external_ref in page and person["a2"].external_ref in page
    assert person["stranger"].external_ref not in page
    assert person["l2"].name in page
    assert AuditEvent.objects.filter(action="borrowers.access.verified", borrower_id=person["a1"].borrower_id).exists()


def test_link_works_once(client, person):
    _row, raw = access_link_issue(borrower=person["a1"].borrower, actor=None)
    assert _try(client, raw, "002X").status_code == 302
    other = client.__class__()
    response = _try(other, raw, "002X")
    assert response.status_code == 200 and b"access-failed" in response.content
    assert other.get(reverse("borrowers:home")).status_code == 403


def test_expired_link_is_refused(client, person):
    row, raw = access_link_issue(borrower=person["a1"].borrower, actor=None)
    AccessToken.objects.filter(pk=row.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = _try(client, raw, "002X")
    assert response.status_code == 200 and b"access-failed" in response.content
    assert AuditEvent.objects.filter(action="borrowers.access.failed", data__reason="expired").exists()


def test_unknown_link_and_wrong_factor_look_the_same(client, person):
    _row, raw = access_link_issue(borrower=person["a1"].borrower, actor=None)
    wrong = _try(client, raw, "9999")
    unknown = _try(client, "x" * 43, "002X")
    assert wrong.status_code == unknown.status_code == 200
    assert _body(wrong, raw) == _body(unknown, "x" * 43)
    assert client.get(reverse("borrowers:home")).status_code == 403
    # The GET of a real and an unknown link is the same page too.
    assert _body(client.get(reverse("borrowers:access", args=[raw])), raw) == _body(
        client.get(reverse("borrowers:access", args=["y" * 43])), "y" * 43)


def test_tries_are_limited_per_link(client, person, settings):
    settings.THROTTLE_BORROWER_TOKEN = (3, 3600)
    _row, raw = access_link_issue(borrower=person["a1"].borrower, actor=None)
    for _ in range(3):
        assert _try(client, raw, "0000").status_code == 200
    # The right answer after the limit is refused, identically.
    response = _try(client, raw, "002X")
    assert b"access-failed" in response.content
    assert AuditEvent.objects.filter(action="borrowers.access.failed", data__reason="throttled").exists()
    assert client.get(reverse("borrowers:home")).status_code == 403


def test_tries_are_limited_per_client_address(client, person, settings):
    settings.THROTTLE_BORROWER_ADDRESS = (2, 3600)
    _row, raw = access_link_issue(borrower=person["a1"].borrower, actor=None)
    _try(client, "a" * 43, "0000")
    _try(client, "b" * 43, "0000")  # unknown links count for the address as well
    assert b"access-failed" in _try(client, raw, "002X").content


def test_session_expires(client, person, settings):
    settings.BORROWER_SESSION_SECONDS = -1
    _row, raw = access_link_issue(borrower=person["a1"].borrower, actor=None)
    _try(client, raw, "002X")
    assert client.get(reverse("borrowers:home")).status_code == 403


def test_selectors_scope_to_the_person(person):
    key = person["a1"].borrower.person
    assert selectors.person_account_get(person=key, account_id=person["a2"].pk) == person["a2"]
    with pytest.raises(Http404):
        selectors.person_account_get(person=key, account_id=person["stranger"].pk)


def test_page_is_translated(client, person):
    _row, raw = access_link_issue(borrower=person["a1"].borrower, actor=None)
    _try(client, raw, "002X")
    zh = client.get(reverse("borrowers:home"), HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    en = client.get(reverse("borrowers:home"), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Your accounts" in en and "Your accounts" not in zh
    assert "22:00" in en  # the CN hours in plain words
