"""Policy editing as a form: values of the rules as fields, the diff against the version in force
before saving and on the draft's page, and the what-if drill-down into the attempts it would change."""

from __future__ import annotations

import pytest
from django.urls import reverse

from compliance.models import AuditEvent, Policy
from compliance.selectors import policy_row_in_force
from supervision import selectors
from supervision import services as supervision_services
from supervision.forms import PolicyRulesForm

# The console tests' fixtures (seeded policies; a lender, agent, supervisor and account) and helpers.
from tests.compliance.test_console import _past_local, _record, _seeded_policies, world  # noqa: F401

pytestmark = pytest.mark.django_db


def _form_data(form: PolicyRulesForm, action: str, **changes) -> dict:
    data = {f"edit-{name}": field.initial for name, field in form.fields.items() if field.initial is not None}
    data["edit-name"], data["edit-effective_from"] = "CN edited", "2030-01-01T09:00"
    data = {k: v for k, v in data.items() if v is not False}  # an unchecked box is absent
    data.update({f"edit-{k}": v for k, v in changes.items()})
    return data | {"action": action}


def _cap_field(form: PolicyRulesForm, code: str) -> str:
    i = next(i for i, rule, _names in form.groups if rule["code"] == code)
    return f"r{i}__max"


def test_diff_rule_by_rule():
    before = [{"code": "A", "max": 6, "channels": ["call"]}, {"code": "B", "max": 1}]
    after = [{"code": "A", "max": 2, "channels": ["call", "sms"]}, {"code": "C", "max": 1}]
    diff = selectors.policy_rules_diff(before=before, after=after)
    assert diff == [
        {"code": "A", "status": "changed", "changes": [("max", "6", "2"), ("channels", "call", "call, sms")]},
        {"code": "B", "status": "removed", "changes": []},
        {"code": "C", "status": "added", "changes": []},
    ]
    assert selectors.policy_rules_diff(before=before, after=before) == []


def test_form_edits_values_not_json_preview_then_save(client, world):  # noqa: F811
    client.force_login(world["sup"])
    url = reverse("supervisor-policy-draft", args=["CN"])
    latest = Policy.objects.filter(code="CN").order_by("-version").first()
    form = PolicyRulesForm(prefix="edit", code="CN", base_rules=latest.rules["rules"])
    field = _cap_field(form, "CN.UNANSWERED_PER_NUMBER")
    assert form.fields[field].initial == 6
    page = client.get(url).content.decode()
    assert f'name="edit-{field}"' in page and 'type="number"' in page

    preview = client.post(url, _form_data(form, "preview", **{field: 2}))
    html = preview.content.decode()
    assert preview.status_code == 200 and 'id="policy-diff"' in html
    assert 'data-rule="CN.UNANSWERED_PER_NUMBER"' in html and "<strong>2</strong>" in html
    assert not Policy.objects.filter(code="CN", version=latest.version + 1).exists()  # preview saves nothing

    bad = client.post(url, _form_data(form, "save", **{field: "many"}))
    assert bad.status_code == 200 and not Policy.objects.filter(code="CN", version=latest.version + 1).exists()

    saved = client.post(url, _form_data(form, "save", **{field: 2}))
    draft = Policy.objects.get(code="CN", version=latest.version + 1)
    assert saved.status_code == 302 and draft.status == "draft"
    rule = next(r for r in draft.rules["rules"] if r["code"] == "CN.UNANSWERED_PER_NUMBER")
    assert rule["max"] == 2
    others = [r for r in draft.rules["rules"] if r["code"] != "CN.UNANSWERED_PER_NUMBER"]
    assert others == [r for r in latest.rules["rules"] if r["code"] != "CN.UNANSWERED_PER_NUMBER"]
    assert AuditEvent.objects.filter(action="compliance.policy.drafted", subject_id=str(draft.pk)).exists()
    detail = client.get(reverse("supervisor-policy", args=[draft.pk])).content.decode()
    assert 'data-rule="CN.UNANSWERED_PER_NUMBER"' in detail


def test_form_rejects_a_bad_time(client, world):  # noqa: F811
    client.force_login(world["sup"])
    latest = Policy.objects.filter(code="CN").order_by("-version").first()
    form = PolicyRulesForm(prefix="edit", code="CN", base_rules=latest.rules["rules"])
    start = next(n for n in form.fields if n.endswith("__start"))
    response = client.post(reverse("supervisor-policy-draft", args=["CN"]),
                           _form_data(form, "save", **{start: "25:99"}))
    assert response.status_code == 200 and "HH:MM" in response.content.decode()
    assert Policy.objects.filter(code="CN").order_by("-version").first().pk == latest.pk  # nothing saved


def test_whatif_lists_the_attempts_decided_differently(client, world):  # noqa: F811
    acc, agent = world["account"], world["agent"]
    _record(acc, agent, _past_local(3, 10))
    _record(acc, agent, _past_local(3, 11))  # the second unanswered call that day
    base = policy_row_in_force(code="CN", at=_past_local(0, 0))
    rules = [dict(r, max=1) if r["code"] == "CN.UNANSWERED_PER_NUMBER" else r for r in base.rules["rules"]]
    from django.utils import timezone

    from compliance import services

    draft = services.policy_draft_create(actor=world["sup"], code="CN", data={"name": "x", "rules": rules},
                                         effective_from=timezone.now())
    result = supervision_services.policy_whatif_replay(policy=draft, days=10)
    assert result.changed_total == 1 and len(result.changed) == 1
    changed = result.changed[0]
    assert changed["account_ref"] == acc.external_ref and changed["channel"] == "call"
    assert changed["draft"] == ["CN.UNANSWERED_PER_NUMBER"] and changed["baseline"] == []
    client.force_login(world["sup"])
    page = client.get(reverse("supervisor-policy", args=[draft.pk]), {"days": 10},
                      HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert 'id="whatif-changed"' in page and acc.external_ref in page
    assert "Daily limit of unanswered calls to this number reached" in page


def test_policy_names_and_citations_show_in_chinese(client, world):  # noqa: F811
    client.force_login(world["sup"])
    cn = Policy.objects.filter(code="CN").order_by("-version").first()
    listing = client.get(reverse("supervisor-policies"), HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "中国（中国银行业协会指引" in listing and cn.name not in listing
    form = client.get(reverse("supervisor-policy-draft", args=["CN"]), HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "互联网消费信贷贷后催收国家标准（每个号码每日呼叫次数）" in form
