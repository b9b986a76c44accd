import pytest


@pytest.mark.django_db
def test_it_issues_a_token_that_works_as_bearer_and_token(anon_api, alice):
    response = anon_api.post("/api/auth/token", {"username": "alice", "password": "pw-alice"}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True
    token = body["data"]["token"]
    for scheme in ("Bearer", "Token"):
        anon_api.credentials(HTTP_AUTHORIZATION=f"{scheme} {token}")
        assert anon_api.get("/api/servers").status_code == 200


@pytest.mark.django_db
def test_it_refuses_a_wrong_password_and_audits_it(anon_api, alice):
    from mcsite.models import AuditEvent

    response = anon_api.post("/api/auth/token/", {"username": "alice", "password": "nope"}, format="json")
    assert response.status_code == 401
    assert response.json()["code"] == "AUTHENTICATION_REQUIRED"
    assert AuditEvent.objects.filter(action="auth.token", outcome="failure").count() == 1


@pytest.mark.django_db
def test_it_rejects_a_missing_password_with_details(anon_api):
    response = anon_api.post("/api/auth/token", {"username": "alice"}, format="json")
    assert response.status_code == 400
    assert response.json()["details"]["password"]


@pytest.mark.django_db
def test_session_authentication_works_with_csrf(client, alice):
    client.force_login(alice)
    assert client.get("/api/servers").status_code == 200


@pytest.mark.django_db
def test_session_writes_without_csrf_get_a_clear_message(alice, make_server_dir):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    make_server_dir("csrf", world=False)
    response = client.post("/api/servers", {"name": "csrf", "directory": "csrf"}, content_type="application/json")
    assert response.status_code == 403
    assert response.json()["code"] == "PERMISSION_DENIED" and "X-CSRFToken" in response.json()["error"]


@pytest.mark.django_db
def test_tokens_are_stored_hashed_and_a_deleted_token_stops_working(anon_api, alice):
    from mcsite.models import ApiToken

    key = anon_api.post("/api/auth/token", {"username": "alice", "password": "pw-alice"},
                        format="json").json()["data"]["token"]
    stored = ApiToken.objects.get(user=alice)
    assert stored.key_hash != key and key not in str(ApiToken.objects.values().get())
    anon_api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert anon_api.get("/api/servers").status_code == 200
    stored.delete()
    response = anon_api.get("/api/servers")
    assert response.status_code == 401 and response.json()["code"] == "AUTHENTICATION_REQUIRED"
