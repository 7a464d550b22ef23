from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class BorrowersConfig(AppConfig):
    name = "borrowers"
    verbose_name = _("Borrower self-service")

    def ready(self):
        from .receipts import connect_signals

        connect_signals()
