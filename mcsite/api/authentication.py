import datetime as dt

from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header

from mcsite.models import ApiToken

KEYWORDS = ("bearer", "token")


def token_from_header(request) -> str | None:
    """The token of `Authorization: Bearer <token>` (the seed's form) or
    `Authorization: Token <token>`; None for other schemes or no header."""
    parts = get_authorization_header(request).split()
    if not parts or parts[0].decode("latin-1").lower() not in KEYWORDS:
        return None
    if len(parts) != 2:
        raise exceptions.AuthenticationFailed("Invalid token header: expected 'Bearer <token>'")
    try:
        return parts[1].decode("ascii")
    except UnicodeDecodeError:
        raise exceptions.AuthenticationFailed("Invalid token header: the token is not ASCII") from None


class BearerTokenAuthentication(BaseAuthentication):
    """API tokens from POST /api/auth/token, looked up by their hash."""

    def authenticate(self, request):
        key = token_from_header(request)
        if key is None:
            return None
        token = ApiToken.lookup(key)
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked token")
        now = timezone.now()
        if token.is_expired(now):
            raise exceptions.AuthenticationFailed(
                f"The token expired at {token.expires.astimezone(dt.timezone.utc):%Y-%m-%d %H:%M} UTC: "
                "get a new one from POST /api/auth/token"
            )
        user = token.user
        if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)  # at most once a minute
        return user, token

    def authenticate_header(self, request):
        return "Bearer"
