"""Faults while copying a real backup off site (issue #13): each gives the
copy a clear status, one alert per incident (per target), leaves the local
backup untouched, and the next try succeeds once the fault is gone."""

import json
import os
import threading
import time
import urllib.request
import uuid

import boto3
import pytest

from backups import storage
from backups.models import AlertIncident, OffsiteCopy
from backups.services import offsite
from tests.offsite.conftest import MotoS3, free_port, sha256_of
from tests.offsite.test_copies import local_target, run_copy, s3_target, sftp_target, take_backup

pytestmark = pytest.mark.django_db


@pytest.fixture
def server(alice, make_server):
    return make_server(alice)


@pytest.fixture
def own_moto():
    """An S3 server of this test's own, so killing it disturbs no other test.
    moto keeps one S3 state per process, shared by every server in it: the
    bucket gets a name of its own too."""
    server = MotoS3(free_port())
    server.start()
    server.bucket = f"copies-{uuid.uuid4().hex[:12]}"
    server.client().create_bucket(Bucket=server.bucket)
    yield server
    try:
        server.kill()
    except Exception:
        pass


def open_alerts(target) -> int:
    return AlertIncident.objects.filter(kind="offsite_copy_failed", subject=f"target:{target.pk}",
                                        resolved_at__isnull=True).count()


def assert_local_untouched(record):
    path = storage.absolute_path(record.storage_path)
    assert path.is_file() and sha256_of(path) == record.sha256
    record.refresh_from_db()
    assert record.status == "succeeded" and record.local_removed_at is None


def unfinished(moto, bucket) -> list:
    return moto.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])


def test_a_missing_bucket_fails_at_once_with_one_alert_and_the_next_try_succeeds(moto_s3, server):
    target = s3_target(moto_s3, "bucket-not-made-yet")
    record = take_backup(server)
    copy = run_copy(OffsiteCopy.objects.get(backup=record))
    assert (copy.status, copy.error_code, copy.attempts) == ("failed", "BUCKET_NOT_FOUND", 1)
    assert "bucket-not-made-yet" in copy.error_message
    assert open_alerts(target) == 1
    assert_local_untouched(record)

    second = take_backup(server)  # still failing: the same incident, no second alert
    assert run_copy(OffsiteCopy.objects.get(backup=second)).status == "failed"
    assert open_alerts(target) == 1 and AlertIncident.objects.filter(kind="offsite_copy_failed").count() == 1

    moto_s3.client().create_bucket(Bucket="bucket-not-made-yet")
    assert offsite.copy_retry(copy)
    copy = run_copy(copy)
    assert copy.status == "verified" and copy.error_code == ""
    assert open_alerts(target) == 0  # resolved by the next verified copy to that target


def test_wrong_s3_credentials_fail_with_auth_failed_and_work_once_fixed(moto_s3, s3_bucket, server):
    iam = boto3.client("iam", endpoint_url=moto_s3.url, region_name="us-east-1",
                       aws_access_key_id="x", aws_secret_access_key="x")
    iam.create_user(UserName="mcsite-copier")
    iam.put_user_policy(UserName="mcsite-copier", PolicyName="s3", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
    key = iam.create_access_key(UserName="mcsite-copier")["AccessKey"]

    def set_allowance(count):
        request = urllib.request.Request(f"{moto_s3.url}/moto-api/reset-auth", data=str(count).encode(),
                                         method="POST", headers={"Content-Type": "text/plain"})
        urllib.request.urlopen(request).read()

    target = s3_target(moto_s3, s3_bucket, access_key_id=key["AccessKeyId"], secret_access_key="wrong-secret")
    record = take_backup(server)
    set_allowance(0)
    try:
        copy = run_copy(OffsiteCopy.objects.get(backup=record))
        assert (copy.status, copy.error_code) == ("failed", "AUTH_FAILED")
        assert "wrong-secret" not in copy.error_message
        assert open_alerts(target) == 1
        assert_local_untouched(record)

        target.secrets = {"access_key_id": key["AccessKeyId"], "secret_access_key": key["SecretAccessKey"]}
        target.save()
        offsite.copy_retry(copy)
        assert run_copy(copy).status == "verified"
        assert open_alerts(target) == 0
    finally:
        set_allowance("inf")


def test_a_changed_sftp_host_key_is_refused_and_repinning_it_works(sshd, server):
    target = sftp_target(sshd)
    sshd.stop()
    sshd.new_host_key()  # the server (or someone in the middle) shows another key
    sshd.start()
    record = take_backup(server)
    copy = run_copy(OffsiteCopy.objects.get(backup=record))
    assert (copy.status, copy.error_code) == ("failed", "HOST_KEY_MISMATCH")
    assert "SHA256:" in copy.error_message
    assert open_alerts(target) == 1
    assert list(sshd.root.iterdir()) == []  # nothing was written
    assert_local_untouched(record)

    target.settings = {**target.settings, "host_key": sshd.host_key}
    target.save()
    offsite.copy_retry(copy)
    assert run_copy(copy).status == "verified"
    assert open_alerts(target) == 0


def test_s3_killed_mid_upload_is_retried_with_backoff_and_leaves_no_unfinished_upload(own_moto, server):
    # ~24 MiB that do not compress: several 5 MiB parts, so the kill lands mid-upload.
    folder = storage.backup_root().parent / "servers" / server.directory
    with open(folder / "world" / "noise.bin", "wb") as fh:
        fh.write(os.urandom(24 << 20))
    target = s3_target(own_moto, own_moto.bucket, concurrency=1)
    record = take_backup(server)
    copy = OffsiteCopy.objects.get(backup=record)

    stop = threading.Event()

    def kill_when_the_upload_has_begun():
        client = own_moto.client()
        while not stop.is_set():
            try:
                uploads = client.list_multipart_uploads(Bucket=own_moto.bucket).get("Uploads", [])
                if uploads and client.list_parts(Bucket=own_moto.bucket, Key=uploads[0]["Key"],
                                                 UploadId=uploads[0]["UploadId"]).get("Parts"):
                    own_moto.kill()
                    return
            except Exception:
                pass
            time.sleep(0.005)

    killer = threading.Thread(target=kill_when_the_upload_has_begun)
    killer.start()
    try:
        copy = run_copy(copy)
    finally:
        stop.set()
        killer.join()
    assert (copy.status, copy.error_code, copy.attempts) == ("pending", "UNREACHABLE", 1), copy.error_message
    assert "trying again in 1 min" in copy.error_message
    assert copy.upload_state and copy.upload_state["upload_id"]  # what the next try aborts
    assert open_alerts(target) == 0  # a transient fault is no incident yet
    assert_local_untouched(record)

    own_moto.restart()
    assert len(unfinished(own_moto, own_moto.bucket)) == 1
    copy = run_copy(copy)  # the re-sent task, after its countdown
    assert copy.status == "verified" and copy.attempts == 2 and copy.upload_state is None
    assert unfinished(own_moto, own_moto.bucket) == []
    assert copy.sha256 == record.sha256


def test_a_transient_fault_gives_up_after_the_last_try_with_one_alert(server, tmp_path):
    target = s3_target(type("Gone", (), {"url": f"http://127.0.0.1:{free_port()}"})(), "nowhere")
    record = take_backup(server)
    copy = OffsiteCopy.objects.get(backup=record)
    for attempt in range(1, offsite.MAX_ATTEMPTS):
        copy = run_copy(copy)
        assert (copy.status, copy.error_code, copy.attempts) == ("pending", "UNREACHABLE", attempt)
    copy = run_copy(copy)
    assert (copy.status, copy.attempts) == ("failed", offsite.MAX_ATTEMPTS)
    assert f"gave up after {offsite.MAX_ATTEMPTS} tries" in copy.error_message
    assert open_alerts(target) == 1
    assert_local_untouched(record)


def test_a_full_remote_disk_is_no_space_and_the_local_backup_stays(server, tmp_path):
    """The target folder's file system refuses writes beyond a size limit
    (RLIMIT_FSIZE, as a full disk does with EFBIG): the copy says NO_SPACE."""
    import resource

    target = local_target(tmp_path)
    record = take_backup(server)
    copy = OffsiteCopy.objects.get(backup=record)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    import signal
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, hard))
    try:
        copy = run_copy(copy)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)
    assert (copy.status, copy.error_code) == ("pending", "NO_SPACE"), copy.error_message
    assert [p.name for p in (tmp_path / "second-disk").rglob("*") if p.is_file()] == []
    assert_local_untouched(record)
    assert run_copy(copy).status == "verified"
    assert target.copies.get().remote_name.endswith("/" + record.filename)


def test_a_transient_fault_sends_the_task_again_with_a_growing_countdown(server, django_capture_on_commit_callbacks):
    from datetime import datetime, timezone

    from kombu.simple import SimpleQueue

    from mcsite.celery import app

    s3_target(type("Gone", (), {"url": f"http://127.0.0.1:{free_port()}"})(), "nowhere")
    record = take_backup(server)
    copy = OffsiteCopy.objects.get(backup=record)
    waits = []
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            sent_at = datetime.now(timezone.utc)
            copy = run_copy(copy)
        with app.connection_for_read() as connection:
            queue = SimpleQueue(connection, server.node)
            try:
                message = queue.get(timeout=2)
                message.ack()
            finally:
                queue.close()
        assert message.headers["task"] == "backups.tasks.copy_backup_offsite"
        assert message.decode()[1] == {"copy_id": copy.pk}
        waits.append((datetime.fromisoformat(message.headers["eta"]) - sent_at).total_seconds())
    assert 55 < waits[0] < 65 and 115 < waits[1] < 125  # 1 min, then 2 min
    assert copy.status == "pending" and "trying again in 2 min" in copy.error_message
