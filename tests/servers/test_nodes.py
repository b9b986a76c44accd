"""Game hosts as objects (issue #15): a node's heartbeat writes what it sees
(disks, each of its servers' status and warnings); a web tier on another
node shows that report and never looks at the server itself; a node silent
for 3 heartbeats is "node down" at once and alerted once; start, stop and
the folder check of a new server are calls the node answers (202 with the
pending call when it has not answered yet, NODE_DOWN when it is down).

Here the remote node's worker is stood in for by this process (the
`remote_nodes` fixture runs a call as the worker would); tests/integration
has the same with real workers on separate folders."""

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from backups.models import AlertIncident
from servers import nodes
from servers.models import Node, NodeCall, Server
from tests.backups.conftest import fake_mc  # noqa: F401 (fixture)
from tests.fakes.fixtures import fake_server_factory  # noqa: F401 (fixture)
from tests.web.conftest import alice_web  # noqa: F401 (fixture)

pytestmark = pytest.mark.django_db


def _long_ago(seconds_of_heartbeats: int = 4):
    return timezone.now() - timedelta(seconds=seconds_of_heartbeats * nodes.heartbeat_seconds())


# --- the heartbeat ---------------------------------------------------------------------

def test_a_heartbeat_writes_the_nodes_disks_and_its_servers_status(alice, make_server, settings):
    here = make_server(alice, "survival")
    make_server(alice, "elsewhere")
    Server.objects.filter(name="elsewhere").update(node="game-b")
    node = nodes.node_heartbeat(started=True, worker_count=2)
    assert (node.name, node.worker_count, node.version) == ("default", 2, nodes.mcsite_version())
    assert node.hostname and node.started_at == node.last_heartbeat
    assert 0 < node.servers_root_free <= node.servers_root_total
    assert 0 < node.backup_root_free <= node.backup_root_total
    assert list(node.statuses) == [str(here.pk)], "only the servers of this node"
    entry = node.statuses[str(here.pk)]
    assert (entry["state"], entry["running"], entry["folder"]) == ("stopped", False, True)
    assert entry["warnings"] == []


def test_beat_sends_one_heartbeat_to_every_known_node(alice, make_server, remote_nodes):
    make_server(alice, "a")
    Server.objects.filter(name="a").update(node="game-a")
    remote_nodes.add("game-c")
    assert nodes.heartbeats_send() == ["game-a", "game-c"]
    beats = [(name, queue) for name, queue, _ in remote_nodes.sent if name == nodes.HEARTBEAT_TASK]
    assert beats == [(nodes.HEARTBEAT_TASK, "game-a"), (nodes.HEARTBEAT_TASK, "game-c")]


# --- what the web tier shows -----------------------------------------------------------

def _remote_server(owner, make_server, node="game-a", name="survival") -> Server:
    server = make_server(owner, name)
    Server.objects.filter(pk=server.pk).update(node=node)
    server.refresh_from_db()
    return server


def test_the_web_tier_shows_the_nodes_report_not_what_it_sees(alice, alice_api, make_server, remote_nodes):
    server = _remote_server(alice, make_server)
    remote_nodes.add("game-a", statuses={str(server.pk): {
        "state": "running", "running": True, "pid": 4242, "uptime_seconds": 61.0, "folder": True,
        "warnings": ["server.jar is not in the folder survival: Start will fail until the server jar is there."]}})
    data = alice_api.get(f"/api/servers/{server.pk}").json()["data"]
    assert data["status"]["state"] == "running" and data["status"]["pid"] == 4242  # not running here at all
    assert data["status"]["node"] == "game-a" and data["status"]["reported_at"]
    assert data["warnings"] == ["server.jar is not in the folder survival: Start will fail until the server jar is there."]


def test_a_silent_node_shows_node_down_at_once_and_alerts_once(alice, alice_api, alice_web, make_server,  # noqa: F811
                                                               remote_nodes, settings):
    settings.MCSITE_ALERT_EMAILS = ["ops@example.com"]
    server = _remote_server(alice, make_server)
    remote_nodes.add("game-a", last_heartbeat=_long_ago(), statuses={str(server.pk): {"state": "running"}})
    status = alice_api.get(f"/api/servers/{server.pk}").json()["data"]["status"]
    assert status["state"] == "node_down" and "has not reported since" in status["error"]
    page = alice_web.get("/servers/").content.decode()
    assert "Node down" in page

    assert nodes.nodes_check() == ["game-a"]
    assert nodes.nodes_check() == [], "once per incident"
    assert [m.subject for m in mail.outbox] == ["[mcsite] Game host game-a is down"]
    assert "1 server(s)" in mail.outbox[0].body

    # It reports again (as its own worker would): up, the incident resolved; a later silence alerts again.
    settings.MCSITE_NODE = "game-a"
    nodes.node_heartbeat()
    settings.MCSITE_NODE = "web"
    assert Node.objects.get(name="game-a").down_since is None
    assert not AlertIncident.objects.filter(kind="node_down", resolved_at__isnull=True).exists()
    Node.objects.filter(name="game-a").update(last_heartbeat=_long_ago())
    assert nodes.nodes_check() == ["game-a"] and len(mail.outbox) == 2


def test_the_node_api_is_for_admins_and_lists_silent_nodes(alice, alice_api, admin_api, make_server, remote_nodes):
    _remote_server(alice, make_server, node="never-reported")
    remote_nodes.add("game-a", servers_root_free=5, servers_root_total=10)
    remote_nodes.add("game-z", last_heartbeat=_long_ago())
    assert alice_api.get("/api/nodes/").status_code == 403
    rows = {n["name"]: n for n in admin_api.get("/api/nodes/").json()["data"]}
    assert {name: n["state"] for name, n in rows.items()} == {"game-a": "up", "game-z": "down",
                                                              "never-reported": "unknown"}
    assert rows["never-reported"]["server_count"] == 1 and rows["game-a"]["servers_root_free"] == 5


# --- calls: start, stop, the folder of a new server -----------------------------------

def test_start_and_stop_run_on_the_servers_node(alice, alice_api, fake_mc, remote_nodes):  # noqa: F811
    server = fake_mc(alice)
    Server.objects.filter(pk=server.pk).update(node="game-a")
    remote_nodes.add("game-a")
    response = alice_api.post(f"/api/servers/{server.pk}/start/")
    assert response.status_code == 200, response.json()
    assert response.json()["message"] == "Server started"
    server.fake.wait_ready()
    call = NodeCall.objects.get(action="start")
    assert (call.node, call.status, call.actor) == ("game-a", "succeeded", alice)
    assert Node.objects.get(name="game-a").statuses[str(server.pk)]["state"] == "running"  # reported at once
    assert alice_api.get(f"/api/servers/{server.pk}").json()["data"]["status"]["state"] == "running"

    response = alice_api.post(f"/api/servers/{server.pk}/stop/")
    assert response.status_code == 200 and response.json()["message"].startswith("Server stopped")
    assert alice_api.get(f"/api/servers/{server.pk}").json()["data"]["status"]["state"] == "stopped"


def test_a_node_that_has_not_answered_yet_gives_202_and_the_call_to_poll(alice, alice_api, bob_api, make_server,
                                                                         remote_nodes, settings):
    settings.MCSITE_NODE_CALL_WAIT_SECONDS = 0
    server = _remote_server(alice, make_server)
    remote_nodes.add("game-a", answers=False)
    response = alice_api.post(f"/api/servers/{server.pk}/stop/")
    assert response.status_code == 202
    body = response.json()
    assert body["data"]["status"] == "pending" and body["data"]["action"] == "stop"
    assert "has not answered yet" in body["message"]
    url = f"/api/node-calls/{body['data']['id']}"
    assert alice_api.get(url).json()["data"]["status"] == "pending"
    assert bob_api.get(url).status_code == 404

    nodes.node_call_run(call_id=body["data"]["id"])  # the node's worker picks it up
    done = alice_api.get(url).json()["data"]
    assert (done["status"], done["result"]["was_running"], done["result"]["step"]) == ("succeeded", False,
                                                                                       "not_running")


def test_a_node_that_is_down_refuses_at_once_and_sends_nothing(alice, alice_api, make_server, remote_nodes):
    server = _remote_server(alice, make_server)
    remote_nodes.add("game-a", last_heartbeat=_long_ago())
    response = alice_api.post(f"/api/servers/{server.pk}/start/")
    assert response.status_code == 503
    assert response.json()["code"] == "NODE_DOWN" and "game-a" in response.json()["error"]
    assert not NodeCall.objects.exists()


def test_a_new_servers_folder_is_checked_on_its_node_and_unique_per_node(alice, alice_api, make_server_dir,
                                                                         remote_nodes):
    remote_nodes.add("game-a")
    remote_nodes.add("game-b")
    make_server_dir("survival")
    body = {"name": "survival", "directory": "survival", "node": "game-a"}
    response = alice_api.post("/api/servers/", body, format="json")
    assert response.status_code == 201, response.json()
    assert NodeCall.objects.get().action == "check_folder"
    # The same folder name on another game host is another folder.
    response = alice_api.post("/api/servers/", {**body, "name": "survival-b", "node": "game-b"}, format="json")
    assert response.status_code == 201, response.json()
    response = alice_api.post("/api/servers/", {**body, "name": "again"}, format="json")
    assert response.status_code == 400 and "already uses this folder" in response.json()["error"]
    response = alice_api.post("/api/servers/", {**body, "name": "nowhere", "directory": "missing"}, format="json")
    assert response.status_code == 400 and response.json()["code"] == "INVALID_DIRECTORY"
    assert Server.objects.count() == 2


# --- health checks -----------------------------------------------------------------------

def test_health_checks_for_web_node_and_beat(client, remote_nodes, capsys):
    from django.core.management import call_command

    assert client.get("/healthz").json() == {"ok": True, "checks": ["database: ok"]}
    remote_nodes.add("game-a")
    remote_nodes.add("game-z", last_heartbeat=_long_ago())
    call_command("health", "--node", "game-a", "--beat")
    out = capsys.readouterr().out
    assert "ok    node game-a: up" in out and "ok    beat: node heartbeats arriving" in out
    with pytest.raises(SystemExit) as caught:
        call_command("health", "--node", "game-z")
    assert caught.value.code == 1 and "FAIL  node game-z: down" in capsys.readouterr().out
    Node.objects.update(last_heartbeat=_long_ago())
    with pytest.raises(SystemExit):
        call_command("health", "--beat")
    assert "FAIL  beat: no node heartbeat for" in capsys.readouterr().out


def test_the_admin_moves_a_server_to_another_node_and_says_what_stays(client, admin_user, alice, make_server,
                                                                      remote_nodes):
    from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME

    from backups.models import BackupRecord

    server = make_server(alice, "survival")
    remote_nodes.add("default")
    remote_nodes.add("game-b")
    BackupRecord.objects.create(server=server, owner=alice, server_name="survival", status="succeeded",
                                storage_path=f"server-{server.pk}/server_backup_20260101_000000.tar.gz")
    client.force_login(admin_user)
    url = "/admin/servers/server/"
    page = client.post(url, {"action": "move_to_node", ACTION_CHECKBOX_NAME: [server.pk]})
    assert page.status_code == 200 and "Copy its folder to the same path" in page.content.decode()
    assert 'value="game-b"' in page.content.decode()
    done = client.post(url, {"action": "move_to_node", ACTION_CHECKBOX_NAME: [server.pk], "apply": "1",
                             "node": "game-b"}, follow=True)
    text = done.content.decode()
    assert "Moved to game host game-b" in text and "1 backup file(s) stay in default" in text
    server.refresh_from_db()
    assert server.node == "game-b"

    BackupRecord.objects.create(server=server, owner=alice, server_name="survival", status="running")
    refused = client.post(url, {"action": "move_to_node", ACTION_CHECKBOX_NAME: [server.pk], "apply": "1",
                                "node": "default"}, follow=True)
    assert "A backup of this server is in progress" in refused.content.decode()
    server.refresh_from_db()
    assert server.node == "game-b"


def test_commands_that_work_on_a_folder_run_on_its_node(alice, make_server, remote_nodes):
    from django.core.management import CommandError, call_command

    server = _remote_server(alice, make_server)
    remote_nodes.add("game-a")
    for command in (["backup_now", "survival"], ["restore", "survival", "server_backup_x.tar.gz", "--yes"],
                    ["rollback", "survival"]):
        with pytest.raises(CommandError) as caught:
            call_command(*command)
        assert "lives on game host game-a: run this command there" in str(caught.value)
    assert not server.backups.exists()


def test_restore_into_a_new_folder_on_another_node_is_made_by_that_node(alice, make_server, remote_nodes):
    from backups.models import RestoreRequest
    from backups.services import restores
    from backups.services.restore_run import restore_run
    from backups.services.runs import backup_run, backup_trigger

    server = _remote_server(alice, make_server)
    remote_nodes.add("game-a")
    record = backup_trigger(server=server, actor=alice, enqueue=False)
    backup_run(backup_id=record.pk)  # as game-a's worker runs it
    record.refresh_from_db()
    assert record.status == "succeeded" and record.node == "game-a"

    restore = restores.restore_copy(record=record, name="copy", directory="survival-copy", actor=alice,
                                    enqueue=False)
    assert [c.action for c in NodeCall.objects.order_by("pk")][:2] == ["new_folder", "check_folder"]
    copy = Server.objects.get(name="copy")
    assert (copy.node, copy.directory, restore.kind) == ("game-a", "survival-copy", "copy")
    restore_run(restore_id=restore.pk)
    restore.refresh_from_db()
    assert restore.status == "succeeded", restore.error_message
    assert (copy.path / "world" / "level.dat").is_file()

    # Refused after the folder was made: the node takes the folder back, no server is left.
    RestoreRequest.objects.all().delete()
    with pytest.raises(Exception):
        restores.restore_copy(record=record, name="copy", directory="another-copy", actor=alice, enqueue=False)
    assert not (copy.path.parent / "another-copy").exists()
    assert Server.objects.filter(name="copy").count() == 1


def test_a_call_no_node_ever_answers_ends_failed_and_old_calls_go(alice, make_server, remote_nodes, settings):
    settings.MCSITE_NODE_CALL_WAIT_SECONDS = 0
    server = _remote_server(alice, make_server)
    remote_nodes.add("game-a", answers=False)
    call = nodes.node_call(node="game-a", action="start", server=server)
    old = NodeCall.objects.create(node="game-a", action="stop", status="succeeded")
    NodeCall.objects.filter(pk=call.pk).update(created_at=timezone.now() - timedelta(minutes=11))
    NodeCall.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=8))
    assert nodes.calls_tidy() == 1
    call.refresh_from_db()
    assert (call.status, call.error_code) == ("failed", "NODE_DOWN") and "did not answer" in call.error_message
    assert not NodeCall.objects.filter(pk=old.pk).exists()


def test_another_hosts_backup_without_a_copy_says_to_add_a_target(alice, alice_api, alice_web, make_server,  # noqa: F811
                                                                   remote_nodes):
    from backups.models import BackupRecord

    server = _remote_server(alice, make_server)
    remote_nodes.add("game-a")
    record = BackupRecord.objects.create(
        server=server, owner=alice, server_name=server.name, status="succeeded", node="game-a",
        filename="server_backup_20260101_000000.tar.gz", size_bytes=10, sha256="ab" * 32,
        storage_path=f"server-{server.pk}/server_backup_20260101_000000.tar.gz")
    page = alice_web.get(f"/backup/{server.pk}").content.decode()
    assert "No download here: add a storage target" in page
    assert f"/backups/{record.pk}/download" not in page
    response = alice_api.get(f"/api/backups/{server.pk}/backups/{record.pk}/download")
    assert response.status_code == 404
    assert "on game host game-a, which this web server cannot read" in response.json()["error"]
    assert "Add a storage target" in response.json()["error"]


def test_the_page_says_a_stop_was_sent_when_the_node_has_not_answered_yet(alice, alice_web, make_server,  # noqa: F811
                                                                          remote_nodes, settings):
    settings.MCSITE_NODE_CALL_WAIT_SECONDS = 0
    server = _remote_server(alice, make_server)
    remote_nodes.add("game-a", answers=False)
    page = alice_web.post(f"/servers/{server.pk}/stop/", {"confirmed": "1"}, follow=True).content.decode()
    assert "Stop sent to game host game-a; it has not answered yet" in page
    assert NodeCall.objects.get().status == "pending"


def test_nodes_and_node_calls_are_for_admins_and_written_only_by_the_site(client, admin_user, alice, remote_nodes):
    node = remote_nodes.add("game-a")
    call = NodeCall.objects.create(node="game-a", action="start")
    client.force_login(admin_user)
    assert "game-a" in client.get("/admin/servers/node/").content.decode()
    assert client.get("/admin/servers/nodecall/").status_code == 200
    assert client.get("/admin/servers/nodecall/add/").status_code == 403
    assert client.post(f"/admin/servers/nodecall/{call.pk}/delete/", {"post": "yes"}).status_code == 403
    assert client.get("/admin/servers/node/add/").status_code == 403
    client.post(f"/admin/servers/node/{node.pk}/delete/", {"post": "yes"})  # a retired host's row may go
    assert not Node.objects.filter(pk=node.pk).exists()
    client.force_login(alice)
    assert client.get("/admin/servers/node/").status_code in (302, 403)
