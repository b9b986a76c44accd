"""Every /api/ answer is JSON in the seed's envelope — also for 401, 404,
405, 400 on malformed JSON and 500 — never an HTML page."""

import pytest


def _assert_error(response, status, code):
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["success"] is False
    assert body["code"] == code
    assert isinstance(body["error"], str) and body["error"]
    assert "<html" not in response.content.decode().lower()
    assert "Traceback" not in response.content.decode()


@pytest.mark.django_db
def test_it_answers_401_in_envelope_without_credentials(anon_api):
    _assert_error(anon_api.get("/api/servers"), 401, "AUTHENTICATION_REQUIRED")


@pytest.mark.django_db
def test_it_answers_401_for_a_bad_token(anon_api):
    anon_api.credentials(HTTP_AUTHORIZATION="Bearer not-a-token")
    _assert_error(anon_api.get("/api/servers"), 401, "AUTHENTICATION_REQUIRED")


@pytest.mark.django_db
def test_it_answers_404_for_an_unknown_path(alice_api):
    _assert_error(alice_api.get("/api/no-such-thing"), 404, "NOT_FOUND")
    _assert_error(alice_api.post("/api/no/such/thing/", {}, format="json"), 404, "NOT_FOUND")


@pytest.mark.django_db
def test_it_answers_404_for_an_unknown_id(alice_api):
    _assert_error(alice_api.get("/api/servers/999999"), 404, "NOT_FOUND")
    _assert_error(alice_api.get("/api/servers/abc"), 404, "NOT_FOUND")


@pytest.mark.django_db
def test_it_answers_405_for_a_wrong_method(alice_api, alice, make_server):
    server = make_server(alice)
    _assert_error(alice_api.post(f"/api/servers/{server.pk}", {}, format="json"), 405, "METHOD_NOT_ALLOWED")
    _assert_error(alice_api.delete("/api/servers"), 405, "METHOD_NOT_ALLOWED")


@pytest.mark.django_db
def test_it_answers_400_for_malformed_json(alice_api):
    response = alice_api.generic("POST", "/api/servers", "{not json", content_type="application/json")
    _assert_error(response, 400, "VALIDATION_ERROR")


@pytest.mark.django_db
def test_it_answers_400_for_a_body_that_is_not_an_object(alice_api):
    response = alice_api.generic("POST", "/api/servers", "[1, 2]", content_type="application/json")
    _assert_error(response, 400, "VALIDATION_ERROR")


@pytest.mark.django_db
def test_it_answers_500_in_envelope_when_a_service_crashes(alice_api, monkeypatch, make_server_dir):
    def explode(**kwargs):
        raise RuntimeError("secret internals /etc/passwd")

    monkeypatch.setattr("servers.services.server_create", explode)
    make_server_dir("s1")
    response = alice_api.post("/api/servers", {"name": "s1", "directory": "s1"}, format="json")
    _assert_error(response, 500, "INTERNAL_ERROR")
    assert "secret internals" not in response.content.decode()


@pytest.mark.django_db
def test_it_answers_500_in_envelope_when_a_view_outside_drf_crashes(client, settings):
    settings.ROOT_URLCONF = "tests.mcsite.crash_urls"
    client.raise_request_exception = False
    response = client.get("/api/crash")
    _assert_error(response, 500, "INTERNAL_ERROR")


@pytest.mark.django_db
def test_success_is_wrapped_in_the_envelope(alice_api):
    body = alice_api.get("/api/servers").json()
    assert body["success"] is True
    assert body["data"] == []
    assert body["pagination"] == {"count": 0, "next": None, "previous": None}


@pytest.mark.django_db
def test_a_bad_host_header_on_the_api_is_answered_in_the_envelope(client):
    response = client.get("/api/servers", HTTP_HOST="evil.example.com")
    _assert_error(response, 400, "VALIDATION_ERROR")
