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
            # A folder is relative to its node's servers root (issue #15): unique on each node.
            models.UniqueConstraint(fields=["node", "directory"], name="server_directory_unique_per_node"),
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


class Node(models.Model):
    """A game host: the worker(s) listening on one Celery queue, with the
    servers root and backup root of that host (SPEC §12, issue #15). Filled by
    the node itself (servers/nodes.py: a heartbeat on its own queue every
    MCSITE_NODE_HEARTBEAT_SECONDS); the web tier reads it and never looks at
    that host's folders or processes."""

    name = models.CharField(max_length=64, unique=True, help_text="Its Celery queue (a server's node)")
    hostname = models.CharField(max_length=255, blank=True, default="")
    version = models.CharField(max_length=64, blank=True, default="", help_text="mcsite version on the node")
    worker_count = models.PositiveIntegerField(default=0, help_text="Worker processes on its queue")
    started_at = models.DateTimeField(null=True, blank=True, help_text="When its worker last started")
    last_heartbeat = models.DateTimeField(null=True, blank=True, db_index=True)
    servers_root_free = models.BigIntegerField(null=True, blank=True)
    servers_root_total = models.BigIntegerField(null=True, blank=True)
    backup_root_free = models.BigIntegerField(null=True, blank=True)
    backup_root_total = models.BigIntegerField(null=True, blank=True)
    # {server id: {"state", "running", "pid", "uptime_seconds", "folder"}} as the node saw them.
    statuses = models.JSONField(default=dict, blank=True)
    # Set once the node was found silent for 3 heartbeats (alerted once); cleared when it reports again.
    down_since = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class NodeCall(models.Model):
    """One action a node runs for the web tier (start, stop, check a
    folder…): the row is its request and its answer, as there is no Celery
    result backend. The web tier waits for it a little, then answers with the
    pending call, which the API and pages can poll."""

    class Status(models.TextChoices):
        PENDING = "pending", "Sent to the node"
        RUNNING = "running", "Running on the node"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    node = models.CharField(max_length=64, db_index=True)
    server = models.ForeignKey(Server, null=True, blank=True, on_delete=models.CASCADE, related_name="node_calls")
    action = models.CharField(max_length=32)
    arguments = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    result = models.JSONField(default=dict, blank=True)
    error_code = models.CharField(max_length=64, blank=True, default="")
    error_message = models.TextField(blank=True, default="")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.action} on {self.node} ({self.status})"

    @property
    def finished(self) -> bool:
        return self.status in (self.Status.SUCCEEDED, self.Status.FAILED)
