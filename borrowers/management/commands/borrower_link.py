"""Issue a borrower page link for an account and print it (support staff, demos). Sending it by SMS or
email goes through the compliance gate: ``--send sms|email``."""

from django.core.management.base import BaseCommand, CommandError

from borrowers.services import access_link_issue, access_link_send, access_link_url
from cases.models import OverdueAccount


class Command(BaseCommand):
    help = "Issue a borrower page link for an account"

    def add_arguments(self, parser):
        parser.add_argument("account_id", type=int)
        parser.add_argument("--send", choices=["sms", "email"])

    def handle(self, *args, account_id: int, send=None, **options):
        account = OverdueAccount.objects.select_related("borrower", "lender").filter(pk=account_id).first()
        if account is None:
            raise CommandError(f"no account {account_id}")
        if send:
            row = access_link_send(account=account, actor=None, channel=send)
            self.stdout.write(f"sent link {row.pk} by {send}")
            return
        _row, raw = access_link_issue(borrower=account.borrower, actor=None)
        self.stdout.write(access_link_url(raw))
