"""Looking inside a backup (its file tree, one folder level at a time, from
the list kept at verification: nothing is decompressed) and restoring it
into a new server folder. Thin views over services/contents.py and
services/restores.py."""

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers

from backups.api import serializers as s
from backups.api.views import BackupDetailView, RestoreThrottle, _validated
from backups.services import contents, restores
from mcsite.api.fields import RejectUnknownFieldsMixin, StrictCharField
from mcsite.api.responses import respond
from mcsite.api.schema import envelope_errors
from mcsite.api.throttling import UserRateThrottle

FILE_ENTRIES = inline_serializer("BackupFileEntry", {
    "name": serializers.CharField(),
    "path": serializers.CharField(help_text="Folder-relative path, as `paths` of a restore takes it"),
    "kind": serializers.ChoiceField(choices=["f", "d", "l"], help_text="f file, d folder, l symlink"),
    "size_bytes": serializers.IntegerField(help_text="A folder: the total of every file below it"),
    "file_count": serializers.IntegerField(help_text="A folder: the files below it; a file: 1"),
}, many=True)
PARTS = inline_serializer("BackupPart", {
    "key": serializers.CharField(help_text="overworld, nether, end, dimension:<namespace>:<name>, players"),
    "label": serializers.CharField(),
    "world": serializers.CharField(),
    "paths": serializers.ListField(child=serializers.CharField()),
    "size_bytes": serializers.IntegerField(),
    "file_count": serializers.IntegerField(),
}, many=True)
FilesSerializer = inline_serializer("BackupFiles", {
    "path": serializers.CharField(help_text="The folder listed; empty for the top"),
    "listed": serializers.BooleanField(help_text="False: the backup has no file list yet (verify it again)"),
    "entries": FILE_ENTRIES,
    "total": serializers.IntegerField(help_text="Number of entries at this level"),
    "size_bytes": serializers.IntegerField(),
    "file_count": serializers.IntegerField(),
    "parts": PARTS,
})


class CopyInputSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    name = StrictCharField(max_length=100, help_text="Name of the new server")
    directory = StrictCharField(max_length=500, help_text="Its folder, relative to the servers root: must not "
                                                          "exist yet (or be empty)")


class BackupFilesView(BackupDetailView):
    http_method_names = ["get", "head", "options"]

    @extend_schema(
        summary="One folder level of the backup's file tree, with sizes (read from the list kept at "
                "verification: nothing is decompressed)",
        parameters=[OpenApiParameter("path", str, description="Folder-relative folder to list, e.g. world/region; "
                                                              "empty for the top")],
        responses={200: FilesSerializer, **envelope_errors(400, 404)},
    )
    def get(self, request, server_id, backup_id):
        record = self.record()
        level = contents.contents_level(record=record, path=request.query_params.get("path", ""))
        level["parts"] = contents.contents_parts(record=record) if level["listed"] and not level["path"] else []
        message = "OK" if level["listed"] else contents.NOT_LISTED
        return respond(level, message=message)


class BackupCopyView(BackupDetailView):
    http_method_names = ["post", "options"]
    throttle_classes = [RestoreThrottle, UserRateThrottle]

    @extend_schema(
        summary="Restore the backup into a new folder: a new stopped server of yours, with the same settings "
                "but its own name and folder and no schedule",
        request=CopyInputSerializer,
        responses={202: s.RestoreOutputSerializer, **envelope_errors(400, 404, 409)},
    )
    def post(self, request, server_id, backup_id):
        data = _validated(CopyInputSerializer, request)
        restore = restores.restore_copy(record=self.record(), name=data["name"], directory=data["directory"],
                                        actor=request.user, request=request)
        return respond(s.RestoreOutputSerializer(restore).data,
                       message=f"Restore into the new server {restore.server.name} started", status_code=202)
