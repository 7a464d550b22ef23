from django import forms
from django.utils.translation import gettext_lazy as _

from cases.models import Lender

from .models import Reminder


class ReminderFilterForm(forms.Form):
    state = forms.ChoiceField(label=_("State"), required=False, choices=[("", _("All"))] + Reminder.State.choices)
    kind = forms.ChoiceField(label=_("Kind"), required=False, choices=[("", _("All"))] + Reminder.Kind.choices)
    channel = forms.ChoiceField(label=_("Channel"), required=False, choices=[("", _("All"))] + Reminder.Channel.choices)
    lender = forms.ModelChoiceField(label=_("Lender"), required=False, queryset=Lender.objects.all(), empty_label=_("All"))
    due_from = forms.DateField(label=_("Due from"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    due_to = forms.DateField(label=_("Due to"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    ref = forms.CharField(label=_("Account reference"), required=False, max_length=64)

    def filters(self) -> dict:
        if not self.is_valid():
            return {}
        data = dict(self.cleaned_data)
        data["lender"] = data["lender"].pk if data.get("lender") else None
        return data
