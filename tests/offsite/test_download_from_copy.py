"""Download a backup whose local file is gone from its verified copy
(issue #13 item 4): S3 answers 302 to a 5-minute signed URL that returns the
exact bytes to a plain HTTP client; a folder or SFTP target is streamed
through with the local download's headers. Someone else's backup is 404."""

import urllib.parse
import urllib.request

import pytest

from backups import storage
from backups.models import BackupRecord
from tests.backups.conftest import take_backup  # noqa: F401 (fixture)
from tests.offsite.copies import copy_to, drop_local_file, target  # noqa: F401 (fixture)

pytestmark = pytest.mark.django_db


def _url(record) -> str:
    if record.server_id:
        return f"/api/backups/{record.server_id}/backups/{record.pk}/download"
    return f"/api/backups/detached/{record.pk}/download"


def test_download_from_a_copy_gives_the_exact_bytes(alice, alice_api, bob_api, make_server, take_backup,  # noqa: F811
                                                    target):  # noqa: F811
    server = make_server(alice)
    record = take_backup(server)
    data = storage.absolute_path(record.storage_path).read_bytes()
    local = alice_api.get(_url(record))
    local_headers = {k: local[k] for k in ("Content-Type", "Content-Disposition", "Content-Length")}
    copy_to(record, target)
    drop_local_file(record)

    response = alice_api.get(_url(record))
    if target.kind == "s3":
        assert response.status_code == 302
        location = response["Location"]
        query = urllib.parse.parse_qs(urllib.parse.urlparse(location).query)
        assert query["X-Amz-Expires"] == ["300"]
        with urllib.request.urlopen(location, timeout=10) as fetched:  # no credentials: the signature is the key
            assert fetched.read() == data
            assert record.filename in fetched.headers["Content-Disposition"]
    else:
        assert response.status_code == 200
        assert {k: response[k] for k in local_headers} == local_headers
        assert b"".join(response.streaming_content) == data

    # Permission rules as for a local file: another user does not learn it exists.
    other = bob_api.get(_url(record))
    assert other.status_code == 404 and other.json()["code"] in ("NOT_FOUND", "BACKUP_NOT_FOUND")


def test_a_detached_backup_downloads_from_its_copy(alice, alice_api, bob_api, make_server, take_backup, tmp_path,  # noqa: F811
                                                   request):
    from servers.services import server_delete
    from tests.offsite.copies import target_row

    server = make_server(alice)
    record = take_backup(server)
    data = storage.absolute_path(record.storage_path).read_bytes()
    copy_to(record, target_row(request, "sftp", tmp_path))
    server_delete(server=server, delete_backups=False, actor=alice)
    record.refresh_from_db()
    assert record.server_id is None
    drop_local_file(record)

    response = alice_api.get(_url(record))
    assert response.status_code == 200 and b"".join(response.streaming_content) == data
    assert bob_api.get(_url(record)).status_code == 404


def test_no_local_file_and_no_verified_copy_is_404(alice, alice_api, make_server, take_backup):  # noqa: F811
    server = make_server(alice)
    record = take_backup(server)
    drop_local_file(record)
    response = alice_api.get(_url(record))
    assert (response.status_code, response.json()["code"]) == (404, "BACKUP_NOT_FOUND")
    assert BackupRecord.objects.get(pk=record.pk).status == "succeeded"
