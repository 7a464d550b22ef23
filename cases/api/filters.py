"""Query filters of the API (django-filter): unknown values are a 400, and every filter is in the schema."""

import django_filters

from cases.models import OverdueAccount


class AccountFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=OverdueAccount.Status.choices, help_text="Workflow status.")
    external_ref = django_filters.CharFilter(max_length=64, help_text="The lender's reference (exact).")

    class Meta:
        model = OverdueAccount
        fields = ["status", "external_ref"]
