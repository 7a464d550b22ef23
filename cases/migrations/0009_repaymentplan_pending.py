"""A repayment plan for less than the balance outside the lender's settlement terms waits for a supervisor's
approval (issue 13): status ``pending``. Choices only; no schema change."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('cases', '0008_ui_row_error_context'),
    ]

    operations = [
        migrations.AlterField(
            model_name='repaymentplan',
            name='status',
            field=models.CharField(choices=[('pending', 'Awaiting approval'), ('active', 'Active'), ('completed', 'Completed'), ('broken', 'Broken'), ('cancelled', 'Cancelled')], default='active', max_length=12),
        ),
    ]
