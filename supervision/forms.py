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
