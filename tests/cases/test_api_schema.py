"""Property-based API test: schemathesis generates requests from /api/schema/ and sends them to the Django
app (WSGI, real database) as an agent and as a lender user. No answer may be a 500, or carry a status
code, content type or body the schema does not document. Nothing is excluded."""

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests import factories as f

pytestmark = pytest.mark.postgres  # runs in CI (REQUIRE_SERVICES=1): a real database behind the app

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture
def api_schema(db, require_postgres):
    from servicing.wsgi import application

    # As Django's test client does: the app must not close the test's connection (and its transaction)
    # at the end of each request.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.fixture
def agent(db) -> dict:
    return _caller("agent")


@pytest.fixture
def lender_user(db) -> dict:
    return _caller("lender")


def _caller(role: str) -> dict:
    lender = f.lender()
    user = f.user(role=role, lender=lender if role == "lender" else None)
    account = f.account(lender=lender, agent=user if role == "agent" else None)
    return {"token": Token.objects.create(user=user).key, "account_id": account.pk}


def _call(case, caller: dict) -> None:
    # Half the generated ids point at a real account so the success paths run too, not only 404s.
    params = case.path_parameters or {}
    if isinstance(params.get("id"), int) and params["id"] % 2 == 0:
        params["id"] = caller["account_id"]
    case.call_and_validate(headers={"Authorization": f"Token {caller['token']}"}, checks=CHECKS)


EXAMPLES = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)


@schema.parametrize()
@EXAMPLES
def test_api_as_agent(case, agent):
    _call(case, agent)


@schema.parametrize()
@EXAMPLES
def test_api_as_lender_user(case, lender_user):
    _call(case, lender_user)
