""""Verify again" of a backup whose local file is gone reads its verified
off-site copy, front to back, without writing it to the local disk (issue #13
item 4): the record's verification and its browsable file list are filled
from the copy (which a record rebuilt by ``import_backups`` has none of, and
a partial restore needs); an altered copy fails the checksum, is marked
failed and is not used again."""

import pytest

from backups import storage
from backups.api import serializers as s
from backups.models import BackupContents, BackupRecord, OffsiteCopy
from backups.services import actions
from mcsite.errors import DomainError
from tests.backups.conftest import take_backup  # noqa: F401 (fixture)
from tests.web.conftest import alice_web  # noqa: F401 (fixture)
from tests.offsite.copies import alter_copy, copy_to, drop_local_file, target, target_row  # noqa: F401 (fixture)

pytestmark = pytest.mark.django_db


def test_verify_again_reads_the_copy_when_the_local_file_is_gone(alice, make_server, take_backup, target):  # noqa: F811
    server = make_server(alice)
    record = take_backup(server)
    copy_to(record, target)
    drop_local_file(record)
    BackupContents.objects.filter(backup=record).delete()  # as a record rebuilt by import_backups
    BackupRecord.objects.filter(pk=record.pk).update(verification={}, quality_score=None, world_name="")

    actions.backup_verify_request(record=record, actor=alice)  # accepted: there is something to read
    record = actions.backup_verify(record=record)
    assert record.quality_score == 100, record.verification
    methods = record.verification["methods"]
    assert methods["checksum"]["ok"] and methods["archive_integrity"]["ok"] and methods["world_validation"]["ok"]
    assert methods["restore_test"]["skipped"]
    assert record.verification["source"] == {"kind": "copy", "target": target.name, "target_kind": target.kind,
                                             "remote_name": OffsiteCopy.objects.get(backup=record).remote_name}
    assert record.world_name == "world"
    assert s.BackupOutputSerializer(record).data["verification"]["read_from"] == target.name
    assert BackupContents.objects.filter(backup=record).exists(), "the file list is kept for browsing"
    assert not storage.file_present(record)
    assert not [p for p in storage.backup_root().rglob("*") if p.is_file()], "nothing written to the backup root"


def test_verify_again_of_an_altered_copy_fails_and_retires_the_copy(alice, make_server, take_backup, tmp_path,
                                                                    request):  # noqa: F811
    server = make_server(alice)
    record = take_backup(server)
    row = target_row(request, "local", tmp_path)
    copy = copy_to(record, row)
    drop_local_file(record)
    alter_copy(request, row, copy.remote_name)

    record = actions.backup_verify(record=record)
    assert record.verification["methods"]["checksum"]["ok"] is False
    copy.refresh_from_db()
    assert (copy.status, copy.error_code) == ("failed", "CHECKSUM_MISMATCH")
    with pytest.raises(DomainError) as caught:  # nothing verified is left to read
        actions.backup_verify_request(record=record, actor=alice)
    assert caught.value.code.value == "BACKUP_NOT_FOUND"


def test_verify_again_without_file_or_copy_is_refused(alice, make_server, take_backup):  # noqa: F811
    server = make_server(alice)
    record = take_backup(server)
    drop_local_file(record)
    with pytest.raises(DomainError) as caught:
        actions.backup_verify_request(record=record, actor=alice)
    assert caught.value.code.value == "BACKUP_NOT_FOUND"


def test_the_server_delete_page_counts_backups_kept_only_as_copies(alice, alice_web, make_server,  # noqa: F811
                                                                   take_backup, tmp_path, request):  # noqa: F811
    server = make_server(alice)
    row = target_row(request, "local", tmp_path)
    on_disk = take_backup(server)
    copy_to(on_disk, row)
    only_copy = take_backup(server)
    copy_to(only_copy, row)
    drop_local_file(only_copy)
    page = alice_web.get(f"/servers/{server.pk}/delete/").content.decode()
    assert "<strong>2</strong> stored backups" in page
    assert "1 of them only as an off-site copy" in page
    assert "their files and off-site copies" in page
