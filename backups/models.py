from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models.signals import pre_delete
from django.dispatch import receiver
from django.utils import timezone

from mcsite.ownership import OwnedQuerySet, owned_queryset
from mcsite.sealing import seal, unseal

ACTIVE_STATUSES = ("queued", "running")


class Compression(models.TextChoices):
    GZIP = "gzip"
    BZIP2 = "bzip2"
    LZMA = "lzma"
    ZSTD = "zstd"
    NONE = "none"


SCHEDULE_INTERVAL_HOURS = (1, 2, 3, 4, 6, 8, 12)  # divisors of 24 (scheduling.HOURLY_INTERVALS)


class BackupSchedule(models.Model):
    """One schedule per server (a database fact), owning one PeriodicTask."""

    class ScheduleType(models.TextChoices):
        DAILY = "daily"
        WEEKLY = "weekly"
        MONTHLY = "monthly"
        HOURLY = "hourly", "Every few hours"
        CRON = "cron", "Cron expression"

    server = models.OneToOneField("servers.Server", on_delete=models.CASCADE, related_name="backup_schedule")
    schedule_type = models.CharField(max_length=8, choices=ScheduleType.choices, default=ScheduleType.DAILY)
    schedule_time = models.TimeField(
        null=True, blank=True,
        help_text="HH:MM in the site's time zone (hourly: the anchor of the runs; cron: not used)")
    interval_hours = models.PositiveSmallIntegerField(
        null=True, blank=True, choices=[(n, f"every {n} h") for n in SCHEDULE_INTERVAL_HOURS],
        help_text="Hourly schedules only: run every N hours from the backup time")
    cron_expression = models.CharField(
        max_length=255, blank=True, default="",
        help_text='Cron schedules only: minute hour day-of-month month day-of-week, e.g. "15 3 * * 1,5"')
    retention_days = models.PositiveSmallIntegerField(
        default=30, validators=[MinValueValidator(1), MaxValueValidator(365)]
    )
    # Count and grandfather-father-son rules beside the days (SPEC §5.7, issue
    # #12): a backup is kept when any rule keeps it, as restic's `forget`
    # does. Empty: the rule is off.
    keep_last = models.PositiveSmallIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(1000)],
        help_text="Keep the newest N backups whatever their age")
    keep_hourly = models.PositiveSmallIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(1000)],
        help_text="Keep the newest backup of each of the last N hours that have one")
    keep_daily = models.PositiveSmallIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(1000)],
        help_text="Keep the newest backup of each of the last N days that have one")
    keep_weekly = models.PositiveSmallIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(1000)],
        help_text="Keep the newest backup of each of the last N weeks that have one")
    keep_monthly = models.PositiveSmallIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(1000)],
        help_text="Keep the newest backup of each of the last N months that have one")
    skip_unchanged = models.BooleanField(
        default=False, db_default=False,
        help_text="Skip a scheduled backup when no player was online and no world file changed "
                  "since the last good backup")
    enabled = models.BooleanField(default=True)
    compression = models.CharField(
        max_length=8, choices=Compression.choices, blank=True, default="", help_text="Empty: the site default"
    )
    encrypt = models.BooleanField(null=True, blank=True, help_text="Empty: the site default")
    periodic_task = models.OneToOneField(
        "django_celery_beat.PeriodicTask", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = owned_queryset("server__owner").as_manager()

    class Meta:
        ordering = ["server__name", "id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(retention_days__gte=1, retention_days__lte=365),
                name="schedule_retention_days_1_365",
            ),
            models.CheckConstraint(
                condition=models.Q(schedule_type__in=["daily", "weekly", "monthly", "hourly", "cron"]),
                name="schedule_type_valid",
            ),
            # Each type takes its own fields (scheduling.schedule_problems says so in words).
            models.CheckConstraint(
                condition=models.Q(schedule_type="cron") | models.Q(schedule_time__isnull=False),
                name="schedule_time_unless_cron",
                violation_error_message="A backup time is required unless the schedule is a cron expression.",
            ),
            models.CheckConstraint(
                condition=(models.Q(schedule_type="hourly", interval_hours__in=SCHEDULE_INTERVAL_HOURS)
                           | (~models.Q(schedule_type="hourly") & models.Q(interval_hours__isnull=True))),
                name="schedule_interval_hours_hourly_only",
                violation_error_message="Hourly schedules need interval_hours (1, 2, 3, 4, 6, 8 or 12); "
                                        "other types take none.",
            ),
            models.CheckConstraint(
                condition=((models.Q(schedule_type="cron") & ~models.Q(cron_expression=""))
                           | (~models.Q(schedule_type="cron") & models.Q(cron_expression=""))),
                name="schedule_cron_expression_cron_only",
                violation_error_message="Cron schedules need a cron expression; other types take none.",
            ),
        ]

    def __str__(self):
        return f"{self.server} {self.summary}"

    def clean(self):
        from django.core.exceptions import ValidationError

        from backups import scheduling

        problems = scheduling.schedule_problems(self)
        if problems:
            raise ValidationError(problems)

    @property
    def description(self) -> str:
        """In words, e.g. "every 6 hours at :30 from 02:30" (site zone)."""
        from backups import scheduling

        return scheduling.describe(self)

    @property
    def summary(self) -> str:
        """For pages: "Weekly at 03:30", "Every 6 hours at :30 from 02:30"."""
        if self.schedule_type in ("daily", "weekly", "monthly"):
            return f"{self.get_schedule_type_display()} at {self.schedule_time:%H:%M}"
        return self.description[:1].upper() + self.description[1:]

    def upcoming_runs(self) -> list:
        """The next five runs (aware, site zone); [] while disabled."""
        from backups import scheduling

        return scheduling.next_runs(self)


class BackupRecordQuerySet(OwnedQuerySet):
    """A backup belongs to whoever owns its server now (a server given to
    another user takes its backups along at once). Only a backup whose server
    was deleted is owned through its own `owner`: the server's last owner,
    written when it was detached (records.backups_detach_or_delete)."""

    def owner_filter(self, user) -> models.Q:
        return models.Q(server__owner=user) | models.Q(server__isnull=True, owner=user)


class BackupRecord(models.Model):
    """One backup: its file, checksums, verification and state. A deleted
    backup keeps its record (history) with status `deleted`."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        SKIPPED = "skipped"
        DELETED = "deleted"

    class Trigger(models.TextChoices):
        MANUAL = "manual"
        SCHEDULED = "scheduled"
        SAFETY = "safety", "Safety backup before a restore"

    server = models.ForeignKey(
        "servers.Server", null=True, blank=True, on_delete=models.SET_NULL, related_name="backups"
    )
    # Who owns the backup once its server is gone (the server's last owner).
    # While the server exists it is the server's owner that counts (see
    # BackupRecordQuerySet); this copy follows it (servers.services.server_update)
    # for display only. Deleting a user never deletes a backup through it.
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="backups"
    )
    server_name = models.CharField(max_length=100)
    # The folder (relative to the servers root) of the server when it was
    # deleted: while kept backups remember it, no other user may put a server
    # on that folder (it still holds the world they were taken from).
    server_directory = models.CharField(max_length=500, blank=True, default="")
    filename = models.CharField(max_length=200, blank=True)
    storage_path = models.CharField(max_length=500, blank=True, help_text="Relative to the backup root")
    # The game host whose backup root holds the file (issue #15); "" for records made before nodes
    # were recorded: the server's node, else this site's own.
    node = models.CharField(max_length=64, blank=True, default="")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED, db_index=True)
    trigger = models.CharField(max_length=10, choices=Trigger.choices, default=Trigger.MANUAL)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    compression = models.CharField(max_length=8, choices=Compression.choices, default=Compression.GZIP)
    encrypted = models.BooleanField(default=False)
    key_fingerprint = models.CharField(max_length=64, blank=True)
    size_bytes = models.BigIntegerField(null=True, blank=True)
    source_bytes = models.BigIntegerField(null=True, blank=True)
    file_count = models.IntegerField(null=True, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    md5 = models.CharField(max_length=32, blank=True)
    world_name = models.CharField(max_length=200, blank=True)
    minecraft_version = models.CharField(max_length=50, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_seconds = models.FloatField(null=True, blank=True)
    phase = models.CharField(max_length=20, blank=True)
    progress_bytes = models.BigIntegerField(default=0)
    progress_total = models.BigIntegerField(default=0)
    verification = models.JSONField(default=dict, blank=True)
    verified_at = models.DateTimeField(null=True, blank=True)
    verification_passed = models.BooleanField(null=True, blank=True)
    quality_score = models.PositiveSmallIntegerField(null=True, blank=True)
    quality_level = models.CharField(max_length=10, blank=True)
    locked = models.BooleanField(default=False, help_text="Locked backups are never deleted by retention")
    error_code = models.CharField(max_length=40, blank=True)
    error_message = models.TextField(blank=True)
    warnings = models.JSONField(default=list, blank=True)
    server_was_running = models.BooleanField(null=True, blank=True)
    server_stopped_by_backup = models.BooleanField(default=False)
    saves_paused = models.BooleanField(default=False, help_text="save-off was sent; the reaper sends save-on")
    task_id = models.CharField(max_length=64, blank=True)
    worker = models.CharField(max_length=200, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)
    # A queued run that waits for its players' countdown starts no earlier than this.
    not_before = models.DateTimeField(null=True, blank=True)
    skip_reason = models.CharField(max_length=300, blank=True, default="", db_default="", help_text="Why a scheduled backup was skipped")
    # Periodic re-verification (bit rot): when this backup was last read back again.
    rechecked_at = models.DateTimeField(null=True, blank=True)
    # The local file was dropped (emergency cleanup of a backup whose off-site
    # copy is verified, or a record rebuilt by import_backups): the record
    # stays restorable from its copies.
    local_removed_at = models.DateTimeField(null=True, blank=True)
    # A snapshot in the server's incremental repository (issue #14) instead of an archive file:
    # no storage_path; sha256 is the snapshot document's (its id), size_bytes what it added.
    repository = models.ForeignKey("SnapshotRepository", null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="snapshots")
    snapshot_id = models.CharField(max_length=64, blank=True, default="", db_default="")
    files_unchanged = models.IntegerField(null=True, blank=True, help_text="Files taken from the parent unread")

    objects = BackupRecordQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["server"],
                condition=models.Q(status__in=ACTIVE_STATUSES),
                name="one_active_backup_per_server",
            ),
            models.UniqueConstraint(
                fields=["server", "filename"],
                condition=~models.Q(filename=""),
                name="backup_filename_unique_per_server",
            ),
            models.CheckConstraint(
                condition=models.Q(quality_score__isnull=True) | models.Q(quality_score__lte=100),
                name="backup_quality_score_0_100",
            ),
        ]
        indexes = [models.Index(fields=["server", "status", "-created_at"])]

    def __str__(self):
        return self.filename or f"backup #{self.pk} of {self.server_name}"

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @property
    def is_snapshot(self) -> bool:
        return bool(self.snapshot_id) and self.repository_id is not None

    @property
    def taken_at(self):
        """When the snapshot was taken (its file name's time); the queue time before it starts."""
        return self.started_at or self.created_at


class RestoreRequest(models.Model):
    """A restore (or the rollback of one) of a server's folder from a backup."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        ROLLED_BACK = "rolled_back"

    class Kind(models.TextChoices):
        RESTORE = "restore"
        ROLLBACK = "rollback"
        COPY = "copy", "Restore into a new folder"

    server = models.ForeignKey("servers.Server", on_delete=models.CASCADE, related_name="restores")
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.RESTORE)
    backup = models.ForeignKey(BackupRecord, null=True, on_delete=models.SET_NULL, related_name="restores")
    backup_filename = models.CharField(max_length=200)
    safety_backup = models.ForeignKey(
        BackupRecord, null=True, blank=True, on_delete=models.SET_NULL, related_name="safety_for"
    )
    rollback_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="rollbacks"
    )
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED, db_index=True)
    phase = models.CharField(max_length=20, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    progress_bytes = models.BigIntegerField(default=0)
    progress_total = models.BigIntegerField(default=0)
    file_count = models.IntegerField(null=True, blank=True)
    server_was_running = models.BooleanField(null=True, blank=True)
    error_code = models.CharField(max_length=40, blank=True)
    error_message = models.TextField(blank=True)
    steps = models.JSONField(default=list, blank=True)
    keep_excluded = models.BooleanField(
        default=True, help_text="Keep what backups exclude (logs/, …) from the current folder")
    # A partial restore: folder-relative paths (a dimension's folder, the
    # player data, one file) restored alone; empty means the whole backup.
    paths = models.JSONField(default=list, db_default=[], blank=True)
    task_id = models.CharField(max_length=64, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    objects = owned_queryset("server__owner").as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["server"],
                condition=models.Q(status__in=ACTIVE_STATUSES),
                name="one_active_restore_per_server",
            ),
        ]

    def __str__(self):
        return f"{self.kind} of {self.server} from {self.backup_filename}"


class BackupSettings(models.Model):
    """Site-wide backup settings: one row (pk 1), shared by every process.
    Secrets are stored sealed and never shown back."""

    class EncryptionMode(models.TextChoices):
        PASSWORD = "password"
        KEY = "key"

    compression = models.CharField(max_length=8, choices=Compression.choices, default=Compression.GZIP)
    encryption_enabled = models.BooleanField(default=False)
    encryption_mode = models.CharField(max_length=8, choices=EncryptionMode.choices, blank=True)
    encryption_secret_sealed = models.TextField(blank=True, editable=False)
    encryption_fingerprint = models.CharField(max_length=64, blank=True, editable=False)
    kdf_iterations = models.PositiveIntegerField(
        default=600_000, validators=[MinValueValidator(100_000), MaxValueValidator(10_000_000)]
    )
    # Secrets of earlier keys/passwords, so old backups still decrypt after rotation:
    # [{"fingerprint", "mode", "sealed", "iterations", "added_at"}]
    keyring = models.JSONField(default=list, blank=True, editable=False)
    verify_world = models.BooleanField(default=True, help_text="Validate the archived Minecraft world")
    restore_test = models.BooleanField(default=False, help_text="Extract each backup to a temp folder and compare")
    disk_warning_percent = models.PositiveSmallIntegerField(default=80)
    disk_emergency_percent = models.PositiveSmallIntegerField(default=90)
    safety_backup_days = models.PositiveSmallIntegerField(
        default=7, validators=[MinValueValidator(1), MaxValueValidator(365)],
        help_text="Days a restore's safety backup is kept (the rollback point) unless it is locked")
    # Keys survive the host (issue #13): the key material lives only in this
    # database, sealed with the site secret. The pages warn admins until an
    # export (`manage.py export_keys` / the admin action) is newer than the
    # last change of the key or password.
    keys_changed_at = models.DateTimeField(null=True, blank=True, editable=False)
    keys_exported_at = models.DateTimeField(null=True, blank=True, editable=False)
    recheck_days = models.PositiveSmallIntegerField(
        default=7, db_default=7, validators=[MinValueValidator(0), MaxValueValidator(365)],
        help_text="Re-verify each stored backup again after this many days (0: never) to catch bit rot")
    recheck_batch = models.PositiveSmallIntegerField(
        default=10, db_default=10, validators=[MinValueValidator(1), MaxValueValidator(1000)],
        help_text="At most this many backups are re-verified per daily run, the longest unchecked first")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "backup settings"
        verbose_name_plural = "backup settings"
        constraints = [
            models.CheckConstraint(condition=models.Q(id=1), name="backup_settings_singleton"),
            models.CheckConstraint(condition=models.Q(kdf_iterations__gte=100_000), name="kdf_iterations_min"),
        ]

    def __str__(self):
        return "Backup settings"

    @classmethod
    def load(cls) -> "BackupSettings":
        obj, _ = cls.objects.get_or_create(pk=1)
        return obj

    @property
    def encryption_secret(self) -> str:
        return unseal(self.encryption_secret_sealed)

    def set_encryption_secret(self, mode: str, secret: str, fingerprint: str) -> None:
        self.encryption_mode = mode
        self.encryption_secret_sealed = seal(secret)
        self.encryption_fingerprint = fingerprint


class AlertIncident(models.Model):
    """One open incident per (kind, subject): alerts go out once when it opens,
    not on every retry, and again only after it has been resolved."""

    kind = models.CharField(max_length=40)
    subject = models.CharField(max_length=200, help_text="e.g. server:12 or site")
    opened_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)
    last_message = models.TextField(blank=True)
    notified = models.BooleanField(default=False)

    class Meta:
        ordering = ["-opened_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "subject"], condition=models.Q(resolved_at__isnull=True), name="one_open_incident"
            )
        ]

    def __str__(self):
        return f"{self.kind} {self.subject}"


class StorageTarget(models.Model):
    """Where off-site copies go (issue #13): a mounted path, S3-compatible
    object storage or SFTP. `settings` are shown back to admins; `secrets`
    (S3 secret key, SSH password or private key) are sealed and never are.
    The backends live in backups/offsite (no Django there)."""

    class Kind(models.TextChoices):
        LOCAL = "local", "Local or mounted network path"
        S3 = "s3", "S3-compatible object storage"
        SFTP = "sftp", "SFTP"

    name = models.SlugField(max_length=64, unique=True, help_text="Short name, e.g. offsite-b2 (import_backups --target)")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    settings = models.JSONField(default=dict, blank=True)
    secrets_sealed = models.TextField(blank=True, default="", editable=False)
    enabled = models.BooleanField(default=True)
    is_default = models.BooleanField(
        default=False, help_text="Servers that follow the site default get a copy of every backup here")
    extra_retention_days = models.PositiveSmallIntegerField(
        default=0, validators=[MaxValueValidator(3650)],
        help_text="Keep copies this many days longer than the server's retention keeps the backup")
    delete_delay_days = models.PositiveSmallIntegerField(
        default=0, validators=[MaxValueValidator(3650)],
        help_text="Delete a copy this many days after its backup was deleted (0: at once)")
    object_lock_days = models.PositiveSmallIntegerField(
        default=0, validators=[MaxValueValidator(3650)],
        help_text="S3 only: Object Lock retention of each copy, in days (the bucket must have Object Lock on)")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    last_test_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_test_ok = models.BooleanField(null=True, blank=True, editable=False)
    last_test_error = models.CharField(max_length=500, blank=True, editable=False)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=models.Q(kind__in=["local", "s3", "sftp"]), name="storage_target_kind_valid"),
        ]

    def __str__(self):
        return self.name

    @property
    def secrets(self) -> dict:
        import json

        return json.loads(unseal(self.secrets_sealed)) if self.secrets_sealed else {}

    @secrets.setter
    def secrets(self, value: dict) -> None:
        import json

        self.secrets_sealed = seal(json.dumps(value or {})) if value else ""

    def config(self):
        from backups.offsite import TargetConfig

        return TargetConfig(kind=self.kind, name=self.name, settings=dict(self.settings or {}), secrets=self.secrets)


class SnapshotRepository(models.Model):
    """A server's incremental, deduplicated repository (issue #14): on the
    backup root of the server's node (``target`` empty) or on a storage
    target. ``active`` is the server's choice of format: while it is on,
    backups are snapshots here; switched off, the repository and its
    snapshots stay (restorable) and backups are archives again.

    The repository's own key encrypts every blob; it is stored in the
    repository wrapped by ``kek`` (a random 32-byte key, sealed here and in
    the keys export), so the repository opens with the export alone and a
    key rotation re-wraps it without touching a blob."""

    server = models.OneToOneField("servers.Server", null=True, blank=True, on_delete=models.SET_NULL,
                                  related_name="snapshot_repository")
    server_name = models.CharField(max_length=100)
    node = models.CharField(max_length=64, blank=True, default="", help_text="Whose backup root (no target)")
    target = models.ForeignKey(StorageTarget, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                               help_text="Empty: the backup root of the server's game host")
    location = models.CharField(max_length=300, help_text="Folder of the repository on the target or backup root")
    repo_uid = models.CharField(max_length=64, blank=True)
    kek_sealed = models.TextField(editable=False)
    key_changed_at = models.DateTimeField(null=True, blank=True, editable=False)
    active = models.BooleanField(default=True, help_text="Backups of the server are snapshots here")
    full_read_next = models.BooleanField(
        default=False, help_text="The next snapshot reads every file again (size, mtime and inode not trusted)")
    stored_bytes = models.BigIntegerField(default=0, help_text="Bytes in the repository's packs")
    logical_bytes = models.BigIntegerField(default=0, help_text="Sum of the world sizes of its snapshots")
    pruned_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["server_name", "id"]

    def __str__(self):
        return f"repository of {self.server_name}"

    @property
    def kek(self) -> bytes:
        import base64

        return base64.b64decode(unseal(self.kek_sealed))

    @kek.setter
    def kek(self, value: bytes) -> None:
        import base64

        self.kek_sealed = seal(base64.b64encode(value).decode("ascii"))

    @property
    def dedup_ratio(self) -> float | None:
        """World bytes kept per byte stored (e.g. 12.5: 12.5× less than full copies)."""
        if not self.stored_bytes:
            return None
        return round(self.logical_bytes / self.stored_bytes, 2)


class ServerCopyPolicy(models.Model):
    """Which targets get copies of a server's backups. No row: the site
    default (every enabled target marked is_default)."""

    class Mode(models.TextChoices):
        DEFAULT = "default", "The site default"
        CUSTOM = "custom", "These targets"
        NONE = "none", "No off-site copies"

    server = models.OneToOneField("servers.Server", on_delete=models.CASCADE, related_name="copy_policy")
    mode = models.CharField(max_length=8, choices=Mode.choices, default=Mode.DEFAULT)
    targets = models.ManyToManyField(StorageTarget, blank=True, related_name="+")

    class Meta:
        verbose_name_plural = "server copy policies"
        constraints = [
            models.CheckConstraint(condition=models.Q(mode__in=["default", "custom", "none"]), name="copy_policy_mode_valid"),
        ]

    def __str__(self):
        return f"copy policy of {self.server}"


class OffsiteCopy(models.Model):
    """One backup's copy on one storage target."""

    class Status(models.TextChoices):
        PENDING = "pending"
        COPYING = "copying"
        COPIED = "copied"
        VERIFIED = "verified"
        FAILED = "failed"
        DELETED = "deleted"

    backup = models.ForeignKey(BackupRecord, on_delete=models.CASCADE, related_name="copies")
    target = models.ForeignKey(StorageTarget, on_delete=models.PROTECT, related_name="copies")
    remote_name = models.CharField(max_length=500, blank=True, help_text="Relative to the target's prefix or base path")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True)
    error_code = models.CharField(max_length=40, blank=True)
    error_message = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    size_bytes = models.BigIntegerField(null=True, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    part_size = models.BigIntegerField(null=True, blank=True)
    composite_checksum = models.CharField(max_length=100, blank=True, help_text="S3: the multipart composite SHA-256")
    # What a crashed upload left to clean up (the S3 upload id): aborted by the
    # next attempt or the reaper.
    upload_state = models.JSONField(null=True, blank=True)
    task_id = models.CharField(max_length=64, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    verified_at = models.DateTimeField(null=True, blank=True)
    rechecked_at = models.DateTimeField(null=True, blank=True)
    lock_until = models.DateTimeField(null=True, blank=True, help_text="S3 Object Lock retention end")
    delete_after = models.DateTimeField(null=True, blank=True, help_text="Delayed remote deletion")
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "off-site copies"
        constraints = [
            models.UniqueConstraint(fields=["backup", "target"], name="one_copy_per_backup_and_target"),
            models.CheckConstraint(
                condition=models.Q(status__in=["pending", "copying", "copied", "verified", "failed", "deleted"]),
                name="offsite_copy_status_valid"),
        ]

    def __str__(self):
        return f"{self.backup} on {self.target}"


class BackupContents(models.Model):
    """A backup's file list, kept when it is verified (the manifest is the
    archive's last member), so that its tree can be browsed and a part of it
    chosen without decompressing. `entries`: [[path, size, kind], …] with
    kind "f" (file), "d" (folder) or "l" (link)."""

    backup = models.OneToOneField(BackupRecord, on_delete=models.CASCADE, related_name="contents")
    entries = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "backup contents"

    def __str__(self):
        return f"contents of {self.backup}"


class AlertChannel(models.Model):
    """Where alerts go besides the environment's MCSITE_ALERT_URLS/EMAILS:
    an apprise URL or an email address, managed by admins. The target is
    sealed (apprise URLs hold tokens) and never shown back whole."""

    class Kind(models.TextChoices):
        EMAIL = "email"
        APPRISE = "apprise", "Apprise URL"

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=8, choices=Kind.choices)
    target_sealed = models.TextField(editable=False)
    target_hint = models.CharField(max_length=100, blank=True, editable=False,
                                   help_text="What is shown of the target (its scheme or the address)")
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_test_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_test_ok = models.BooleanField(null=True, blank=True, editable=False)
    last_test_error = models.CharField(max_length=300, blank=True, editable=False)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=models.Q(kind__in=["email", "apprise"]), name="alert_channel_kind_valid"),
        ]

    def __str__(self):
        return self.name

    @property
    def target(self) -> str:
        return unseal(self.target_sealed)

    @target.setter
    def target(self, value: str) -> None:
        self.target_sealed = seal(value or "")


class AlertPreference(models.Model):
    """Which events alert a user about their own servers (by email to their
    address). No row: every event."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="alert_preference")
    # What is stored is what the user turned off, so that a kind added in a
    # later version reaches them until they turn it off too.
    muted = models.JSONField(default=list, blank=True,
                             help_text="Alert kinds this user turned off (a kind added later is on)")
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return f"alert preferences of {self.user}"


@receiver(pre_delete, sender="servers.Server", dispatch_uid="backups.remember_folder_of_deleted_server")
def _remember_folder_of_deleted_server(sender, instance, **kwargs):
    """A server deleted other than through server_delete (its owner's user
    account deleted, say) leaves its backups behind like server_delete would:
    they remember its folder, and a copy of `owner` that is not the server's
    owner (a race with a move) is cleared rather than handing them to someone
    else; the account's own SET_NULL clears the rest."""
    records = BackupRecord.objects.filter(server=instance)
    records.update(server_directory=instance.directory)
    records.exclude(owner_id=instance.owner_id).update(owner=None)
