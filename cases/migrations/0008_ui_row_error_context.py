"""Lender portal and audit log (issue 12).

- Row errors keep the row's external reference and the refused value.
- The supervisor's audit search looks accounts up by external reference across lenders and borrowers
  by part of their name: an index on ``external_ref`` (the unique one leads with the lender) and, on
  PostgreSQL, a trigram GIN index on the borrower's name for ``ILIKE '%term%'``. Raw SQL, as in
  compliance/0004: the trigram index is PostgreSQL-only.
"""

from django.db import migrations, models


def forwards(apps, schema_editor):
    schema_editor.execute("CREATE INDEX IF NOT EXISTS account_external_ref_idx ON cases_overdueaccount (external_ref)")
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        schema_editor.execute("CREATE INDEX IF NOT EXISTS borrower_name_trgm_idx ON cases_borrower "
                              "USING gin (upper(name) gin_trgm_ops)")


def backwards(apps, schema_editor):
    for name in ("account_external_ref_idx", "borrower_name_trgm_idx"):
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [("cases", "0007_contact_truth")]

    operations = [
        migrations.AddField(model_name="placementrowerror", name="external_ref",
                            field=models.CharField(blank=True, max_length=64)),
        migrations.AddField(model_name="placementrowerror", name="value",
                            field=models.CharField(blank=True, max_length=200)),
        migrations.RunPython(forwards, backwards),
    ]
