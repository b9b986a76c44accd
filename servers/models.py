from pathlib import Path

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from mcsite.ownership import OwnedQuerySet
from mcsite.sealing import seal, unseal

DEFAULT_START_COMMAND = "java -Xms{mem}M -Xmx{mem}M -jar server.jar nogui"
DEFAULT_EXCLUDE_PATTERNS = ["logs/", "crash-reports/", "cache/", "*.tmp"]


def default_exclude_patterns():
    return list(DEFAULT_EXCLUDE_PATTERNS)


class Server(models.Model):
    """A Minecraft Java server: a folder inside MCSITE_SERVERS_ROOT (SPEC §3)."""

    class BackupMode(models.TextChoices):
        STOP = "stop", "Stop the server while archiving"
        LIVE = "live", "Live (save-off / save-all flush / save-on over RCON)"

    name = models.CharField(max_length=100)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="servers")
    directory = models.CharField(
        max_length=500, help_text="Folder of the server, relative to the servers root (symlinks resolved)"
    )
    start_command = models.CharField(max_length=500, default=DEFAULT_START_COMMAND)
    memory_mb = models.PositiveIntegerField(
        default=1024, validators=[MinValueValidator(256), MaxValueValidator(262144)]
    )
    rcon_host = models.CharField(max_length=255, default="127.0.0.1")
    rcon_port = models.PositiveIntegerField(
        default=25575, validators=[MinValueValidator(1), MaxValueValidator(65535)]
    )
    rcon_password_sealed = models.TextField(blank=True, default="", editable=False)
    stop_timeout = models.PositiveIntegerField(
        default=60, validators=[MinValueValidator(1), MaxValueValidator(3600)], help_text="Seconds"
    )
    backup_mode = models.CharField(max_length=8, choices=BackupMode.choices, default=BackupMode.STOP)
    exclude_patterns = models.JSONField(default=default_exclude_patterns, blank=True)
    node = models.CharField(
        max_length=64, default="default", help_text="Celery queue of the worker on this server's disk"
    )
    # Telling the players (issue #12): before a backup that stops the server,
    # `say` the warning at each countdown mark (seconds before the stop),
    # then the done message after it. Live backups say nothing unless
    # announce_live is set.
    announce = models.BooleanField(default=True, db_default=True, help_text="Warn players in game before a backup stops the server")
    announce_countdown = models.CharField(
        max_length=100, default="60,30,10", db_default="60,30,10", blank=True,
        help_text="Seconds before the stop at which to warn, e.g. 60,30,10 (empty: warn once, at once)")
    announce_message = models.CharField(
        max_length=200, default="The server stops for a backup in {seconds} seconds.",
        db_default="The server stops for a backup in {seconds} seconds.",
        help_text="{seconds} is replaced by the time left")
    announce_done_message = models.CharField(
        max_length=200, default="Backup finished.", db_default="Backup finished.", blank=True, help_text="Said once the backup is done")
    announce_live = models.BooleanField(default=False, db_default=False, help_text="Also announce live backups (nothing stops)")
    # The process as last seen by mcsite; status always re-checks it (pid and
    # create time must both match) and never trusts these alone.
    pid = models.IntegerField(null=True, blank=True, editable=False)
    pid_create_time = models.FloatField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = OwnedQuerySet.as_manager()

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="server_name_unique_per_owner"),
            models.UniqueConstraint(fields=["directory"], name="server_directory_unique"),
            models.CheckConstraint(
                condition=models.Q(backup_mode__in=["stop", "live"]), name="server_backup_mode_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(rcon_port__gte=1, rcon_port__lte=65535), name="server_rcon_port_range"
            ),
        ]

    def __str__(self):
        return self.name

    @property
    def path(self) -> Path:
        return Path(settings.MCSITE_SERVERS_ROOT) / self.directory

    @property
    def rcon_password(self) -> str:
        return unseal(self.rcon_password_sealed)

    @rcon_password.setter
    def rcon_password(self, value: str) -> None:
        self.rcon_password_sealed = seal(value or "")

    @property
    def has_rcon_password(self) -> bool:
        return bool(self.rcon_password_sealed)

    def formatted_start_command(self) -> str:
        return self.start_command.replace("{mem}", str(self.memory_mb))

    def process_spec(self):
        from servers.control import ServerProcessSpec

        return ServerProcessSpec(
            directory=self.path,
            start_command=self.formatted_start_command(),
            rcon_host=self.rcon_host,
            rcon_port=self.rcon_port,
            rcon_password=self.rcon_password,
            stop_timeout=float(self.stop_timeout),
            pid=self.pid,
            pid_create_time=self.pid_create_time,
            # The console FIFO lives outside the server folder (never backed up).
            console_fifo=Path(settings.MCSITE_RUN_DIR) / f"server-{self.pk}.console" if self.pk else None,
        )
