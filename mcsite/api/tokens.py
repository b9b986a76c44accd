"""Rotating an API token (issue #11): POST /api/auth/token/rotate with the
current token returns a new one (shown once) and revokes the old."""

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import IsAuthenticated
from rest_framework.views import APIView

from mcsite.api.authentication import BearerTokenAuthentication
from mcsite.api.responses import respond
from mcsite.api.schema import envelope_errors
from mcsite.audit import audit
from mcsite.models import ApiToken

TokenOutput = inline_serializer("IssuedToken", {
    "token": serializers.CharField(help_text="Shown only this once: keep it"),
    "expires_at": serializers.DateTimeField(help_text="When it stops working (MCSITE_TOKEN_MAX_AGE_DAYS)"),
})


class TokenRotateView(APIView):
    """Replace the token this request is authenticated with: a new token is
    returned (shown only this once, valid for MCSITE_TOKEN_MAX_AGE_DAYS) and
    the old one stops working at once. Tokens expire; rotate before that, or
    get a new one with a password from POST /api/auth/token. Only a token can
    be rotated (not a session), and not once it has expired."""

    authentication_classes = [BearerTokenAuthentication]
    permission_classes = [IsAuthenticated]

    @extend_schema(
        request=None,
        responses={200: TokenOutput, **envelope_errors(401, 429)},
        description=(
            "Replace the token this request is authenticated with (`Authorization: Bearer <token>`): "
            "a new token is returned, shown only this once and valid for MCSITE_TOKEN_MAX_AGE_DAYS "
            "(default 90 days); the old token stops working at once. An expired token cannot be "
            "rotated: get a new one from POST /api/auth/token."
        ),
    )
    def post(self, request):
        old = request.auth
        if not isinstance(old, ApiToken):  # only reachable if authentication_classes changed
            from rest_framework.exceptions import NotAuthenticated

            raise NotAuthenticated()
        new, key = old.rotate()
        audit(actor=request.user, action="auth.token.rotate", obj=new, request=request,
              detail={"revoked": old.prefix, "expires_at": new.expires_at.isoformat()})
        return respond(
            {"token": key, "expires_at": new.expires_at},
            message="Token rotated: the new one is shown only this once; the old one no longer works",
        )
