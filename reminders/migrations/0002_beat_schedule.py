"""Seed the periodic tasks in django-celery-beat so supervisors can edit them in the admin."""

from django.db import migrations

TZ = "Asia/Shanghai"
TASKS = [
    # name, task, schedule
    ("Daily ageing (days past due, buckets, broken promises, missed instalments)",
     "reminders.tasks.accounts_age_task", {"crontab": {"minute": "5", "hour": "0"}}),
    ("Schedule borrower and agent reminders", "reminders.tasks.reminders_schedule_task",
     {"crontab": {"minute": "15", "hour": "*"}}),
    ("Send due reminders (sweep)", "reminders.tasks.reminders_sweep_task", {"interval": 60}),
    ("Notify agents of due callbacks", "reminders.tasks.callbacks_notify_task", {"interval": 300}),
]


def forwards(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    for name, task, schedule in TASKS:
        if PeriodicTask.objects.filter(name=name).exists():
            continue
        if "crontab" in schedule:
            cron, _ = CrontabSchedule.objects.get_or_create(
                minute=schedule["crontab"]["minute"], hour=schedule["crontab"]["hour"], day_of_week="*",
                day_of_month="*", month_of_year="*", timezone=TZ,
            )
            PeriodicTask.objects.create(name=name, task=task, crontab=cron, enabled=True)
        else:
            every, _ = IntervalSchedule.objects.get_or_create(every=schedule["interval"], period="seconds")
            PeriodicTask.objects.create(name=name, task=task, interval=every, enabled=True)


def backwards(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(task__in=[t for _, t, _ in TASKS]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("reminders", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
