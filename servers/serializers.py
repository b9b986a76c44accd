from django.core.validators import RegexValidator
from rest_framework import serializers

from mcsite.api.fields import RejectUnknownFieldsMixin, StrictBooleanField, StrictCharField, StrictIntegerField
from servers.announcements import AnnouncementError, check_message, normalise_countdown
from servers.models import Node, NodeCall, Server


def _announcement(check, value):
    try:
        return check(value)
    except AnnouncementError as exc:
        raise serializers.ValidationError(str(exc)) from None


class ServerInputSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    name = StrictCharField(max_length=100)
    directory = StrictCharField(max_length=500, help_text="A folder inside the servers root, absolute or relative")
    start_command = StrictCharField(max_length=500, required=False)
    memory_mb = StrictIntegerField(min_value=256, max_value=262144, required=False)
    rcon_host = StrictCharField(max_length=255, required=False)
    rcon_port = StrictIntegerField(min_value=1, max_value=65535, required=False)
    rcon_password = StrictCharField(
        max_length=200, required=False, allow_blank=True, write_only=True, trim_whitespace=False
    )
    stop_timeout = StrictIntegerField(min_value=1, max_value=3600, required=False)
    backup_mode = serializers.ChoiceField(choices=Server.BackupMode.choices, required=False)
    exclude_patterns = serializers.ListField(child=StrictCharField(max_length=200), required=False, max_length=100)
    node = StrictCharField(max_length=64, required=False, validators=[RegexValidator(
        r"^[A-Za-z0-9_.@-]{1,64}$", "Letters, digits and _ . @ - only (a Celery queue name).")])
    # Telling the players before a backup stops the server (servers/announcements.py).
    announce = StrictBooleanField(required=False, help_text="Warn players in game before a backup stops the server")
    announce_countdown = StrictCharField(
        required=False, allow_blank=True, max_length=100,
        help_text='Seconds before the stop at which to warn, e.g. "60,30,10" (1–600 each, at most 10; '
                  'kept longest first). Empty: one warning, no wait')
    announce_message = StrictCharField(
        required=False, max_length=200, help_text="One line; {seconds} is replaced by the time left")
    announce_done_message = StrictCharField(
        required=False, allow_blank=True, max_length=200, help_text="One line said after the backup; empty: none")
    announce_live = StrictBooleanField(required=False, help_text="Also announce live backups (nothing stops)")

    def validate_announce_countdown(self, value):
        return _announcement(normalise_countdown, value)

    def validate_announce_message(self, value):
        return _announcement(check_message, value)

    def validate_announce_done_message(self, value):
        return _announcement(lambda text: check_message(text, required=False), value)


    def validate_start_command(self, value):
        if not value.strip():
            raise serializers.ValidationError("Start command cannot be empty.")
        return value


class ServerOutputSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.username", read_only=True)
    has_rcon_password = serializers.BooleanField(read_only=True)
    status = serializers.SerializerMethodField()
    warnings = serializers.SerializerMethodField(
        help_text="Settings accepted but that will get in the way, e.g. the server jar missing from the folder")

    class Meta:
        model = Server
        fields = [
            "id", "name", "owner", "directory", "start_command", "memory_mb", "rcon_host", "rcon_port",
            "has_rcon_password", "stop_timeout", "backup_mode", "exclude_patterns", "node", "status",
            "warnings", "announce", "announce_countdown", "announce_message", "announce_done_message",
            "announce_live", "created_at", "updated_at",
        ]
        read_only_fields = fields

    def get_warnings(self, server) -> list[str]:
        from servers.services import server_warnings

        return server_warnings(server)

    def get_status(self, server) -> dict:
        from servers.selectors import server_status

        return server_status(server=server)


class NodeCallSerializer(serializers.ModelSerializer):
    """A start, stop or folder check sent to a server's node (issue #15)."""

    server_id = serializers.IntegerField(read_only=True, allow_null=True)
    finished = serializers.BooleanField(read_only=True)

    class Meta:
        model = NodeCall
        fields = ["id", "node", "server_id", "action", "status", "finished", "result", "error_code",
                  "error_message", "created_at", "started_at", "finished_at"]
        read_only_fields = fields


class NodeSerializer(serializers.ModelSerializer):
    """A game host as it last reported itself (issue #15)."""

    state = serializers.SerializerMethodField(help_text="up; down (silent for 3 heartbeats); unknown (never reported)")
    server_count = serializers.SerializerMethodField()

    class Meta:
        model = Node
        fields = ["name", "state", "hostname", "version", "worker_count", "started_at", "last_heartbeat",
                  "down_since", "servers_root_free", "servers_root_total", "backup_root_free", "backup_root_total",
                  "server_count"]
        read_only_fields = fields

    def get_state(self, node) -> str:
        from servers.nodes import node_state

        return node_state(node)

    def get_server_count(self, node) -> int:
        return Server.objects.filter(node=node.name).count()
