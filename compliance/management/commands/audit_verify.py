import time

from django.core.management.base import BaseCommand, CommandError

from compliance.audit import audit_verify


class Command(BaseCommand):
    help = "Walk every audit hash chain and report the first broken link (exit status 1 if any)."

    def add_arguments(self, parser):
        parser.add_argument("--batch", type=int, default=5000)

    def handle(self, *args, batch: int, **options):
        started = time.perf_counter()
        result = audit_verify(batch=batch)
        elapsed = time.perf_counter() - started
        rate = result.checked / elapsed if elapsed else 0
        if not result.ok:
            raise CommandError(
                f"audit chain BROKEN after {result.checked} events: {result.detail} (event id {result.first_broken_id})"
            )
        self.stdout.write(self.style.SUCCESS(f"audit chain OK: {result.checked} events in {elapsed:.2f}s ({rate:,.0f}/s)"))
