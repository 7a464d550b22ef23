from django.core.management.base import BaseCommand, CommandError

from compliance.audit import CheckpointError, audit_checkpoint_write


class Command(BaseCommand):
    help = (
        "Append a signed checkpoint (head id, seq and hash) for every audit chain that moved to "
        "AUDIT_CHECKPOINT_DIR; audit_verify checks the chains against the latest ones."
    )

    def handle(self, *args, **options):
        try:
            written = audit_checkpoint_write()
        except CheckpointError as exc:
            raise CommandError(str(exc)) from exc
        for line in written:
            self.stdout.write(f"chain {line['chain']}: seq {line['seq']} (event {line['event_id']})")
        self.stdout.write(self.style.SUCCESS(f"{len(written)} checkpoint(s) written"))
