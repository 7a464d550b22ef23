from django.utils.translation import gettext as _
from rest_framework import serializers

from cases.models import ContactAttempt, OverdueAccount, User
from cases.selectors import mask_phone


class AccountSerializer(serializers.ModelSerializer):
    lender = serializers.CharField(source="lender.code", read_only=True)
    borrower_name = serializers.CharField(source="borrower.name", read_only=True)
    borrower_phones = serializers.SerializerMethodField()
    jurisdiction = serializers.CharField(source="borrower.jurisdiction", read_only=True)
    assigned_agent = serializers.CharField(source="assigned_agent.username", read_only=True, default=None, allow_null=True)

    class Meta:
        model = OverdueAccount
        fields = [
            "id", "lender", "external_ref", "product", "principal", "balance", "currency", "due_date",
            "last_payment_date", "days_past_due", "bucket", "status", "assigned_agent", "borrower_name",
            "borrower_phones", "jurisdiction", "placed_at", "updated_at",
        ]
        read_only_fields = fields

    def get_borrower_phones(self, obj) -> list[str]:
        # Phone numbers are masked in the API; agents dial from the case page.
        return [mask_phone(p) for p in obj.borrower.phones]


_REPORTABLE = [c for c in ContactAttempt.Outcome.choices if c[0] not in ("pending", "unreported")]


class ViolationSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    citation = serializers.CharField()


class ContactAttemptSerializer(serializers.ModelSerializer):
    accounts = serializers.SerializerMethodField(help_text="Every debt the outreach was about (it counts for each).")
    breach = ViolationSerializer(many=True, read_only=True, help_text=(
        "Rules this contact broke: not empty only for a contact reported after the fact, which is stored all the"
        " same, flagged and sent to the supervisors' incident queue."))

    class Meta:
        model = ContactAttempt
        fields = [
            "id", "account", "accounts", "channel", "direction", "party", "outcome", "state", "occurred_at",
            "recorded_at", "completed_at", "notes", "source", "policy_code", "policy_version", "agent",
            "second_collector", "breach",
        ]
        read_only_fields = fields

    def get_accounts(self, obj) -> list[int]:
        return obj.account_ids


class OutreachStartedSerializer(ContactAttemptSerializer):
    target = serializers.CharField(help_text="The full number or address, shown only once the gate allowed the outreach.")

    class Meta(ContactAttemptSerializer.Meta):
        fields = [*ContactAttemptSerializer.Meta.fields, "target"]
        read_only_fields = fields


class OutreachStartSerializer(serializers.Serializer):
    channel = serializers.ChoiceField(choices=ContactAttempt.Channel.choices)
    party = serializers.ChoiceField(choices=ContactAttempt.Party.choices, default="borrower")
    phone = serializers.CharField(required=False, allow_blank=True, max_length=32, default="")
    email = serializers.EmailField(required=False, allow_blank=True, max_length=254, default="")
    accounts = serializers.ListField(child=serializers.IntegerField(min_value=1), required=False, default=list,
                                     max_length=20, help_text="Other debts of the same borrower this outreach is about.")
    notes = serializers.CharField(required=False, allow_blank=True, max_length=5000, default="")
    second_collector = serializers.PrimaryKeyRelatedField(
        queryset=User.objects.filter(is_active=True), required=False, allow_null=True, default=None,
    )


class OutreachCompleteSerializer(serializers.Serializer):
    outcome = serializers.ChoiceField(choices=_REPORTABLE)
    notes = serializers.CharField(required=False, allow_blank=True, max_length=5000, default="")


class ContactAttemptInputSerializer(serializers.Serializer):
    channel = serializers.ChoiceField(choices=ContactAttempt.Channel.choices)
    outcome = serializers.ChoiceField(choices=_REPORTABLE)
    direction = serializers.ChoiceField(choices=ContactAttempt.Direction.choices, default="outbound")
    party = serializers.ChoiceField(choices=ContactAttempt.Party.choices, default="borrower")
    occurred_at = serializers.DateTimeField(required=False)
    phone = serializers.CharField(required=False, allow_blank=True, max_length=32, default="")
    email = serializers.EmailField(required=False, allow_blank=True, max_length=254, default="")
    accounts = serializers.ListField(child=serializers.IntegerField(min_value=1), required=False, default=list,
                                     max_length=20, help_text="Other debts of the same borrower the contact was about.")
    notes = serializers.CharField(required=False, allow_blank=True, max_length=5000, default="")
    second_collector = serializers.PrimaryKeyRelatedField(
        queryset=User.objects.filter(is_active=True), required=False, allow_null=True, default=None,
        help_text="User id of the second collector on a field visit (CN: visits need two collectors).",
    )

    def validate_occurred_at(self, value):
        return _aware(value, self.initial_data.get("occurred_at"))


class ContactCheckQuerySerializer(serializers.Serializer):
    channel = serializers.ChoiceField(choices=ContactAttempt.Channel.choices)
    at = serializers.DateTimeField(required=False)
    direction = serializers.ChoiceField(choices=ContactAttempt.Direction.choices, default="outbound")
    party = serializers.ChoiceField(choices=ContactAttempt.Party.choices, default="borrower")
    phone = serializers.CharField(required=False, allow_blank=True, max_length=32, default="")
    collectors = serializers.IntegerField(required=False, min_value=1, max_value=10, default=1,
                                          help_text="Staff going on a field visit.")

    def validate_at(self, value):
        return _aware(value, self.initial_data.get("at"))


def _aware(value, raw):
    # DRF makes naive input aware in the server zone; an outreach time must say its own offset.
    text = str(raw or "")
    if text and not (text.endswith("Z") or text.endswith("z") or "+" in text[10:] or "-" in text[10:]):
        raise serializers.ValidationError(_("Give a time zone offset, e.g. 2026-11-25T10:00:00+08:00."))
    return value


class DecisionSerializer(serializers.Serializer):
    allowed = serializers.BooleanField()
    violations = serializers.ListField(child=serializers.DictField())
    next_allowed_at = serializers.DateTimeField(allow_null=True)
    policy = serializers.CharField()
