"""Retention on targets (issue #13): deleting a backup — by retention or by
a user — deletes its copies (after a target's delay), locked backups and
S3 Object Lock keep them, and emergency cleanup never deletes a copy: it
drops only the local file of a backup whose copy is verified."""

from datetime import timedelta

import pytest
from django.utils import timezone

from backups import storage
from backups.models import BackupRecord, OffsiteCopy
from backups.offsite import open_target
from backups.offsite_layout import sidecar_name
from backups.services import offsite
from backups.services.actions import backup_delete
from backups.services.retention import retention_apply
from tests.offsite.test_copies import local_target, run_copy, s3_target, take_backup

pytestmark = pytest.mark.django_db


@pytest.fixture
def server(alice, make_server):
    return make_server(alice)


def copied(server) -> tuple[BackupRecord, OffsiteCopy]:
    record = take_backup(server)
    copies = [run_copy(copy) for copy in OffsiteCopy.objects.filter(backup=record).order_by("pk")]
    assert all(copy.status == "verified" for copy in copies), [copy.error_message for copy in copies]
    return record, copies[0]


def on_target(copy) -> bool:
    with open_target(copy.target.config()) as remote:
        return remote.exists(copy.remote_name) and remote.exists(sidecar_name(copy.remote_name))


def age(record, days):
    BackupRecord.objects.filter(pk=record.pk).update(created_at=timezone.now() - timedelta(days=days))


def test_a_users_delete_removes_the_copy_after_the_targets_delay(tmp_path, server, alice):
    local_target(tmp_path, delete_delay_days=2, extra_retention_days=30)
    record, copy = copied(server)
    backup_delete(record=record, actor=alice)
    copy.refresh_from_db()
    assert copy.delete_after.date() == (timezone.now() + timedelta(days=2)).date()  # no extra retention
    assert offsite.copies_sweep()["deleted"] == 0 and on_target(copy)
    assert offsite.copies_sweep(now=timezone.now() + timedelta(days=2, minutes=1))["deleted"] == 1
    copy.refresh_from_db()
    assert copy.status == "deleted" and copy.deleted_at and not on_target(copy)


def test_retention_by_age_removes_copies_after_the_targets_extra_retention_and_keeps_locked(tmp_path, server,
                                                                                           moto_s3, s3_bucket):
    local = local_target(tmp_path, extra_retention_days=5)
    s3_target(moto_s3, s3_bucket)
    old, _ = copied(server)
    locked, _ = copied(server)
    BackupRecord.objects.filter(pk=locked.pk).update(locked=True)
    take_backup(server)  # the newest, kept anyway
    age(old, 40)
    age(locked, 40)

    assert [r.pk for r in retention_apply(server=server, disk_percent=10)] == [old.pk]
    old_copies = {c.target.kind: c for c in OffsiteCopy.objects.filter(backup=old).select_related("target")}
    assert old_copies["s3"].delete_after <= timezone.now()
    assert old_copies["local"].delete_after.date() == (timezone.now() + timedelta(days=5)).date()

    assert offsite.copies_sweep()["deleted"] == 1
    for copy in OffsiteCopy.objects.filter(backup=old):
        assert (copy.status == "deleted") == (copy.target.kind == "s3")
        assert on_target(copy) == (copy.target.kind == "local")
    assert offsite.copies_sweep(now=timezone.now() + timedelta(days=6))["deleted"] == 1
    assert not OffsiteCopy.objects.filter(backup=old).exclude(status="deleted").exists()
    # The locked backup stays, here and everywhere.
    for copy in OffsiteCopy.objects.filter(backup=locked):
        assert copy.status == "verified" and copy.delete_after is None and on_target(copy)


def test_an_object_locked_copy_is_not_deleted_before_its_lock_ends(moto_s3, server, alice):
    moto_s3.client().create_bucket(Bucket="locked-copies", ObjectLockEnabledForBucket=True)
    s3_target(moto_s3, "locked-copies", object_lock_days=3)
    record, copy = copied(server)
    assert copy.lock_until and copy.lock_until > timezone.now() + timedelta(days=2)
    backup_delete(record=record, actor=alice)
    assert offsite.copies_sweep() == {"deleted": 0, "waiting_for_lock": 1, "errors": 0}
    copy.refresh_from_db()
    assert copy.status == "verified" and copy.deleted_at is None and on_target(copy)
    assert offsite.copies_sweep(now=copy.lock_until + timedelta(minutes=1))["deleted"] == 1


def test_emergency_cleanup_drops_only_local_files_of_backups_with_a_verified_copy(tmp_path, server):
    target = local_target(tmp_path)
    with_copy, copy = copied(server)
    without_copy = take_backup(server)
    OffsiteCopy.objects.filter(backup=without_copy).delete()
    newest = [take_backup(server) for _ in range(3)]
    for record in newest:
        OffsiteCopy.objects.filter(backup=record).delete()

    deleted = retention_apply(server=server, disk_percent=95)  # over the emergency threshold

    assert [r.pk for r in deleted] == [without_copy.pk]
    with_copy.refresh_from_db()
    assert with_copy.status == "succeeded" and with_copy.local_removed_at is not None
    assert not storage.file_present(with_copy)
    copy.refresh_from_db()
    assert copy.status == "verified" and copy.delete_after is None and on_target(copy)  # never deleted
    # The next sweep keeps it too: the copy keeps it restorable.
    assert retention_apply(server=server, disk_percent=95) == []
    with_copy.refresh_from_db()
    assert with_copy.status == "succeeded"
    assert target.copies.filter(status="verified").count() == 1


def test_the_weekly_recheck_reads_copies_back_and_alerts_on_a_mismatch(tmp_path, server):
    from backups.models import AlertIncident, BackupSettings
    from backups.tasks import recheck_offsite_copy

    target = local_target(tmp_path)
    record, copy = copied(server)
    good_record, good = copied(server)
    config = BackupSettings.load()
    assert config.recheck_days
    assert offsite.copies_recheck_sweep() == []  # verified just now: not due
    OffsiteCopy.objects.filter(pk__in=[copy.pk, good.pk]).update(
        verified_at=timezone.now() - timedelta(days=config.recheck_days + 1))
    assert sorted(offsite.copies_recheck_sweep()) == sorted([copy.pk, good.pk])

    remote_file = tmp_path / "second-disk" / copy.remote_name
    data = bytearray(remote_file.read_bytes())
    data[len(data) // 2] ^= 0xFF  # bit rot on the target, same size
    remote_file.write_bytes(bytes(data))
    for pk in (copy.pk, good.pk):
        recheck_offsite_copy.apply(kwargs={"copy_id": pk})
    copy.refresh_from_db()
    good.refresh_from_db()
    assert (copy.status, copy.error_code) == ("failed", "CHECKSUM_MISMATCH") and copy.rechecked_at
    assert good.status == "verified" and good.rechecked_at
    assert AlertIncident.objects.filter(kind="offsite_copy_failed", subject=f"target:{target.pk}").count() == 1
    assert offsite.copies_recheck_sweep() == []  # both checked now


def test_a_backup_kept_only_by_its_copy_is_not_rechecked_as_a_lost_local_file(tmp_path, server):
    """After emergency cleanup dropped its local file, the daily local
    re-check must not take the missing file for a lost backup."""
    from backups.models import AlertIncident, BackupSettings
    from backups.services.recheck import recheck_candidates

    local_target(tmp_path)
    record, copy = copied(server)
    for _ in range(4):
        take_backup(server)
    OffsiteCopy.objects.exclude(backup=record).delete()
    retention_apply(server=server, disk_percent=95)
    record.refresh_from_db()
    assert record.local_removed_at is not None
    config = BackupSettings.load()
    BackupRecord.objects.update(verified_at=timezone.now() - timedelta(days=config.recheck_days + 1))
    assert record.pk not in [r.pk for r in recheck_candidates()]
    assert not AlertIncident.objects.filter(kind="backup_recheck_failed").exists()
