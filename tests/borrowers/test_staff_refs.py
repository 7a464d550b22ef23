"""Staff name an account by its reference, which is unique per lender only: a reference several lenders use is
never resolved by a guess (a third party's complaint or a page link must not land on another lender's borrower)."""

from __future__ import annotations

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from borrowers import staff_views
from borrowers.models import AccessToken, Complaint
from cases.models import OverdueAccount
from tests import factories as f

pytestmark = pytest.mark.django_db


@pytest.fixture
def same_ref(person):
    """a1 (lender l1) and a2 (lender l2) under one reference, as two lenders may number their accounts."""
    OverdueAccount.objects.filter(pk=person["a2"].pk).update(external_ref=person["a1"].external_ref)
    return person["a1"].external_ref


def _complaint(client, ref, **extra):
    return client.post(reverse("borrowers:complaint-new"), {
        "external_ref": ref, "complainant": "Wang Fang", "text": "Called my office.", **extra},
        HTTP_ACCEPT_LANGUAGE="en")


def test_a_reference_of_several_lenders_asks_for_the_lender(client, person, same_ref):
    client.force_login(f.user(role="supervisor"))
    r = _complaint(client, same_ref)
    assert r.status_code == 302 and not Complaint.objects.exists()
    text = " ".join(str(m) for m in get_messages(r.wsgi_request))
    assert "several lenders" in text and person["l1"].name in text and person["l2"].name in text

    # The page offers the choice; with the lender named, the complaint lands on that lender's account.
    page = client.get(reverse("borrowers:staff")).content.decode()
    assert 'id="complaint-lender"' in page and f'value="{person["l2"].pk}"' in page
    _complaint(client, same_ref, lender=person["l2"].pk)
    assert Complaint.objects.get().account == person["a2"]


def test_a_page_link_to_an_ambiguous_reference_is_not_sent(client, person, same_ref, outbox):
    client.force_login(f.user(role="supervisor"))
    r = client.post(reverse("borrowers:link-send"), {"external_ref": same_ref, "channel": "sms"},
                    HTTP_ACCEPT_LANGUAGE="en")
    assert r.status_code == 302 and not outbox and not AccessToken.objects.exists()
    assert any("several lenders" in str(m) for m in get_messages(r.wsgi_request))
    client.post(reverse("borrowers:link-send"), {"external_ref": same_ref, "channel": "sms",
                                                 "lender": person["l1"].pk})
    assert len(outbox) == 1 and AccessToken.objects.get().borrower == person["a1"].borrower


def test_an_agent_sees_only_their_own_account_under_the_reference(client, person, same_ref):
    other = f.user(role="agent")
    OverdueAccount.objects.filter(pk=person["a2"].pk).update(assigned_agent=other)
    client.force_login(other)
    _complaint(client, same_ref)
    assert Complaint.objects.get().account == person["a2"]
    # Not one the agent works, even when the lender is named: 404, as before.
    assert _complaint(client, same_ref, lender=person["l1"].pk).status_code == 404
    assert 'id="complaint-lender"' not in client.get(reverse("borrowers:staff")).content.decode()


def test_supervisor_pages_use_the_consoles_check(client, person):
    """One supervisor check for the app (``supervision.views.supervisor_required``), same answers as before."""
    assert not hasattr(staff_views, "supervisor_view")
    lift = reverse("borrowers:hold-lift", args=[person["a1"].borrower_id])
    pages = [("get", reverse("borrowers:complaints")), ("get", reverse("borrowers:education")),
             ("get", reverse("borrowers:templates")), ("post", lift)]
    for method, url in pages:  # not signed in: to the login page
        r = getattr(client, method)(url)
        assert r.status_code == 302 and r["Location"].startswith(reverse("login")), url
    for role, lender in (("agent", None), ("lender", person["l1"])):
        client.force_login(f.user(role=role, lender=lender))
        assert all(getattr(client, m)(u).status_code == 403 for m, u in pages)
    client.force_login(f.user(role="supervisor"))
    assert all(client.get(u).status_code == 200 for m, u in pages if m == "get")
