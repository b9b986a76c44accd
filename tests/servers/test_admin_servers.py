"""Django admin: a staff owner sees and changes only their own servers;
superusers see all; anonymous users are sent to the login page."""

import datetime as dt

import pytest

from mcsite.models import AuditEvent
from servers.models import Server

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_servers(alice, bob, make_server):
    return make_server(alice, "alice-world"), make_server(bob, "bob-world")


def test_anonymous_is_sent_to_the_login_page(client, two_servers):
    response = client.get("/admin/servers/server/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_owner_changelist_shows_only_their_servers(client, alice, two_servers):
    client.force_login(alice)
    body = client.get("/admin/servers/server/").content.decode()
    assert "alice-world" in body
    assert "bob-world" not in body


def test_owner_cannot_open_or_delete_another_owners_server(client, alice, two_servers):
    _, bobs = two_servers
    client.force_login(alice)
    for url in (f"/admin/servers/server/{bobs.pk}/change/", f"/admin/servers/server/{bobs.pk}/delete/"):
        response = client.get(url, follow=True)
        assert "bob-world" not in response.content.decode()
    client.post(f"/admin/servers/server/{bobs.pk}/delete/", {"post": "yes"})
    assert Server.objects.filter(pk=bobs.pk).exists()


def test_owner_creates_a_server_owned_by_themselves_and_it_is_audited(client, alice, make_server_dir):
    make_server_dir("fresh", world=False)
    client.force_login(alice)
    response = client.post("/admin/servers/server/add/", {
        "name": "fresh", "directory": "fresh", "start_command": "java -jar server.jar nogui",
        "memory_mb": 1024, "rcon_host": "127.0.0.1", "rcon_port": 25575, "stop_timeout": 30,
        "backup_mode": "stop", "exclude_patterns": "logs/", "node": "default", "rcon_password": "pw",
    })
    assert response.status_code == 302, response.content.decode()[:2000]
    server = Server.objects.get(name="fresh")
    assert server.owner == alice and server.rcon_password == "pw"
    assert AuditEvent.objects.filter(action="server.create", source="admin", actor=alice).exists()


def test_admin_form_refuses_a_directory_outside_the_root(client, alice):
    client.force_login(alice)
    response = client.post("/admin/servers/server/add/", {
        "name": "evil", "directory": "/etc", "start_command": "x", "memory_mb": 1024,
        "rcon_host": "127.0.0.1", "rcon_port": 25575, "stop_timeout": 30, "backup_mode": "stop",
        "exclude_patterns": "", "node": "default",
    })
    assert response.status_code == 200
    assert "inside the servers root" in response.content.decode()
    assert not Server.objects.filter(name="evil").exists()


def test_superuser_changelist_shows_every_server(client, admin_user, two_servers):
    client.force_login(admin_user)
    body = client.get("/admin/servers/server/").content.decode()
    assert "alice-world" in body and "bob-world" in body


def test_audit_log_is_read_only_and_for_admins_only(client, alice, admin_user, two_servers):
    AuditEvent.objects.create(action="server.create", actor_name="alice")
    client.force_login(alice)
    assert client.get("/admin/mcsite/auditevent/").status_code == 403
    client.force_login(admin_user)
    assert client.get("/admin/mcsite/auditevent/").status_code == 200
    assert client.get("/admin/mcsite/auditevent/add/").status_code == 403


def test_changing_a_servers_node_in_the_admin_moves_its_schedule_to_that_queue(client, admin_user, alice,
                                                                               make_server, remote_nodes):
    """Admin changes go through server_update like the API's: the schedule's
    task follows the server to its new node (it used to stay on the old queue)."""
    from django_celery_beat.models import PeriodicTask

    from backups.services import backup_schedule_create

    server = make_server(alice, "moving", world=False)
    remote_nodes.add("game-host-b")  # up, and its folder "moving" is there (checked on that node)
    schedule = backup_schedule_create(server=server, data={"schedule_type": "daily", "schedule_time": dt.time(3, 0)},
                                      actor=alice)
    client.force_login(admin_user)
    page = client.get(f"/admin/servers/server/{server.pk}/change/")
    form = page.context["adminform"].form
    data = {name: form[name].value() for name in form.fields if form[name].value() is not None}
    data.update({"node": "game-host-b", "exclude_patterns": "logs/",
                 "backup_schedule-TOTAL_FORMS": "1", "backup_schedule-INITIAL_FORMS": "1",
                 "backup_schedule-MIN_NUM_FORMS": "0", "backup_schedule-MAX_NUM_FORMS": "1",
                 "backup_schedule-0-id": schedule.pk, "backup_schedule-0-server": server.pk,
                 "backup_schedule-0-schedule_type": "daily", "backup_schedule-0-schedule_time": "03:00",
                 "backup_schedule-0-retention_days": schedule.retention_days, "backup_schedule-0-enabled": "on"})
    response = client.post(f"/admin/servers/server/{server.pk}/change/", data)
    assert response.status_code == 302, response.content.decode()[:3000]
    server.refresh_from_db()
    assert server.node == "game-host-b"
    assert PeriodicTask.objects.get(pk=schedule.periodic_task_id).queue == "game-host-b"
    assert AuditEvent.objects.filter(action="server.update", source="admin", actor=admin_user).count() == 1
