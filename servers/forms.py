from django import forms

from mcsite.errors import DomainError
from servers.models import Server
from servers.services import resolve_server_directory


class ServerForm(forms.ModelForm):
    """Used by the admin and the web pages: the directory is confined to the
    servers root and the RCON password is write-only."""

    rcon_password = forms.CharField(
        required=False, strip=False, widget=forms.PasswordInput(render_value=False),
        help_text="Leave empty to keep the current password. Stored encrypted.",
    )
    clear_rcon_password = forms.BooleanField(required=False, label="Remove the stored RCON password")

    class Meta:
        model = Server
        fields = [
            "name", "directory", "start_command", "memory_mb", "rcon_host", "rcon_port",
            "stop_timeout", "backup_mode", "exclude_patterns", "node",
        ]

    def clean_directory(self):
        try:
            return resolve_server_directory(self.cleaned_data["directory"])
        except DomainError as exc:
            raise forms.ValidationError(exc.message) from None

    def clean_exclude_patterns(self):
        value = self.cleaned_data.get("exclude_patterns") or []
        if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
            raise forms.ValidationError('Enter a JSON list of patterns, e.g. ["logs/", "*.tmp"].')
        return value

    def save(self, commit=True):
        server = super().save(commit=False)
        if self.cleaned_data.get("clear_rcon_password"):
            server.rcon_password = ""
        elif self.cleaned_data.get("rcon_password"):
            server.rcon_password = self.cleaned_data["rcon_password"]
        if commit:
            server.save()
        return server
