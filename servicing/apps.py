from django.apps import AppConfig


class ServicingConfig(AppConfig):
    """The project package as an app only to connect its sign-in receiver and register its deploy checks."""

    name = "servicing"

    def ready(self):
        from . import auth, checks  # noqa: F401 - connects the session-expiry receiver, registers deploy checks
