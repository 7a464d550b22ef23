"""Daily score refresh and strategy run in django-celery-beat (editable in the admin like the others)."""

from django.db import migrations

TZ = "Asia/Shanghai"
TASKS = [
    # After the 00:05 ageing, so days past due and broken promises are today's.
    ("Refresh propensity-to-pay scores", "scoring.tasks.scores_refresh_task", {"minute": "40", "hour": "0"}),
    # Morning: the gate still decides per borrower's own local time; refused steps wait for a later run.
    ("Run collection strategy steps", "scoring.tasks.strategy_steps_run_task", {"minute": "0", "hour": "10"}),
]


def forwards(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    for name, task, cron in TASKS:
        if PeriodicTask.objects.filter(name=name).exists():
            continue
        schedule, _ = CrontabSchedule.objects.get_or_create(
            minute=cron["minute"], hour=cron["hour"], day_of_week="*", day_of_month="*", month_of_year="*", timezone=TZ,
        )
        PeriodicTask.objects.create(name=name, task=task, crontab=schedule, enabled=True)


def backwards(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(task__in=[t for _, t, _ in TASKS]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("scoring", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
