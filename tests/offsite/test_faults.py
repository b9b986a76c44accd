"""Faults a user meets with off-site copies, each with a clear code and
message and nothing left behind: the S3 endpoint dying mid-upload, refused
credentials, a missing bucket, an SFTP host key that changed, a full disk."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from backups.offsite import OffsiteError, TargetConfig, open_target
from backups.offsite.names import PARTIAL_SUFFIX
from tests.offsite.conftest import MotoS3, free_port, new_ed25519, s3_config, sha256_of

MIB = 1 << 20


@pytest.fixture
def own_moto():
    """An S3 server of this test's own, so killing it disturbs no other test."""
    server = MotoS3(free_port())
    server.start()
    server.client().create_bucket(Bucket="copies")
    yield server
    try:
        server.kill()
    except Exception:
        pass


def unfinished(server, bucket="copies") -> list:
    return server.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])


def kill_after_first_part(server):
    def progress(done, total):
        if done < total and server._server_ready_event.is_set():
            server._server_ready_event.clear()
            server.kill()
    return progress


def test_s3_killed_mid_upload_leaves_nothing_after_abort_and_the_retry_succeeds(own_moto, big_file):
    target = open_target(s3_config(own_moto, "copies"))
    states = []
    with pytest.raises(OffsiteError) as caught:
        target.upload(big_file, "srv/big.bin", progress=kill_after_first_part(own_moto), on_state=states.append)
    assert caught.value.code == "UNREACHABLE"
    assert "not reachable" in caught.value.message
    assert caught.value.state == states[-1] and states[-1]["upload_id"]   # what a crash would have persisted

    own_moto.restart()
    assert [u["UploadId"] for u in unfinished(own_moto)] == [states[-1]["upload_id"]]
    assert target.list() == []                     # nothing half-written is visible
    assert target.abort_incomplete("") == 1
    assert unfinished(own_moto) == []

    result = target.upload(big_file, "srv/big.bin")
    target.verify("srv/big.bin", size=result.size, sha256=sha256_of(big_file), composite=result.composite)
    assert unfinished(own_moto) == []


def test_s3_upload_resumes_from_the_parts_already_there(own_moto, big_file):
    target = open_target(s3_config(own_moto, "copies"))
    with pytest.raises(OffsiteError) as caught:
        target.upload(big_file, "srv/big.bin", progress=kill_after_first_part(own_moto))
    own_moto.restart()
    state = caught.value.state
    result = target.upload(big_file, "srv/big.bin", resume_state=state)
    assert result.parts_reused >= 1
    target.verify("srv/big.bin", size=result.size, sha256=sha256_of(big_file), local_path=big_file,
                  part_size=result.part_size)
    assert unfinished(own_moto) == []
    # A state for the upload, once finished, aborts nothing.
    assert target.abort_incomplete(state) == 0


def test_s3_wrong_credentials_are_refused(moto_s3, s3_bucket, backup_file):
    """moto enforces credentials once its no-auth allowance is spent (its
    /moto-api/reset-auth): the keys must then be an IAM user's."""
    import boto3

    iam = boto3.client("iam", endpoint_url=moto_s3.url, region_name="us-east-1",
                       aws_access_key_id="x", aws_secret_access_key="x")
    iam.create_user(UserName="copier")
    iam.put_user_policy(UserName="copier", PolicyName="s3", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
    key = iam.create_access_key(UserName="copier")["AccessKey"]

    def set_allowance(count):
        request = urllib.request.Request(f"{moto_s3.url}/moto-api/reset-auth", data=str(count).encode(),
                                         method="POST", headers={"Content-Type": "text/plain"})
        urllib.request.urlopen(request).read()

    set_allowance(0)
    try:
        good = open_target(s3_config(moto_s3, s3_bucket, access_key_id=key["AccessKeyId"],
                                     secret_access_key=key["SecretAccessKey"]))
        assert good.test().steps[0] == "connect"
        for key_id, secret in ((key["AccessKeyId"], "wrong-secret"), ("AKIDUNKNOWN", "whatever")):
            bad = open_target(s3_config(moto_s3, s3_bucket, access_key_id=key_id, secret_access_key=secret))
            with pytest.raises(OffsiteError) as caught:
                bad.test()
            assert (caught.value.code, caught.value.step) == ("AUTH_FAILED", "connect")
            assert "refused the access key" in caught.value.message
            assert secret not in caught.value.message
            with pytest.raises(OffsiteError) as caught:
                bad.upload(backup_file, "a.tar.zst")
            assert caught.value.code == "AUTH_FAILED"
        assert good.list() == [] and good.abort_incomplete("") == 0
    finally:
        set_allowance("inf")


def test_s3_missing_bucket(moto_s3, backup_file):
    target = open_target(s3_config(moto_s3, "no-such-bucket-here"))
    with pytest.raises(OffsiteError) as caught:
        target.test()
    assert (caught.value.code, caught.value.step) == ("BUCKET_NOT_FOUND", "connect")
    assert "'no-such-bucket-here' does not exist" in caught.value.message
    with pytest.raises(OffsiteError) as caught:
        target.upload(backup_file, "a.tar.zst")
    assert caught.value.code == "BUCKET_NOT_FOUND"


def test_s3_unreachable_endpoint(backup_file):
    config = TargetConfig(kind="s3", name="nowhere", settings={"bucket": "b", "endpoint_url":
                          f"http://127.0.0.1:{free_port()}", "max_attempts": 1},
                          secrets={"access_key_id": "a", "secret_access_key": "b"})
    with pytest.raises(OffsiteError) as caught:
        open_target(config).test()
    assert (caught.value.code, caught.value.step) == ("UNREACHABLE", "connect")


def test_s3_object_lock_keeps_the_copy(moto_s3, backup_file):
    """moto accepts Object Lock on a bucket created with it, ignores the lock
    headers of a multipart upload (so the retention put after completion is
    what locks here; real S3 takes the headers) and refuses to delete a locked
    version."""
    client = moto_s3.client()
    client.create_bucket(Bucket="locked-copies", ObjectLockEnabledForBucket=True)
    target = open_target(s3_config(moto_s3, "locked-copies"))
    result = target.upload(backup_file, "a.tar.zst", object_lock_days=7)
    head = client.head_object(Bucket="locked-copies", Key="mcsite/a.tar.zst")
    assert head["ObjectLockMode"] == "COMPLIANCE"
    assert head["ObjectLockRetainUntilDate"].date() == result.lock_until.date()
    with pytest.raises(client.exceptions.ClientError) as refused:
        client.delete_object(Bucket="locked-copies", Key="mcsite/a.tar.zst", VersionId=head["VersionId"])
    assert refused.value.response["Error"]["Code"] == "AccessDenied"


def test_s3_object_lock_on_a_bucket_without_it_is_an_error(moto_s3, s3_bucket, backup_file):
    target = open_target(s3_config(moto_s3, s3_bucket))
    with pytest.raises(OffsiteError) as caught:
        target.upload(backup_file, "a.tar.zst", object_lock_days=7)
    assert "could not be locked" in caught.value.message and "Object Lock enabled" in caught.value.message
    assert target.list() == []          # an unlocked copy does not stay behind as if it were protected


# -- SFTP --------------------------------------------------------------------
def test_sftp_changed_host_key_is_refused_before_login(sshd, backup_file):
    pinned = sshd.config()
    sshd.stop()
    sshd.new_host_key()
    sshd.start()
    target = open_target(pinned)
    with pytest.raises(OffsiteError) as caught:
        target.upload(backup_file, "a.tar.zst")
    error = caught.value
    assert error.code == "HOST_KEY_MISMATCH"
    offered = open_target(sshd.config()).pinned.fingerprint
    assert offered in error.message and target.pinned.fingerprint in error.message
    assert list(sshd.root.iterdir()) == []
    log = (sshd.folder / "sshd.log").read_text()
    assert "Accepted" not in log and "Failed" not in log    # no credential was offered
    with pytest.raises(OffsiteError) as caught:
        target.test()
    assert (caught.value.code, caught.value.step) == ("HOST_KEY_MISMATCH", "connect")


def test_sftp_wrong_key_or_password_is_refused(sshd, backup_file):
    other_key, _public = new_ed25519()
    for config in (sshd.config(private_key=other_key), sshd.config(private_key=None, password="not-the-password")):
        target = open_target(config)
        with pytest.raises(OffsiteError) as caught:
            target.upload(backup_file, "a.tar.zst")
        assert caught.value.code == "AUTH_FAILED"
        assert f"refused the login of {sshd.user!r}" in caught.value.message
        assert "not-the-password" not in caught.value.message
    assert list(sshd.root.iterdir()) == []


def test_sftp_server_down(sshd, backup_file):
    config = sshd.config()
    sshd.stop()
    with pytest.raises(OffsiteError) as caught:
        open_target(config).test()
    assert (caught.value.code, caught.value.step) == ("UNREACHABLE", "connect")


def test_sftp_abort_removes_partial_files(sshd):
    target = open_target(sshd.config())
    (sshd.root / "srv").mkdir()
    (sshd.root / "srv" / ("a.tar.zst" + PARTIAL_SUFFIX)).write_bytes(b"half")
    (sshd.root / "srv" / "kept.tar.zst").write_bytes(b"whole")
    assert [e.name for e in target.list()] == ["srv/kept.tar.zst"]
    assert target.abort_incomplete("srv/") == 1
    assert sorted(p.name for p in (sshd.root / "srv").iterdir()) == ["kept.tar.zst"]


def test_sftp_pinned_key_must_be_given():
    with pytest.raises(OffsiteError) as caught:
        open_target(TargetConfig(kind="sftp", name="s", settings={"host": "h", "username": "u",
                                                                  "host_key": "not a key"}, secrets={"password": "p"}))
    assert caught.value.code == "INVALID_SETTING"


# -- local -------------------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path):
    """A 2 MiB tmpfs; skipped where the container may not mount."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.decode().strip()}); the RLIMIT_FSIZE test "
                    "covers a full disk")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_local_full_disk_is_no_space_and_leaves_nothing(small_disk, backup_file, big_file):
    target = open_target(TargetConfig(kind="local", name="small", settings={"path": str(small_disk),
                                                                            "must_be_mount_point": True}))
    with pytest.raises(OffsiteError) as caught:
        target.upload(big_file, "srv/big.bin")
    assert caught.value.code == "NO_SPACE"
    assert "No space left" in caught.value.message
    assert list((small_disk / "srv").iterdir()) == []      # no partial file left
    result = target.upload(backup_file, "srv/a.tar.zst")   # room for a small one: the next try works
    target.verify("srv/a.tar.zst", size=result.size, sha256=result.sha256)


def test_local_file_size_limit_is_no_space(tmp_path, big_file):
    """Where mounting is not allowed a full disk looks the same to the writer:
    EFBIG under RLIMIT_FSIZE, in a child process."""
    disk = tmp_path / "disk"
    disk.mkdir()
    script = f"""
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (3 * 1024 * 1024, 3 * 1024 * 1024))
from backups.offsite import OffsiteError, TargetConfig, open_target
target = open_target(TargetConfig(kind="local", name="t", settings={{"path": {str(disk)!r}}}))
try:
    target.upload({str(big_file)!r}, "big.bin")
except OffsiteError as exc:
    print(exc.code)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[2], timeout=60)
    assert done.stdout.strip() == "NO_SPACE", done.stderr
    assert list(disk.iterdir()) == []


def test_local_unmounted_share_is_refused(tmp_path, backup_file):
    folder = tmp_path / "mnt"
    folder.mkdir()
    target = open_target(TargetConfig(kind="local", name="nas", settings={"path": str(folder),
                                                                          "must_be_mount_point": True}))
    with pytest.raises(OffsiteError) as caught:
        target.upload(backup_file, "a.tar.zst")
    assert caught.value.code == "UNREACHABLE" and "not mounted" in caught.value.message
    assert list(folder.iterdir()) == []
    missing = open_target(TargetConfig(kind="local", name="gone", settings={"path": str(tmp_path / "gone")}))
    with pytest.raises(OffsiteError) as caught:
        missing.test()
    assert (caught.value.code, caught.value.step) == ("UNREACHABLE", "connect")


def test_local_symlink_out_of_the_folder_is_refused(tmp_path, backup_file):
    disk = tmp_path / "disk"
    disk.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, disk / "srv")
    target = open_target(TargetConfig(kind="local", name="t", settings={"path": str(disk)}))
    with pytest.raises(OffsiteError) as caught:
        target.upload(backup_file, "srv/a.tar.zst")
    assert caught.value.code == "INVALID_NAME"
    assert list(outside.iterdir()) == []
