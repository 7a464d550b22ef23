"""Plans for less than the balance are settlements (issue 13): a settlement may be withdrawn (a newer plan
replaced it), records the lender's maximum instalments, and an account may have one settlement waiting for
approval next to the approved one being paid."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('finance', '0001_initial'),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name='settlement',
            name='uniq_open_settlement_per_account',
        ),
        migrations.AddField(
            model_name='settlement',
            name='max_instalments',
            field=models.PositiveSmallIntegerField(blank=True, null=True, verbose_name='maximum instalments'),
        ),
        migrations.AlterField(
            model_name='settlement',
            name='status',
            field=models.CharField(choices=[('pending', 'Awaiting approval'), ('approved', 'Approved'), ('declined', 'Declined'), ('settled', 'Settled'), ('withdrawn', 'Withdrawn (replaced by a newer plan)')], max_length=10, verbose_name='status'),
        ),
        migrations.AddConstraint(
            model_name='settlement',
            constraint=models.UniqueConstraint(condition=models.Q(('status', 'pending')), fields=('account',), name='uniq_pending_settlement_per_account'),
        ),
        migrations.AddConstraint(
            model_name='settlement',
            constraint=models.UniqueConstraint(condition=models.Q(('status', 'approved')), fields=('account',), name='uniq_approved_settlement_per_account'),
        ),
    ]
