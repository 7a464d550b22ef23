"""Forms of the agent workspace. They only parse and validate input; the services decide and write."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from . import selectors
from .models import ContactAttempt, Lender, OverdueAccount, User

MONEY = {"max_digits": 14, "decimal_places": 2, "min_value": Decimal("0.01")}
BUCKETS = ["M0", "M1", "M2", "M3", "M4", "M5", "M6", "M7+"]
PAGE_SIZES = [25, 50, 100]


class DateInput(forms.DateInput):
    input_type = "date"

    def __init__(self, **kwargs):
        super().__init__(format="%Y-%m-%d", **kwargs)


class DateTimeInput(forms.DateTimeInput):
    input_type = "datetime-local"

    def __init__(self, **kwargs):
        super().__init__(format="%Y-%m-%dT%H:%M", **kwargs)


# ---- queue and assignment lists ------------------------------------------------------------


class QueueFilterForm(forms.Form):
    q = forms.CharField(label=_("Search"), required=False, max_length=100,
                        widget=forms.TextInput(attrs={"placeholder": _("Name, phone or reference"), "type": "search"}))
    bucket = forms.ChoiceField(label=_("Bucket"), required=False)
    status = forms.ChoiceField(label=_("Status"), required=False)
    lender = forms.ModelChoiceField(label=_("Lender"), required=False, queryset=Lender.objects.none(), empty_label=_("All"))
    per = forms.TypedChoiceField(label=_("Per page"), required=False, coerce=int, empty_value=25,
                                 choices=[(n, n) for n in PAGE_SIZES])
    callable = forms.BooleanField(label=_("Callable now"), required=False)

    def __init__(self, *args, lenders=None, statuses=OverdueAccount.OPEN_STATUSES, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["bucket"].choices = [("", _("All"))] + [(b, b) for b in BUCKETS]
        labels = dict(OverdueAccount.Status.choices)
        self.fields["status"].choices = [("", _("All"))] + [(s, labels[s]) for s in statuses]
        if lenders is not None:
            self.fields["lender"].queryset = lenders


class AssignmentFilterForm(QueueFilterForm):
    agent = forms.CharField(label=_("Assigned agent"), required=False)

    def __init__(self, *args, agents=(), **kwargs):
        super().__init__(*args, statuses=OverdueAccount.OPEN_STATUSES, **kwargs)
        del self.fields["callable"]  # the agent's queue only
        self.fields["agent"].widget = forms.Select(
            choices=[("", _("All")), ("none", _("Unassigned"))] + [(str(a.pk), a.get_username()) for a in agents]
        )


class AssignForm(forms.Form):
    agent = forms.ModelChoiceField(label=_("Agent"), queryset=User.objects.none(), required=False,
                                   empty_label=_("— nobody (unassign) —"))

    def __init__(self, *args, agents=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["agent"].queryset = agents if agents is not None else User.objects.filter(role="agent", is_active=True)


# ---- case page actions ---------------------------------------------------------------------


#: The call bar's outcome buttons per channel, in shortcut order (digit = position): no "Delivered" for
#: a call, no "Busy" for a letter. Some labels say what the outcome means on that channel.
CALL_BAR_OUTCOMES = {
    "call": [("no_answer", _("No answer")), ("busy", _("Busy")), ("voicemail", _("Voicemail")),
             ("wrong_number", _("Wrong number")), ("right_party_contact", _("Right-party contact")),
             ("promise", _("Promise to pay")), ("refused", _("Refused to pay")), ("dispute_raised", _("Dispute raised"))],
    "sms": [("delivered", _("Delivered")), ("failed", _("Failed"))],
    "email": [("delivered", _("Delivered")), ("failed", _("Failed"))],
    "letter": [("delivered", _("Delivered (sent)")), ("failed", _("Failed (returned)"))],
    "visit": [("right_party_contact", _("Right-party contact")), ("third_party_contact", _("Third-party contact")),
              ("no_answer", _("Not at home")), ("refused", _("Refused to pay")), ("promise", _("Promise to pay"))],
}
#: Outcomes that cannot happen on a channel (a delivery report is not a call; a letter is never busy).
IMPOSSIBLE_OUTCOMES = {
    "call": {"delivered", "failed"},
    "visit": {"delivered", "failed", "busy", "voicemail", "not_connected"},
    "sms": {"busy", "voicemail", "not_connected", "no_answer"},
    "email": {"busy", "voicemail", "not_connected", "no_answer"},
    "letter": {"busy", "voicemail", "not_connected", "no_answer"},
}


class OutreachForm(forms.Form):
    channel = forms.ChoiceField(label=_("Channel"), choices=ContactAttempt.Channel.choices, initial="call")
    outcome = forms.ChoiceField(
        label=_("Outcome"),
        choices=[c for c in ContactAttempt.Outcome.choices if c[0] not in ("pending", "unreported")])
    direction = forms.ChoiceField(label=_("Direction"), choices=ContactAttempt.Direction.choices, initial="outbound")
    party = forms.ChoiceField(label=_("Contacted party"), choices=ContactAttempt.Party.choices, initial="borrower")
    occurred_at = forms.DateTimeField(
        label=_("Time"), required=False, widget=DateTimeInput(),
        help_text=_("Leave empty for now. Your time zone. A contact more than 5 minutes ago is stored as it"
                    " happened; if it broke a rule it is flagged for a supervisor."),
    )
    notes = forms.CharField(label=_("Notes"), required=False, max_length=4000, widget=forms.Textarea(attrs={"rows": 3}))
    second_collector = forms.ModelChoiceField(
        label=_("Second collector"), queryset=None, required=False,
        help_text=_("Field visits: who goes with you (China: at least two collectors)."),
    )

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["second_collector"].queryset = selectors.second_collector_choices(user=user)

    def clean(self):
        cd = super().clean()
        channel, outcome = cd.get("channel"), cd.get("outcome")
        if outcome in IMPOSSIBLE_OUTCOMES.get(channel, ()):
            self.add_error("outcome", forms.ValidationError(
                _("“%(outcome)s” is not an outcome of a %(channel)s."),
                params={"outcome": dict(ContactAttempt.Outcome.choices)[outcome],
                        "channel": dict(ContactAttempt.Channel.choices)[channel]}))
        return cd


class OutreachStartForm(forms.Form):
    """Start an outreach now: the gate decides before the number is shown."""

    channel = forms.ChoiceField(label=_("Channel"), choices=ContactAttempt.Channel.choices, initial="call")
    party = forms.ChoiceField(label=_("Contacted party"), choices=ContactAttempt.Party.choices, initial="borrower")
    accounts = forms.ModelMultipleChoiceField(
        label=_("Also about"), queryset=OverdueAccount.objects.none(), required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("Other debts of this borrower the outreach is about: it counts toward each debt's limits."),
    )
    second_collector = forms.ModelChoiceField(
        label=_("Second collector"), queryset=None, required=False,
        help_text=_("Field visits: who goes with you (China: at least two collectors)."),
    )

    def __init__(self, *args, user=None, account: OverdueAccount | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["second_collector"].queryset = selectors.second_collector_choices(user=user)
        if account is not None:
            self.fields["accounts"].queryset = OverdueAccount.objects.filter(
                borrower_id=account.borrower_id, lender_id=account.lender_id).exclude(pk=account.pk).order_by("pk")


class OutreachCompleteForm(forms.Form):
    attempt = forms.IntegerField(widget=forms.HiddenInput)
    outcome = forms.ChoiceField(
        label=_("Outcome"),
        choices=[c for c in ContactAttempt.Outcome.choices if c[0] not in ("pending", "unreported")])
    notes = forms.CharField(label=_("Notes"), required=False, max_length=4000, widget=forms.Textarea(attrs={"rows": 2}))


class PromiseForm(forms.Form):
    amount = forms.DecimalField(label=_("Amount"), **MONEY)
    due_date = forms.DateField(label=_("Promised date"), widget=DateInput())

    def __init__(self, *args, account: OverdueAccount, **kwargs):
        super().__init__(*args, **kwargs)
        self.account = account

    def clean_amount(self):
        amount = self.cleaned_data["amount"]
        if amount > self.account.balance:
            raise forms.ValidationError(_("The promised amount exceeds the outstanding balance."))
        return amount

    def clean_due_date(self):
        d = self.cleaned_data["due_date"]
        if d < timezone.localdate():
            raise forms.ValidationError(_("The promised date cannot be in the past."))
        return d


class PlanForm(forms.Form):
    total_amount = forms.DecimalField(label=_("Agreed total"), **MONEY)


class InstalmentForm(forms.Form):
    due_date = forms.DateField(label=_("Due date"), widget=DateInput())
    amount = forms.DecimalField(label=_("Amount"), **MONEY)


class BaseInstalmentFormSet(forms.BaseFormSet):
    def clean(self):
        super().clean()
        if any(self.errors):
            return
        rows = [f.cleaned_data for f in self.forms if f.cleaned_data and not f.cleaned_data.get("DELETE")]
        if not rows:
            raise forms.ValidationError(_("A plan needs at least one instalment."))


InstalmentFormSet = forms.formset_factory(
    InstalmentForm, formset=BaseInstalmentFormSet, extra=3, max_num=36, validate_max=True, absolute_max=36
)


class PaymentForm(forms.Form):
    PREFIX = "pay"  # the promise form on the same page also has an "amount"

    amount = forms.DecimalField(label=_("Amount"), **MONEY)
    paid_at = forms.DateTimeField(label=_("Paid at"), widget=DateTimeInput())
    method = forms.ChoiceField(label=_("Method"), choices=[
        ("bank_transfer", _("Bank transfer")), ("card", _("Card")), ("alipay", _("Alipay")),
        ("wechat", _("WeChat Pay")), ("cash", _("Cash")), ("other", _("Other")),
    ])
    reference = forms.CharField(label=_("Reference"), required=False, max_length=64)

    def clean_paid_at(self):
        paid_at = self.cleaned_data["paid_at"]
        if paid_at > timezone.now() + timedelta(minutes=5):
            raise forms.ValidationError(_("A payment cannot be recorded in the future."))
        return paid_at


class CallbackForm(forms.Form):
    # Own ids, same names: the one-click "callback at the next lawful time" posts plain due_at/channel.
    AUTO_ID = "id_cb_%s"

    due_at = forms.DateTimeField(label=_("Callback time"), widget=DateTimeInput(), help_text=_("Your time zone."))
    channel = forms.ChoiceField(label=_("Channel"), choices=ContactAttempt.Channel.choices, initial="call")
    note = forms.CharField(label=_("Note"), required=False, max_length=500)

    def clean_due_at(self):
        due_at = self.cleaned_data["due_at"]
        if due_at <= timezone.now():
            raise forms.ValidationError(_("A callback must be scheduled in the future."))
        return due_at


class NoteForm(forms.Form):
    body = forms.CharField(label=_("Note"), max_length=4000, widget=forms.Textarea(attrs={"rows": 3}))


STATUS_ACTIONS = [
    ("dispute", _("Dispute raised")),
    ("legal", _("Legal escalation")),
    ("ceased", _("Cease-communication request received")),
]


class StatusForm(forms.Form):
    status = forms.ChoiceField(label=_("Change"), choices=STATUS_ACTIONS)
    reason = forms.CharField(label=_("Reason"), max_length=500, widget=forms.Textarea(attrs={"rows": 2}))


WEEKDAY_CHOICES = [("mon", _("Mon")), ("tue", _("Tue")), ("wed", _("Wed")), ("thu", _("Thu")), ("fri", _("Fri")),
                   ("sat", _("Sat")), ("sun", _("Sun"))]
MIN_WINDOW_MINUTES = 60


class ContactTimesForm(forms.Form):
    """The times that suit the borrower (their local time); both times empty: no preference. The agent's case
    page and the borrower's own page both use it."""

    contact_from = forms.TimeField(label=_("Contact me only from"), required=False,
                                   widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"))
    contact_to = forms.TimeField(label=_("until"), required=False,
                                 widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"))
    contact_days = forms.MultipleChoiceField(label=_("on these days"), required=False,
                                             widget=forms.CheckboxSelectMultiple, choices=WEEKDAY_CHOICES)

    def clean(self):
        cd = super().clean()
        start, end = cd.get("contact_from"), cd.get("contact_to")
        if (start is None) != (end is None):
            raise forms.ValidationError(_("Give both times, or neither for no preference."))
        if start is not None and (end.hour * 60 + end.minute) - (start.hour * 60 + start.minute) < MIN_WINDOW_MINUTES:
            raise forms.ValidationError(_("The times must leave at least an hour, the end after the start."))
        return cd

    def contact_windows(self) -> list[dict]:
        cd = self.cleaned_data
        if cd.get("contact_from") is None:
            return []
        return [{"days": cd.get("contact_days") or [d for d, _l in WEEKDAY_CHOICES],
                 "start": cd["contact_from"].strftime("%H:%M"), "end": cd["contact_to"].strftime("%H:%M")}]

    @staticmethod
    def initial_for(windows) -> dict:
        if not windows:
            return {}
        w = windows[0]
        return {"contact_from": w["start"], "contact_to": w["end"], "contact_days": w["days"]}
