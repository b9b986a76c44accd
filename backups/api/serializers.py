import re

from django.conf import settings
from django.db.models import Prefetch, prefetch_related_objects
from django.utils import timezone
from drf_spectacular.utils import extend_schema_field, inline_serializer
from rest_framework import serializers

from backups import scheduling, verification_display
from backups.models import BackupRecord, BackupSchedule, Compression, OffsiteCopy, RestoreRequest
from backups.services.retention import describe_retention
from mcsite.api.fields import RejectUnknownFieldsMixin, StrictBooleanField, StrictCharField, StrictIntegerField

HH_MM = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")


class ScheduleTimeField(StrictCharField):
    """Strict 24-hour "HH:MM": "2:5", "24:00" and "02:00:00" are refused."""

    default_error_messages = {"format": 'Must be a time as "HH:MM" (24-hour, two digits each), e.g. "02:00".'}

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if not HH_MM.match(value):
            self.fail("format")
        hour, minute = value.split(":")
        return timezone.datetime.strptime(f"{hour}:{minute}", "%H:%M").time()

    def to_representation(self, value):
        return value.strftime("%H:%M")


RETENTION_COUNT_ERRORS = {"min_value": "Must be from 1 to 1000, or null to turn the rule off.",
                          "max_value": "Must be from 1 to 1000, or null to turn the rule off."}


class RetentionCountField(StrictIntegerField):
    """A count/GFS retention rule (services/retention.py): 1–1000, null = off."""

    def __init__(self, **kwargs):
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", 1000)
        kwargs.setdefault("required", False)
        kwargs.setdefault("allow_null", True)
        kwargs.setdefault("error_messages", RETENTION_COUNT_ERRORS)
        super().__init__(**kwargs)


class RetentionFieldsSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    """The body of a retention preview: any of the schedule's retention
    fields; one not sent keeps its current value."""

    retention_days = StrictIntegerField(min_value=1, max_value=365, required=False)
    keep_last = RetentionCountField()
    keep_hourly = RetentionCountField()
    keep_daily = RetentionCountField()
    keep_weekly = RetentionCountField()
    keep_monthly = RetentionCountField()


class RetentionDeletionSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    filename = serializers.CharField()
    created_at = serializers.DateTimeField()
    size_bytes = serializers.IntegerField(allow_null=True)
    reason = serializers.CharField(help_text='"age": older than retention_days and no count rule keeps it; '
                                             '"emergency": the backup disk is nearly full')


class RetentionPreviewSerializer(serializers.Serializer):
    would_delete = RetentionDeletionSerializer(many=True)
    kept = serializers.IntegerField(help_text="How many stored backups stay")
    kept_by = serializers.DictField(
        child=serializers.IntegerField(),
        help_text="How many backups each rule keeps (a backup kept by two rules counts for each): days, last, "
                  "hourly, daily, weekly, monthly, locked, newest, in_use, safety")
    retention_description = serializers.CharField()


class ScheduleInputSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    server_id = StrictIntegerField(min_value=1, required=False)
    schedule_type = serializers.ChoiceField(choices=BackupSchedule.ScheduleType.choices, required=False)
    schedule_time = ScheduleTimeField(required=False, allow_null=True,
                                      help_text="hourly: the anchor of the runs; cron: not used (null)")
    interval_hours = StrictIntegerField(required=False, allow_null=True,
                                        help_text="hourly only: 1, 2, 3, 4, 6, 8 or 12")
    cron_expression = StrictCharField(required=False, allow_null=True, allow_blank=True, max_length=255,
                                      help_text='cron only: 5 fields, e.g. "15 3 * * 1,5"')
    retention_days = StrictIntegerField(min_value=1, max_value=365, required=False)
    keep_last = RetentionCountField(help_text="Keep the newest N successful backups whatever their age")
    keep_hourly = RetentionCountField(help_text="Keep the newest backup of each of the last N hours that have one")
    keep_daily = RetentionCountField(help_text="Keep the newest backup of each of the last N days that have one")
    keep_weekly = RetentionCountField(help_text="Keep the newest backup of each of the last N ISO weeks that have one")
    keep_monthly = RetentionCountField(help_text="Keep the newest backup of each of the last N months that have one")
    enabled = StrictBooleanField(required=False)
    compression = serializers.ChoiceField(choices=Compression.choices, required=False, allow_null=True,
                                          help_text="null: the site default")
    encrypt = StrictBooleanField(required=False, allow_null=True, help_text="null: the site default")
    skip_unchanged = StrictBooleanField(
        required=False, help_text="Skip a scheduled backup when no player is online and no file changed since "
                                  "the last successful backup (the record says skipped, and why)")


    def validate_compression(self, value):
        return value or ""

    def validate_interval_hours(self, value):
        if value is not None and value not in scheduling.HOURLY_INTERVALS:
            raise serializers.ValidationError(
                "Must be 1, 2, 3, 4, 6, 8 or 12 (divisors of 24, so runs stay evenly spaced every day).")
        return value

    def validate_cron_expression(self, value):
        # Which type may carry it is the service's rule (scheduling.schedule_problems).
        if not value:
            return ""
        try:
            scheduling.parse_cron(value)
        except scheduling.CronError as exc:
            raise serializers.ValidationError(str(exc)) from None
        return " ".join(value.split())


class ScheduleCreateSerializer(ScheduleInputSerializer):
    server_id = StrictIntegerField(min_value=1)
    schedule_type = serializers.ChoiceField(choices=BackupSchedule.ScheduleType.choices)

    def to_internal_value(self, data):
        # schedule_time is required unless the schedule is a cron expression;
        # named with the other missing fields, not after them.
        errors, value = {}, None
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as exc:
            errors = dict(exc.detail)
        if (isinstance(data, dict) and data.get("schedule_time") is None and "schedule_time" not in errors
                and data.get("schedule_type") != BackupSchedule.ScheduleType.CRON):
            errors["schedule_time"] = [serializers.ErrorDetail("This field is required (except for cron schedules).",
                                                               code="required")]
        if errors:
            raise serializers.ValidationError(errors)
        return value


class ScheduleOutputSerializer(serializers.ModelSerializer):
    server_id = serializers.IntegerField(read_only=True)
    server_name = serializers.CharField(source="server.name", read_only=True)
    schedule_time = serializers.SerializerMethodField()
    cron_expression = serializers.SerializerMethodField()
    description = serializers.SerializerMethodField()
    retention_description = serializers.SerializerMethodField(
        help_text='The retention in words, e.g. "Keeps 2 days, and one a day for 30 days"')
    compression = serializers.SerializerMethodField()
    last_backup = serializers.SerializerMethodField()
    next_run = serializers.SerializerMethodField()
    next_runs = serializers.SerializerMethodField()
    time_zone = serializers.SerializerMethodField()

    class Meta:
        model = BackupSchedule
        fields = ["id", "server_id", "server_name", "schedule_type", "schedule_time", "interval_hours",
                  "cron_expression", "description", "time_zone", "retention_days", "keep_last", "keep_hourly",
                  "keep_daily", "keep_weekly", "keep_monthly", "retention_description", "enabled", "compression",
                  "encrypt", "skip_unchanged", "last_backup", "next_run", "next_runs", "created_at", "updated_at"]
        read_only_fields = fields

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_schedule_time(self, schedule):
        return schedule.schedule_time.strftime("%H:%M") if schedule.schedule_time else None

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_cron_expression(self, schedule):
        return schedule.cron_expression or None

    def get_description(self, schedule) -> str:
        return scheduling.describe(schedule)

    def get_retention_description(self, schedule) -> str:
        return describe_retention(schedule)

    @staticmethod
    def _runs(schedule) -> list:
        # Computed once per object, so next_run is next_runs[0].
        if not hasattr(schedule, "_next_runs"):
            schedule._next_runs = scheduling.next_runs(schedule)
        return schedule._next_runs

    @extend_schema_field(serializers.ListField(child=serializers.DateTimeField()))
    def get_next_runs(self, schedule):
        return [run.isoformat() for run in self._runs(schedule)]

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_compression(self, schedule):
        return schedule.compression or None

    @extend_schema_field(serializers.DateTimeField(allow_null=True))
    def get_last_backup(self, schedule):
        value = getattr(schedule, "last_backup_at", None)
        return serializers.DateTimeField().to_representation(value) if value else None

    @extend_schema_field(serializers.DateTimeField(allow_null=True))
    def get_next_run(self, schedule):
        runs = self._runs(schedule)
        return runs[0].isoformat() if runs else None

    def get_time_zone(self, schedule) -> str:
        return settings.MCSITE_TIME_ZONE


class ProgressSerializer(serializers.Serializer):
    phase = serializers.CharField()
    bytes_done = serializers.IntegerField()
    bytes_total = serializers.IntegerField()
    percent = serializers.FloatField(allow_null=True)


def progress_of(obj) -> dict:
    total = obj.progress_total or 0
    done = obj.progress_bytes or 0
    percent = round(min(100.0, 100.0 * done / total), 1) if total else None
    return {"phase": obj.phase, "bytes_done": done, "bytes_total": total, "percent": percent}


class VerificationMethodSerializer(serializers.Serializer):
    """One verification method. A method that did not run is "skipped" with
    `ok` null: it counts neither as passed nor as failed."""

    status = serializers.CharField(help_text='"passed", "failed" or "skipped"')
    ok = serializers.BooleanField(allow_null=True, help_text="true passed, false failed, null skipped")
    errors = serializers.ListField(child=serializers.CharField(), help_text="The first 20, each naming its file")
    warnings = serializers.ListField(child=serializers.CharField())
    reason = serializers.CharField(allow_null=True, help_text="Why a skipped method did not run")


class VerificationSerializer(serializers.Serializer):
    passed = serializers.BooleanField(allow_null=True)
    methods = serializers.DictField(child=VerificationMethodSerializer(),
                                    help_text="checksum, archive_integrity, world_validation, restore_test")
    read_from = serializers.CharField(help_text="'local' (the backup root) or the storage target whose copy was "
                                                "read because the local file was gone")


class OffsiteCopyOutputSerializer(serializers.ModelSerializer):
    """A backup's copy on one storage target (issue #13)."""

    target = serializers.CharField(source="target.name", help_text="The storage target's name")

    class Meta:
        model = OffsiteCopy
        fields = ["target", "status", "error_code", "error_message", "verified_at", "size_bytes"]
        read_only_fields = fields


class BackupListSerializer(serializers.ListSerializer):
    """Lists fetch every row's copies in one query, whatever the rows."""

    def to_representation(self, data):
        items = list(data.all() if hasattr(data, "all") else data)
        prefetch_related_objects(items, Prefetch("copies", queryset=OffsiteCopy.objects.select_related("target")
                                                 .order_by("target__name")))
        return super().to_representation(items)


class BackupOutputSerializer(serializers.ModelSerializer):
    """The seed's Backup Object plus SPEC §10's fields; never a filesystem path."""

    server_id = serializers.IntegerField(read_only=True, allow_null=True)
    size = serializers.IntegerField(source="size_bytes", allow_null=True)
    size_mb = serializers.SerializerMethodField()
    created = serializers.SerializerMethodField(help_text="When the snapshot was taken (queued time until it starts)")
    age_days = serializers.SerializerMethodField()
    checksum = serializers.SerializerMethodField()
    verification = serializers.SerializerMethodField()
    progress = serializers.SerializerMethodField()
    copies = serializers.SerializerMethodField(help_text="Its off-site copies, one per storage target")
    format = serializers.SerializerMethodField(help_text='"archive" (a file) or "snapshot" (incremental, issue #14)')
    snapshot = serializers.SerializerMethodField(
        help_text="A snapshot's repository facts (null for an archive): `size` is what it added to the repository")

    class Meta:
        model = BackupRecord
        list_serializer_class = BackupListSerializer
        fields = ["id", "server_id", "server_name", "filename", "size", "size_mb", "created", "age_days", "checksum",
                  "md5", "quality_score", "quality_level", "status", "trigger", "compression", "encrypted",
                  "duration_seconds", "verification", "verified_at", "rechecked_at", "locked", "error_code",
                  "error_message", "file_count", "world_name", "minecraft_version", "warnings", "started_at",
                  "finished_at", "progress", "not_before", "skip_reason", "copies", "format", "snapshot"]
        read_only_fields = fields
        extra_kwargs = {
            "not_before": {"help_text": "A queued backup whose players are being warned starts no earlier "
                                        "than this (null: no countdown)"},
            "skip_reason": {"help_text": 'Why a scheduled backup was skipped (status "skipped"); "" otherwise'},
        }

    def get_format(self, record) -> str:
        return "snapshot" if record.snapshot_id else "archive"

    @extend_schema_field(inline_serializer("SnapshotFacts", {
        "id": serializers.CharField(), "added_bytes": serializers.IntegerField(allow_null=True),
        "world_bytes": serializers.IntegerField(allow_null=True),
        "files_unchanged": serializers.IntegerField(allow_null=True, help_text="Taken from the parent unread"),
    }, allow_null=True))
    def get_snapshot(self, record):
        if not record.snapshot_id:
            return None
        return {"id": record.snapshot_id, "added_bytes": record.size_bytes, "world_bytes": record.source_bytes,
                "files_unchanged": record.files_unchanged}

    @extend_schema_field(serializers.DateTimeField())
    def get_created(self, record):
        return serializers.DateTimeField().to_representation(record.taken_at)

    @extend_schema_field(serializers.FloatField(allow_null=True))
    def get_size_mb(self, record):
        return round(record.size_bytes / 2**20, 2) if record.size_bytes is not None else None

    def get_age_days(self, record) -> float:
        return round((timezone.now() - (record.taken_at)).total_seconds() / 86400, 2)

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_checksum(self, record):
        return f"sha256:{record.sha256}" if record.sha256 else None

    @extend_schema_field(VerificationSerializer(allow_null=True))
    def get_verification(self, record):
        return verification_display.api_verification(record)

    @extend_schema_field(ProgressSerializer(allow_null=True))
    def get_progress(self, record):
        return progress_of(record) if record.is_active else None

    @extend_schema_field(OffsiteCopyOutputSerializer(many=True))
    def get_copies(self, record):
        if not record.pk:
            return []
        prefetched = "copies" in getattr(record, "_prefetched_objects_cache", {})
        copies = (record.copies.all() if prefetched
                  else record.copies.select_related("target").order_by("target__name"))
        return OffsiteCopyOutputSerializer(copies, many=True).data


class RestoreOutputSerializer(serializers.ModelSerializer):
    server_id = serializers.IntegerField(read_only=True)
    safety_backup = serializers.SerializerMethodField()
    progress = serializers.SerializerMethodField()
    steps = serializers.SerializerMethodField()

    class Meta:
        model = RestoreRequest
        fields = ["id", "server_id", "kind", "backup_filename", "status", "safety_backup", "rollback_of",
                  "created_at", "started_at", "finished_at", "file_count", "server_was_running", "keep_excluded",
                  "paths", "error_code", "error_message", "progress", "steps"]
        read_only_fields = fields

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_safety_backup(self, restore):
        return restore.safety_backup.filename if restore.safety_backup_id and restore.safety_backup else None

    @extend_schema_field(ProgressSerializer(allow_null=True))
    def get_progress(self, restore):
        return progress_of(restore) if restore.status in ("queued", "running") else None

    @extend_schema_field(serializers.ListField(child=serializers.DictField()))
    def get_steps(self, restore):
        # Step names and times only: the folder names they carry stay inside.
        return [{"step": s.get("step"), "at": s.get("at")} for s in restore.steps]


class RestoreInputSerializer(serializers.Serializer):
    backup_filename = StrictCharField(max_length=255)
    confirm = StrictBooleanField(required=False, default=False)
    keep_excluded = StrictBooleanField(
        required=False, default=True,
        help_text="Keep what backups exclude (the server's exclude patterns, e.g. logs/) from the current "
                  "folder; false makes the folder exactly the backup")
    paths = serializers.ListField(
        child=StrictCharField(max_length=4096, trim_whitespace=False), required=False, default=list, max_length=100,
        help_text="Restore only these folder-relative paths of the backup (e.g. world/DIM-1, a dimension's folder, "
                  "world/playerdata or one file); everything else in the server folder stays as it is. Each must "
                  "be in the backup's file list (GET …/backups/{id}/files/). Empty: the whole backup")


class LockInputSerializer(serializers.Serializer):
    locked = StrictBooleanField(required=False, default=True)


class RepositorySerializer(serializers.Serializer):
    """A server's incremental repository (issue #14)."""

    location = serializers.SerializerMethodField(help_text='"backup root" of the game host, or the storage target')
    target = serializers.CharField(source="target.name", allow_null=True, default=None)
    active = serializers.BooleanField()
    snapshots = serializers.SerializerMethodField(help_text="Snapshots kept (succeeded)")
    stored_bytes = serializers.IntegerField(help_text="Total repository size")
    world_bytes = serializers.IntegerField(source="logical_bytes",
                                           help_text="Sum of the world sizes of its snapshots (full copies would take this)")
    dedup_ratio = serializers.FloatField(allow_null=True, help_text="world_bytes / stored_bytes")
    pruned_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()

    def get_location(self, row) -> str:
        return f"target {row.target.name}" if row.target_id else "backup root"

    def get_snapshots(self, row) -> int:
        return row.snapshots.filter(status=BackupRecord.Status.SUCCEEDED).exclude(snapshot_id="").count()


class BackupFormatSerializer(serializers.Serializer):
    format = serializers.ChoiceField(choices=["archive", "incremental"])
    repository = RepositorySerializer(allow_null=True, help_text="null until the server first switched to incremental")


class BackupFormatInputSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    format = serializers.ChoiceField(choices=["archive", "incremental"])
    repository_target = serializers.CharField(
        required=False, allow_null=True, default=None,
        help_text="Name of a storage target for a new repository (admins only); omitted or null: where the "
                  "repository already is, or the game host's backup root for a new one")
