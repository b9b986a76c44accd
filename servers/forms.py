from django import forms

from mcsite.errors import DomainError
from servers.models import Server
from servers.services import resolve_server_directory


class ServerForm(forms.ModelForm):
    """Used by the admin and the web pages: the directory is confined to the
    servers root and not shared, the RCON password is write-only, and only an
    administrator may set the start command (it runs on the host). Pass the
    acting `user`."""

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

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        from django.conf import settings

        self.fields["directory"].help_text = (
            f"The server's folder inside the servers root ({settings.MCSITE_SERVERS_ROOT}), e.g. survival")
        if not getattr(user, "is_superuser", False) and "start_command" in self.fields:
            del self.fields["start_command"]

    def clean_directory(self):
        try:
            return resolve_server_directory(self.cleaned_data["directory"], exclude_pk=self.instance.pk)
        except DomainError as exc:
            raise forms.ValidationError(exc.message) from None

    def clean_name(self):
        name = self.cleaned_data["name"]
        owner = self.instance.owner if self.instance.owner_id else self.user
        if owner is not None and Server.objects.filter(owner=owner, name=name).exclude(pk=self.instance.pk).exists():
            raise forms.ValidationError("You already have a server with this name.")
        return name

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
