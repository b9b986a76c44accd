"""Issue #15: two game hosts and a web tier that sees neither.

Two real Celery workers, each a node on its own queue with its own servers
root, backup root, run and log folders, and beat on node-a sending the
heartbeats (every 5 s here). This process is the web tier: its MCSITE_NODE
is "web" and its roots are two empty folders elsewhere. Through the API it
creates, starts, stops, reads the status of, backs up, verifies, previews,
restores, rolls back and downloads (from the copy on the local S3 server) a
server on each node — and a Python audit hook records every file this
process opens, lists, makes or removes under either node's folders: there
must be none. Each node's backups are on that node's disk only.

A node whose worker is killed shows "node down" within 3 heartbeats, is
alerted once, and a backup left running on it is reaped when it returns."""

import hashlib
import os
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import timezone

from backups.models import AlertIncident, BackupRecord, OffsiteCopy, RestoreRequest, StorageTarget
from servers.models import Node, Server
from tests.fakes.fixtures import kill_fakes_under, make_fake_server, wait_rcon_ready
from tests.integration.conftest import INTEGRATION, wait_finished, wait_for
from tests.offsite.conftest import moto_s3, s3_bucket, s3_config  # noqa: F401 (fixtures)

pytestmark = INTEGRATION

NODES = ("node-a", "node-b")
HEARTBEAT = 5
_WATCHED = {"open", "os.listdir", "os.scandir", "os.remove", "os.rename", "os.mkdir", "os.rmdir", "shutil.rmtree",
            "shutil.copytree", "shutil.move", "os.chmod", "os.utime", "os.truncate", "os.symlink", "os.link"}


class FolderAudit:
    """Every file system event of this process under the watched folders."""

    def __init__(self):
        self.roots: tuple[str, ...] = ()
        self.seen: list[tuple[str, str, str]] = []
        self.paused = False  # while the test itself acts as the game host's owner

    def __call__(self, event: str, args) -> None:
        if not self.roots or self.paused or event not in _WATCHED or not args:
            return
        path = args[0]
        if isinstance(path, int) or not isinstance(path, (str, bytes, os.PathLike)):
            return
        full = os.path.abspath(os.fsdecode(os.fspath(path)))
        if full.startswith(self.roots):
            self.seen.append((event, full, threading.current_thread().name))


_AUDIT = FolderAudit()
sys.addaudithook(_AUDIT)  # an audit hook cannot be removed: it records only while roots are set


def _start_node(celery_site, tmp_path: Path, name: str) -> dict:
    root = tmp_path / name
    folders = {key: root / key for key in ("servers", "backups", "run", "logs")}
    for folder in folders.values():
        folder.mkdir(parents=True)
    env = {"MCSITE_NODE": name, "MCSITE_SERVERS_ROOT": str(folders["servers"]),
           "MCSITE_BACKUP_ROOT": str(folders["backups"]), "MCSITE_RUN_DIR": str(folders["run"]),
           "MCSITE_LOG_DIR": str(folders["logs"]), "MCSITE_NODE_HEARTBEAT_SECONDS": str(HEARTBEAT),
           "MCSITE_ALERT_EMAILS": "ops@example.com"}  # the mail goes to the worker's in-memory outbox
    celery_site.start_worker(queue=name, name=name, env=env)
    return {"root": root, "env": env, **folders}


@pytest.fixture
def two_nodes(celery_site, settings, tmp_path, moto_s3, s3_bucket):  # noqa: F811
    settings.MCSITE_NODE = "web"
    settings.MCSITE_NODE_HEARTBEAT_SECONDS = HEARTBEAT
    settings.MCSITE_NODE_CALL_WAIT_SECONDS = 30
    web = tmp_path / "web"
    settings.MCSITE_SERVERS_ROOT, settings.MCSITE_BACKUP_ROOT = web / "servers", web / "backups"
    for folder in (settings.MCSITE_SERVERS_ROOT, settings.MCSITE_BACKUP_ROOT):
        folder.mkdir(parents=True)
    hosts = {name: _start_node(celery_site, tmp_path, name) for name in NODES}
    call_command("register_system_tasks", verbosity=0)
    celery_site.env.update({"MCSITE_NODE_HEARTBEAT_SECONDS": str(HEARTBEAT)})
    celery_site._start("beat", ["beat", "-l", "info", "--max-interval", "1",
                                "--scheduler", "django_celery_beat.schedulers:DatabaseScheduler",
                                "--pidfile", str(celery_site.folder / "beat.pid"),
                                "--schedule", str(celery_site.folder / "beat-schedule")],
                       ready="beat: Starting", env=hosts["node-a"]["env"])  # beat's system tasks go to node-a
    wait_for(lambda: Node.objects.filter(name__in=NODES, last_heartbeat__isnull=False).count() == 2, timeout=30,
             message="both nodes to report")
    config = s3_config(moto_s3, s3_bucket)
    target = StorageTarget(name="offsite-s3", kind="s3", settings=dict(config.settings), is_default=True)
    target.secrets = config.secrets
    target.save()
    try:
        yield hosts
    finally:
        _AUDIT.roots = ()
        for host in hosts.values():
            kill_fakes_under(host["servers"])


def _ok(response, status=200):
    assert response.status_code == status, (response.status_code, response.content[:2000])
    return response.json()["data"]


def _wait_restore(restore_id: int) -> RestoreRequest:
    done = RestoreRequest.objects.filter(pk=restore_id).exclude(status__in=["queued", "running"])
    return wait_for(done.first, timeout=120, interval=0.2, message=f"restore {restore_id} to finish")


def test_a_web_tier_that_sees_neither_game_host_runs_both(two_nodes, admin_api, admin_user):
    from django.test import Client

    web = Client()
    web.force_login(admin_user)
    fakes = {name: make_fake_server(host["servers"], "survival", copy_real_world=True)
             for name, host in two_nodes.items()}
    _AUDIT.roots = tuple(str(host["root"]) + os.sep for host in two_nodes.values())
    (two_nodes["node-a"]["root"] / "probe").write_text("the hook sees this process's own opens")
    assert [event for event, path, _ in _AUDIT.seen if path.endswith("probe")] == ["open"]
    _AUDIT.seen.clear()

    for name, fake in fakes.items():
        # The same folder name on each host: a folder is unique per node.
        server = _ok(admin_api.post("/api/servers/", {
            "name": f"survival-{name}", "directory": "survival", "node": name,
            "start_command": fake.spec.start_command, "rcon_host": "127.0.0.1", "rcon_port": fake.rcon_port,
            "rcon_password": fake.rcon_password, "stop_timeout": 5}, format="json"), 201)
        sid = server["id"]
        assert _ok(admin_api.post(f"/api/servers/{sid}/start/"))["status"]["state"] == "running"
        wait_rcon_ready("127.0.0.1", fake.rcon_port, fake.rcon_password, timeout=20)
        status = _ok(admin_api.get(f"/api/servers/{sid}"))["status"]
        assert (status["state"], status["node"]) == ("running", name)

        record = _ok(admin_api.post(f"/api/backups/{sid}/trigger", {}, format="json"), 202)
        finished = wait_finished(record["id"], timeout=120)
        assert finished.status == "succeeded", (finished.error_code, finished.error_message)
        assert finished.node == name
        wait_for(lambda: OffsiteCopy.objects.filter(backup=finished, status="verified").exists(), timeout=60,
                 message="the copy on S3")
        assert _ok(admin_api.get(f"/api/servers/{sid}"))["status"]["state"] == "running"  # started again

        before = finished.verified_at
        _ok(admin_api.post(f"/api/backups/{sid}/backups/{finished.pk}/verify/"), 202)
        wait_for(lambda: BackupRecord.objects.get(pk=finished.pk).verified_at != before, timeout=60,
                 message="verify again on the node")

        preview = _ok(admin_api.post(f"/api/backups/{sid}/restore",
                                     {"backup_filename": finished.filename, "confirm": False}, format="json"))
        assert preview["server_running"] is True and preview["contents"]["world_name"] == "world"
        _AUDIT.paused = True  # a player builds on the host itself, not through the web
        (fake.directory / "world" / "built-after-the-backup.txt").write_text("a house")
        _AUDIT.paused = False
        restore = _ok(admin_api.post(f"/api/backups/{sid}/restore",
                                     {"backup_filename": finished.filename, "confirm": True}, format="json"), 202)
        done = _wait_restore(restore["id"])
        assert done.status == "succeeded", (done.error_code, done.error_message)
        _AUDIT.paused = True
        assert not (fake.directory / "world" / "built-after-the-backup.txt").exists(), "the backup's world is back"
        _AUDIT.paused = False
        rollback = _ok(admin_api.post(f"/api/backups/{sid}/restores/{done.pk}/rollback", {}, format="json"), 202)
        undone = _wait_restore(rollback["id"])
        assert undone.status == "succeeded", (undone.error_code, undone.error_message)
        _AUDIT.paused = True
        assert (fake.directory / "world" / "built-after-the-backup.txt").read_text() == "a house", "rolled back"
        _AUDIT.paused = False

        response = admin_api.get(f"/api/backups/{sid}/backups/{finished.pk}/download")
        assert response.status_code == 302, response.content[:500]
        with urllib.request.urlopen(response["Location"], timeout=30) as body:  # noqa: S310 — 127.0.0.1
            assert hashlib.sha256(body.read()).hexdigest() == finished.sha256

        # The pages too, as a browser would load them.
        pages = ["/servers/", f"/backup/{sid}", f"/backup/{sid}/restore?backup={finished.filename}",
                 f"/backup/{sid}/backups/{finished.pk}/files", f"/backup/{sid}/restores/{done.pk}",
                 f"/backup/{sid}/backups/{finished.pk}/progress", "/admin/servers/server/", "/admin/servers/node/",
                 f"/admin/servers/server/{sid}/change/", "/metrics", "/healthz"]
        for url in pages:
            page = web.get(url)
            assert page.status_code == 200, (url, page.status_code, page.content[:500])
        assert "Node down" not in web.get("/servers/").content.decode()

        outcome = admin_api.post(f"/api/servers/{sid}/stop/")
        assert outcome.status_code == 200 and outcome.json()["message"].startswith("Server stopped")
        assert _ok(admin_api.get(f"/api/servers/{sid}"))["status"]["state"] == "stopped"

    touched = list(_AUDIT.seen)
    _AUDIT.roots = ()
    assert touched == [], f"the web process touched a node's folders: {touched[:10]}"
    for name, host in two_nodes.items():
        other = two_nodes[next(n for n in NODES if n != name)]
        mine = {p.name for p in host["backups"].rglob("*.tar.*")}
        assert mine, f"{name} has its backups on its own disk"
        assert not mine & {p.name for p in other["backups"].rglob("*.tar.*")}
        assert Server.objects.get(node=name).directory == "survival"


def test_a_killed_node_shows_down_alerts_once_and_its_run_is_reaped_on_return(two_nodes, celery_site, admin_api):
    host = two_nodes["node-b"]
    fake = make_fake_server(host["servers"], "survival", copy_real_world=True)
    (fake.directory / "bulk").mkdir()
    for index in range(24):  # incompressible: the archive takes a few seconds
        (fake.directory / "bulk" / f"blob{index}.bin").write_bytes(os.urandom(4 * 2**20))
    server = _ok(admin_api.post("/api/servers/", {
        "name": "survival-b", "directory": "survival", "node": "node-b", "start_command": fake.spec.start_command,
        "rcon_host": "127.0.0.1", "rcon_port": fake.rcon_port, "rcon_password": fake.rcon_password,
        "stop_timeout": 5}, format="json"), 201)
    record = _ok(admin_api.post(f"/api/backups/{server['id']}/trigger", {}, format="json"), 202)
    wait_for(lambda: BackupRecord.objects.filter(pk=record["id"], status="running").exists(), timeout=60,
             message="the backup to run on node-b")
    celery_site.kill("node-b")
    killed_at = timezone.now()

    wait_for(lambda: _ok(admin_api.get(f"/api/servers/{server['id']}"))["status"]["state"] == "node_down",
             timeout=6 * HEARTBEAT, interval=0.5, message="node-b shown down")
    # Shown down by its own silence: its last report came before the kill, 3 heartbeats ago or more.
    last = Node.objects.get(name="node-b").last_heartbeat
    assert last <= killed_at and (timezone.now() - last).total_seconds() >= 3 * HEARTBEAT
    wait_for(lambda: AlertIncident.objects.filter(kind="node_down", subject="node:node-b").exists(),
             timeout=4 * HEARTBEAT, message="the node_down alert")
    time.sleep(2 * HEARTBEAT)
    incidents = AlertIncident.objects.filter(kind="node_down", subject="node:node-b")
    assert incidents.count() == 1 and incidents.get().notified
    response = admin_api.post(f"/api/servers/{server['id']}/start/")
    assert response.status_code == 503 and response.json()["code"] == "NODE_DOWN"
    assert BackupRecord.objects.get(pk=record["id"]).status == "running", "nothing reaps it from elsewhere meanwhile"

    celery_site.start_worker(queue="node-b", name="node-b-again", env=host["env"])
    wait_for(lambda: Node.objects.get(name="node-b").down_since is None, timeout=30, message="node-b back up")
    assert incidents.get().resolved_at is not None
    reaped = wait_finished(record["id"], timeout=60)
    assert (reaped.status, reaped.error_code) == ("failed", "WORKER_LOST")
    assert not list(host["backups"].rglob("*.partial*")), "its partial file removed by its own node"
