"""Members (roles, the pause, gold accuracy: annotate/api/members.py) and gold items
(annotate/api/gold.py).
"""

from django.contrib.auth import get_user_model
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from annotate.models import Item, Membership
from annotate.quality.gold import gold_accuracy


class GoldAccuracyOutput(serializers.Serializer):
    answers = serializers.IntegerField(help_text="Answers given on gold items.")
    correct = serializers.IntegerField()
    accuracy = serializers.FloatField(allow_null=True, help_text="correct / answers; null without answers.")
    low = serializers.FloatField(allow_null=True, help_text="The Wilson score interval (95%): lower end.")
    high = serializers.FloatField(allow_null=True, help_text="The Wilson score interval (95%): upper end.")


class MemberOutput(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username", read_only=True)
    annotation_count = serializers.IntegerField(read_only=True)
    gold = serializers.SerializerMethodField()

    class Meta:
        model = Membership
        fields = [
            "id",
            "username",
            "role",
            "annotation_count",
            "paused",
            "paused_reason",
            "gold",
            "created_at",
        ]

    @extend_schema_field(GoldAccuracyOutput)
    def get_gold(self, membership: Membership) -> dict:
        accuracy = gold_accuracy(answers=membership.gold_answers, correct=membership.gold_correct)
        return GoldAccuracyOutput(accuracy).data


class MemberAddInput(serializers.Serializer):
    username = serializers.SlugRelatedField(
        slug_field="username",
        queryset=get_user_model().objects.all(),
        source="user",
        error_messages={"does_not_exist": "no user is named {value}: add an existing user"},
    )
    role = serializers.ChoiceField(choices=Membership.Role.choices, default=Membership.Role.ANNOTATOR)


class MemberUpdateInput(serializers.Serializer):
    role = serializers.ChoiceField(choices=Membership.Role.choices, required=False)
    paused = serializers.BooleanField(
        required=False, help_text="true pauses the member (their queue serves nothing), false resumes them."
    )
    paused_reason = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=300,
        help_text='Shown to the paused member; only with "paused": true.',
    )

    def validate(self, data: dict) -> dict:
        if not data:
            raise serializers.ValidationError("give role, paused or both")
        if "paused_reason" in data and data.get("paused") is not True:
            raise serializers.ValidationError({"paused_reason": 'a reason goes with "paused": true only'})
        return data


class GoldInput(serializers.Serializer):
    value = serializers.JSONField(help_text='The true value, {"choices": ["<label name>", ...]}.')


class GoldItemOutput(serializers.ModelSerializer):
    class Meta:
        model = Item
        fields = [
            "id",
            "external_id",
            "pick_kind",
            "gold_value",
            "final_value",
            "final_source",
            "is_complete",
        ]
        read_only_fields = fields
