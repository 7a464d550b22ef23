"""REST API: scoping (role x endpoint x own/other lender), recording through the gate, bad input."""

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from cases.models import ContactAttempt
from compliance.models import AuditEvent
from tests import factories as f

pytestmark = pytest.mark.django_db


def lawful_past_time(zone: str = "Asia/Shanghai", hour: int = 10) -> datetime:
    """Yesterday at ``hour`` local: inside every seeded policy's window, and in the past."""
    tz = ZoneInfo(zone)
    day = timezone.localdate(timezone.now(), tz) - timedelta(days=1)
    if day.weekday() >= 5:  # AU weekends open later; keep to weekdays
        day -= timedelta(days=day.weekday() - 4)
    return datetime.combine(day, time(hour, 0), tz)


@pytest.fixture
def world():
    own, other = f.lender(), f.lender()
    agent, other_agent = f.user(role="agent"), f.user(role="agent")
    w = {
        "own": own, "other": other,
        "agent": agent, "other_agent": other_agent,
        "lender_user": f.user(role="lender", lender=own),
        "other_lender_user": f.user(role="lender", lender=other),
        "supervisor": f.user(role="supervisor"),
    }
    w["own_account"] = f.account(lender=own, agent=agent)
    w["other_account"] = f.account(lender=other, agent=other_agent)
    return w


def client_for(user, token: bool = False) -> APIClient:
    c = APIClient()
    if token:
        c.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    else:
        c.force_authenticate(user)
    return c


# (role, account it may see, account it may not see)
MATRIX = [
    ("agent", "own_account", "other_account"),
    ("lender_user", "own_account", "other_account"),
    ("other_lender_user", "other_account", "own_account"),
    ("other_agent", "other_account", "own_account"),
]


@pytest.mark.parametrize("role,visible,hidden", MATRIX)
@pytest.mark.parametrize("endpoint", ["detail", "check", "record"])
def test_isolation_matrix(world, role, visible, hidden, endpoint):
    c = client_for(world[role], token=True)
    urls = {
        "detail": ("get", "/api/v1/accounts/{}/", None),
        "check": ("get", "/api/v1/accounts/{}/contact-check/?channel=call", None),
        "record": ("post", "/api/v1/accounts/{}/contact-attempts/", {"channel": "call", "outcome": "no_answer"}),
    }
    method, url, body = urls[endpoint]
    hidden_resp = getattr(c, method)(url.format(world[hidden].pk), body, format="json")
    assert hidden_resp.status_code == 404
    visible_resp = getattr(c, method)(url.format(world[visible].pk), body, format="json")
    if endpoint == "record" and role.endswith("lender_user"):
        assert visible_resp.status_code == 403  # lenders read, agents log
    else:
        assert visible_resp.status_code in (200, 201, 409), visible_resp.content
    assert not ContactAttempt.objects.filter(account=world[hidden]).exists()


@pytest.mark.parametrize("role,expected", [
    ("agent", {"own_account"}), ("other_agent", {"other_account"}), ("lender_user", {"own_account"}),
    ("other_lender_user", {"other_account"}), ("supervisor", {"own_account", "other_account"}),
])
def test_list_is_scoped(world, role, expected):
    data = client_for(world[role]).get("/api/v1/accounts/").json()
    assert {r["id"] for r in data["results"]} == {world[k].pk for k in expected}


def test_anonymous_is_refused(world):
    assert APIClient().get("/api/v1/accounts/").status_code in (401, 403)
    assert APIClient().get(f"/api/v1/accounts/{world['own_account'].pk}/").status_code in (401, 403)


def test_external_ref_filter(world):
    acc = world["own_account"]
    data = client_for(world["lender_user"]).get(f"/api/v1/accounts/?external_ref={acc.external_ref}").json()
    assert [r["external_ref"] for r in data["results"]] == [acc.external_ref]
    other_ref = world["other_account"].external_ref
    assert client_for(world["lender_user"]).get(f"/api/v1/accounts/?external_ref={other_ref}").json()["count"] == 0


def test_record_allowed_returns_201_and_audits(world):
    acc = world["own_account"]
    at = lawful_past_time()
    r = client_for(world["agent"]).post(
        f"/api/v1/accounts/{acc.pk}/contact-attempts/",
        {"channel": "call", "outcome": "no_answer", "occurred_at": at.isoformat(), "notes": "rang out"}, format="json",
    )
    assert r.status_code == 201, r.content
    assert r.json()["channel"] == "call" and r.json()["policy_code"] == "CN"
    attempt = ContactAttempt.objects.get(pk=r.json()["id"])
    assert attempt.source == "api" and attempt.agent == world["agent"]
    ev = AuditEvent.objects.get(action="cases.contact_attempt.recorded", subject_id=str(attempt.pk))
    assert ev.actor == world["agent"] and ev.lender_id == acc.lender_id and ev.policy_code == "CN"


def test_record_refused_returns_409_with_next_time(world, now_at):
    acc = world["own_account"]
    tz = ZoneInfo("Asia/Shanghai")
    at = now_at(lawful_past_time().replace(hour=23, minute=0))  # now, in CN quiet hours
    r = client_for(world["agent"]).post(
        f"/api/v1/accounts/{acc.pk}/contact-attempts/",
        {"channel": "call", "outcome": "no_answer", "occurred_at": at.isoformat()}, format="json",
    )
    assert r.status_code == 409, r.content
    body = r.json()
    assert body["allowed"] is False
    assert body["violations"] and {"code", "message", "citation"} <= set(body["violations"][0])
    nxt = datetime.fromisoformat(body["next_allowed_at"]).astimezone(tz)
    assert (nxt.date(), nxt.hour, nxt.minute) == (at.date() + timedelta(days=1), 8, 0)
    assert not ContactAttempt.objects.exists()
    ev = AuditEvent.objects.get(action="compliance.contact.blocked")
    assert ev.account_id == acc.pk and ev.data["violations"][0]["code"] == body["violations"][0]["code"]


def test_contact_check_records_nothing(world):
    acc = world["own_account"]
    at = lawful_past_time().replace(hour=23)
    r = client_for(world["agent"]).get(
        f"/api/v1/accounts/{acc.pk}/contact-check/", {"channel": "call", "at": at.isoformat()}
    )
    assert r.status_code == 200
    assert r.json()["allowed"] is False and r.json()["next_allowed_at"]
    ok = client_for(world["agent"]).get(
        f"/api/v1/accounts/{acc.pk}/contact-check/", {"channel": "call", "at": lawful_past_time().isoformat()}
    ).json()
    assert ok["allowed"] is True and ok["violations"] == []
    assert not ContactAttempt.objects.exists() and not AuditEvent.objects.filter(action__startswith="compliance.contact").exists()


@pytest.mark.parametrize("body,field", [
    ({"channel": "pigeon", "outcome": "no_answer"}, "channel"),
    ({"channel": "call", "outcome": "maybe"}, "outcome"),
    ({"channel": "call"}, "outcome"),
    ({"channel": "call", "outcome": "no_answer", "occurred_at": "2026-11-20T10:00:00"}, "occurred_at"),
    ({"channel": "call", "outcome": "no_answer", "occurred_at": "yesterday"}, "occurred_at"),
    ({"channel": "call", "outcome": "no_answer", "occurred_at": "2099-01-01T10:00:00+08:00"}, "occurred_at"),
])
def test_bad_input_is_400_with_field_errors(world, body, field):
    r = client_for(world["agent"]).post(f"/api/v1/accounts/{world['own_account'].pk}/contact-attempts/", body, format="json")
    assert r.status_code == 400, r.content
    assert field in r.json()
    assert not ContactAttempt.objects.exists()


def test_malformed_json_is_400(world):
    r = client_for(world["agent"]).post(
        f"/api/v1/accounts/{world['own_account'].pk}/contact-attempts/", "{not json", content_type="application/json"
    )
    assert r.status_code == 400


def test_check_bad_query_is_400(world):
    url = f"/api/v1/accounts/{world['own_account'].pk}/contact-check/"
    assert client_for(world["agent"]).get(url, {"channel": "fax"}).status_code == 400
    assert client_for(world["agent"]).get(url, {"channel": "call", "at": "2026-11-20T10:00:00"}).status_code == 400


def test_schema_and_docs(world):
    c = client_for(world["supervisor"])
    schema = c.get("/api/schema/")
    assert schema.status_code == 200
    text = schema.content.decode()
    assert "/api/v1/accounts/{id}/contact-attempts/" in text and "/api/v1/accounts/{id}/contact-check/" in text
    assert c.get("/api/docs/").status_code == 200


def test_masked_phones(world):
    data = client_for(world["lender_user"]).get(f"/api/v1/accounts/{world['own_account'].pk}/").json()
    assert all("****" in p for p in data["borrower_phones"])


@pytest.mark.parametrize("path", [
    "/api/v1/accounts/null,null/", "/api/v1/accounts/abc/contact-check/?channel=call",
    "/api/v1/accounts/1.5/", "/api/v1/placements/null,null/", "/api/v1/no-such-thing/",
])
def test_non_numeric_ids_and_unknown_paths_are_json_404(world, path):
    response = client_for(world["agent"], token=True).get(path)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json" and "detail" in response.json()


def test_pages_outside_the_api_keep_the_html_404(world):
    c = client_for(world["agent"])
    assert c.get("/no-such-page/")["Content-Type"].startswith("text/html")


def test_status_filter_validates_and_filters(world):
    c = client_for(world["lender_user"])
    bogus = c.get("/api/v1/accounts/?status=bogus")
    assert bogus.status_code == 400 and "status" in bogus.json()
    assert c.get("/api/v1/accounts/?status=assigned").json()["count"] == 1
    assert c.get("/api/v1/accounts/?status=paid").json()["count"] == 0


def test_filters_and_error_answers_are_in_the_schema(world):
    schema = client_for(world["supervisor"]).get("/api/schema/?format=json").json()
    listing = schema["paths"]["/api/v1/accounts/"]["get"]
    status_param = next(p for p in listing["parameters"] if p["name"] == "status")
    assert "paid" in status_param["schema"]["enum"] and "bogus" not in status_param["schema"]["enum"]
    assert {"400", "403", "404"} <= set(listing["responses"])
    detail = schema["paths"]["/api/v1/accounts/{id}/"]["get"]
    assert next(p for p in detail["parameters"] if p["name"] == "id")["schema"]["type"] == "integer"


def test_requests_django_refuses_before_any_view_are_json_400_in_the_api(world, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 10
    body = "&".join(f"external_refs=R{i}" for i in range(20))
    response = client_for(world["lender_user"], token=True).post(
        "/api/v1/placements/recall/", body, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400 and response["Content-Type"] == "application/json"
