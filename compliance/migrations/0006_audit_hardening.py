"""Audit hardening (issue 11).

1. On PostgreSQL, TRUNCATE of the audit events and chain heads is refused too (0002 refuses UPDATE and
   DELETE of events). A statement-level trigger cannot tell a test-suite flush from an attack, so it lets
   TRUNCATE through only when the session has set ``servicing.allow_truncate = 'on'``: the test harness
   does so on its own connections (tests/conftest.py), and bench scripts on their throw-away databases.
   The app never sets it. This stops accidents and injected SQL that does not know the switch; a role
   that owns the table can still drop the trigger, which the signed checkpoints
   (compliance/audit.py, AUDIT_CHECKPOINT_DIR) expose afterwards.
2. The periodic task that writes signed chain checkpoints, seeded in django-celery-beat.
"""

from django.db import migrations

TABLES = ("compliance_auditevent", "compliance_auditchainhead")
CREATE = """
CREATE OR REPLACE FUNCTION compliance_audit_no_truncate() RETURNS trigger AS $$
BEGIN
    IF coalesce(current_setting('servicing.allow_truncate', true), '') = 'on' THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'audit events are append-only: % refused on %', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
""" + "".join(
    f"""
DROP TRIGGER IF EXISTS {t}_no_truncate ON {t};
CREATE TRIGGER {t}_no_truncate BEFORE TRUNCATE ON {t}
    FOR EACH STATEMENT EXECUTE FUNCTION compliance_audit_no_truncate();
"""
    for t in TABLES
)
DROP = "".join(f"DROP TRIGGER IF EXISTS {t}_no_truncate ON {t};\n" for t in TABLES) + (
    "DROP FUNCTION IF EXISTS compliance_audit_no_truncate();"
)

CHECKPOINT_TASK = "compliance.tasks.audit_checkpoint_task"
CHECKPOINT_NAME = "Audit log: write signed chain checkpoints"
CHECKPOINT_EVERY = 300  # seconds; a deleted tail younger than this is not covered by a checkpoint yet


def triggers_forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE, params=None)


def triggers_backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


def beat_forwards(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    if not PeriodicTask.objects.filter(name=CHECKPOINT_NAME).exists():
        every, _ = IntervalSchedule.objects.get_or_create(every=CHECKPOINT_EVERY, period="seconds")
        PeriodicTask.objects.create(name=CHECKPOINT_NAME, task=CHECKPOINT_TASK, interval=every, enabled=True)


def beat_backwards(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(task=CHECKPOINT_TASK).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("compliance", "0005_cn_policy_v2"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]
    operations = [
        migrations.RunPython(triggers_forwards, triggers_backwards),
        migrations.RunPython(beat_forwards, beat_backwards),
    ]
