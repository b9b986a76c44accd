import datetime as dt

from django.conf import settings
from django.db import models, transaction
from django.utils import timezone


class AuditEvent(models.Model):
    """One state change through the API, the admin, a web page or a command:
    who, what, which object, when, from where, and how it ended (SPEC §2)."""

    class Outcome(models.TextChoices):
        SUCCESS = "success"
        FAILURE = "failure"

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    actor_name = models.CharField(max_length=150, blank=True, help_text="Kept when the user is deleted")
    action = models.CharField(max_length=64, db_index=True)
    object_type = models.CharField(max_length=64, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    object_repr = models.CharField(max_length=200, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    source = models.CharField(max_length=16, default="api", help_text="api, admin, web, command or system")
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.SUCCESS)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["object_type", "object_id"])]

    def __str__(self):
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor_name or 'system'} {self.action} {self.outcome}"


DEFAULT_TOKEN_MAX_AGE_DAYS = 90


def token_max_age() -> dt.timedelta:
    """How long an API token lives (MCSITE_TOKEN_MAX_AGE_DAYS, default 90)."""
    return dt.timedelta(days=getattr(settings, "MCSITE_TOKEN_MAX_AGE_DAYS", DEFAULT_TOKEN_MAX_AGE_DAYS))


class ApiToken(models.Model):
    """An API token, stored as its SHA-256 only (SPEC §6: no secret in
    plaintext in the database). The token itself is shown once, when issued;
    tokens are long random strings, so an unsalted fast hash is enough.

    A token expires (issue #11): at ``expires_at``, fixed when it is issued,
    or when it is older than MCSITE_TOKEN_MAX_AGE_DAYS, whichever comes first
    (so lowering the setting also shortens the tokens already out; tokens from
    before expiry existed have no ``expires_at`` and go by their age)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    key_hash = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=8, help_text="First characters, to tell tokens apart")
    name = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(
        null=True, blank=True, help_text="Set when issued; MCSITE_TOKEN_MAX_AGE_DAYS may end it sooner"
    )

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.prefix}… ({self.user})"

    @property
    def expires(self):
        """When the token stops working (the earlier of its own expiry and its maximum age)."""
        by_age = self.created_at + token_max_age() if self.created_at else None
        return min(filter(None, [self.expires_at, by_age]), default=None)

    def is_expired(self, now=None) -> bool:
        expires = self.expires
        return expires is not None and (now or timezone.now()) >= expires

    @staticmethod
    def hash(key: str) -> str:
        import hashlib

        return hashlib.sha256(key.encode()).hexdigest()

    @classmethod
    def issue(cls, user, name: str = "") -> tuple["ApiToken", str]:
        import secrets

        key = secrets.token_urlsafe(32)
        token = cls.objects.create(user=user, key_hash=cls.hash(key), prefix=key[:8], name=name,
                                   expires_at=timezone.now() + token_max_age())
        return token, key

    @classmethod
    def lookup(cls, key: str) -> "ApiToken | None":
        """The token with this key, expired or not; None when unknown or its user is inactive."""
        token = cls.objects.select_related("user").filter(key_hash=cls.hash(key)).first()
        if token is None or not token.user.is_active:
            return None
        return token

    @classmethod
    def user_for(cls, key: str):
        """(user, token) of a live token, else (None, None) — expired ones included."""
        token = cls.lookup(key)
        if token is None or token.is_expired():
            return None, None
        return token.user, token

    def rotate(self) -> tuple["ApiToken", str]:
        """A new token for the same user and name; this one is revoked (deleted)."""
        with transaction.atomic():
            new, key = ApiToken.issue(self.user, name=self.name)
            ApiToken.objects.filter(pk=self.pk).delete()
        return new, key
