from django.contrib.auth import authenticate
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.throttling import AnonRateThrottle
from rest_framework.views import APIView

from mcsite.api.fields import StrictCharField
from mcsite.api.responses import respond
from mcsite.api.schema import envelope_errors
from mcsite.audit import audit
from mcsite.errors import DomainError, ErrorCode
from mcsite.models import ApiToken, AuditEvent


class TokenInputSerializer(serializers.Serializer):
    username = StrictCharField(max_length=150)
    password = StrictCharField(max_length=128, trim_whitespace=False)


class LoginThrottle(AnonRateThrottle):
    scope = "login"
    rate = "20/min"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class TokenView(APIView):
    """Exchange a username and password for a new API token (stored hashed:
    keep it, it cannot be shown again)."""

    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = [LoginThrottle]

    @extend_schema(
        request=TokenInputSerializer,
        responses={200: inline_serializer("Token", {"token": serializers.CharField()}), **envelope_errors(400, 401)},
        auth=[],
    )
    def post(self, request):
        if not isinstance(request.data, dict):
            raise DomainError(ErrorCode.VALIDATION_ERROR, "Request body must be a JSON object")
        serializer = TokenInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = authenticate(request, **serializer.validated_data)
        if user is None or not user.is_active:
            audit(
                actor=None, action="auth.token", request=request, outcome=AuditEvent.Outcome.FAILURE,
                detail={"username": serializer.validated_data["username"][:150]},
            )
            raise DomainError(ErrorCode.AUTHENTICATION_REQUIRED, "Invalid username or password")
        token, key = ApiToken.issue(user, name=request.META.get("HTTP_USER_AGENT", "")[:100])
        audit(actor=user, action="auth.token", obj=token, request=request)
        return respond({"token": key}, message="Token issued: it is shown only this once")
