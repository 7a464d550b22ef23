"""Indexes for the supervisor's audit log browser.

The browser pages by ``id`` descending (keyset), so each filter column gets a composite index
ending in ``id``: "this account's newest events" is then an index range read that stops after one
page, however many millions of rows the table holds. On PostgreSQL a trigram GIN index over the
free-text parts of ``data`` (notes, note bodies, reasons) serves ``ILIKE '%term%'`` searches; the
expression must stay identical to ``compliance.selectors.AUDIT_NOTES_SQL``.

Created with raw SQL (not Meta.indexes) because the expression index is PostgreSQL-only and the
model is owned elsewhere; the btree indexes are created on SQLite too.
"""

from django.db import migrations

BTREE = {
    "audit_account_id_idx": "(account_id, id)",
    "audit_borrower_id_idx": "(borrower_id, id)",
    "audit_actor_id_idx": "(actor_id, id)",
    "audit_lender_id_idx": "(lender_id, id)",
    "audit_action_id_idx": "(action, id)",
}
NOTES_EXPR = (
    "(coalesce(data->>'notes', '') || ' ' || coalesce(data->>'body', '') || ' ' || coalesce(data->>'reason', ''))"
)


def forwards(apps, schema_editor):
    for name, cols in BTREE.items():
        schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {name} ON compliance_auditevent {cols}")
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS audit_notes_trgm_idx ON compliance_auditevent "
            f"USING gin ({NOTES_EXPR} gin_trgm_ops)"
        )


def backwards(apps, schema_editor):
    for name in [*BTREE, "audit_notes_trgm_idx"]:
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [("compliance", "0003_seed_policies")]
    operations = [migrations.RunPython(forwards, backwards)]
