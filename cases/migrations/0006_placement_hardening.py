# Placement hardening (issue 11): a heartbeat and a re-queue count on batches, the placement job
# outbox, and the beat entry of the sweep that dispatches jobs and recovers stuck batches.
import django.db.models.deletion
from django.db import migrations, models

SWEEP_NAME = "Placement jobs: dispatch the outbox, recover stuck batches (sweep)"
SWEEP_TASK = "cases.tasks.placement_sweep_task"


def add_sweep(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    if PeriodicTask.objects.filter(name=SWEEP_NAME).exists():
        return
    every, _ = IntervalSchedule.objects.get_or_create(every=60, period="seconds")
    PeriodicTask.objects.create(name=SWEEP_NAME, task=SWEEP_TASK, interval=every, enabled=True)


def remove_sweep(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(task=SWEEP_TASK).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("cases", "0005_contact_attempt_second_collector"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        migrations.AddField(
            model_name="placementbatch",
            name="heartbeat_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="placementbatch",
            name="requeue_count",
            field=models.PositiveSmallIntegerField(default=0, help_text="times the sweep re-queued it"),
        ),
        migrations.CreateModel(
            name="PlacementJob",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("sent_at", models.DateTimeField(blank=True, null=True)),
                ("attempts", models.PositiveSmallIntegerField(default=0)),
                ("last_error", models.CharField(blank=True, max_length=500)),
                ("batch", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="jobs",
                                            to="cases.placementbatch")),
            ],
            options={
                "indexes": [models.Index(condition=models.Q(("sent_at__isnull", True)), fields=["created_at"],
                                         name="placement_job_unsent")],
            },
        ),
        migrations.RunPython(add_sweep, remove_sweep),
    ]
