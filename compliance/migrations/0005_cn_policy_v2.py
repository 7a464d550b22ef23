"""CN policy version 2 (effective 2026-01-01): version 1 plus field visits by at least two
collectors (frozen JSON beside this file; compliance/rules/seeds.py POLICY_UPDATES)."""

import json
from datetime import UTC, datetime
from pathlib import Path

from django.db import migrations

DATA = Path(__file__).with_name("policies_v2.json")


def forwards(apps, schema_editor):
    Policy = apps.get_model("compliance", "Policy")
    for data in json.loads(DATA.read_text(encoding="utf-8")):
        Policy.objects.update_or_create(
            code=data["code"], version=data["version"],
            defaults={
                "name": data.get("name", data["code"]),
                "effective_from": datetime.fromisoformat(data["effective_from"]).replace(tzinfo=UTC),
                "status": "published",
                "rules": data,
                "published_at": datetime(2026, 1, 1, tzinfo=UTC),
            },
        )


def backwards(apps, schema_editor):
    Policy = apps.get_model("compliance", "Policy")
    for data in json.loads(DATA.read_text(encoding="utf-8")):
        Policy.objects.filter(code=data["code"], version=data["version"]).delete()


class Migration(migrations.Migration):
    dependencies = [("compliance", "0004_audit_search_indexes")]
    operations = [migrations.RunPython(forwards, backwards)]
