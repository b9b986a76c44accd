"""Issue #11 (D): API tokens expire (MCSITE_TOKEN_MAX_AGE_DAYS, default 90)
and can be rotated (POST /api/auth/token/rotate): the new token is returned
once, the old one stops working."""

import datetime as dt

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from mcsite.models import ApiToken, AuditEvent

pytestmark = pytest.mark.django_db


def _client(key: str | None = None) -> APIClient:
    client = APIClient()
    if key:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def _login(username="alice") -> dict:
    response = APIClient().post("/api/auth/token", {"username": username, "password": f"pw-{username}"},
                                format="json")
    assert response.status_code == 200
    return response.json()["data"]


def test_a_new_token_expires_after_the_configured_age(settings, alice):
    assert getattr(settings, "MCSITE_TOKEN_MAX_AGE_DAYS", 90) == 90
    token, _ = ApiToken.issue(alice)
    assert abs(token.expires_at - (timezone.now() + dt.timedelta(days=90))) < dt.timedelta(minutes=1)
    settings.MCSITE_TOKEN_MAX_AGE_DAYS = 7
    token, _ = ApiToken.issue(alice)
    assert abs(token.expires_at - (timezone.now() + dt.timedelta(days=7))) < dt.timedelta(minutes=1)
    data = _login()
    assert "expires_at" in data and data["expires_at"].startswith(str((timezone.now() + dt.timedelta(days=7)).year))


def test_an_expired_token_is_refused_with_a_message_saying_so(alice):
    token, key = ApiToken.issue(alice)
    assert _client(key).get("/api/servers").status_code == 200
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    response = _client(key).get("/api/servers")
    assert response.status_code == 401
    body = response.json()
    assert body["code"] == "AUTHENTICATION_REQUIRED" and "expired" in body["error"]
    assert "/api/auth/token" in body["error"]  # what to do about it
    assert ApiToken.user_for(key) == (None, None)  # /metrics and any other caller see no user either


def test_lowering_the_max_age_expires_older_tokens_too(settings, alice):
    token, key = ApiToken.issue(alice)
    ApiToken.objects.filter(pk=token.pk).update(created_at=timezone.now() - dt.timedelta(days=10))
    assert _client(key).get("/api/servers").status_code == 200  # 10 days old, 90 allowed
    settings.MCSITE_TOKEN_MAX_AGE_DAYS = 7
    response = _client(key).get("/api/servers")
    assert response.status_code == 401 and "expired" in response.json()["error"]


def test_tokens_from_before_expiry_existed_expire_by_their_age(settings, alice):
    token, key = ApiToken.issue(alice)
    ApiToken.objects.filter(pk=token.pk).update(expires_at=None, created_at=timezone.now() - dt.timedelta(days=91))
    token.refresh_from_db()
    assert token.is_expired() and token.expires <= timezone.now()
    assert _client(key).get("/api/servers").status_code == 401


def test_rotate_returns_a_new_token_and_revokes_the_old(alice):
    old_key = _login()["token"]
    old = ApiToken.objects.get(user=alice)
    ApiToken.objects.filter(pk=old.pk).update(created_at=timezone.now() - dt.timedelta(days=30),
                                              expires_at=timezone.now() + dt.timedelta(days=60))
    response = _client(old_key).post("/api/auth/token/rotate")
    assert response.status_code == 200, response.json()
    data = response.json()["data"]
    new_key = data["token"]
    assert new_key != old_key
    assert dt.datetime.fromisoformat(data["expires_at"]) > timezone.now() + dt.timedelta(days=89)
    assert _client(new_key).get("/api/servers").status_code == 200
    response = _client(old_key).get("/api/servers")
    assert response.status_code == 401 and response.json()["code"] == "AUTHENTICATION_REQUIRED"
    new = ApiToken.objects.get(user=alice)
    assert new.name == old.name and new.prefix == new_key[:8]
    event = AuditEvent.objects.get(action="auth.token.rotate")
    assert event.actor == alice and event.detail["revoked"] == old.prefix
    assert old_key not in str(event.detail) and new_key not in str(event.detail)


def test_rotate_also_works_with_the_token_scheme_and_with_a_trailing_slash(alice):
    _, key = ApiToken.issue(alice)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert client.post("/api/auth/token/rotate/").status_code == 200


def test_rotate_needs_a_live_token(alice, client):
    assert _client().post("/api/auth/token/rotate").status_code == 401
    token, key = ApiToken.issue(alice)
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - dt.timedelta(days=1))
    response = _client(key).post("/api/auth/token/rotate")
    assert response.status_code == 401 and "expired" in response.json()["error"]
    assert ApiToken.objects.filter(user=alice).count() == 1  # nothing issued
    client.force_login(alice)  # a session has no token to rotate
    response = client.post("/api/auth/token/rotate")
    assert response.status_code == 401 and response.json()["code"] == "AUTHENTICATION_REQUIRED"


def test_rotate_is_in_the_openapi_schema(alice_api):
    schema = alice_api.get("/api/schema", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    operation = schema["paths"]["/api/auth/token/rotate/"]["post"]
    assert {"200", "401"} <= set(operation["responses"])
    assert "expire" in operation.get("description", "").lower()
    token_schema = schema["paths"]["/api/auth/token/"]["post"]["responses"]["200"]
    assert "expires_at" in str(token_schema) or "expires_at" in str(schema["components"]["schemas"])


def test_the_admin_shows_when_tokens_expire(admin_user, client, alice):
    token, _ = ApiToken.issue(alice)
    client.force_login(admin_user)
    page = client.get("/admin/mcsite/apitoken/").content.decode()
    assert "Expires" in page and "Expired" in page
    detail = client.get(f"/admin/mcsite/apitoken/{token.pk}/change/").content.decode()
    assert "Expires" in detail
    old, _ = ApiToken.issue(alice)
    ApiToken.objects.filter(pk=old.pk).update(created_at=timezone.now() - dt.timedelta(days=100))
    expired_page = client.get("/admin/mcsite/apitoken/?expired=yes").content.decode()
    live_page = client.get("/admin/mcsite/apitoken/?expired=no").content.decode()
    assert old.prefix in expired_page and token.prefix not in expired_page
    assert token.prefix in live_page and old.prefix not in live_page


@pytest.mark.parametrize("raw, expected", [("30", "30"), ("0", "must be between 1 and 3650"),
                                           ("ninety", "must be an integer")])
def test_the_max_age_is_read_strictly_from_the_environment(raw, expected):
    import os
    import subprocess
    import sys

    env = {**os.environ, "MCSITE_TOKEN_MAX_AGE_DAYS": raw, "DJANGO_SETTINGS_MODULE": "mcsite.settings"}
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); from django.conf import settings; "
                               "print(settings.MCSITE_TOKEN_MAX_AGE_DAYS)"],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert expected in result.stdout + result.stderr
