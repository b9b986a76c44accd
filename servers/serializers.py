from django.core.validators import RegexValidator
from rest_framework import serializers

from mcsite.api.fields import RejectUnknownFieldsMixin, StrictCharField, StrictIntegerField
from servers.models import Server


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
            "warnings", "created_at", "updated_at",
        ]
        read_only_fields = fields

    def get_warnings(self, server) -> list[str]:
        from servers.services import server_warnings

        return server_warnings(server)

    def get_status(self, server) -> dict:
        from servers.selectors import server_status

        return server_status(server=server)
