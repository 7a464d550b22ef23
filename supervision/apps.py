from django.apps import AppConfig


class SupervisionConfig(AppConfig):
    """The supervisor console: dashboards, audit log, policies and what-if, incidents, agents."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "supervision"
    verbose_name = "Supervision"
