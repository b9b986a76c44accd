"""A full backup disk (a small tmpfs mounted as the backup root): a backup
and a restore end INSUFFICIENT_DISK_SPACE before anything is stopped or
moved, and nothing is lost. Needs root (mount); CI runs as root."""

import os
import subprocess

import pytest

from backups.models import BackupRecord, RestoreRequest
from backups.services import restores
from backups.services.restore_run import restore_run
from backups.services.runs import backup_run, backup_trigger
from mcsite.errors import DomainError
from servers import control

pytestmark = pytest.mark.django_db
MiB = 2**20


@pytest.fixture
def small_backup_disk(settings):
    """Mounts a tmpfs of the given size as the backup root; unmounted at the end."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small file system needs root")
    mounted = []

    def mount(mib: int):
        root = settings.MCSITE_BACKUP_ROOT
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={mib}m", "tmpfs", str(root)],
                              capture_output=True, text=True)
        if done.returncode:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        mounted.append(root)
        return root

    yield mount
    for root in mounted:
        subprocess.run(["umount", "-l", str(root)], check=False)


def fill(root, *, leave_mib: int) -> None:
    """Fills the disk until about `leave_mib` MiB are free."""
    free = os.statvfs(root).f_bavail * os.statvfs(root).f_frsize
    with open(root / "filler.bin", "wb") as fh:
        fh.write(b"\0" * max(0, free - leave_mib * MiB))


def running_pid(server) -> int:
    status = control.status(server.process_spec())
    assert status.running
    return status.pid


def test_a_backup_on_a_full_disk_ends_before_the_server_is_stopped(alice, alice_api, fake_mc, small_backup_disk):
    server = fake_mc(alice, "full", started=True)
    pid = running_pid(server)
    root = small_backup_disk(70)  # the world fits, but not with the 64 MiB safety margin

    response = alice_api.post(f"/api/backups/{server.pk}/trigger")
    assert (response.status_code, response.json()["code"]) == (507, "INSUFFICIENT_DISK_SPACE")
    # A scheduled run has no one to answer: it records the failure, the server untouched.
    record = backup_trigger(server=server, trigger="scheduled", enqueue=False, precheck=False)
    record = backup_run(backup_id=record.pk)
    assert (record.status, record.error_code) == ("failed", "INSUFFICIENT_DISK_SPACE")
    assert "MiB needed" in record.error_message
    assert running_pid(server) == pid, "the server must not have been stopped"
    assert not [p for p in root.rglob("*") if p.is_file()]


def test_a_restore_on_a_full_disk_ends_before_the_server_is_stopped_or_its_folder_moved(
        alice, alice_api, fake_mc, take_backup, small_backup_disk):
    server = fake_mc(alice, "full", started=True)
    root = small_backup_disk(200)
    record = take_backup(server)
    server.refresh_from_db()
    server.fake.wait_ready()
    (server.path / "world" / "after-the-backup.txt").write_text("keep me")
    pid = running_pid(server)

    # Confirmed with room, then the disk fills before the worker starts.
    queued = restores.restore_request(server=server, backup_filename=record.filename, actor=alice, enqueue=False)
    fill(root, leave_mib=40)
    # Confirming now is refused at once (507), with nothing created.
    RestoreRequest.objects.filter(pk=queued.pk).update(status="failed")
    response = alice_api.post(f"/api/backups/{server.pk}/restore",
                              {"backup_filename": record.filename, "confirm": True}, format="json")
    assert (response.status_code, response.json()["code"]) == (507, "INSUFFICIENT_DISK_SPACE"), response.json()
    assert RestoreRequest.objects.count() == 1
    RestoreRequest.objects.filter(pk=queued.pk).update(status="queued")

    restore = restore_run(restore_id=queued.pk)
    assert (restore.status, restore.error_code) == ("failed", "INSUFFICIENT_DISK_SPACE"), restore.error_message
    assert "Nothing in the server folder had been changed" in restore.error_message
    assert running_pid(server) == pid, "the server must not have been stopped"
    assert not BackupRecord.objects.filter(trigger="safety").exists()
    assert (server.path / "world" / "after-the-backup.txt").read_text() == "keep me"
    assert sorted(p.name for p in server.path.parent.iterdir()) == [server.path.name]
    with pytest.raises(DomainError):
        restores.restore_request(server=server, backup_filename=record.filename, actor=alice, enqueue=False)
