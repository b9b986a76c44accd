"""POST /api/servers/{id}/start and /stop on a real (fake) Minecraft
process: owner-scoped, audited, status from the process itself."""

import pytest

from mcsite.models import AuditEvent
from servers import control
from tests.backups.conftest import fake_mc, fake_server_factory  # noqa: F401  (fixtures)

pytestmark = pytest.mark.django_db


def test_owner_starts_and_stops_a_server_through_the_api(alice, alice_api, fake_mc):
    server = fake_mc(alice, "api-controlled")
    started = alice_api.post(f"/api/servers/{server.pk}/start")
    assert started.status_code == 200, started.json()
    status = started.json()["data"]["status"]
    assert status["state"] == "running" and status["pid"]
    server.fake.wait_ready()
    server.refresh_from_db()
    assert control.status(server.process_spec()).pid == status["pid"]

    again = alice_api.post(f"/api/servers/{server.pk}/start")
    assert again.status_code == 409 and "already running" in again.json()["error"]

    stopped = alice_api.post(f"/api/servers/{server.pk}/stop/")
    assert stopped.status_code == 200
    assert stopped.json()["data"]["status"]["state"] == "stopped"
    assert "(rcon)" in stopped.json()["message"]
    assert not control.status(server.process_spec()).running
    actions = list(AuditEvent.objects.filter(object_type="server").values_list("action", "outcome"))
    assert ("server.start", "success") in actions and ("server.stop", "success") in actions
    assert ("server.start", "failure") in actions


def test_another_user_cannot_start_or_stop_it(bob_api, alice, fake_mc, anon_api):
    server = fake_mc(alice, "not-bobs")
    for path in ("start", "stop"):
        response = bob_api.post(f"/api/servers/{server.pk}/{path}")
        assert response.status_code == 404 and "not-bobs" not in response.content.decode()
        assert anon_api.post(f"/api/servers/{server.pk}/{path}").status_code == 401
    assert not control.status(server.process_spec()).running
