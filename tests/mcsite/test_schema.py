import pytest


@pytest.mark.django_db
def test_the_openapi_schema_builds_and_documents_the_envelope(alice_api):
    response = alice_api.get("/api/schema", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    for path in ("/api/servers/", "/api/servers/{id}/", "/api/backups/schedules/", "/api/backups/{server_id}/trigger/",
                 "/api/backups/{server_id}/restore/", "/api/auth/token/"):
        assert path in schema["paths"], path
    assert "ErrorEnvelope" in schema["components"]["schemas"]
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if method in {"get", "post", "put", "patch", "delete"}:
                assert "401" in operation["responses"] or path.startswith("/api/auth"), (path, method)


@pytest.mark.django_db
def test_the_docs_page_is_served_without_any_cdn(alice_api, client, alice):
    client.force_login(alice)
    response = client.get("/api/docs")
    assert response.status_code == 200
    body = response.content.decode()
    assert "swagger" in body.lower()
    for cdn in ("cdn.jsdelivr", "unpkg.com", "cdnjs"):
        assert cdn not in body
