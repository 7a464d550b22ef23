"""Education pages: seeded by the data migration, shown on the borrower page, edited by supervisors (audited)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from borrowers import services
from borrowers.models import EducationPage
from compliance.models import AuditEvent
from tests import factories as f

pytestmark = pytest.mark.django_db


def test_seeded_in_both_languages():
    slugs = set(EducationPage.objects.values_list("slug", "language"))
    for slug in ("rights", "how-collection-works", "advice"):
        assert {(slug, "en"), (slug, "zh-hans")} <= slugs


def test_shown_on_the_borrower_page_in_its_language(client, person):
    EducationPage.objects.filter(slug="rights", language="zh-hans").update(title="权利说明X")
    EducationPage.objects.filter(slug="rights", language="en").update(title="Rights EN X")
    _row, raw = services.access_link_issue(borrower=person["a1"].borrower, actor=None)
    client.post(reverse("borrowers:access", args=[raw]), {"factor": "002X"})
    zh = client.get(reverse("borrowers:home"), HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "权利说明X" in zh and "Rights EN X" not in zh
    en = client.get(reverse("borrowers:home"), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Rights EN X" in en and 'data-slug="advice"' in en


def test_supervisor_edits_and_it_is_audited(client, person):
    page = EducationPage.objects.get(slug="advice", language="en")
    client.force_login(person["agent"])
    assert client.post(reverse("borrowers:education-edit", args=[page.pk]),
                       {"title": "Hacked", "body": "x"}).status_code == 403
    boss = f.user(role="supervisor")
    client.force_login(boss)
    assert "Where to get advice" not in client.get(reverse("borrowers:education")).content.decode()
    r = client.post(reverse("borrowers:education-edit", args=[page.pk]),
                    {"title": "Where to get advice", "body": "Call 12378."})
    assert r.status_code == 302
    page.refresh_from_db()
    assert (page.title, page.body) == ("Where to get advice", "Call 12378.")
    e = AuditEvent.objects.get(action="borrowers.education.changed")
    assert e.actor_id == boss.pk and e.data["before"]["title"] == "How to get advice"
