"""Supervisor model page: list, compare, promote (audited); agents and lender users get a 403."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from compliance.models import AuditEvent
from scoring.models import ScoreModel
from tests import factories as f
from tests.scoring.synthetic import history_generate

pytestmark = pytest.mark.django_db


def test_models_page_compares_and_promotes(client, require_postgres, settings):
    settings.SCORING_MIN_OUTCOMES = 300
    lender = f.lender()
    history_generate(lender=lender, n=1500, now=timezone.now(), seed=5)
    supervisor = f.user(role="supervisor")
    client.force_login(supervisor)
    assert client.post(reverse("scoring:model-train")).status_code == 302
    assert client.post(reverse("scoring:model-train")).status_code == 302
    a, b = ScoreModel.objects.filter(kind="logistic").order_by("version")
    r = client.get(reverse("scoring:models"), {"a": a.version, "b": b.version}, HTTP_ACCEPT_LANGUAGE="en")
    assert r.status_code == 200 and r.context["compare"]["a"] == a
    assert "AUC" in r.content.decode() and "days_past_due" in r.content.decode()
    r = client.post(reverse("scoring:model-promote", args=[b.pk]))
    assert r.status_code == 302
    b.refresh_from_db()
    assert b.status == "promoted" and b.promoted_by == supervisor
    assert AuditEvent.objects.filter(action="scoring.model.promoted", actor=supervisor).count() == 1


@pytest.mark.parametrize("role", ["agent", "lender"])
def test_models_page_is_for_supervisors_only(client, role):
    lender = f.lender()
    client.force_login(f.user(role=role, lender=lender if role == "lender" else None))
    assert client.get(reverse("scoring:models")).status_code == 403
    assert client.get(reverse("scoring:strategies")).status_code == 403
    m = ScoreModel.objects.create(version=99, kind="rules")
    assert client.post(reverse("scoring:model-promote", args=[m.pk])).status_code == 403
    m.refresh_from_db()
    assert m.status == "candidate"
