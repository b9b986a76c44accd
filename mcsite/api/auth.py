from django.contrib.auth import authenticate
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from mcsite.api.exceptions import error_body
from mcsite.api.fields import StrictCharField
from mcsite.api.responses import respond
from mcsite.api.schema import envelope_errors
from mcsite.api.throttling import AnonRateThrottle
from mcsite.api.tokens import TokenOutput
from mcsite.audit import audit
from mcsite.errors import DomainError, ErrorCode
from mcsite.login_throttle import clear_failures, lockout_message, retry_after
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
    keep it, it cannot be shown again). It expires after MCSITE_TOKEN_MAX_AGE_DAYS
    (default 90); POST /api/auth/token/rotate replaces it before then."""

    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = [LoginThrottle]

    @extend_schema(
        request=TokenInputSerializer,
        responses={200: TokenOutput, **envelope_errors(400, 401, 429)},
        auth=[],
    )
    def post(self, request):
        if not isinstance(request.data, dict):
            raise DomainError(ErrorCode.VALIDATION_ERROR, "Request body must be a JSON object")
        serializer = TokenInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        # With the request: django-axes counts failures per (username, client
        # address) and refuses a locked login before the password is checked.
        user = authenticate(request, **serializer.validated_data)
        if getattr(request, "axes_locked_out", False):
            return Response(
                error_body(ErrorCode.THROTTLED, lockout_message(request)), status=429,
                headers={"Retry-After": str(int(retry_after(request).total_seconds()))},
            )
        if user is None or not user.is_active:
            audit(
                actor=None, action="auth.token", request=request, outcome=AuditEvent.Outcome.FAILURE,
                detail={"username": serializer.validated_data["username"][:150]},
            )
            raise DomainError(ErrorCode.AUTHENTICATION_REQUIRED, "Invalid username or password")
        clear_failures(request, user)
        token, key = ApiToken.issue(user, name=request.META.get("HTTP_USER_AGENT", "")[:100])
        audit(actor=user, action="auth.token", obj=token, request=request)
        return respond({"token": key, "expires_at": token.expires_at},
                       message="Token issued: it is shown only this once")
