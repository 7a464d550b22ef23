"""Forms of the supervisor console (thin: parsing and validation only)."""

from __future__ import annotations

import json
from datetime import timedelta

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from cases.models import JURISDICTIONS, Lender, User
from compliance import rules
from compliance.selectors import AuditFilters


class AuditFilterForm(forms.Form):
    lender = forms.ModelChoiceField(Lender.objects.order_by("name"), required=False, label=_("Lender"))
    agent = forms.ModelChoiceField(
        User.objects.filter(role__in=["agent", "supervisor", "admin"]).order_by("username"),
        required=False, label=_("Agent"),
    )
    borrower = forms.IntegerField(required=False, min_value=1, label=_("Borrower ID"))
    account = forms.IntegerField(required=False, min_value=1, label=_("Account ID"))
    action = forms.CharField(required=False, max_length=100, label=_("Action code"),
                             help_text=_("Exact code, or a prefix ending in a dot, e.g. cases."))
    outcome = forms.ChoiceField(
        required=False, label=_("Outcome"),
        choices=[("", _("Any")), ("allowed", _("Attempts recorded")), ("refused", _("Attempts refused"))],
    )
    date_from = forms.DateField(required=False, label=_("From"), widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(required=False, label=_("To"), widget=forms.DateInput(attrs={"type": "date"}))
    q = forms.CharField(required=False, max_length=200, label=_("Search notes"))

    def clean(self):
        data = super().clean()
        if data.get("date_from") and data.get("date_to") and data["date_from"] > data["date_to"]:
            raise forms.ValidationError(_("The start date is after the end date."))
        return data

    def filters(self) -> AuditFilters:
        d = self.cleaned_data
        return AuditFilters(
            lender_id=d["lender"].pk if d.get("lender") else None,
            actor_id=d["agent"].pk if d.get("agent") else None,
            borrower_id=d.get("borrower"),
            account_id=d.get("account"),
            action=(d.get("action") or "").strip(),
            outcome=d.get("outcome") or "",
            date_from=d.get("date_from"),
            date_to=d.get("date_to"),
            q=d.get("q") or "",
        )


class DashboardFilterForm(forms.Form):
    date_from = forms.DateField(required=False, label=_("From"), widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(required=False, label=_("To"), widget=forms.DateInput(attrs={"type": "date"}))
    lender = forms.ModelChoiceField(Lender.objects.order_by("name"), required=False, label=_("Lender"))
    agent = forms.ModelChoiceField(User.objects.filter(role="agent").order_by("username"), required=False, label=_("Agent"))

    def clean(self):
        data = super().clean()
        today = timezone.localdate()
        data["date_to"] = data.get("date_to") or today
        data["date_from"] = data.get("date_from") or data["date_to"] - timedelta(days=29)
        if data["date_from"] > data["date_to"]:
            raise forms.ValidationError(_("The start date is after the end date."))
        return data


class PolicyDraftForm(forms.Form):
    name = forms.CharField(max_length=200, label=_("Name"))
    effective_from = forms.DateTimeField(
        label=_("Effective from"), widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )
    rules = forms.CharField(label=_("Rules (JSON)"), widget=forms.Textarea(attrs={"rows": 24, "cols": 100}))

    def __init__(self, *args, code: str, **kwargs):
        self.code = code
        super().__init__(*args, **kwargs)

    def clean_rules(self):
        try:
            value = json.loads(self.cleaned_data["rules"])
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(_("Not valid JSON: %(error)s") % {"error": exc}) from exc
        if isinstance(value, dict):
            value = value.get("rules")
        if not isinstance(value, list):
            raise forms.ValidationError(_("Expected a JSON list of rules."))
        try:
            rules.Policy.from_dict({"code": self.code, "version": 1, "rules": value})
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from exc
        return value


class WhatIfForm(forms.Form):
    days = forms.IntegerField(min_value=1, max_value=365, initial=30, label=_("Days to replay"))


class AgentSettingsForm(forms.Form):
    lenders = forms.ModelMultipleChoiceField(
        Lender.objects.order_by("name"), required=False, label=_("Lenders"), widget=forms.CheckboxSelectMultiple,
        help_text=_("None selected = work from any lender."),
    )
    jurisdictions = forms.MultipleChoiceField(
        choices=JURISDICTIONS, required=False, label=_("Jurisdictions"), widget=forms.CheckboxSelectMultiple,
        help_text=_("None selected = any jurisdiction."),
    )


class AuditSearchForm(AuditFilterForm):
    """The audit log's filters plus a search by external reference or borrower name (issue 12)."""

    ref = forms.CharField(required=False, max_length=200, label=_("Reference or borrower name"),
                          help_text=_("An account's external reference (exact) or part of a borrower's name."))

    def term(self) -> str:
        return (self.cleaned_data.get("ref") or "").strip()


_HHMM = r"^(?:[01]\d|2[0-3]):[0-5]\d$|^24:00$"

#: Labels of the policy data's fields (compliance/rules/__init__.py); an unknown key shows as written.
RULE_FIELD_LABELS = {
    "citation": _("Citation"), "channels": _("Channels restricted"), "parties": _("Parties"),
    "windows": _("Window"), "start": _("From (HH:MM)"), "end": _("Until (HH:MM)"), "days": _("Days"),
    "closed_dates": _("Closed dates (YYYY-MM-DD)"), "consent_waives": _("Borrower's consent waives the rule"),
    "count_channels": _("Channels counted"), "count_outcomes": _("Outcomes counted"), "scope": _("Scope"),
    "period": _("Period"), "max": _("Maximum"), "label": _("What is counted"),
    "trigger_channels": _("Trigger channels"), "trigger_outcomes": _("Trigger outcomes"),
    "trigger_directions": _("Trigger directions"), "flag": _("Hold"), "message": _("Message"),
    "min_attempts": _("Minimum attempts"), "attempt_channels": _("Attempt channels"),
    "failed_outcomes": _("Failed outcomes"), "contact_outcomes": _("Contact outcomes"),
    "min_collectors": _("Minimum collectors"),
}


def _csv(value: list) -> str:
    return ", ".join(str(v) for v in value)


def _uncsv(value: str) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


class PolicyRulesForm(forms.Form):
    """The rules of a policy version as form fields, one group per rule: its numbers as numbers, its
    times as HH:MM, its lists as comma-separated values (not raw JSON). ``rules()`` gives the edited
    copy; structure (which rules, their types and codes) is kept: adding a rule is the JSON path."""

    name = forms.CharField(max_length=200, label=_("Name"))
    effective_from = forms.DateTimeField(
        label=_("Effective from"), widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )
    FIXED = ("type", "code")  # identify the rule; shown, never edited

    def __init__(self, *args, code: str, base_rules: list[dict], **kwargs):
        self.code = code
        self.base_rules = base_rules
        super().__init__(*args, **kwargs)
        #: (rule index, rule code, [field names]) for the template's fieldsets
        self.groups: list[tuple[int, dict, list[str]]] = []
        for i, rule in enumerate(base_rules):
            names = []
            for key, value in rule.items():
                if key in self.FIXED:
                    continue
                if isinstance(value, list) and value and all(isinstance(w, dict) for w in value):
                    for j, window in enumerate(value):  # time windows: days and hours per window
                        for sub, sub_value in window.items():
                            name = f"r{i}__{key}__{j}__{sub}"
                            label = f"{RULE_FIELD_LABELS.get(key, key)} {j + 1}: {RULE_FIELD_LABELS.get(sub, sub)}"
                            self.fields[name] = self._field(label, sub_value, time=sub in ("start", "end"))
                            names.append(name)
                    continue
                field = self._field(RULE_FIELD_LABELS.get(key, key), value)
                if field is not None:
                    self.fields[f"r{i}__{key}"] = field
                    names.append(f"r{i}__{key}")
            self.groups.append((i, rule, names))

    @staticmethod
    def _field(label, value, *, time: bool = False):
        if isinstance(value, bool):
            return forms.BooleanField(required=False, label=label, initial=value)
        if isinstance(value, int):
            return forms.IntegerField(min_value=0, label=label, initial=value)
        if isinstance(value, list):
            return forms.CharField(required=False, label=label, initial=_csv(value), max_length=4000,
                                   help_text=_("Comma-separated values."))
        if isinstance(value, str):
            if time:
                return forms.RegexField(regex=_HHMM, label=label, initial=value, max_length=5,
                                        error_messages={"invalid": _("Enter a time as HH:MM.")})
            return forms.CharField(label=label, initial=value, max_length=1000)
        return None  # anything else stays as it is

    def rules(self) -> list[dict]:
        import copy

        d = self.cleaned_data
        out = copy.deepcopy(self.base_rules)
        for name, value in d.items():
            if not name.startswith("r") or "__" not in name:
                continue
            parts = name.split("__")
            rule = out[int(parts[0][1:])]
            if len(parts) == 4:
                target, key = rule[parts[1]][int(parts[2])], parts[3]
            else:
                target, key = rule, parts[1]
            target[key] = _uncsv(value) if isinstance(target[key], list) else value
        return out

    def clean(self):
        data = super().clean()
        if not self.errors:
            try:
                rules.Policy.from_dict({"code": self.code, "version": 1, "rules": self.rules()})
            except ValueError as exc:
                raise forms.ValidationError(str(exc)) from exc
        return data
