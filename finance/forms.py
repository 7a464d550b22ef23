from __future__ import annotations

from datetime import timedelta
from decimal import ROUND_DOWN, Decimal

from django import forms
from django.utils.translation import gettext_lazy as _


class SettlementOfferForm(forms.Form):
    amount = forms.DecimalField(label=_("Settlement amount"), max_digits=14, decimal_places=2, min_value=Decimal("0.01"))
    instalments = forms.IntegerField(label=_("Instalments"), min_value=1, max_value=60, initial=1)
    first_due_date = forms.DateField(label=_("First instalment date"), widget=forms.DateInput(attrs={"type": "date"}))

    def schedule(self) -> list:
        """Equal instalments every 30 days; the last one takes the cents left over."""
        amount, n, first = (self.cleaned_data[k] for k in ("amount", "instalments", "first_due_date"))
        each = (amount / n).quantize(Decimal("0.01"), rounding=ROUND_DOWN)
        amounts = [each] * (n - 1) + [amount - each * (n - 1)]
        return [(first + timedelta(days=30 * i), a) for i, a in enumerate(amounts)]


class SettlementDecisionForm(forms.Form):
    decision = forms.ChoiceField(choices=[("approve", _("Approve")), ("decline", _("Decline"))])
    note = forms.CharField(label=_("Note"), max_length=500, required=False)


class PaymentFileForm(forms.Form):
    file = forms.FileField(label=_("Payment file (CSV or XLSX)"))
    # Supervisors only (bank statements): match one lender's accounts, or every lender's.
    lender = forms.ModelChoiceField(label=_("Lender"), queryset=None, required=False,
                                    empty_label=_("Any lender (by account reference)"))

    def __init__(self, *args, lenders=None, **kwargs):
        super().__init__(*args, **kwargs)
        if lenders is None:
            del self.fields["lender"]
        else:
            self.fields["lender"].queryset = lenders

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if not upload.name.lower().endswith((".csv", ".xlsx")):
            raise forms.ValidationError(_("Upload a .csv or .xlsx file."))
        return upload
