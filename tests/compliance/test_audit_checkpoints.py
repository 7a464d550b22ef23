"""Audit anchoring: signed checkpoints outside the database expose a deleted tail with a rewound head."""

import io
import json

import pytest
from django.core.management import call_command
from django.db import connection
from django.urls import reverse

from compliance.audit import (
    audit_checkpoint_latest,
    audit_checkpoint_write,
    audit_log,
    audit_verify,
    checkpoint_signature_ok,
)
from compliance.models import AuditChainHead
from compliance.tasks import audit_checkpoint_task
from tests import factories as f

pytestmark = pytest.mark.django_db


def make_events(lender, n=5):
    return [audit_log(action="tests.event", lender_id=lender.pk, data={"i": i}) for i in range(n)]


def cut_tail(events, keep: int) -> None:
    """What an attacker with the table owner's role can do: delete the last events, rewind the head."""
    last = events[keep - 1]
    with connection.cursor() as cur:
        cur.execute("ALTER TABLE compliance_auditevent DISABLE TRIGGER USER")
        cur.execute("DELETE FROM compliance_auditevent WHERE chain = %s AND seq > %s", [last.chain, last.seq])
        cur.execute("ALTER TABLE compliance_auditevent ENABLE TRIGGER USER")
    AuditChainHead.objects.filter(chain=last.chain).update(seq=last.seq, hash=last.hash)


def test_untouched_chain_verifies_against_its_checkpoint(settings):
    lender = f.lender()
    events = make_events(lender)
    audit_log(action="tests.global")  # chain 0
    written = audit_checkpoint_write()
    assert {(c["chain"], c["seq"], c["event_id"]) for c in written} == {(lender.pk, 5, events[-1].pk), (0, 1, written[0]["event_id"])}
    make_events(lender, 2)  # appended after the checkpoint: fine
    result = audit_verify()
    assert result.ok, result.detail
    assert (settings.AUDIT_CHECKPOINT_DIR / f"chain-{lender.pk}.jsonl").exists()


def test_rewrite_is_idempotent_and_appends():
    lender = f.lender()
    make_events(lender, 2)
    assert len(audit_checkpoint_write()) == 1
    assert audit_checkpoint_write() == []  # head did not move: no new line
    make_events(lender, 1)
    assert audit_checkpoint_task.delay().get() == 1
    assert audit_checkpoint_latest(chain=lender.pk)["seq"] == 3


def test_deleted_tail_with_rewound_head_fails_verification(require_postgres):
    lender = f.lender()
    events = make_events(lender)
    call_command("audit_checkpoint", stdout=io.StringIO())
    cut_tail(events, keep=3)
    result = audit_verify()
    assert not result.ok
    assert f"chain {lender.pk}: head at seq 3 is behind the checkpoint" in result.detail


def test_chain_rewritten_at_the_checkpointed_seq_fails(require_postgres):
    lender = f.lender()
    events = make_events(lender, 3)
    audit_checkpoint_write()
    cut_tail(events, keep=2)
    forged = audit_log(action="tests.forged", lender_id=lender.pk)  # a new, valid seq 3
    result = audit_verify()
    assert not result.ok and result.first_broken_id == forged.pk
    assert "differs from the checkpoint" in result.detail


def test_bad_signature_is_reported(settings):
    lender = f.lender()
    make_events(lender, 2)
    audit_checkpoint_write()
    path = settings.AUDIT_CHECKPOINT_DIR / f"chain-{lender.pk}.jsonl"
    line = json.loads(path.read_text())
    line["seq"] = 1  # an attacker moving the anchor back to match a shortened chain
    path.write_text(json.dumps(line) + "\n")
    result = audit_verify()
    assert not result.ok and "signature invalid" in result.detail


def test_wrong_key_is_reported(settings):
    make_events(f.lender(), 1)
    audit_checkpoint_write()
    settings.AUDIT_CHECKPOINT_KEY = "another-key"
    result = audit_verify()
    assert not result.ok and "signature invalid" in result.detail


def test_missing_key_refuses_to_write(settings):
    from django.core.management.base import CommandError

    make_events(f.lender(), 1)
    settings.AUDIT_CHECKPOINT_KEY = ""
    with pytest.raises(CommandError, match="AUDIT_CHECKPOINT_KEY"):
        call_command("audit_checkpoint")


def test_lender_export_carries_its_chain_checkpoint(client):
    user = f.user(role="lender", lender=f.lender())
    other = f.lender()
    make_events(user.lender, 2)
    make_events(other, 1)
    client.force_login(user)
    assert "X-Audit-Checkpoint" not in client.get(reverse("portal-export-csv"))  # none written yet
    audit_checkpoint_write()
    urls = [reverse("portal-export-csv"), reverse("portal-export-json"),
            "/api/v1/placements/results/", "/api/v1/placements/results/?as=json"]
    for url in urls:
        anchor = json.loads(client.get(url)["X-Audit-Checkpoint"])
        head = AuditChainHead.objects.get(chain=user.lender_id)  # its own chain, not another lender's
        assert (anchor["chain"], anchor["seq"], anchor["hash"]) == (user.lender_id, head.seq, head.hash)
        assert checkpoint_signature_ok(anchor)


def test_deploy_check_wants_a_checkpoint_key(settings):
    from servicing.checks import audit_checkpoint_key_check

    settings.AUDIT_CHECKPOINT_KEY = ""
    assert [w.id for w in audit_checkpoint_key_check(None)] == ["servicing.W001"]
    settings.AUDIT_CHECKPOINT_KEY = "k" * 40
    assert audit_checkpoint_key_check(None) == []
