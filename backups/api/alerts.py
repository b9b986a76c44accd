"""GET/PUT /api/alerts/preferences/ (issue #12): which alert kinds email the
caller about their own servers. There is no user in the path: everyone
reads and changes only their own."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.generics import GenericAPIView

from backups import alerts
from backups.services import alert_settings
from mcsite.api.responses import respond
from mcsite.api.schema import envelope_errors
from mcsite.errors import DomainError, ErrorCode


class AlertChoiceSerializer(serializers.Serializer):
    kind = serializers.CharField()
    label = serializers.CharField()
    enabled = serializers.BooleanField()


class AlertPreferencesSerializer(serializers.Serializer):
    events = serializers.ListField(child=serializers.CharField(),
                                   help_text="The alert kinds you are emailed about")
    choices = AlertChoiceSerializer(many=True, help_text="Every kind you can choose, with what it means")
    email = serializers.EmailField(allow_null=True, help_text="Where they go; null: your account has no address")
    customized = serializers.BooleanField(help_text="false: you never chose, every kind is on")
    updated_at = serializers.DateTimeField(allow_null=True)


class AlertPreferencesInputSerializer(serializers.Serializer):
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=list(alerts.ALERT_KINDS)), allow_empty=True,
        help_text="Every kind to be emailed about (the list replaces the previous one; [] for none)")


class AlertPreferencesView(GenericAPIView):
    serializer_class = AlertPreferencesSerializer

    @extend_schema(summary="Your alert preferences", responses={200: AlertPreferencesSerializer})
    def get(self, request):
        return respond(AlertPreferencesSerializer(alert_settings.alert_preferences(request.user)).data)

    @extend_schema(summary="Choose which alerts email you about your servers",
                   request=AlertPreferencesInputSerializer,
                   responses={200: AlertPreferencesSerializer, **envelope_errors(400)})
    def put(self, request):
        if not isinstance(request.data, dict):
            raise DomainError(ErrorCode.VALIDATION_ERROR, "Request body must be a JSON object")
        serializer = AlertPreferencesInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        prefs = alert_settings.alert_preferences_set(user=request.user, events=serializer.validated_data["events"],
                                                     actor=request.user, request=request)
        return respond(AlertPreferencesSerializer(prefs).data, message="Alert preferences saved")
