from __future__ import annotations

from datetime import date
from decimal import Decimal

from django import forms
from django.utils.translation import gettext_lazy as _

from cases.forms import ContactTimesForm

from .dates import add_months
from .models import Dispute


class FactorForm(forms.Form):
    factor = forms.CharField(label=_("Last 4 characters of your ID number"), min_length=4, max_length=4,
                             widget=forms.TextInput(attrs={"autocomplete": "off", "inputmode": "text",
                                                           "autocapitalize": "characters"}))


class _AccountForm(forms.Form):
    account = forms.TypedChoiceField(label=_("Account"), coerce=int)

    def __init__(self, *args, accounts=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["account"].choices = [(a.pk, f"{a.lender.name} · {a.external_ref}") for a in accounts]


class PromiseForm(_AccountForm):
    amount = forms.DecimalField(label=_("Amount"), min_value=Decimal("0.01"), max_digits=14, decimal_places=2)
    due_date = forms.DateField(label=_("I will pay by"), widget=forms.DateInput(attrs={"type": "date"}))




class PlanForm(_AccountForm):
    count = forms.IntegerField(label=_("Number of monthly instalments"), min_value=1, max_value=36)
    amount = forms.DecimalField(label=_("Amount of each instalment"), min_value=Decimal("0.01"), max_digits=14,
                                decimal_places=2)
    first_date = forms.DateField(label=_("First payment on"), widget=forms.DateInput(attrs={"type": "date"}))
    note = forms.CharField(label=_("Note (optional)"), required=False, max_length=500)

    def instalments(self) -> list[tuple[date, Decimal]]:
        d = self.cleaned_data
        return [(add_months(d["first_date"], i), d["amount"]) for i in range(d["count"])]


class PlanChoiceForm(_AccountForm):
    option = forms.CharField(max_length=20)


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """Several files in one input (Django's documented pattern); cleaned to a list."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", MultipleFileInput(attrs={"accept": ".pdf,.jpg,.jpeg,.png"}))
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        single = super().clean
        if isinstance(data, list | tuple):
            return [single(d, initial) for d in data if d]
        return [single(data, initial)] if data else []


class DisputeForm(_AccountForm):
    reason = forms.ChoiceField(label=_("Reason"), choices=Dispute.Reason.choices)
    text = forms.CharField(label=_("Tell us what is wrong"), required=False, max_length=5000,
                           widget=forms.Textarea(attrs={"rows": 4}))
    evidence = MultipleFileField(label=_("Evidence (PDF, JPEG or PNG, up to 5 files, optional)"), required=False)


class PreferencesForm(ContactTimesForm):
    sms_consent = forms.BooleanField(label=_("Text messages (SMS)"), required=False)
    email_consent = forms.BooleanField(label=_("Emails"), required=False)
    after_hours_consent = forms.BooleanField(label=_("I agree to be contacted outside the protected hours"),
                                             required=False)


class CallbackForm(_AccountForm):
    due_at = forms.DateTimeField(label=_("Call me at (your local time)"), input_formats=["%Y-%m-%dT%H:%M"],
                                 widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))


class CounterForm(forms.Form):
    note = forms.CharField(label=_("Counter-offer"), max_length=500)


class ResolveForm(forms.Form):
    outcome = forms.ChoiceField(label=_("Decision"), choices=[("upheld", _("Upheld: close the account")),
                                                             ("rejected", _("Rejected: lift the hold"))])
    note = forms.CharField(label=_("Reason"), max_length=5000, widget=forms.Textarea(attrs={"rows": 2}))


class HoldLiftForm(forms.Form):
    reason = forms.CharField(label=_("Reason"), max_length=500)




class CaseMessageForm(forms.Form):
    """An agent's own SMS or email to the borrower from the case page."""

    channel = forms.ChoiceField(label=_("Send by"), choices=[("sms", _("SMS")), ("email", _("Email"))])
    text = forms.CharField(label=_("Message"), max_length=500, widget=forms.Textarea(attrs={"rows": 3}))


class LinkForm(forms.Form):
    external_ref = forms.CharField(label=_("Account reference"), max_length=64)
    channel = forms.ChoiceField(label=_("Send by"), choices=[("sms", _("SMS")), ("email", _("Email"))])


class ComplaintForm(_AccountForm):
    text = forms.CharField(label=_("What happened"), max_length=5000, widget=forms.Textarea(attrs={"rows": 4}))


class ThirdPartyComplaintForm(forms.Form):
    external_ref = forms.CharField(label=_("Account reference"), max_length=64)
    complainant = forms.CharField(label=_("Complainant's name"), max_length=200)
    contact = forms.CharField(label=_("Complainant's phone or email"), max_length=200, required=False)
    text = forms.CharField(label=_("Complaint"), max_length=5000, widget=forms.Textarea(attrs={"rows": 3}))


class ComplaintAnswerForm(forms.Form):
    answer = forms.CharField(label=_("Answer"), max_length=5000, widget=forms.Textarea(attrs={"rows": 2}))


class EducationPageForm(forms.Form):
    title = forms.CharField(label=_("Title"), max_length=200)
    body = forms.CharField(label=_("Text"), widget=forms.Textarea(attrs={"rows": 8}))


class MessageTemplateForm(forms.Form):
    lender = forms.ModelChoiceField(label=_("Lender"), queryset=None)
    kind = forms.ChoiceField(label=_("Message"), choices=())
    language = forms.ChoiceField(label=_("Language"), choices=())
    subject = forms.CharField(label=_("Email subject"), max_length=200, required=False)
    body = forms.CharField(label=_("Text"), max_length=2000, widget=forms.Textarea(attrs={"rows": 4}))

    def __init__(self, *args, **kwargs):
        from cases.models import Lender

        from .models import MessageTemplate

        super().__init__(*args, **kwargs)
        self.fields["lender"].queryset = Lender.objects.order_by("name")
        self.fields["kind"].choices = MessageTemplate.Kind.choices
        self.fields["language"].choices = MessageTemplate.Language.choices
