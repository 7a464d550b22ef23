"""Settlements reported to the lender (issue 13): an append-only ``SettlementEntry`` per settlement settled or
reopened, read by the remittance statements by (lender, recorded time), and the statements' settlement totals.

Settlements already settled get their entry here, stamped at the later of their settlement time and the end of
the lender's last issued statement: a statement already issued stays as it was, the next one reports them.
"""

import django.db.models.deletion
import django.utils.timezone
from decimal import Decimal
from django.db import migrations, models


def backfill(apps, schema_editor):
    Settlement = apps.get_model("finance", "Settlement")
    SettlementEntry = apps.get_model("finance", "SettlementEntry")
    Statement = apps.get_model("finance", "Statement")
    last = dict(Statement.objects.values("lender_id").annotate(m=models.Max("period_end")).values_list("lender_id", "m"))
    SettlementEntry.objects.bulk_create([
        SettlementEntry(settlement_id=s.pk, lender_id=s.lender_id, account_id=s.account_id, payment_id=s.settling_payment_id,
                        kind="settled", currency=s.currency, amount=s.amount, written_off=s.written_off,
                        created_at=max(s.settled_at, last.get(s.lender_id) or s.settled_at))
        for s in Settlement.objects.filter(status="settled", settled_at__isnull=False).order_by("pk").iterator()
    ], batch_size=1000)


class Migration(migrations.Migration):

    dependencies = [
        ('cases', '0009_repaymentplan_pending'),
        ('finance', '0002_settlement_plans'),
    ]

    operations = [
        migrations.AddField(
            model_name='statement',
            name='settlements_count',
            field=models.PositiveIntegerField(default=0, verbose_name='settlements settled'),
        ),
        migrations.AddField(
            model_name='statement',
            name='settlements_reopened_count',
            field=models.PositiveIntegerField(default=0, verbose_name='settlements reopened'),
        ),
        migrations.AddField(
            model_name='statement',
            name='written_off_total',
            field=models.DecimalField(decimal_places=2, default=Decimal('0.00'), max_digits=14, verbose_name='written off (settlements)'),
        ),
        migrations.CreateModel(
            name='SettlementEntry',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('kind', models.CharField(choices=[('settled', 'Settled'), ('reopened', 'Reopened')], max_length=10, verbose_name='kind')),
                ('currency', models.CharField(choices=[('CNY', 'CNY'), ('USD', 'USD'), ('AUD', 'AUD'), ('HKD', 'HKD'), ('EUR', 'EUR')], max_length=3)),
                ('amount', models.DecimalField(decimal_places=2, default=Decimal('0.00'), max_digits=14, verbose_name='settlement amount')),
                ('written_off', models.DecimalField(decimal_places=2, default=Decimal('0.00'), max_digits=14, verbose_name='written off')),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now, verbose_name='recorded at')),
                ('account', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='cases.overdueaccount')),
                ('lender', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='cases.lender')),
                ('payment', models.ForeignKey(blank=True, help_text='The payment that settled it (settled) or whose reversal reopened it.', null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='cases.payment')),
                ('settlement', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='entries', to='finance.settlement')),
            ],
            options={
                'verbose_name': 'settlement entry',
                'verbose_name_plural': 'settlement entries',
                'indexes': [models.Index(fields=['lender', 'created_at'], name='settle_entry_lender_time_idx')],
                'constraints': [models.CheckConstraint(condition=models.Q(models.Q(('kind', 'settled'), ('written_off__gte', 0)), models.Q(('kind', 'reopened'), ('written_off__lte', 0)), _connector='OR'), name='settlement_entry_sign')],
            },
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
    ]
