"""Forms of the lender portal and lender registration."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from cases.models import OverdueAccount, PlacementBatch

from .columns import COLUMNS, RECALL_COLUMNS
from .lenders import LENDER_KINDS

ENCODING_CHOICES = [
    ("", _("Detect automatically")),
    ("utf-8", _("UTF-8")),
    ("utf-8-sig", _("UTF-8 with BOM")),
    ("gb18030", _("GBK / GB18030 (Chinese Excel)")),
]
MAX_UPLOAD_BYTES = 1024 * 1024 * 1024


class UploadForm(forms.Form):
    file = forms.FileField(label=_("File (CSV or XLSX)"))
    kind = forms.ChoiceField(label=_("Kind"), choices=PlacementBatch.Kind.choices, initial="placement")
    mode = forms.ChoiceField(label=_("If some rows fail"), choices=PlacementBatch.Mode.choices, initial="partial")
    encoding = forms.ChoiceField(label=_("Encoding (CSV)"), choices=ENCODING_CHOICES, required=False)

    def clean_file(self):
        f = self.cleaned_data["file"]
        name = (f.name or "").lower()
        if not name.endswith((".csv", ".txt", ".xlsx")):
            raise forms.ValidationError(_("Upload a .csv or .xlsx file."))
        if f.size > MAX_UPLOAD_BYTES:
            raise forms.ValidationError(_("The file is larger than 1 GB."))
        return f


class RecallForm(forms.Form):
    external_refs = forms.CharField(label=_("External references (one per line)"), widget=forms.Textarea(attrs={"rows": 4}))
    reason = forms.CharField(label=_("Reason"), required=False, max_length=500)

    def refs(self) -> list[str]:
        return [r.strip() for r in self.cleaned_data["external_refs"].replace(",", "\n").splitlines() if r.strip()]


class AccountSearchForm(forms.Form):
    q = forms.CharField(label=_("Search"), required=False)
    status = forms.ChoiceField(label=_("Status"), required=False,
                               choices=[("", _("Any status"))] + list(OverdueAccount.Status.choices))


def mapping_form_class():
    """One text field per canonical column: the lender's own header for it (blank = built-in aliases)."""
    fields = {}
    for col in (*COLUMNS, RECALL_COLUMNS[1]):
        fields[col.key] = forms.CharField(label=col.label, required=False, max_length=100,
                                          help_text=", ".join(col.aliases[:4]))
    return type("ColumnMappingForm", (forms.Form,), fields)


class RegisterForm(forms.Form):
    name = forms.CharField(label=_("Lender name"), max_length=200)
    kind = forms.ChoiceField(label=_("Kind of institution"), choices=[("", "—"), *LENDER_KINDS])
    registration_no = forms.CharField(label=_("Unified social credit code"), max_length=32,
                                      help_text=_("18 characters; the last one is a check character."))
    contact_name = forms.CharField(label=_("Contact person"), max_length=100)
    contact_phone = forms.CharField(label=_("Contact phone"), max_length=32)
    contact_email = forms.EmailField(label=_("Contact email"))
    username = forms.RegexField(label=_("Username"), max_length=150, regex=r"^[\w.@+-]+$")
    password = forms.CharField(label=_("Password"), widget=forms.PasswordInput, min_length=8)

    def clean_registration_no(self):
        # Checked here too (the service checks again) so that every field's error shows at once.
        from stdnum.cn import uscc

        value = self.cleaned_data["registration_no"]
        if not uscc.is_valid(value):
            raise forms.ValidationError(
                _("Not a valid unified social credit code (18 characters with a check character)."))
        return uscc.compact(value)


__all__ = ["AccountSearchForm", "RecallForm", "RegisterForm", "UploadForm", "mapping_form_class"]
