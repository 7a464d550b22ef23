"""Seed version 1 of the US, US-MA, CN and AU contact policies (frozen JSON beside this file)."""

import json
from datetime import UTC, datetime
from pathlib import Path

from django.db import migrations

DATA = Path(__file__).with_name("policies_v1.json")


def forwards(apps, schema_editor):
    Policy = apps.get_model("compliance", "Policy")
    for data in json.loads(DATA.read_text(encoding="utf-8")):
        Policy.objects.update_or_create(
            code=data["code"], version=data["version"],
            defaults={
                "name": data.get("name", data["code"]),
                "effective_from": datetime.fromisoformat(data.get("effective_from", "2020-01-01")).replace(tzinfo=UTC),
                "status": "published",
                "rules": data,
                "published_at": datetime(2020, 1, 1, tzinfo=UTC),
            },
        )


def backwards(apps, schema_editor):
    apps.get_model("compliance", "Policy").objects.filter(version=1).delete()


class Migration(migrations.Migration):
    dependencies = [("compliance", "0002_audit_append_only")]
    operations = [migrations.RunPython(forwards, backwards)]
