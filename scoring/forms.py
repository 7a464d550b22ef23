from __future__ import annotations

import json
from decimal import Decimal

from django import forms
from django.utils.translation import gettext_lazy as _

from cases.models import Lender

from .models import Strategy
from .strategy import StrategyError, StrategySpec


class StrategyForm(forms.Form):
    code = forms.SlugField(max_length=40, label=_("Code"))
    name = forms.CharField(max_length=200, label=_("Name"))
    effective_from = forms.DateTimeField(label=_("Effective from"), required=False,
                                         widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
                                         help_text=_("Empty: from now."))
    rules = forms.CharField(label=_("Steps (JSON)"), widget=forms.Textarea(attrs={"rows": 18, "cols": 90}))

    def clean_rules(self):
        try:
            value = json.loads(self.cleaned_data["rules"])
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(_("Not valid JSON: %(error)s") % {"error": exc}) from exc
        try:
            StrategySpec.from_dict(value)
        except StrategyError as exc:
            raise forms.ValidationError(str(exc)) from exc
        return value


class ExperimentForm(forms.Form):
    lender = forms.ModelChoiceField(queryset=Lender.objects.filter(status=Lender.Status.ACTIVE), label=_("Lender"))
    champion = forms.ChoiceField(label=_("Champion strategy"))
    challenger = forms.ChoiceField(label=_("Challenger strategy"), required=False)
    challenger_share = forms.DecimalField(label=_("Challenger share"), min_value=Decimal("0"), max_value=Decimal("0.9"),
                                          decimal_places=3, initial=Decimal("0.2"))
    holdout_share = forms.DecimalField(label=_("Holdout share"), min_value=Decimal("0"), max_value=Decimal("0.5"),
                                       decimal_places=3, initial=Decimal("0.1"))
    seed = forms.CharField(max_length=40, initial="2026", label=_("Seed"))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        codes = sorted(set(Strategy.objects.filter(status="published").values_list("code", flat=True)))
        self.fields["champion"].choices = [(c, c) for c in codes]
        self.fields["challenger"].choices = [("", "—")] + [(c, c) for c in codes]
