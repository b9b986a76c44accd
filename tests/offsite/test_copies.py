"""Off-site copies end to end (issue #13): a real backup of the fixture world
is taken through the services, its copy rows are created by the backup's own
success path, and the copy task runs as a worker runs it (``Task.apply``)
against a second folder, moto's S3 server over HTTP and OpenSSH's sshd."""

import hashlib
import json

import pytest

from backups import storage
from backups.models import AlertIncident, BackupRecord, OffsiteCopy, ServerCopyPolicy, StorageTarget
from backups.offsite import open_target
from backups.offsite_layout import parse_sidecar, remote_name, sidecar_name
from backups.services import offsite
from backups.services.runs import backup_run, backup_trigger
from backups.tasks import copy_backup_offsite
from tests.offsite.conftest import S3_KEY_ID, S3_SECRET

pytestmark = pytest.mark.django_db


def take_backup(server) -> BackupRecord:
    record = backup_trigger(server=server, actor=server.owner, enqueue=False)
    backup_run(backup_id=record.pk)
    record.refresh_from_db()
    assert record.status == "succeeded" and record.verification_passed, (record.error_code, record.error_message)
    return record


def run_copy(copy: OffsiteCopy) -> OffsiteCopy:
    copy_backup_offsite.apply(kwargs={"copy_id": copy.pk})  # as a worker runs it
    copy.refresh_from_db()
    return copy


def make_target(name: str, kind: str, settings: dict, secrets: dict | None = None, **fields) -> StorageTarget:
    fields = {**fields, **{key: settings.pop(key) for key in list(settings)
                           if key in ("object_lock_days", "delete_delay_days", "extra_retention_days", "enabled")}}
    target = StorageTarget(name=name, kind=kind, settings=settings, **{"is_default": True, **fields})
    target.secrets = secrets or {}
    target.save()
    return target


def local_target(tmp_path, name="second-disk", **fields) -> StorageTarget:
    folder = tmp_path / name
    folder.mkdir(exist_ok=True)
    return make_target(name, "local", {"path": str(folder)}, **fields)


def s3_target(moto_s3, bucket, name="offsite-s3", **settings) -> StorageTarget:
    secrets = {"access_key_id": settings.pop("access_key_id", S3_KEY_ID),
               "secret_access_key": settings.pop("secret_access_key", S3_SECRET)}
    base = {"bucket": bucket, "endpoint_url": moto_s3.url, "region": "us-east-1", "prefix": "mcsite/",
            "addressing_style": "path", "part_size_mib": 5, "max_attempts": 2}
    return make_target(name, "s3", {**base, **settings}, secrets)


def sftp_target(sshd, name="offsite-sftp") -> StorageTarget:
    config = sshd.config()
    return make_target(name, "sftp", config.settings, config.secrets)


@pytest.fixture
def server(alice, make_server):
    return make_server(alice)


def _sha256_of_remote(target: StorageTarget, name: str) -> str:
    digest = hashlib.sha256()
    with open_target(target.config()) as remote, remote.open_read(name) as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@pytest.mark.parametrize("kind", ["local", "s3", "sftp"])
def test_a_verified_backup_is_copied_and_verified_on_each_kind_of_target(kind, request, tmp_path, server):
    if kind == "local":
        target = local_target(tmp_path)
    elif kind == "s3":
        target = s3_target(request.getfixturevalue("moto_s3"), request.getfixturevalue("s3_bucket"))
    else:
        target = sftp_target(request.getfixturevalue("sshd"))

    record = take_backup(server)
    copy = OffsiteCopy.objects.get(backup=record)  # made by the backup's success path
    assert (copy.target, copy.status) == (target, "pending")

    copy = run_copy(copy)
    assert copy.status == "verified", (copy.error_code, copy.error_message)
    assert copy.remote_name == remote_name(directory=server.directory, filename=record.filename)
    assert (copy.size_bytes, copy.sha256) == (record.size_bytes, record.sha256)
    assert copy.verified_at and copy.attempts == 1 and copy.upload_state is None
    if kind == "s3":
        assert copy.part_size and copy.composite_checksum
    # What is there is the backup, byte for byte, with its sidecar beside it.
    assert _sha256_of_remote(target, copy.remote_name) == record.sha256
    with open_target(target.config()) as remote:
        sidecar = parse_sidecar(remote.get_small(sidecar_name(copy.remote_name)))
    assert (sidecar["filename"], sidecar["sha256"], sidecar["server_directory"]) == (
        record.filename, record.sha256, server.directory)
    assert sidecar["server_name"] == server.name and sidecar["mcsite_version"]
    # A redelivered task changes nothing.
    assert run_copy(copy).attempts == 1


def test_policy_decides_which_targets_get_copies(tmp_path, server, alice, make_server):
    default = local_target(tmp_path, "default-disk")
    other = local_target(tmp_path, "other-disk", is_default=False)
    local_target(tmp_path, "disabled-disk", enabled=False)
    assert offsite.copy_targets_for(server) == [default]

    policy = ServerCopyPolicy.objects.create(server=server, mode="custom")
    policy.targets.set([other])
    assert offsite.copy_targets_for(server) == [other]
    policy.mode = "none"
    policy.save()
    record = take_backup(server)
    assert not record.copies.exists()


def test_safety_and_unverified_backups_are_not_copied(tmp_path, server):
    local_target(tmp_path)
    record = take_backup(server)
    record.copies.all().delete()
    BackupRecord.objects.filter(pk=record.pk).update(trigger="safety")
    record.refresh_from_db()
    assert offsite.copies_queue(record) == []
    BackupRecord.objects.filter(pk=record.pk).update(trigger="manual", verification_passed=False)
    record.refresh_from_db()
    assert offsite.copies_queue(record) == []


def test_a_missing_local_file_fails_the_copy_clearly(tmp_path, server, caplog):
    target = local_target(tmp_path)
    record = take_backup(server)
    storage.absolute_path(record.storage_path).unlink()
    copy = run_copy(OffsiteCopy.objects.get(backup=record))
    assert copy.status == "failed" and copy.error_code == "LOCAL_FILE_MISSING"
    assert record.filename in copy.error_message and "missing" in copy.error_message
    assert AlertIncident.objects.filter(kind="offsite_copy_failed", subject=f"target:{target.pk}",
                                        resolved_at__isnull=True).count() == 1
    assert "offsite_copy_failed" in caplog.text


def test_the_reaper_sends_a_copy_whose_worker_died_again_and_it_then_verifies(tmp_path, server, moto_s3, s3_bucket):
    from datetime import timedelta

    from django.utils import timezone

    from backups.services.maintenance import reap_stale_runs

    target = s3_target(moto_s3, s3_bucket)
    record = take_backup(server)
    copy = OffsiteCopy.objects.get(backup=record)
    # A worker died mid-upload: its multipart upload is still open on S3.
    client = moto_s3.client()
    name = "mcsite/" + remote_name(directory=server.directory, filename=record.filename)
    upload = client.create_multipart_upload(Bucket=s3_bucket, Key=name, ChecksumAlgorithm="SHA256")
    state = {"kind": "s3", "bucket": s3_bucket, "key": name, "upload_id": upload["UploadId"], "part_size": 5 << 20,
             "size": record.size_bytes}
    old = timezone.now() - timedelta(hours=1)
    OffsiteCopy.objects.filter(pk=copy.pk).update(status="copying", attempts=1, heartbeat_at=old, upload_state=state)

    assert reap_stale_runs()["copies"] == 1
    copy.refresh_from_db()
    assert (copy.status, copy.error_code, copy.upload_state) == ("pending", "WORKER_LOST", None)
    assert client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []

    copy = run_copy(copy)
    assert copy.status == "verified" and copy.attempts == 2
    assert client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []
    assert json.loads(client.get_object(Bucket=s3_bucket, Key=name + ".json")["Body"].read())["sha256"] == record.sha256


def test_the_api_and_the_history_page_show_each_copy_with_its_failure_reason(tmp_path, server, alice_api, alice):
    good = local_target(tmp_path, "second-disk")
    bad = make_target("gone-share", "local", {"path": str(tmp_path / "not-mounted")})
    record = take_backup(server)
    for copy in OffsiteCopy.objects.filter(backup=record):
        run_copy(copy)
    response = alice_api.get(f"/api/backups/{server.pk}/history")
    assert response.status_code == 200
    copies = response.json()["data"][0]["copies"]
    by_target = {c["target"]: c for c in copies}
    assert by_target[good.name]["status"] == "verified" and by_target[good.name]["size_bytes"] == record.size_bytes
    assert by_target[bad.name]["status"] in ("failed", "pending") and by_target[bad.name]["error_code"]
    assert by_target[bad.name]["error_message"]
    detail = alice_api.get(f"/api/backups/{server.pk}/backups/{record.pk}").json()
    assert {c["target"] for c in detail["data"]["copies"]} == {good.name, bad.name}
    # The history row on the web page says the same, with the reason.
    from django.test import Client

    browser = Client()
    browser.force_login(alice)
    page = browser.get(f"/backup/{server.pk}/").content.decode()
    assert f"{good.name}: Verified" in page
    bad_copy = OffsiteCopy.objects.get(target=bad)
    assert f"{bad.name}: {bad_copy.get_status_display().capitalize()}" in page
    assert bad_copy.error_code in page


def test_the_copy_task_goes_to_the_servers_node_queue_once_the_backup_committed(
        tmp_path, server, django_capture_on_commit_callbacks):
    """Sent by name through the broker (memory:// in tests), to the queue of
    the node whose disk holds the backup."""
    from kombu.simple import SimpleQueue

    from mcsite.celery import app

    def drain() -> list:
        with app.connection_for_read() as connection:
            queue = SimpleQueue(connection, server.node)
            try:
                bodies = []
                while True:
                    try:
                        message = queue.get(timeout=0.5)
                    except queue.Empty:
                        return bodies
                    message.ack()
                    bodies.append((message.headers.get("task"), message.decode()))
            finally:
                queue.close()

    drain()  # the memory broker is the process's: what earlier tests sent to this queue is not ours
    local_target(tmp_path)
    with django_capture_on_commit_callbacks(execute=True):
        record = take_backup(server)
    copy = OffsiteCopy.objects.get(backup=record)
    sent = [body for task, body in drain() if task == "backups.tasks.copy_backup_offsite"]
    assert len(sent) == 1 and sent[0][1] == {"copy_id": copy.pk}
