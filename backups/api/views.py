"""The backup API of the seed's "API Reference" plus SPEC §10. Views are
thin: they find the caller's own objects (404 otherwise), validate input and
call a service."""

from django.db.models import OuterRef, Q, Subquery
from django.http import FileResponse, HttpResponseRedirect, StreamingHttpResponse
from django.utils.http import content_disposition_header
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.generics import GenericAPIView

from backups import storage
from backups.api import serializers as s
from backups.models import BackupRecord, BackupSchedule, OffsiteCopy, RestoreRequest
from backups.selectors import backup_status
from backups.services import actions, copy_source, restores, retention, runs, schedules, snapshots
from mcsite.api.responses import respond
from mcsite.api.schema import envelope_errors
from mcsite.api.throttling import UserRateThrottle  # keyed on the site's client-address rule
from mcsite.errors import DomainError, ErrorCode
from servers.models import Server
from servers.selectors import server_status


class TriggerThrottle(UserRateThrottle):
    scope = "backup_trigger"


class RestoreThrottle(UserRateThrottle):
    scope = "restore"


def _body(request) -> dict:
    if not isinstance(request.data, dict):
        raise DomainError(ErrorCode.VALIDATION_ERROR, "Request body must be a JSON object")
    return request.data


def _validated(serializer_class, request, **kwargs) -> dict:
    serializer = serializer_class(data=_body(request), **kwargs)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def visible_server(request, server_id) -> Server:
    server = Server.objects.for_user(request.user).filter(pk=server_id).select_related("owner").first()
    if server is None:
        raise DomainError(ErrorCode.NOT_FOUND)
    return server


def schedules_for(user):
    # A correlated subquery (index server, status, -created_at) is evaluated for
    # the rows of one page only; a Max() join would aggregate every backup.
    last_ok = (BackupRecord.objects.filter(server=OuterRef("server"), status=BackupRecord.Status.SUCCEEDED)
               .exclude(trigger=BackupRecord.Trigger.SAFETY).order_by("-created_at").values("started_at")[:1])
    return (BackupSchedule.objects.for_user(user).select_related("server")
            .annotate(last_backup_at=Subquery(last_ok))
            .order_by("server__name", "id"))


class ServerScopedView(GenericAPIView):
    def server(self) -> Server:
        return visible_server(self.request, self.kwargs["server_id"])


# --- schedules -------------------------------------------------------------------

class ScheduleListView(GenericAPIView):
    serializer_class = s.ScheduleOutputSerializer

    @extend_schema(summary="List backup schedules", responses={200: s.ScheduleOutputSerializer(many=True)})
    def get(self, request):
        page = self.paginate_queryset(schedules_for(request.user))
        return self.get_paginated_response(s.ScheduleOutputSerializer(page, many=True).data)

    @extend_schema(summary="Create a backup schedule", request=s.ScheduleCreateSerializer,
                   responses={201: s.ScheduleOutputSerializer, **envelope_errors(400, 404, 409)})
    def post(self, request):
        data = _validated(s.ScheduleCreateSerializer, request)
        server = visible_server(request, data.pop("server_id"))
        schedule = schedules.backup_schedule_create(server=server, data=data, actor=request.user, request=request)
        return respond(s.ScheduleOutputSerializer(schedules_for(request.user).get(pk=schedule.pk)).data,
                       message="Schedule created", status_code=201)


class ScheduleDetailView(GenericAPIView):
    serializer_class = s.ScheduleOutputSerializer

    def schedule(self) -> BackupSchedule:
        server = visible_server(self.request, self.kwargs["server_id"])
        schedule = schedules_for(self.request.user).filter(server=server).first()
        if schedule is None:
            raise DomainError(ErrorCode.SCHEDULE_NOT_FOUND, f"No backup schedule for server {server.pk}")
        return schedule

    @extend_schema(summary="Get a server's schedule", responses={200: s.ScheduleOutputSerializer})
    def get(self, request, server_id):
        return respond(s.ScheduleOutputSerializer(self.schedule()).data)

    @extend_schema(summary="Update a server's schedule (partial bodies accepted, as the seed shows)",
                   request=s.ScheduleInputSerializer, responses={200: s.ScheduleOutputSerializer})
    def put(self, request, server_id):
        return self._update(request)

    @extend_schema(summary="Partially update a server's schedule", request=s.ScheduleInputSerializer,
                   responses={200: s.ScheduleOutputSerializer})
    def patch(self, request, server_id):
        return self._update(request)

    def _update(self, request):
        schedule = self.schedule()
        data = _validated(s.ScheduleInputSerializer, request, partial=True)
        if "server_id" in data and data.pop("server_id") != schedule.server_id:
            raise DomainError(ErrorCode.VALIDATION_ERROR, "A schedule cannot move to another server",
                              details={"server_id": ["A schedule cannot move to another server."]})
        schedules.backup_schedule_update(schedule=schedule, data=data, actor=request.user, request=request)
        return respond(s.ScheduleOutputSerializer(schedules_for(request.user).get(pk=schedule.pk)).data,
                       message="Schedule updated")

    @extend_schema(summary="Delete a server's schedule", responses={200: OpenApiResponse(description="Deleted")})
    def delete(self, request, server_id):
        schedules.backup_schedule_delete(schedule=self.schedule(), actor=request.user, request=request)
        return respond(None, message="Schedule deleted")


class RetentionPreviewView(GenericAPIView):
    serializer_class = s.RetentionPreviewSerializer

    @extend_schema(
        summary="Preview a retention change: which backups it would delete now, and what keeps the others",
        description="Takes any of the schedule's retention fields (one not sent keeps its current value; a server "
                    "without a schedule keeps 30 days) and changes nothing. `would_delete` is what the next "
                    "retention run (after a backup, or the hourly sweep) would delete if the change were saved.",
        request=s.RetentionFieldsSerializer,
        responses={200: s.RetentionPreviewSerializer, **envelope_errors(400, 404)})
    def post(self, request, server_id):
        server = visible_server(request, server_id)
        data = _validated(s.RetentionFieldsSerializer, request)
        schedule = BackupSchedule.objects.filter(server=server).first()
        policy = retention.RetentionPolicy.of(schedule).changed(**data)
        plan = retention.retention_preview(server=server, policy=policy)
        return respond(s.RetentionPreviewSerializer({
            "would_delete": [{"id": d.record.pk, "filename": d.record.filename, "created_at": d.record.created_at,
                              "size_bytes": d.record.size_bytes, "reason": d.reason} for d in plan.deleted],
            "kept": len(plan.kept),
            "kept_by": plan.kept_by(),
            "retention_description": policy.describe(),
        }).data, message=f"{len(plan.deleted)} backup{'s' if len(plan.deleted) != 1 else ''} would be deleted")


# --- backups -----------------------------------------------------------------------

class TriggerView(ServerScopedView):
    throttle_classes = [TriggerThrottle, UserRateThrottle]
    serializer_class = s.BackupOutputSerializer

    @extend_schema(summary="Trigger a backup now", request=None,
                   responses={202: s.BackupOutputSerializer, **envelope_errors(404, 409, 507)})
    def post(self, request, server_id):
        record = runs.backup_trigger(server=self.server(), actor=request.user, request=request)
        return respond(s.BackupOutputSerializer(record).data, message="Backup queued", status_code=202)


class HistoryView(ServerScopedView):
    serializer_class = s.BackupOutputSerializer

    @extend_schema(summary="Every backup of the server, newest first", responses={200: s.BackupOutputSerializer(many=True)})
    def get(self, request, server_id):
        records = BackupRecord.objects.filter(server=self.server()).order_by("-created_at", "-id")
        page = self.paginate_queryset(records)
        return self.get_paginated_response(s.BackupOutputSerializer(page, many=True).data)


class AvailableView(ServerScopedView):
    serializer_class = s.BackupOutputSerializer

    @extend_schema(summary="Backups that can be restored (succeeded, file present, a verified off-site copy, "
                           "or a snapshot in its repository)",
                   responses={200: s.BackupOutputSerializer(many=True)})
    def get(self, request, server_id):
        records = (BackupRecord.objects.filter(server=self.server(), status=BackupRecord.Status.SUCCEEDED)
                   .filter(~Q(storage_path="") | ~Q(snapshot_id="") | Q(copies__status=OffsiteCopy.Status.VERIFIED))
                   .distinct()
                   .select_related("server").order_by("-created_at", "-id"))
        page = self.paginate_queryset(records)
        present = [r for r in page if copy_source.available(r)]
        return self.get_paginated_response(s.BackupOutputSerializer(present, many=True).data)


StatusSerializer = inline_serializer("BackupStatus", {
    "server_id": serializers.IntegerField(),
    "server_name": serializers.CharField(),
    "server_status": serializers.DictField(),
    "schedule": s.ScheduleOutputSerializer(allow_null=True),
    "next_run": serializers.DateTimeField(allow_null=True),
    "time_zone": serializers.CharField(),
    "running_backup": s.BackupOutputSerializer(allow_null=True),
    "running_restore": s.RestoreOutputSerializer(allow_null=True),
    "last_backup": s.BackupOutputSerializer(allow_null=True),
    "last_successful_backup": s.BackupOutputSerializer(allow_null=True),
    "metrics": serializers.DictField(),
    "disk_usage": serializers.DictField(),
})


class StatusView(ServerScopedView):
    serializer_class = StatusSerializer

    @extend_schema(summary="Schedule, next run, running backup and progress, last backup, metrics, disk usage",
                   responses={200: StatusSerializer})
    def get(self, request, server_id):
        from django.conf import settings

        server = self.server()
        status = backup_status(server=server)
        schedule = schedules_for(request.user).filter(server=server).first()
        metrics = dict(status["metrics"])
        if metrics.get("last_success_at"):
            metrics["last_success_at"] = metrics["last_success_at"].isoformat()

        def one(serializer, obj):
            return serializer(obj).data if obj is not None else None

        return respond({
            "server_id": server.pk,
            "server_name": server.name,
            "server_status": server_status(server=server),
            "schedule": one(s.ScheduleOutputSerializer, schedule),
            "next_run": status["next_run"].isoformat() if status["next_run"] else None,
            "time_zone": settings.MCSITE_TIME_ZONE,
            "running_backup": one(s.BackupOutputSerializer, status["running_backup"]),
            "running_restore": one(s.RestoreOutputSerializer, status["running_restore"]),
            "last_backup": one(s.BackupOutputSerializer, status["last_backup"]),
            "last_successful_backup": one(s.BackupOutputSerializer, status["last_successful_backup"]),
            "metrics": metrics,
            "disk_usage": status["disk_usage"],
        })


class BackupDetailView(ServerScopedView):
    serializer_class = s.BackupOutputSerializer

    def record(self) -> BackupRecord:
        record = BackupRecord.objects.filter(server=self.server(), pk=self.kwargs["backup_id"]).first()
        if record is None:
            raise DomainError(ErrorCode.BACKUP_NOT_FOUND)
        return record

    @extend_schema(summary="One backup (poll it for progress)", responses={200: s.BackupOutputSerializer})
    def get(self, request, server_id, backup_id):
        return respond(s.BackupOutputSerializer(self.record()).data)

    @extend_schema(summary="Delete a backup (file removed, record kept as deleted)",
                   responses={200: s.BackupOutputSerializer, **envelope_errors(403, 409)})
    def delete(self, request, server_id, backup_id):
        record = actions.backup_delete(record=self.record(), actor=request.user, request=request)
        return respond(s.BackupOutputSerializer(record).data, message="Backup deleted")


class BackupVerifyView(BackupDetailView):
    http_method_names = ["post", "options"]
    @extend_schema(summary="Verify a stored backup again (queued)", request=None,
                   responses={202: s.BackupOutputSerializer, **envelope_errors(409)})
    def post(self, request, server_id, backup_id):
        record = actions.backup_verify_request(record=self.record(), actor=request.user, request=request)
        return respond(s.BackupOutputSerializer(record).data, message="Verification queued", status_code=202)


class BackupLockView(BackupDetailView):
    http_method_names = ["post", "options"]
    locked = True

    @extend_schema(summary="Lock (pin) or unlock a backup: locked backups are never deleted by retention",
                   request=None, responses={200: s.BackupOutputSerializer})
    def post(self, request, server_id, backup_id):
        record = actions.backup_lock(record=self.record(), locked=self.locked, actor=request.user, request=request)
        return respond(s.BackupOutputSerializer(record).data, message="Backup locked" if self.locked else "Backup unlocked")


class BackupUnlockView(BackupLockView):
    locked = False


_FROM_COPY = ("A snapshot (incremental backup) is exported while it streams as an ordinary .tar.gz "
              "(`<filename>.tar.gz`). When the local file is gone (dropped by emergency cleanup, or a record rebuilt by import_backups), "
              "the backup is served from a verified off-site copy: a redirect to a signed URL valid 5 minutes for "
              "S3, the bytes streamed through for a folder or SFTP target.")


class BackupDownloadView(BackupDetailView):
    http_method_names = ["get", "head", "options"]
    @extend_schema(summary="Download the backup file (streamed)",
                   description=_FROM_COPY,
                   responses={(200, "application/octet-stream"): OpenApiResponse(description="The backup file"),
                              302: OpenApiResponse(description="A 5-minute signed URL of its S3 copy")})
    def get(self, request, server_id, backup_id):
        return _download(request, self.record())


def _download(request, record: BackupRecord):
    from mcsite.audit import audit

    if record.status not in (BackupRecord.Status.SUCCEEDED, BackupRecord.Status.FAILED):
        raise DomainError(ErrorCode.BACKUP_NOT_FOUND, "The backup file is not there")
    if record.is_snapshot:
        return _snapshot_download(request, record)
    if storage.file_visible_here(record):
        audit(actor=request.user, action="backup.download", obj=record, request=request)
        return FileResponse(open(storage.absolute_path(record.storage_path), "rb"), as_attachment=True,
                            filename=record.filename, content_type="application/octet-stream")
    # The local file is gone, or on a game host this web server cannot read (issue #15):
    # from a verified off-site copy (issue #13) — S3 redirects to a 5-minute signed URL,
    # a folder or SFTP target is streamed through.
    copies = copy_source.verified_copies(record)
    if not copies:
        raise DomainError(ErrorCode.BACKUP_NOT_FOUND, copy_source.no_download_reason(record))
    source = copy_source.Source(record, copies[0])
    url = copy_source.signed_url(source.copy, filename=record.filename)
    audit(actor=request.user, action="backup.download", obj=record, request=request,
          detail={"from_target": source.copy.target.name, "redirect": bool(url)})
    if url:
        response = HttpResponseRedirect(url)
        response["Cache-Control"] = "no-store"
        return response
    stream = copy_source.CopyStream(source.copy)
    response = StreamingHttpResponse(stream, content_type="application/octet-stream")
    response["Content-Length"] = str(stream.size)
    response["Content-Disposition"] = content_disposition_header(True, record.filename)
    return response


def _snapshot_download(request, record: BackupRecord):
    """A snapshot (issue #14) exported as an ordinary .tar.gz while it streams."""
    from mcsite.audit import audit

    if copy_source.source_for(record) is None:
        raise DomainError(ErrorCode.BACKUP_NOT_FOUND, copy_source.no_download_reason(record))
    chunks = snapshots.export_chunks(record)
    audit(actor=request.user, action="backup.download", obj=record, request=request, detail={"export": "tar.gz"})
    response = StreamingHttpResponse(chunks, content_type="application/gzip")
    response["Content-Disposition"] = content_disposition_header(True, f"{record.filename}.tar.gz")
    return response


# --- backup format (issue #14) -----------------------------------------------------------

class BackupFormatView(ServerScopedView):
    serializer_class = s.BackupFormatSerializer

    def _answer(self, server, message: str = "OK"):
        row = snapshots.repository_of(server)
        data = {"format": "incremental" if row is not None and row.active else "archive",
                "repository": s.RepositorySerializer(row).data if row is not None else None}
        return respond(data, message=message)

    @extend_schema(summary="The server's backup format and its repository's size and deduplication",
                   responses={200: s.BackupFormatSerializer, **envelope_errors(404)})
    def get(self, request, server_id):
        return self._answer(self.server())

    @extend_schema(summary="Switch between archives and incremental snapshots",
                   description="Switching to incremental makes the server's repository (written by its first "
                               "snapshot); switching back keeps the repository and its snapshots, restorable.",
                   request=s.BackupFormatInputSerializer,
                   responses={200: s.BackupFormatSerializer, **envelope_errors(400, 403, 404)})
    def put(self, request, server_id):
        server = self.server()
        data = _validated(s.BackupFormatInputSerializer, request)
        snapshots.backup_format_set(server=server, backup_format=data["format"],
                                    target_name=data.get("repository_target"), actor=request.user, request=request)
        server.refresh_from_db()
        return self._answer(server, message=f"Backup format: {data['format']}")


# --- restores ------------------------------------------------------------------------

PreviewSerializer = inline_serializer("RestorePreview", {
    "backup": s.BackupOutputSerializer(),
    "contents": serializers.DictField(),
    "space": serializers.DictField(),
    "server_running": serializers.BooleanField(),
    "warnings": serializers.ListField(child=serializers.CharField()),
    "confirm_required": serializers.BooleanField(),
    "paths": serializers.ListField(child=serializers.DictField(), help_text="A partial restore: what is replaced"),
})


class RestoreView(ServerScopedView):
    throttle_classes = [RestoreThrottle, UserRateThrottle]
    serializer_class = s.RestoreOutputSerializer

    @extend_schema(
        summary="Preview (confirm: false) or start (confirm: true) a restore",
        request=s.RestoreInputSerializer,
        responses={200: PreviewSerializer, 202: s.RestoreOutputSerializer, **envelope_errors(404, 409)},
    )
    def post(self, request, server_id):
        server = self.server()
        data = _validated(s.RestoreInputSerializer, request)
        if not data["confirm"]:
            preview = restores.restore_preview(server=server, backup_filename=data["backup_filename"],
                                               keep_excluded=data["keep_excluded"], paths=data["paths"])
            preview["backup"] = s.BackupOutputSerializer(preview["backup"]).data
            preview["confirm_required"] = True
            return respond(preview, message="Restore preview: nothing was changed. Send confirm: true to restore.")
        restore = restores.restore_request(server=server, backup_filename=data["backup_filename"],
                                           actor=request.user, request=request,
                                           keep_excluded=data["keep_excluded"], paths=data["paths"])
        return respond(s.RestoreOutputSerializer(restore).data, message="Restore started", status_code=202)


class RestoreListView(ServerScopedView):
    serializer_class = s.RestoreOutputSerializer

    @extend_schema(summary="Restores of the server, newest first", responses={200: s.RestoreOutputSerializer(many=True)})
    def get(self, request, server_id):
        restores_qs = RestoreRequest.objects.filter(server=self.server()).select_related("safety_backup")
        page = self.paginate_queryset(restores_qs.order_by("-created_at", "-id"))
        return self.get_paginated_response(s.RestoreOutputSerializer(page, many=True).data)


class RestoreDetailView(ServerScopedView):
    serializer_class = s.RestoreOutputSerializer

    def restore(self) -> RestoreRequest:
        restore = (RestoreRequest.objects.filter(server=self.server(), pk=self.kwargs["restore_id"])
                   .select_related("safety_backup", "server").first())
        if restore is None:
            raise DomainError(ErrorCode.NOT_FOUND)
        return restore

    @extend_schema(summary="One restore and its state", responses={200: s.RestoreOutputSerializer})
    def get(self, request, server_id, restore_id):
        return respond(s.RestoreOutputSerializer(self.restore()).data)


class RollbackView(RestoreDetailView):
    http_method_names = ["post", "options"]
    throttle_classes = [RestoreThrottle, UserRateThrottle]

    @extend_schema(summary="Undo a finished restore from its safety backup", request=None,
                   responses={202: s.RestoreOutputSerializer, **envelope_errors(404, 409)})
    def post(self, request, server_id, restore_id):
        rollback = restores.restore_rollback(restore=self.restore(), actor=request.user, request=request)
        return respond(s.RestoreOutputSerializer(rollback).data, message="Rollback started", status_code=202)


# --- backups kept after their server was deleted --------------------------------

class DetachedListView(GenericAPIView):
    serializer_class = s.BackupOutputSerializer

    @extend_schema(summary="Your backups whose server was deleted (kept at deletion), newest first",
                   responses={200: s.BackupOutputSerializer(many=True)})
    def get(self, request):
        records = (BackupRecord.objects.for_user(request.user).filter(server__isnull=True)
                   .exclude(status=BackupRecord.Status.DELETED).order_by("-created_at", "-id"))
        page = self.paginate_queryset(records)
        return self.get_paginated_response(s.BackupOutputSerializer(page, many=True).data)


class DetachedDetailView(GenericAPIView):
    serializer_class = s.BackupOutputSerializer

    def record(self) -> BackupRecord:
        record = (BackupRecord.objects.for_user(self.request.user)
                  .filter(server__isnull=True, pk=self.kwargs["backup_id"]).first())
        if record is None:
            raise DomainError(ErrorCode.BACKUP_NOT_FOUND)
        return record

    @extend_schema(summary="One backup of a deleted server", responses={200: s.BackupOutputSerializer})
    def get(self, request, backup_id):
        return respond(s.BackupOutputSerializer(self.record()).data)

    @extend_schema(summary="Delete a backup of a deleted server (file removed, record kept)",
                   responses={200: s.BackupOutputSerializer, **envelope_errors(403, 409)})
    def delete(self, request, backup_id):
        record = actions.backup_delete(record=self.record(), actor=request.user, request=request)
        return respond(s.BackupOutputSerializer(record).data, message="Backup deleted")


class DetachedDownloadView(DetachedDetailView):
    http_method_names = ["get", "head", "options"]

    @extend_schema(summary="Download a backup of a deleted server (streamed)",
                   description=_FROM_COPY,
                   responses={(200, "application/octet-stream"): OpenApiResponse(description="The backup file"),
                              302: OpenApiResponse(description="A 5-minute signed URL of its S3 copy")})
    def get(self, request, backup_id):
        return _download(request, self.record())
